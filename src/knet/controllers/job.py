"""Job controller (upstream pkg/controller/job): run a Job's pods to `completions` successes,
`parallelism` at a time, with back-off after failures, and finish it Complete or Failed.

Counting follows upstream's finalizer protocol, so that no pod is counted twice or lost when
pods go away or the controller restarts: every pod the controller creates carries the
`batch.kubernetes.io/job-tracking` finalizer; a finished pod's uid is first recorded in
status.uncountedTerminatedPods, then its finalizer removed, then it moves into the
succeeded/failed counters. Terminal decisions are staged as 1.32 does: the interim
SuccessCriteriaMet / FailureTarget condition first (active pods deleted), then Complete / Failed
once no pod is left terminating.

The pure parts (back-off, the pod failure policy, indexes, how many pods to run) are functions
below the controller uses; tests drive them by tables and the controller over FakeApi.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import (
    Controller,
    InformerFactory,
    controller_of,
    controller_uid_index,
    owner_reference,
    slow_start_batch,
    split_key,
)
from knet.controllers.conditions import semantically_equal
from knet.controllers.expectations import Expectations
from knet.controllers.podutil import format_time, get_condition, is_pod_ready, parse_time
from knet.controllers.replicaset import deletion_rank

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], datetime]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
JOB_COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
# Pod failure back-off (job_controller.go DefaultJobPodFailureBackOff / MaxJobPodFailureBackOff).
DEFAULT_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(minutes=10)
MAX_PODS_PER_SYNC = 500  # MaxPodCreateDeletePerSync
FINALIZER_EXPECTATION_TIMEOUT = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- facts about jobs and pods (pure) ------------------------------------------------------------
def condition_true(job: Obj, ctype: str) -> bool:
    cond = get_condition(job, ctype)
    return cond is not None and cond.get("status") == "True"


def is_finished(job: Obj) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def is_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in ("Succeeded", "Failed")


def is_active_pod(pod: Obj) -> bool:
    return phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def only_replace_failed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("podReplacementPolicy") == "Failed"


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """isPodFailed: Failed, or (unless only Failed pods are replaced) deleted before succeeding:
    an orphaned pod may never get to report a phase."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def completion_index(pod: Obj) -> int | None:
    text = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    if text is None or not text.isdigit():
        return None
    return int(text)


def finish_time(pod: Obj) -> datetime:
    """getFinishedTime: the last container finish, else when Ready went False, else the deletion,
    else the creation."""
    status = pod.get("status") or {}
    finished = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                for c in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])]
    finished = [t for t in finished if t is not None]
    if finished:
        return max(finished)
    ready = get_condition(pod, "Ready")
    if ready is not None and ready.get("status") == "False" and parse_time(ready.get("lastTransitionTime")):
        return parse_time(ready["lastTransitionTime"])  # type: ignore[return-value]
    meta = pod["metadata"]
    return parse_time(meta.get("deletionTimestamp")) or parse_time(meta.get("creationTimestamp")) or utcnow()


# --- pod failure policy ------------------------------------------------------------------------
def _exit_codes_match(pod: Obj, req: Obj) -> Obj | None:
    status = pod.get("status") or {}
    values = set(req.get("values") or [])
    for statuses in (status.get("containerStatuses") or [], status.get("initContainerStatuses") or []):
        for cs in statuses:
            term = (cs.get("state") or {}).get("terminated")
            if term is None or int(term.get("exitCode") or 0) == 0:
                continue
            if req.get("containerName") not in (None, cs.get("name")):
                continue
            code = int(term["exitCode"])
            if (req.get("operator") == "In") == (code in values):
                return cs
    return None


