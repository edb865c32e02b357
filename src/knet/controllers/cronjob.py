"""CronJob controller (upstream pkg/controller/cronjob, "cronjob_controllerv2"): create a Job at
each scheduled time, as concurrencyPolicy allows, keep status.active/lastScheduleTime/
lastSuccessfulTime, and delete finished Jobs beyond the history limits.

Time comes from an injectable clock, so tests run schedules on a fake one. The schedule
arithmetic (mostRecentScheduleTime, nextScheduleTimeDuration) is pure and table-tested.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from knet import cron
from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import Controller, InformerFactory, controller_of, controller_uid_index
from knet.controllers.podutil import format_time, get_condition, parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], datetime]

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = timedelta(milliseconds=100)  # nextScheduleDelta: NTP skew padding
MANY_MISSED = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_schedule(cj: Obj) -> str:
    """formatSchedule: the spec's timeZone as a TZ= prefix (unless the schedule has one)."""
    spec = cj.get("spec") or {}
    schedule = spec.get("schedule") or ""
    tz = spec.get("timeZone")
    if "TZ" in schedule or tz is None:
        return schedule
    try:
        cron.load_location(tz)
    except cron.CronError:
        return schedule
    return f"TZ={tz} {schedule}"


def most_recent_schedule_time(cj: Obj, now: datetime, schedule: cron.Schedule,
                              include_starting_deadline: bool) -> tuple[datetime, datetime | None, int]:
    """mostRecentScheduleTime: (the earliest time considered, the most recent scheduled time not
    after now or None, roughly how many were missed). Raises CronError for a schedule that never
    fires twice (30 February)."""
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(cj["metadata"].get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        scheduling_deadline = now - timedelta(seconds=int(deadline))
        if scheduling_deadline > earliest:
            earliest = scheduling_deadline
    t1 = schedule.next(earliest)
    t2 = schedule.next(t1) if t1 is not None else None
    if t1 is not None and now < t1:
        return earliest, None, 0
    if t1 is not None and (t2 is None or now < t2):
        return earliest, t1, 0
    if t1 is None or t2 is None:  # robfig answers the zero time: "30 February" never comes
        raise cron.CronError("time difference between two schedules is less than 1 second")
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise cron.CronError("time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    missed = elapsed // between + 1
    most_recent = None
    t = schedule.next(t1 + timedelta(seconds=(missed - 2) * between))
    while t is not None and t <= now:
        most_recent = t
        t = schedule.next(t)
    return earliest, most_recent, missed


def next_schedule_time(cj: Obj, now: datetime, schedule: cron.Schedule) -> tuple[datetime | None, int]:
    """nextScheduleTime: the most recent unmet scheduled time (within startingDeadlineSeconds),
    and how many were missed."""
    _, most_recent, missed = most_recent_schedule_time(cj, now, schedule, True)
    if most_recent is None or most_recent > now:
        return None, missed
    return most_recent, missed


def next_schedule_delay(cj: Obj, now: datetime, schedule: cron.Schedule) -> timedelta | None:
    """nextScheduleTimeDuration: how long until the next scheduled time (plus 100 ms)."""
    try:
        earliest, most_recent, missed = most_recent_schedule_time(cj, now, schedule, False)
    except cron.CronError:
        most_recent, earliest, missed = now, now, 0
    if most_recent is None:
        most_recent = earliest if missed == 0 else now
    nxt = schedule.next(most_recent)
    if nxt is None:
        return None
    return nxt + NEXT_SCHEDULE_DELTA - now


def job_name(cj: Obj, scheduled: datetime) -> str:
    """<cronjob>-<scheduled time in minutes since the epoch>: the same name for the same slot,
    so a restarted controller cannot start one slot twice."""
    return f"{cj['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cj: Obj, scheduled: datetime) -> Obj:
    """getJobFromTemplate2."""
    template = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    tz = cron.load_location((cj.get("spec") or {}).get("timeZone") or "")
    local = scheduled.astimezone(tz)
    stamp = local.strftime("%Y-%m-%dT%H:%M:%S") + (
        "Z" if local.utcoffset() == timedelta(0) else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])
    annotations = {**(tmeta.get("annotations") or {}), SCHEDULED_TIMESTAMP: stamp}
    meta = cj["metadata"]
    job_meta: Obj = {"name": job_name(cj, scheduled), "namespace": meta["namespace"],
                     "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                                          "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]}
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def finished_type(job: Obj) -> str | None:
    for ctype in ("Complete", "Failed"):
        cond = get_condition(job, ctype)
        if cond is not None and cond.get("status") == "True":
            return ctype
    return None


