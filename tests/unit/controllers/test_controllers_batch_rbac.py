"""Least privilege of the batch controllers (job, cronjob, ttl-after-finished): a Job run to
completion, a CronJob firing and its history cleaned, a finished Job expiring, over FakeApi with
--use-service-account-credentials; every request checked against the role upstream binds to the
controller's service account (tests/unit/upstream_roles.py, copied from upstream's testdata)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from knet.client.fake import FakeApi
from knet.controllers.clientbuilder import ServiceAccountClientBuilder
from knet.controllers.manager import SERVICE_ACCOUNTS, ManagerOptions, run_controller_manager

sys.path.insert(0, str(Path(__file__).parent.parent))
import async_polling  # noqa: E402
from upstream_roles import denied  # noqa: E402

KCM = "system:kube-controller-manager"
until = functools.partial(async_polling.until, timeout=10.0, interval=0.02)
TEMPLATE = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


async def play_kubelet(fake: FakeApi, stop: asyncio.Event) -> None:
    """Every pod runs and succeeds at once."""
    while not stop.is_set():
        for pod in fake.objects("v1", "pods"):
            if (pod.get("status") or {}).get("phase") != "Succeeded":
                await fake.patch("v1", "pods", pod["metadata"]["name"], {"status": {
                    "phase": "Succeeded", "containerStatuses": [{"name": "c", "state": {"terminated": {
                        "exitCode": 0, "finishedAt": stamp(datetime.now(UTC))}}}]}}, namespace="default")
        await asyncio.sleep(0.02)


async def test_batch_controllers_stay_within_their_upstream_roles():
    fake = FakeApi()
    fake.seed("v1", "namespaces", {"metadata": {"name": "default"}})
    for sa in ("job-controller", "cronjob-controller", "ttl-after-finished-controller"):
        fake.seed("v1", "serviceaccounts", {"metadata": {"name": sa, "namespace": "kube-system"}})
    job = fake.seed("batch/v1", "jobs", {"metadata": {"name": "once", "namespace": "default"}, "spec": {
        "completions": 2, "parallelism": 1, "backoffLimit": 6, "ttlSecondsAfterFinished": 0,
        "template": TEMPLATE}})
    job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}}
    fake.store[("batch/v1", "jobs")][("default", "once")]["spec"] = job["spec"]
    created = datetime.now(UTC) - timedelta(minutes=3)  # a CronJob with due slots
    cj = fake.seed("batch/v1", "cronjobs", {"metadata": {"name": "tick", "namespace": "default"}, "spec": {
        "schedule": "* * * * *", "concurrencyPolicy": "Replace", "successfulJobsHistoryLimit": 0,
        "failedJobsHistoryLimit": 1, "jobTemplate": {"spec": {"template": TEMPLATE}}}})
    fake.store[("batch/v1", "cronjobs")][("default", "tick")]["metadata"]["creationTimestamp"] = stamp(created)
    del cj
    root = fake.client(KCM)
    builder = ServiceAccountClientBuilder(root, make_client=lambda source, sa: fake.client(token_source=source))
    options = ManagerOptions(controllers=("job", "cronjob", "ttl-after-finished"))
    stop = asyncio.Event()
    kubelet = asyncio.create_task(play_kubelet(fake, stop))
    manager = asyncio.create_task(run_controller_manager(root, options, builder))
    try:
        # the Job completes and (ttl 0) is deleted; the CronJob's Job is created
        await until(lambda: not any(j["metadata"]["name"] == "once" for j in fake.objects("batch/v1", "jobs")))
        await until(lambda: any(j["metadata"]["name"].startswith("tick-") for j in fake.objects("batch/v1", "jobs")))
        await until(lambda: (fake.objects("batch/v1", "cronjobs")[0].get("status") or {}).get("lastScheduleTime"))
    finally:
        stop.set()
        manager.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await manager
        await kubelet
    by_user: dict[str | None, list] = defaultdict(list)
    for request in fake.requests:
        by_user[request.user].append(request)
    role_of = {KCM: "system:kube-controller-manager",
               **{f"system:serviceaccount:kube-system:{sa}": f"system:controller:{sa}" for sa in SERVICE_ACCOUNTS.values()}}
    for user, requests in by_user.items():
        if user is not None:
            assert denied(requests, role_of[user]) == [], f"{user} ({role_of[user]}) made requests its role refuses"
    writers = {u.rsplit(":", 1)[-1] for u, rs in by_user.items()
               if u and u != KCM and any(r.verb not in ("get", "list", "watch") for r in rs)}
    assert writers == {"job-controller", "cronjob-controller", "ttl-after-finished-controller"}
    job_writes = {(r.verb, r.resource, r.subresource) for r in by_user["system:serviceaccount:kube-system:job-controller"]
                  if r.verb not in ("get", "list", "watch")}
    assert {("create", "pods", ""), ("patch", "pods", ""), ("update", "jobs", "status")} <= job_writes
