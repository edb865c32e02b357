"""Job controller: the pure decisions by tables (back-off, pod failure policy, indexes, how many
pods to run), then the controller over FakeApi with the test playing the kubelet (pods finish
Succeeded or Failed with an exit code) and a fake clock for back-off and deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knet.controllers.job import (
    COMPLETION_INDEX,
    TRACKING_FINALIZER,
    JobController,
    backoff_remaining,
    failures_after_last_success,
    format_indexes,
    match_failure_policy,
    match_success_policy,
    parse_indexes,
    past_backoff_limit_on_failure,
    pending_indexes,
    want_active,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- back-off: upstream TestGetRemainingBackoffTime / backoff_utils_test ---------------------------
@pytest.mark.parametrize(("failures", "since_last", "want"), [
    pytest.param(0, 0, 0, id="no-failures"),
    pytest.param(1, 0, 10, id="first-failure-10s"),
    pytest.param(1, 4, 6, id="first-failure-partly-waited"),
    pytest.param(2, 0, 20, id="second-20s"),
    pytest.param(3, 5, 35, id="third-40s-minus-5"),
    pytest.param(6, 0, 320, id="sixth-320s"),
    pytest.param(7, 0, 600, id="seventh-capped-10m"),
    pytest.param(20, 0, 600, id="many-capped-10m"),
    pytest.param(2, 25, 0, id="waited-longer-than-backoff"),
])
def test_backoff_remaining(failures, since_last, want):
    got = backoff_remaining(failures, T0 - timedelta(seconds=since_last), T0)
    assert got == timedelta(seconds=want)


def job(**spec) -> dict:
    base = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
            "suspend": False, "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "j-uid"}},
            "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "j-uid",
                                                 "batch.kubernetes.io/job-name": "pi"}},
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "j-uid"}, "spec": base}


def pod(name: str, phase: str, *, exit_code: int | None = None, finished: datetime = T0, container: str = "main",
        conditions: list | None = None, index: int | None = None, restarts: int = 0, deleted: bool = False) -> dict:
    cs: dict = {"name": container, "restartCount": restarts, "state": {"running": {}}}
    if exit_code is not None:
        cs["state"] = {"terminated": {"exitCode": exit_code, "finishedAt": stamp(finished)}}
    meta: dict = {"name": name, "namespace": "default", "uid": f"{name}-uid", "finalizers": [TRACKING_FINALIZER],
                  "creationTimestamp": stamp(T0 - timedelta(minutes=5))}
    if index is not None:
        meta["annotations"] = {COMPLETION_INDEX: str(index)}
    if deleted:
        meta["deletionTimestamp"] = stamp(finished)
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [cs], "conditions": conditions or []}}


def test_failures_after_last_success_count_only_later_failures():
    pods = [pod("a", "Failed", exit_code=1, finished=T0), pod("b", "Succeeded", exit_code=0, finished=T0 + timedelta(seconds=5)),
            pod("c", "Failed", exit_code=1, finished=T0 + timedelta(seconds=9)),
            pod("d", "Failed", exit_code=2, finished=T0 + timedelta(seconds=12))]
    assert failures_after_last_success(job(), pods) == (2, T0 + timedelta(seconds=12))
    assert failures_after_last_success(job(), pods[:2]) == (0, None)
    # a pod deleted while running counts as failed (podReplacementPolicy TerminatingOrFailed)...
    assert failures_after_last_success(job(), [pod("e", "Running", deleted=True)])[0] == 1
    # ...but not when only Failed pods are replaced
    assert failures_after_last_success(job(podReplacementPolicy="Failed"), [pod("e", "Running", deleted=True)])[0] == 0


# --- pod failure policy: upstream TestMatchPodFailurePolicy (pod_failure_policy_test.go) -----------
POLICY = {"rules": [
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
    {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3, 4]}},
    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0, 1]}},
]}


@pytest.mark.parametrize(("failed_pod", "want"), [
    pytest.param(pod("p", "Failed", exit_code=42), (
        "Container main for pod default/p failed with exit code 42 matching FailJob rule at index 1", True, "FailJob"),
        id="fail-job-on-exit-code"),
    pytest.param(pod("p", "Failed", exit_code=42, container="sidecar"), (None, True, "Count"),
                 id="fail-job-rule-names-another-container-so-count-rule"),
    pytest.param(pod("p", "Failed", exit_code=3), (None, False, "Ignore"), id="ignore-exit-code"),
    pytest.param(pod("p", "Failed", exit_code=1), (None, True, None), id="no-rule-matches"),
    pytest.param(pod("p", "Failed", exit_code=7), (None, True, "Count"), id="count-not-in"),
    pytest.param(pod("p", "Failed", exit_code=42, conditions=[{"type": "DisruptionTarget", "status": "True"}]),
                 (None, False, "Ignore"), id="disruption-target-first-rule-wins"),
    pytest.param(pod("p", "Failed", exit_code=0), (None, True, None), id="exit-code-0-never-matches"),
])
def test_match_failure_policy(failed_pod, want):
    assert match_failure_policy(job(podFailurePolicy=POLICY), failed_pod) == want


def test_match_failure_policy_pod_condition_fail_job():
    policy = {"rules": [{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    p = pod("p", "Failed", exit_code=137, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    assert match_failure_policy(job(podFailurePolicy=policy), p) == (
        "Pod default/p has condition DisruptionTarget matching FailJob rule at index 0", True, "FailJob")


@pytest.mark.parametrize(("spec", "succeeded", "want"), [
    pytest.param({"parallelism": 2, "completions": 5}, 0, 2, id="parallelism-bounds"),
    pytest.param({"parallelism": 2, "completions": 5}, 4, 1, id="completions-left-bound"),
    pytest.param({"parallelism": 2, "completions": 5}, 5, 0, id="done"),
    pytest.param({"parallelism": 3, "completions": None}, 0, 3, id="work-queue"),
    pytest.param({"parallelism": 3, "completions": None}, 1, 0, id="work-queue-one-succeeded"),
    pytest.param({"parallelism": 0, "completions": 5}, 0, 0, id="parallelism-zero"),
])
def test_want_active(spec, succeeded, want):
    assert want_active(job(**spec), succeeded) == want


@pytest.mark.parametrize(("indexes", "text"), [
    pytest.param(set(), "", id="none"),
    pytest.param({0}, "0", id="one"),
    pytest.param({0, 1, 2, 4, 6, 7}, "0-2,4,6-7", id="ranges"),
])
def test_indexes_round_trip(indexes, text):
    assert format_indexes(indexes) == text
    assert parse_indexes(text, 10) == indexes


# upstream success_policy_test.go TestMatchSuccessPolicy, in spirit
@pytest.mark.parametrize(("rules", "succeeded", "want"), [
    pytest.param([{"succeededIndexes": "0-2"}], {0, 1}, None, id="indexes-not-all-done"),
    pytest.param([{"succeededIndexes": "0-2"}], {0, 1, 2, 5}, "Matched rules at index 0", id="indexes-all-done"),
    pytest.param([{"succeededIndexes": "0-2,4", "succeededCount": 2}], {4, 1}, "Matched rules at index 0",
                 id="count-of-indexes"),
    pytest.param([{"succeededCount": 5}, {"succeededCount": 2}], {3, 7}, "Matched rules at index 1",
                 id="second-rule-count"),
    pytest.param([{"succeededIndexes": "9"}], {9}, None, id="index-out-of-range-never-matches"),
    pytest.param([{"succeededCount": 1}], set(), None, id="nothing-succeeded"),
])
def test_match_success_policy(rules, succeeded, want):
    assert match_success_policy({"rules": rules}, 8, succeeded) == want


async def test_success_policy_completes_an_indexed_job_early(harness):
    """The leader index succeeding is enough: the others are deleted and the Job is Complete."""
    clock = FakeClock()
    seed_job(harness.api, completions=3, parallelism=3, completionMode="Indexed",
             successPolicy={"rules": [{"succeededIndexes": "0"}]})
    await harness.start(JobController(harness.api, harness.informers, clock=clock))
    pods = await harness.until(lambda: len(live_pods(harness.api)) == 3 and live_pods(harness.api))
    leader = next(p for p in pods if p["metadata"]["annotations"][COMPLETION_INDEX] == "0")
    await finish(harness.api, leader, "Succeeded", 0, clock.now)
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Complete", "True", "SuccessPolicy")
                            in conditions(j) and j)
    assert conditions(j)[0] == ("SuccessCriteriaMet", "True", "SuccessPolicy")
    assert j["status"]["completedIndexes"] == "0" and j["status"]["succeeded"] == 1
    assert not live_pods(harness.api)


def test_pending_indexes_skip_succeeded_and_running():
    running = [pod("r", "Running", index=1)]
    assert pending_indexes(5, {0, 3}, running, 2) == [2, 4]


def test_restart_policy_on_failure_counts_container_restarts():
    j = job(backoffLimit=3)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert not past_backoff_limit_on_failure(j, [pod("a", "Running", restarts=2)])
    assert past_backoff_limit_on_failure(j, [pod("a", "Running", restarts=2), pod("b", "Pending", restarts=1)])
    j["spec"]["backoffLimit"] = 0
    assert past_backoff_limit_on_failure(j, [pod("a", "Running", restarts=1)])


# --- the controller over FakeApi -----------------------------------------------------------------
def seed_job(api, **spec) -> None:
    j = job(**spec)
    del j["metadata"]["uid"]
    api.seed("batch/v1", "jobs", j)
    [stored] = api.objects("batch/v1", "jobs")
    uid = stored["metadata"]["uid"]
    stored["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    stored["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = uid
    api.store[("batch/v1", "jobs")][("default", "pi")] = stored


def the_job(api) -> dict:
    [j] = api.objects("batch/v1", "jobs")
    return j


def live_pods(api) -> list[dict]:
    return [p for p in api.objects("v1", "pods") if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


async def finish(api, p: dict, phase: str, exit_code: int, when: datetime, conditions: list | None = None) -> None:
    """The kubelet's report of a finished pod."""
    p["status"] = {"phase": phase, "conditions": conditions or [],
                   "containerStatuses": [{"name": p["spec"]["containers"][0]["name"], "restartCount": 0,
                                          "state": {"terminated": {"exitCode": exit_code, "finishedAt": stamp(when)}}}]}
    await api.update("v1", "pods", p, namespace="default", subresource="status")