def _ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion")}


def jobs_to_clean(cj: Obj, jobs: list[Obj]) -> list[Obj]:
    """cleanupFinishedJobs: the oldest finished Jobs beyond successfulJobsHistoryLimit /
    failedJobsHistoryLimit (by start time)."""
    spec = cj.get("spec") or {}
    out = []
    for ctype, key in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
        limit = spec.get(key)
        if limit is None:
            continue
        done = [j for j in jobs if finished_type(j) == ctype]
        done.sort(key=lambda j: (parse_time((j.get("status") or {}).get("startTime"))
                                 or parse_time(j["metadata"].get("creationTimestamp")) or datetime.min.replace(tzinfo=UTC),
                                 j["metadata"]["name"]))
        excess = len(done) - int(limit)
        if excess > 0:
            out += done[:excess]
    return out


class CronJobController(Controller):
    name = "cronjob"
    workers = 2

    def __init__(self, api: Api, informers: InformerFactory, *, clock: Clock = utcnow,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.clock = clock
        self.recorder = recorder or EventRecorder(api, "cronjob-controller")
        self.cronjobs = informers.get("batch/v1", "cronjobs")
        self.jobs = informers.get("batch/v1", "jobs")
        self.cronjobs.add_handler(self.enqueue_obj, self._cronjob_updated, self.enqueue_obj)
        self.jobs.add_handler(self._job_changed, lambda o, n: self._job_changed(n), self._job_changed)
        self.jobs.add_indexer("controller-uid", controller_uid_index)

    def initial_keys(self) -> list[str]:
        return self.cronjobs.keys()

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        # a new schedule or time zone: the next slot moves (upstream requeues after it)
        self.enqueue_obj(new)

    def _job_changed(self, job: Obj) -> None:
        ref = controller_of(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{job['metadata']['namespace']}/{ref['name']}")

    async def sync_key(self, key: str) -> None:
        cached = self.cronjobs.get(key)
        if cached is None:
            return
        cj = copy.deepcopy({**cached, "apiVersion": "batch/v1", "kind": "CronJob"})
        jobs = [j for j in self.jobs.by_index("controller-uid", cj["metadata"]["uid"])
                if j["metadata"].get("namespace") == cj["metadata"]["namespace"]]
        before = copy.deepcopy(cj.get("status") or {})
        requeue = await self._sync(cj, jobs)
        if (cj.get("status") or {}) != before:
            try:
                await self.api.update("batch/v1", "cronjobs", cj, namespace=cj["metadata"]["namespace"],
                                      subresource="status")
            except ApiError as exc:
                if not exc.not_found:
                    raise
        if not cj["metadata"].get("deletionTimestamp"):
            await self._cleanup(cj, jobs)
        if requeue is not None:
            self.queue.add_after(key, max(requeue.total_seconds(), 0.0))

    async def _sync(self, cj: Obj, jobs: list[Obj]) -> timedelta | None:
        """syncCronJob: the active list against the Jobs, then maybe one new Job; returns when to
        look again."""
        now = self.clock()
        status = cj.setdefault("status", {})
        spec = cj.get("spec") or {}
        ns = cj["metadata"]["namespace"]
        active = list(status.get("active") or [])
        active_uids = {a.get("uid") for a in active}
        children = set()
        for j in jobs:
            uid = j["metadata"]["uid"]
            children.add(uid)
            done = finished_type(j)
            if uid not in active_uids and done is None:
                await self.recorder.event(cj, "Warning", "UnexpectedJob",
                                          f"Saw a job that the controller did not create or forgot: {j['metadata']['name']}")
            elif uid in active_uids and done is not None:
                active = [a for a in active if a.get("uid") != uid]
                await self.recorder.event(cj, "Normal", "SawCompletedJob",
                                          f"Saw completed job: {j['metadata']['name']}, condition: {done}")
            if done == "Complete":
                completed = (j.get("status") or {}).get("completionTime")
                last = parse_time(status.get("lastSuccessfulTime"))
                if completed and (last is None or parse_time(completed) > last):
                    status["lastSuccessfulTime"] = completed
        for ref in list(active):
            if ref.get("uid") in children:
                continue
            try:
                await self.api.get("batch/v1", "jobs", ref.get("name", ""), namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise
                await self.recorder.event(cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                active = [a for a in active if a.get("uid") != ref.get("uid")]
        self._set_active(status, active)
        if cj["metadata"].get("deletionTimestamp"):
            return None
        tz = spec.get("timeZone")
        if tz is not None:
            try:
                cron.load_location(tz)
            except cron.CronError as exc:
                await self.recorder.event(cj, "Warning", "UnknownTimeZone", f'invalid timeZone: "{tz}": {exc}')
                return None
        if spec.get("suspend"):
            return None
        try:
            schedule = cron.parse_standard(format_schedule(cj))
        except cron.CronError as exc:
            await self.recorder.event(cj, "Warning", "UnparseableSchedule",
                                      f'unparseable schedule: "{spec.get("schedule")}" : {exc}')
            return None
        try:
            scheduled, missed = next_schedule_time(cj, now, schedule)
        except cron.CronError as exc:
            await self.recorder.event(cj, "Warning", "InvalidSchedule",
                                      f"invalid schedule: {spec.get('schedule')} : {exc}")
            return None
        if missed > MANY_MISSED:
            await self.recorder.event(cj, "Warning", "TooManyMissedTimes",
                                      f"too many missed start times: {missed}. Set or decrease "
                                      ".spec.startingDeadlineSeconds or check clock skew")
        if scheduled is None:
            return next_schedule_delay(cj, now, schedule)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            await self.recorder.event(cj, "Warning", "MissSchedule", "Missed scheduled time to start a job: "
                                      + scheduled.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"))
            return next_schedule_delay(cj, now, schedule)
        name = job_name(cj, scheduled)
        if any(a.get("name") == name for a in active) or \
                parse_time(status.get("lastScheduleTime")) == scheduled:
            return next_schedule_delay(cj, now, schedule)
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            await self.recorder.event(cj, "Normal", "JobAlreadyActive", "Not starting job because prior execution "
                                      "is running and concurrency policy is Forbid")
            return next_schedule_delay(cj, now, schedule)
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(cj, ref.get("name", ""))
                active = [a for a in active if a.get("uid") != ref.get("uid")]
            self._set_active(status, active)
        body = job_from_template(cj, scheduled)
        try:
            created = await self.api.create("batch/v1", "jobs", body, namespace=ns)
            await self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        except ApiError as exc:
            if exc.status != 409:
                await self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
                raise
            created = await self.api.get("batch/v1", "jobs", body["metadata"]["name"], namespace=ns)
            ref = controller_of(created)
            if ref is None or ref.get("uid") != cj["metadata"]["uid"] or \
                    any(a.get("uid") == created["metadata"]["uid"] for a in active):
                return None
        active.append(_ref(created))
        self._set_active(status, active)
        status["lastScheduleTime"] = format_time(scheduled)
        return next_schedule_delay(cj, now, schedule)

    @staticmethod
    def _set_active(status: Obj, active: list[Obj]) -> None:
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _delete_job(self, cj: Obj, name: str) -> None:
        try:
            await self.api.delete("batch/v1", "jobs", name, namespace=cj["metadata"]["namespace"],
                                  propagation_policy="Background")
        except ApiError as exc:
            if not exc.not_found:
                await self.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
                raise
            return
        await self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _cleanup(self, cj: Obj, jobs: list[Obj]) -> None:
        active = {a.get("uid") for a in (cj.get("status") or {}).get("active") or []}
        for job in jobs_to_clean(cj, [j for j in jobs if j["metadata"]["uid"] not in active
                                      and not j["metadata"].get("deletionTimestamp")]):
            await self._delete_job(cj, job["metadata"]["name"])
