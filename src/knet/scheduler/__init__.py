"""knet.scheduler: kube-scheduler. `predicates` decides (filters with upstream's reasons,
least-allocated + spread scores; pure), `scheduler.Scheduler` binds pending pods through
pods/NAME/binding and reports FailedScheduling / PodScheduled=False. `bench` measures it."""