def most_running_at_once(api) -> int:
    """Replay the API's history of pods: the most that were running (not finished) at any one time."""
    live: set[str] = set()
    most = 0
    for _, _, resource, etype, obj in api.history:
        if resource != "pods":
            continue
        name = obj["metadata"]["name"]
        if etype == "DELETED" or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            live.discard(name)
        else:
            live.add(name)
        most = max(most, len(live))
    return most


def conditions(j: dict) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in (j.get("status") or {}).get("conditions") or []]


@pytest.mark.parametrize("latency", [pytest.param(0.0, id="fresh-cache"), pytest.param(0.03, id="lagging-cache")])
async def test_completions_5_parallelism_2_runs_two_at_a_time(harness, latency):
    from knet.client.fake import FakeApi
    from knet.controllers.base import InformerFactory
    harness.api = FakeApi(watch_latency=latency)
    harness.informers = InformerFactory(harness.api)
    clock = FakeClock()
    seed_job(harness.api, completions=5, parallelism=2)
    await harness.start(JobController(harness.api, harness.informers, clock=clock))
    most = 0
    for _ in range(5):
        await harness.until(lambda: live_pods(harness.api))
        running = live_pods(harness.api)
        most = max(most, len(running))
        assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in running)
        assert all(p["metadata"]["ownerReferences"][0]["kind"] == "Job" for p in running)
        assert running[0]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
        await finish(harness.api, running[0], "Succeeded", 0, clock.now)
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Complete", "True", "CompletionsReached")
                            in conditions(j) and j)
    assert most == 2 and most_running_at_once(harness.api) == 2
    status = j["status"]
    assert status["succeeded"] == 5 and status.get("failed", 0) == 0 and status["active"] == 0
    assert conditions(j)[:2] == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                 ("Complete", "True", "CompletionsReached")]
    assert status["completionTime"] and status["startTime"]
    assert len(harness.api.objects("v1", "pods")) == 5
    # every pod counted, then let go
    await harness.until(lambda: all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or [])
                                    for p in harness.api.objects("v1", "pods")))


