"""TTL-after-finished controller (upstream pkg/controller/ttlafterfinished): a finished Job with
spec.ttlSecondsAfterFinished is deleted (with its pods, foreground) that long after it finished."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from knet.client import Api, ApiError
from knet.controllers.base import Controller, InformerFactory, split_key
from knet.controllers.podutil import get_condition, parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def finish_time(job: Obj) -> datetime | None:
    """jobFinishTime: when the Complete or Failed condition became True."""
    for ctype in ("Complete", "Failed"):
        cond = get_condition(job, ctype)
        if cond is not None and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def time_left(job: Obj, now: datetime) -> timedelta | None:
    """None: not for this controller (no TTL, not finished, being deleted); else how long until
    the Job expires (<= 0: now)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or job["metadata"].get("deletionTimestamp"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + timedelta(seconds=int(ttl)) - now


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"

    def __init__(self, api: Api, informers: InformerFactory, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__()
        self.api = api
        self.clock = clock
        self.jobs = informers.get("batch/v1", "jobs")
        self.jobs.add_handler(self._changed, lambda o, n: self._changed(n), None)

    def initial_keys(self) -> list[str]:
        return self.jobs.keys()

    def _changed(self, job: Obj) -> None:
        if (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
            self.enqueue_obj(job)

    async def sync_key(self, key: str) -> None:
        cached = self.jobs.get(key)
        if cached is None:
            return
        left = time_left(cached, self.clock())
        if left is None:
            return
        if left > timedelta(0):
            self.queue.add_after(key, left.total_seconds())
            return
        # The cache may be stale (a TTL just raised): decide on the Job as stored now.
        ns, name = split_key(key)
        try:
            fresh = await self.api.get("batch/v1", "jobs", name, namespace=ns)
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        left = time_left(fresh, self.clock())
        if left is None:
            return
        if left > timedelta(0):
            self.queue.add_after(key, left.total_seconds())
            return
        try:
            await self.api.delete("batch/v1", "jobs", name, namespace=ns, propagation_policy="Foreground",
                                  preconditions={"resourceVersion": fresh["metadata"]["resourceVersion"]})
        except ApiError as exc:
            if not exc.not_found:
                raise