def match_failure_policy(job: Obj, pod: Obj) -> tuple[str | None, bool, str | None]:
    """matchPodFailurePolicy: (FailJob message, whether the failure counts towards backoffLimit,
    the action of the matching rule)."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return None, True, None
    meta = pod["metadata"]
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = _exit_codes_match(pod, rule["onExitCodes"])
            if cs is None:
                continue
            if action == "FailJob":
                code = cs["state"]["terminated"]["exitCode"]
                return (f"Container {cs.get('name')} for pod {meta.get('namespace')}/{meta.get('name')} failed with "
                        f"exit code {code} matching FailJob rule at index {index}"), True, action
        elif rule.get("onPodConditions"):
            matched = None
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if any(cond.get("type") == p.get("type") and cond.get("status") == (p.get("status") or "True")
                       for p in rule["onPodConditions"]):
                    matched = cond
                    break
            if matched is None:
                continue
            if action == "FailJob":
                return (f"Pod {meta.get('namespace')}/{meta.get('name')} has condition {matched.get('type')} "
                        f"matching FailJob rule at index {index}"), True, action
        else:
            continue
        if action == "Ignore":
            return None, False, action
        return None, True, action  # Count (FailIndex: counts too, for the per-index limit)
    return None, True, None


def fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
    if not (job.get("spec") or {}).get("podFailurePolicy"):
        return None
    for pod in pods:
        if is_pod_failed(pod, job) and has_finalizer(pod):
            msg, _, _ = match_failure_policy(job, pod)
            if msg is not None:
                return msg
    return None


# --- back-off ----------------------------------------------------------------------------------
def failures_after_last_success(job: Obj, pods: list[Obj]) -> tuple[int, datetime | None]:
    """(failed pods that finished after the last success, when the last of them finished): what
    upstream's backoffRecord holds, computed from the pods themselves."""
    succeeded = [finish_time(p) for p in pods if phase(p) == "Succeeded"]
    last_success = max(succeeded) if succeeded else None
    failures = [finish_time(p) for p in pods if is_pod_failed(p, job) and match_failure_policy(job, p)[1]]
    failures = [t for t in failures if last_success is None or t > last_success]
    return len(failures), (max(failures) if failures else None)