async def test_failing_job_backs_off_and_fails_at_backoff_limit(harness):
    clock = FakeClock()
    seed_job(harness.api, backoffLimit=2)
    ctrl = JobController(harness.api, harness.informers, clock=clock)
    await harness.start(ctrl)
    names = []
    for attempt in range(3):
        p = (await harness.until(lambda: live_pods(harness.api)))[0]
        names.append(p["metadata"]["name"])
        await finish(harness.api, p, "Failed", 1, clock.now)
        if attempt < 2:
            # the replacement waits out the back-off: 10s, then 20s
            await harness.until(lambda n=attempt + 1: (the_job(harness.api)["status"].get("failed") or 0) == n)
            assert not live_pods(harness.api)
            clock.advance(10 * 2 ** attempt + 1)
            ctrl.queue.add("default/pi")
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Failed", "True", "BackoffLimitExceeded")
                            in conditions(j) and j)
    assert len(set(names)) == 3
    assert j["status"]["failed"] == 3
    assert ("FailureTarget", "True", "BackoffLimitExceeded") in conditions(j)
    assert "completionTime" not in j["status"]
    failed = next(c for c in j["status"]["conditions"] if c["type"] == "Failed")
    assert failed["message"] == "Job has reached the specified backoff limit"


async def test_no_pod_is_created_during_back_off(harness):
    clock = FakeClock()
    seed_job(harness.api, backoffLimit=6)
    ctrl = JobController(harness.api, harness.informers, clock=clock)
    await harness.start(ctrl)
    p = (await harness.until(lambda: live_pods(harness.api)))[0]
    await finish(harness.api, p, "Failed", 1, clock.now)
    await harness.until(lambda: the_job(harness.api)["status"].get("failed") == 1)
    clock.advance(9)
    ctrl.queue.add("default/pi")
    await harness.until(lambda: ctrl.queue._queue.empty() and not ctrl.queue._processing)
    assert not live_pods(harness.api)
    clock.advance(2)
    ctrl.queue.add("default/pi")
    await harness.until(lambda: live_pods(harness.api))


async def test_pod_failure_policy_fail_job_and_ignore(harness):
    clock = FakeClock()
    seed_job(harness.api, backoffLimit=0, podFailurePolicy=POLICY, podReplacementPolicy="Failed")
    await harness.start(JobController(harness.api, harness.informers, clock=clock))
    p = (await harness.until(lambda: live_pods(harness.api)))[0]
    # exit code 3 is ignored: not a failure for backoffLimit 0, and replaced at once
    await finish(harness.api, p, "Failed", 3, clock.now)
    p2 = await harness.until(lambda: [q for q in live_pods(harness.api) if q["metadata"]["name"] != p["metadata"]["name"]])
    assert (the_job(harness.api)["status"].get("failed") or 0) == 0
    await finish(harness.api, p2[0], "Failed", 42, clock.now)
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Failed", "True", "PodFailurePolicy")
                            in conditions(j) and j)
    failed = next(c for c in j["status"]["conditions"] if c["type"] == "Failed")
    assert failed["message"] == (f"Container main for pod default/{p2[0]['metadata']['name']} failed with exit code 42 "
                                 "matching FailJob rule at index 1")


async def test_indexed_job_gives_each_pod_its_index(harness):
    clock = FakeClock()
    seed_job(harness.api, completions=3, parallelism=3, completionMode="Indexed")
    await harness.start(JobController(harness.api, harness.informers, clock=clock))
    pods = await harness.until(lambda: len(live_pods(harness.api)) == 3 and live_pods(harness.api))
    indexes = sorted(int(p["metadata"]["annotations"][COMPLETION_INDEX]) for p in pods)
    assert indexes == [0, 1, 2]
    for p in pods:
        ix = p["metadata"]["annotations"][COMPLETION_INDEX]
        assert p["metadata"]["labels"][COMPLETION_INDEX] == ix
        assert p["spec"]["hostname"] == f"pi-{ix}"
        assert p["metadata"]["name"].startswith(f"pi-{ix}-")
        env = p["spec"]["containers"][0]["env"]
        assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}} in env
    by_index = {int(p["metadata"]["annotations"][COMPLETION_INDEX]): p for p in pods}
    await finish(harness.api, by_index[1], "Succeeded", 0, clock.now)
    await harness.until(lambda: the_job(harness.api)["status"].get("completedIndexes") == "1")
    # index 0 fails: its replacement gets index 0 again
    await finish(harness.api, by_index[0], "Failed", 1, clock.now)
    clock.advance(11)
    replacement = await harness.until(lambda: [p for p in live_pods(harness.api)
                                               if p["metadata"]["name"] != by_index[2]["metadata"]["name"]])
    assert replacement[0]["metadata"]["annotations"][COMPLETION_INDEX] == "0"
    await finish(harness.api, replacement[0], "Succeeded", 0, clock.now)
    await finish(harness.api, by_index[2], "Succeeded", 0, clock.now)
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Complete", "True", "CompletionsReached")
                            in conditions(j) and j)
    assert j["status"]["completedIndexes"] == "0-2" and j["status"]["succeeded"] == 3 and j["status"]["failed"] == 1