def backoff_remaining(failures: int, last_failure: datetime | None, now: datetime,
                      base: timedelta = DEFAULT_BACKOFF, cap: timedelta = MAX_BACKOFF) -> timedelta:
    """getRemainingTimeForFailuresCount: 10s, 20s, 40s, ... capped, since the last failure."""
    if failures == 0 or last_failure is None:
        return timedelta(0)
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = now - last_failure
    return timedelta(0) if delay < elapsed else delay - elapsed


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """restartPolicy OnFailure: the kubelet restarts containers in place, so their restarts count."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
                restarts += int(cs.get("restartCount") or 0)
    limit = int(spec.get("backoffLimit") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit


# --- indexes -----------------------------------------------------------------------------------
def parse_indexes(text: str | None, completions: int) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            a, b = int(low), int(high or low)
        except ValueError:
            continue
        out.update(i for i in range(a, b + 1) if i < completions)
    return out


def format_indexes(indexes: set[int]) -> str:
    """"1,3-5,7": ranges of consecutive indexes, as status.completedIndexes spells them."""
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def pending_indexes(completions: int, succeeded: set[int], active_pods: list[Obj], count: int) -> list[int]:
    """firstPendingIndexes: the lowest indexes neither succeeded nor running."""
    running = {completion_index(p) for p in active_pods}
    out = []
    for i in range(completions):
        if len(out) >= count:
            break
        if i not in succeeded and i not in running:
            out.append(i)
    return out


def match_success_policy(policy: Obj | None, completions: int, succeeded: set[int]) -> str | None:
    """matchSuccessPolicy (Indexed Jobs): the message of the first rule the succeeded indexes
    satisfy -- all of its succeededIndexes (or succeededCount of them), or succeededCount
    indexes of any -- else None."""
    if not policy or not succeeded:
        return None
    for index, rule in enumerate(policy.get("rules") or []):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = parse_indexes(rule["succeededIndexes"], completions)
            if not required:
                continue
            done = len(required & succeeded)
            if (count is None and done == len(required)) or (count is not None and done >= int(count)):
                return f"Matched rules at index {index}"
        elif count is not None and len(succeeded) >= int(count):
            return f"Matched rules at index {index}"
    return None


def want_active(job: Obj, succeeded: int) -> int:
    """How many pods should run: parallelism, but never more than the completions left (with no
    completions set, none new once one pod succeeded)."""
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism") or 0)
    completions = spec.get("completions")
    if completions is None:
        return 0 if succeeded > 0 else parallelism
    return max(0, min(int(completions) - succeeded, parallelism))


def pod_for_job(job: Obj, index: int | None) -> Obj:
    """The pod a Job's sync creates: its template, the tracking finalizer, the Job as controller;
    for an Indexed Job the completion index (annotation, label, hostname, JOB_COMPLETION_INDEX)."""
    meta, spec = job["metadata"], job.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    generate_name = f"{meta['name']}-"
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        generate_name = f"{meta['name']}-{index}-"
        if not pod_spec.get("hostname"):
            pod_spec["hostname"] = f"{meta['name']}-{index}"
        env_ref = {"name": JOB_COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for key in ("initContainers", "containers"):
            for c in pod_spec.get(key) or []:
                if not any(e.get("name") == JOB_COMPLETION_INDEX_ENV for e in c.get("env") or []):
                    c.setdefault("env", []).append(copy.deepcopy(env_ref))
    if len(generate_name) > 58:  # generated names get 5 random characters: keep within 63
        generate_name = generate_name[:57] + "-"
    pod_meta: Obj = {"generateName": generate_name, "namespace": meta["namespace"], "labels": labels,
                     "finalizers": [TRACKING_FINALIZER],
                     "ownerReferences": [owner_reference({**job, "apiVersion": "batch/v1", "kind": "Job"})]}
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def new_condition(ctype: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = format_time(now)
    return {"type": ctype, "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], ctype: str, status: str, reason: str, message: str,
                     now: datetime) -> tuple[list[Obj], bool]:
    """ensureJobConditionStatus: add or update a condition; whether anything changed."""
    out = [dict(c) for c in conditions]
    for c in out:
        if c.get("type") == ctype:
            if c.get("status") == status and c.get("reason") == reason and c.get("message") == message:
                return out, False
            c.update(status=status, reason=reason, message=message, lastProbeTime=format_time(now),
                     lastTransitionTime=format_time(now))
            return out, True
    if status == "False":
        return out, False  # a False condition that never was True is not recorded
    out.append(new_condition(ctype, reason, message, now))
    return out, True


@dataclass
class _SyncState:
    """What one sync learned and decided (upstream's syncJobCtx)."""
    job: Obj
    pods: list[Obj]
    active: list[Obj]
    terminating: int
    ready: int
    finished: Obj | None = None  # the condition the Job is to get
    expected_rm: set[str] = field(default_factory=set)


class JobController(Controller):
    name = "job"
    workers = 5

    def __init__(self, api: Api, informers: InformerFactory, *, clock: Clock = utcnow,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.clock = clock
        self.recorder = recorder or EventRecorder(api, "job-controller")
        self.expectations = Expectations()
        self._rm_finalizers: dict[str, dict[str, datetime]] = {}  # job key -> pod uid -> when asked
        self.jobs = informers.get("batch/v1", "jobs")
        self.pods = informers.get("v1", "pods")
        self.jobs.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.pods.add_handler(self._pod_changed, lambda o, n: self._pod_updated(o, n), self._pod_changed)
        self.pods.add_indexer("controller-uid", controller_uid_index)
        self.pods.add_indexer("job-finalizer", _job_finalizer_index)

    def initial_keys(self) -> list[str]:
        return self.jobs.keys()

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if controller_of(old) != controller_of(new):
            self._pod_changed(old)
        self._pod_changed(new)

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "Job":
            return
        self.queue.add(f"{pod['metadata']['namespace']}/{ref['name']}")

    # -- sync ------------------------------------------------------------------------------------
    def owned_pods(self, job: Obj) -> list[Obj]:
        ns, uid = job["metadata"]["namespace"], job["metadata"]["uid"]
        return [p for p in self.pods.by_index("controller-uid", uid) if p["metadata"].get("namespace") == ns]

    async def sync_key(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.jobs.get(key)
        await self._release_orphans(ns or "", name, cached)
        if cached is None:
            self.expectations.forget(key)
            self._rm_finalizers.pop(key, None)
            return
        job = copy.deepcopy({**cached, "apiVersion": "batch/v1", "kind": "Job"})
        pods = self.owned_pods(job)
        if is_finished(job):
            # Counted already; a pod that still has the finalizer is let go.
            await self._remove_finalizers(key, [p for p in pods if has_finalizer(p)])
            return
        await self._sync(key, job, pods)

    async def _release_orphans(self, ns: str, name: str, job: Obj | None) -> None:
        """Pods whose Job is gone (or is another Job of the same name) keep the finalizer for
        nobody: remove it so that they can go (upstream's orphan pod queue)."""
        uid = (job or {}).get("metadata", {}).get("uid")
        for pod in self.pods.by_index("job-finalizer", f"{ns}/{name}"):
            ref = controller_of(pod)
            if ref is not None and ref.get("uid") != uid and has_finalizer(pod):
                await self._patch_finalizer_away(pod)

    async def _sync(self, key: str, job: Obj, pods: list[Obj]) -> None:
        now = self.clock()
        spec = job.get("spec") or {}
        status = job.setdefault("status", {})
        status.setdefault("uncountedTerminatedPods", {})
        seen = {p["metadata"]["name"] for p in pods}
        pending_creates, pending_deletes = self.expectations.pending(key, seen)
        satisfied = not pending_creates and not pending_deletes
        expected_rm = self._pending_finalizer_removals(key, pods)
        active = [p for p in pods if is_active_pod(p) and p["metadata"]["name"] not in pending_deletes]
        state = _SyncState(job, pods, active, sum(1 for p in pods if is_terminating(p)),
                           sum(1 for p in active if is_pod_ready(p)), expected_rm=expected_rm)
        uncounted = status["uncountedTerminatedPods"]
        uncounted_failed = set(uncounted.get("failed") or [])
        new_failed = [p for p in pods if has_finalizer(p) and p["metadata"]["uid"] not in expected_rm
                      and is_pod_failed(p, job) and p["metadata"]["uid"] not in uncounted_failed]
        failed_total = (int(status.get("failed") or 0) + len(uncounted_failed)
                        + sum(1 for p in new_failed if match_failure_policy(job, p)[1]))

        if status.get("startTime") is None and not is_suspended(job):
            status["startTime"] = format_time(now)

        # What ends the Job, in upstream's order.
        met = get_condition(job, "SuccessCriteriaMet")
        target = get_condition(job, "FailureTarget")
        if met is not None and met.get("status") == "True":
            state.finished = new_condition("Complete", met.get("reason", ""), met.get("message", ""), now)
        elif target is not None and target.get("status") == "True":
            state.finished = new_condition("Failed", target.get("reason", ""), target.get("message", ""), now)
        elif (msg := fail_job_message(job, pods)) is not None:
            state.finished = new_condition("FailureTarget", "PodFailurePolicy", msg, now)
        elif failed_total > int(spec.get("backoffLimit") or 0) or past_backoff_limit_on_failure(job, pods):
            state.finished = new_condition("FailureTarget", "BackoffLimitExceeded",
                                           "Job has reached the specified backoff limit", now)
        elif self._past_deadline(job, now):
            state.finished = new_condition("FailureTarget", "DeadlineExceeded",
                                           "Job was active longer than specified deadline", now)
        elif spec.get("activeDeadlineSeconds") is not None and not is_suspended(job):
            start = parse_time(status.get("startTime")) or now
            left = start + timedelta(seconds=int(spec["activeDeadlineSeconds"])) - now
            self.queue.add_after(key, max(left.total_seconds(), 0.0) + 0.05)

        succeeded_indexes: set[int] = set()
        if is_indexed(job):
            completions = int(spec.get("completions") or 0)
            succeeded_indexes = parse_indexes(status.get("completedIndexes"), completions) | {
                i for p in pods if phase(p) == "Succeeded" and (i := completion_index(p)) is not None
                and i < completions}
            if state.finished is None and (msg := match_success_policy(spec.get("successPolicy"), completions,
                                                                        succeeded_indexes)) is not None:
                state.finished = new_condition("SuccessCriteriaMet", "SuccessPolicy", msg, now)
        suspend_changed = False
        if state.finished is not None:
            deleted = await self._delete_pods(key, job, state.active, keep_finalizer=True)
            if deleted != len(state.active) or not satisfied:
                state.finished = None  # not yet: pods to go, or the cache is behind
            state.terminating += deleted
            state.ready -= sum(1 for p in state.active if is_pod_ready(p))
            state.active = []
        else:
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                await self._manage(key, job, state, succeeded_indexes, now)
                counted_succeeded = (len(succeeded_indexes) if is_indexed(job) else
                                     int(status.get("succeeded") or 0) + len(uncounted.get("succeeded") or [])
                                     + sum(1 for p in pods if has_finalizer(p) and phase(p) == "Succeeded"
                                           and p["metadata"]["uid"] not in expected_rm
                                           and p["metadata"]["uid"] not in set(uncounted.get("succeeded") or [])))
                completions = spec.get("completions")
                done = (counted_succeeded > 0 if completions is None else counted_succeeded >= int(completions))
                if done and not state.active:
                    state.finished = new_condition("SuccessCriteriaMet", "CompletionsReached",
                                                   "Reached expected number of succeeded pods", now)
                elif is_suspended(job):
                    status["conditions"], changed = ensure_condition(
                        status.get("conditions") or [], "Suspended", "True", "JobSuspended", "Job suspended", now)
                    if changed:
                        suspend_changed = True
                        await self.recorder.event(job, "Normal", "Suspended", "Job suspended")
                else:
                    status["conditions"], changed = ensure_condition(
                        status.get("conditions") or [], "Suspended", "False", "JobResumed", "Job resumed", now)
                    if changed:
                        suspend_changed = True
                        await self.recorder.event(job, "Normal", "Resumed", "Job resumed")
                        status["startTime"] = format_time(now)  # the deadline counts from the resume
        status["active"] = len(state.active)
        status["ready"] = max(state.ready, 0)
        status["terminating"] = state.terminating
        await self._track_and_finish(key, job, state, succeeded_indexes, suspend_changed)

    def _past_deadline(self, job: Obj, now: datetime) -> bool:
        seconds = (job.get("spec") or {}).get("activeDeadlineSeconds")
        start = parse_time((job.get("status") or {}).get("startTime"))
        if seconds is None or start is None or is_suspended(job):
            return False
        return (now - start).total_seconds() >= int(seconds)

    async def _manage(self, key: str, job: Obj, state: _SyncState, succeeded_indexes: set[int],
                      now: datetime) -> None:
        """manageJob: delete the pods too many (all of them when suspended), or create the ones
        missing once the back-off after failures is over."""
        spec, status = job.get("spec") or {}, job.get("status") or {}
        if is_suspended(job):
            removed = await self._delete_pods(key, job, state.active, keep_finalizer=False)
            state.terminating += removed
            state.ready = 0
            state.active = []
            return
        active = state.active
        if is_indexed(job):
            completions = int(spec.get("completions") or 0)
            extra, by_index = [], {}
            for p in sorted(active, key=deletion_rank, reverse=True):
                ix = completion_index(p)
                if ix is None or ix >= completions or ix in succeeded_indexes or ix in by_index:
                    extra.append(p)
                else:
                    by_index[ix] = p
            if extra:
                await self._delete_pods(key, job, extra, keep_finalizer=False)
                state.terminating += len(extra)
                active = state.active = [p for p in active if p not in extra]
            succeeded = len(succeeded_indexes)
        else:
            uncounted = status.get("uncountedTerminatedPods") or {}
            succeeded = (int(status.get("succeeded") or 0) + len(uncounted.get("succeeded") or [])
                         + sum(1 for p in state.pods if phase(p) == "Succeeded" and has_finalizer(p)
                               and p["metadata"]["uid"] not in set(uncounted.get("succeeded") or [])))
        want = want_active(job, succeeded)
        if len(active) > want:
            victims = sorted(active, key=deletion_rank)[: len(active) - want]
            removed = await self._delete_pods(key, job, victims, keep_finalizer=False)
            state.terminating += removed
            state.active = [p for p in active if p not in victims]
            return
        terminating = state.terminating if only_replace_failed(job) else 0
        missing = min(want - len(active) - terminating, MAX_PODS_PER_SYNC)
        if missing <= 0:
            return
        failures, last_failure = failures_after_last_success(job, state.pods)
        wait = backoff_remaining(failures, last_failure, now)
        if wait > timedelta(0):
            self.queue.add_after(key, wait.total_seconds())
            return
        indexes: list[int | None] = [None] * missing
        if is_indexed(job):
            indexes = list(pending_indexes(int(spec.get("completions") or 0), succeeded_indexes, active, missing))
        queue = list(indexes)

        async def create_one() -> None:
            index = queue.pop(0)
            created = await self.api.create("v1", "pods", pod_for_job(job, index), namespace=job["metadata"]["namespace"])
            self.expectations.expect_create(key, created["metadata"]["name"])
            state.active.append(created)
            await self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

        if queue:
            await slow_start_batch(len(queue), create_one)

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj], *, keep_finalizer: bool) -> int:
        """Delete pods; the count deleted. Pods deleted while the Job runs on (scale down,
        suspend) lose the finalizer first: they are not counted as failures."""
        deleted = 0
        for pod in pods:
            name = pod["metadata"]["name"]
            try:
                if not keep_finalizer and has_finalizer(pod):
                    await self._patch_finalizer_away(pod)
                await self.api.delete("v1", "pods", name, namespace=pod["metadata"]["namespace"])
                self.expectations.expect_delete(key, name)
                await self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
                deleted += 1
            except ApiError as exc:
                if exc.not_found:
                    deleted += 1
                    continue
                log.warning("job %s: deleting pod %s: %s", key, name, exc)
        return deleted

    async def _patch_finalizer_away(self, pod: Obj) -> bool:
        finalizers = [f for f in pod["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
        try:
            await self.api.patch("v1", "pods", pod["metadata"]["name"],
                                 {"metadata": {"finalizers": finalizers or None}},
                                 namespace=pod["metadata"]["namespace"])
        except ApiError as exc:
            if not exc.not_found:
                raise
        return True

    def _pending_finalizer_removals(self, key: str, pods: list[Obj]) -> set[str]:
        """Pods whose finalizer this controller removed but the cache still shows."""
        asked = self._rm_finalizers.get(key) or {}
        now = self.clock()
        still = {p["metadata"]["uid"] for p in pods if has_finalizer(p)}
        pending = {uid: t for uid, t in asked.items()
                   if uid in still and (now - t).total_seconds() < FINALIZER_EXPECTATION_TIMEOUT}
        self._rm_finalizers[key] = pending
        return set(pending)

    async def _remove_finalizers(self, key: str, pods: list[Obj]) -> set[str]:
        """Remove the tracking finalizer; the uids done."""
        done = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            try:
                await self._patch_finalizer_away(pod)
            except ApiError as exc:
                log.warning("job %s: removing the finalizer of %s: %s", key, pod["metadata"]["name"], exc)
                continue
            self._rm_finalizers.setdefault(key, {})[uid] = self.clock()
            done.add(uid)
        return done

    async def _track_and_finish(self, key: str, job: Obj, state: _SyncState, succeeded_indexes: set[int],
                                needs_flush: bool) -> None:
        """trackJobStatusAndRemoveFinalizers: record finished pods as uncounted, remove their
        finalizers, count them; then, with nothing left uncounted or terminating, finish."""
        status = job["status"]
        spec = job.get("spec") or {}
        uncounted = status["uncountedTerminatedPods"]
        with_finalizer = {p["metadata"]["uid"] for p in state.pods
                          if has_finalizer(p) and p["metadata"]["uid"] not in state.expected_rm}
        needs_flush = self._count_released(status, with_finalizer) or needs_flush
        finished = state.finished
        if finished is not None and finished["type"] in ("FailureTarget", "SuccessCriteriaMet"):
            # the interim condition is written before any finalizer goes; the final one follows
            status["conditions"] = (status.get("conditions") or []) + [finished]
            needs_flush = True
            final_type = "Failed" if finished["type"] == "FailureTarget" else "Complete"
            finished = state.finished = new_condition(final_type, finished["reason"], finished["message"],
                                                      self.clock())
        to_release: list[Obj] = []
        new_indexes: set[int] = set()
        usucc, ufail = list(uncounted.get("succeeded") or []), list(uncounted.get("failed") or [])
        failing = finished is not None and finished["type"] == "Failed"
        for pod in state.pods:
            uid = pod["metadata"]["uid"]
            if uid not in with_finalizer:
                continue
            failed = is_pod_failed(pod, job)
            if not (job["metadata"].get("deletionTimestamp") or finished is not None or phase(pod) == "Succeeded"
                    or failed):
                continue
            to_release.append(pod)
            if phase(pod) == "Succeeded" and uid not in ufail:
                if is_indexed(job):
                    ix = completion_index(pod)
                    if ix is not None and ix < int(spec.get("completions") or 0):
                        new_indexes.add(ix)
                elif uid not in usucc:
                    usucc.append(uid)
                    needs_flush = True
            elif (failed or failing) and uid not in ufail:
                if match_failure_policy(job, pod)[1]:
                    ufail.append(uid)
                    needs_flush = True
        uncounted["succeeded"], uncounted["failed"] = usucc, ufail
        if is_indexed(job):
            indexes = succeeded_indexes | new_indexes
            text = format_indexes(indexes)
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["completedIndexes"] = text
            status["succeeded"] = len(indexes)
        if needs_flush:
            await self._write_status(job)
            needs_flush = False
        if to_release:
            released = await self._remove_finalizers(key, to_release)
            with_finalizer -= released
        if self._count_released(status, with_finalizer):
            needs_flush = True
        if self._enact_finished(job, state):
            needs_flush = True
        if needs_flush or not semantically_equal(self._cached_status(key), status):
            await self._write_status(job)
            if finished is not None and is_finished(job):
                if finished["type"] == "Complete":
                    await self.recorder.event(job, "Normal", "Completed", "Job completed")
                else:
                    await self.recorder.event(job, "Warning", finished["reason"], finished["message"])

    @staticmethod
    def _count_released(status: Obj, with_finalizer: set[str]) -> bool:
        """cleanUncountedPodsWithoutFinalizers: uncounted pods whose finalizer is gone are counted."""
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        changed = False
        for kind, counter in (("succeeded", "succeeded"), ("failed", "failed")):
            uids = list(uncounted.get(kind) or [])
            keep = [u for u in uids if u in with_finalizer]
            if len(keep) != len(uids):
                changed = True
                status[counter] = int(status.get(counter) or 0) + len(uids) - len(keep)
            uncounted[kind] = keep
        for kind in ("succeeded", "failed"):
            if not uncounted.get(kind):
                uncounted.pop(kind, None)
        return changed

    def _enact_finished(self, job: Obj, state: _SyncState) -> bool:
        finished = state.finished
        if finished is None:
            return False
        status = job["status"]
        uncounted = status.get("uncountedTerminatedPods") or {}
        if uncounted.get("succeeded") or uncounted.get("failed") or state.terminating > 0:
            return False
        status["conditions"], _ = ensure_condition(status.get("conditions") or [], finished["type"], "True",
                                                   finished["reason"], finished["message"], self.clock())
        if finished["type"] == "Complete":
            status["completionTime"] = format_time(self.clock())
        status["active"] = 0
        status["ready"] = 0
        return True

    def _cached_status(self, key: str) -> Obj:
        return (self.jobs.get(key) or {}).get("status") or {}

    async def _write_status(self, job: Obj) -> None:
        written = await self.api.update("batch/v1", "jobs", job, namespace=job["metadata"]["namespace"],
                                        subresource="status")
        job["metadata"]["resourceVersion"] = written["metadata"]["resourceVersion"]


def _job_finalizer_index(pod: Obj) -> list[str]:
    """Informer index: "namespace/job name" of a pod with the tracking finalizer and a Job as controller."""
    ref = controller_of(pod)
    if ref is None or ref.get("kind") != "Job" or not has_finalizer(pod):
        return []
    return [f"{pod['metadata'].get('namespace')}/{ref.get('name')}"]