async def test_suspend_deletes_pods_and_resume_restarts(harness):
    clock = FakeClock()
    seed_job(harness.api, parallelism=2, completions=4, suspend=True)
    ctrl = JobController(harness.api, harness.informers, clock=clock)
    await harness.start(ctrl)
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Suspended", "True", "JobSuspended")
                            in conditions(j) and j)
    assert not harness.api.objects("v1", "pods") and "startTime" not in j["status"]
    await harness.api.patch("batch/v1", "jobs", "pi", {"spec": {"suspend": False}}, namespace="default")
    await harness.until(lambda: len(live_pods(harness.api)) == 2)
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Suspended", "False", "JobResumed")
                            in conditions(j) and j)
    assert j["status"]["startTime"] == stamp(clock.now)
    await harness.api.patch("batch/v1", "jobs", "pi", {"spec": {"suspend": True}}, namespace="default")
    await harness.until(lambda: not harness.api.objects("v1", "pods"))
    assert (the_job(harness.api)["status"].get("failed") or 0) == 0  # suspending is not failing


async def test_active_deadline_fails_the_job(harness):
    clock = FakeClock()
    seed_job(harness.api, activeDeadlineSeconds=30, parallelism=2, completions=2)
    ctrl = JobController(harness.api, harness.informers, clock=clock)
    await harness.start(ctrl)
    await harness.until(lambda: len(live_pods(harness.api)) == 2)
    clock.advance(31)
    ctrl.queue.add("default/pi")
    j = await harness.until(lambda: (j := the_job(harness.api)) and ("Failed", "True", "DeadlineExceeded")
                            in conditions(j) and j)
    assert not harness.api.objects("v1", "pods")
    assert j["status"]["active"] == 0 and j["status"]["failed"] == 2


async def test_finalizer_released_when_the_job_is_gone(harness):
    """A pod whose Job was deleted keeps no finalizer for nobody (upstream's orphan pod queue)."""
    seed_job(harness.api, parallelism=1, completions=1)
    await harness.start(JobController(harness.api, harness.informers, clock=FakeClock()))
    p = (await harness.until(lambda: live_pods(harness.api)))[0]
    await harness.api.delete("batch/v1", "jobs", "pi", namespace="default", propagation_policy="Orphan")
    await harness.until(lambda: all(not (q["metadata"].get("finalizers")) for q in harness.api.objects("v1", "pods")))
    assert [q["metadata"]["name"] for q in harness.api.objects("v1", "pods")] == [p["metadata"]["name"]]
