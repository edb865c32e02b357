"""core/v1 Events as upstream components record them (client-go's EventRecorder and its
EventCorrelator).

Before an event is written it goes through the correlator, as in client-go:
- repeats of the same (object, field, type, reason, message) bump `count` and `lastTimestamp` on
  the existing Event instead of creating a new one (`kubectl describe` shows "x3 over 2m");
- once one object has had 10 distinct messages of the same type and reason within 10 minutes
  (a ReplicaSet's "Created pod: ..."), further ones become one Event "(combined from similar
  events): <latest message>" whose count goes up;
- each (component, object) may write a burst of 25 events, then one per 5 minutes; the rest are
  dropped. A ReplicaSet creating 1,000 pods so writes 25 Events, not 1,000.

And as client-go's broadcaster does, recording does not wait for the API server: events queue
(up to 1,000; more are dropped, DropIfChannelFull) and one writer per recorder correlates and
writes them in order. A component under load -- the scheduler binding 500 pods a second -- so
writes what one writer keeps up with, instead of one Event request beside every binding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from knet.client.errors import ApiError
from knet.client.protocol import Api

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "name": meta.get("name"),
           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return {k: v for k, v in ref.items() if v}


_last_nanos = 0


def _unique_nanos() -> int:
    """Event names end in the time in nanoseconds, in hex, as client-go names them: so a LIST
    (sorted by name) and `kubectl describe` (sorted by a timestamp of one-second resolution, then
    as listed) show one object's events in the order they happened."""
    global _last_nanos
    _last_nanos = max(time.time_ns(), _last_nanos + 1)
    return _last_nanos


def build_event(involved: Obj, event_type: str, reason: str, message: str, component: str,
                host: str | None = None, timestamp: str | None = None) -> Obj:
    ref = object_reference(involved)
    ts = timestamp or _now()
    name = ref.get("name", "unknown")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{_unique_nanos():x}", "namespace": ref.get("namespace", "default")},
        "involvedObject": ref, "reason": reason, "message": message, "type": event_type,
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component, "reportingInstance": host or "",
        "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
    }


MAX_CACHE_ENTRIES = 4096          # client-go's maxLruCacheEntries
AGGREGATE_MAX_EVENTS = 10         # defaultAggregateMaxEvents
AGGREGATE_INTERVAL = 600.0        # defaultAggregateIntervalInSeconds
SPAM_BURST = 25                   # defaultSpamBurst
SPAM_QPS = 1.0 / 300.0            # defaultSpamQPS: one more event per object every 5 minutes
COMBINED_PREFIX = "(combined from similar events): "
MAX_QUEUED_EVENTS = 1000          # client-go's maxQueuedEvents


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_recent(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


@dataclass
class _Bucket:
    """A token bucket (flowcontrol's passive rate limiter): `burst` tokens, refilled at `qps`."""
    tokens: float
    stamp: float

    def try_accept(self, now: float, burst: int, qps: float) -> bool:
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * qps)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last: float = 0.0


@dataclass
class Correlation:
    """What to write: `event` (new, or the existing one's name with count+1 when `repeat`)."""
    event: Obj
    key: tuple[Any, ...]
    repeat: bool


def _object_key(ev: Obj) -> tuple[Any, ...]:
    ref, source = ev["involvedObject"], ev.get("source") or {}
    return (source.get("component"), source.get("host"), ref.get("kind"), ref.get("namespace"), ref.get("name"),
            ref.get("uid"), ref.get("apiVersion"))


class EventCorrelator:
    """client-go's EventCorrelator: aggregate similar events, de-duplicate repeats, drop spam."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._aggregates = _Lru(MAX_CACHE_ENTRIES)  # aggregate key -> _Aggregate
        self._logged = _Lru(MAX_CACHE_ENTRIES)      # event key -> the Event last written for it
        self._spam = _Lru(MAX_CACHE_ENTRIES)        # (source, object) -> _Bucket

    def correlate(self, ev: Obj) -> Correlation | None:
        """The event to write for `ev`, or None when the spam filter drops it."""
        now = self.clock()
        ev, key = self._aggregate(ev, now)
        prev = self._logged.get_recent(key)
        repeat = prev is not None
        if repeat:
            ev = {**ev, "metadata": prev["metadata"], "firstTimestamp": prev.get("firstTimestamp"),
                  "count": int(prev.get("count") or 1) + 1}
        self._logged.put(key, ev)
        spam_key = _object_key(ev)
        bucket = self._spam.get_recent(spam_key)
        if bucket is None:
            bucket = _Bucket(float(SPAM_BURST), now)
        self._spam.put(spam_key, bucket)
        if not bucket.try_accept(now, SPAM_BURST, SPAM_QPS):
            return None
        return Correlation(ev, key, repeat)

    def written(self, correlation: Correlation, stored: Obj) -> None:
        """Remember what the API server stored, so the next repeat patches that Event."""
        self._logged.put(correlation.key, stored)

    def _aggregate(self, ev: Obj, now: float) -> tuple[Obj, tuple[Any, ...]]:
        ref = ev["involvedObject"]
        event_key = (*_object_key(ev), ref.get("fieldPath"), ev.get("type"), ev.get("reason"), ev.get("message"))
        aggregate_key = (*_object_key(ev), ev.get("type"), ev.get("reason"), ev.get("reportingComponent"),
                         ev.get("reportingInstance"))
        record = self._aggregates.get_recent(aggregate_key)
        if record is None or now - record.last > AGGREGATE_INTERVAL:
            record = _Aggregate()
        record.messages.add(ev.get("message") or "")
        record.last = now
        self._aggregates.put(aggregate_key, record)
        if len(record.messages) < AGGREGATE_MAX_EVENTS:
            return ev, event_key
        record.messages.pop()
        return {**ev, "message": COMBINED_PREFIX + (ev.get("message") or "")}, aggregate_key


class EventRecorder:
    def __init__(self, api: Api | None, component: str, host: str | None = None,
                 correlator: EventCorrelator | None = None, queue_size: int = MAX_QUEUED_EVENTS) -> None:
        self.api = api  # None until the component has a connection (start): events queue meanwhile
        self.component = component
        self.host = host
        self.correlator = correlator or EventCorrelator()
        self.queue_size = queue_size
        self._queue: deque[Obj] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def event(self, involved: Obj, event_type: str, reason: str, message: str) -> None:
        """Record (see record); a coroutine so that callers read as upstream's recorder calls."""
        self.record(involved, event_type, reason, message)

    def record(self, involved: Obj, event_type: str, reason: str, message: str, *,
               host: str | None = None, field_path: str | None = None) -> None:
        """Queue an event for the writer; never blocks, never raises (events are best-effort)."""
        if len(self._queue) >= self.queue_size:
            return  # dropped, as client-go's broadcaster drops beyond its queue
        ev = build_event(involved, event_type, reason, message, self.component, host or self.host)
        if field_path:
            ev["involvedObject"]["fieldPath"] = field_path
        self._queue.append(ev)
        self._start_writer()

    def start(self, api: Api) -> None:
        """Write through `api` from now on (and what queued before there was one)."""
        self.api = api
        if self._queue:
            self._start_writer()

    async def flush(self) -> None:
        """Wait until every queued event is written (or given up)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def _start_writer(self) -> None:
        if self.api is None or (self._writer is not None and not self._writer.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # recorded outside the event loop: written with the next event recorded in it
        self._writer = loop.create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:  # ends when the queue is empty; the next record() starts a new one
            ev = self._queue.popleft()
            correlation = self.correlator.correlate(ev)
            if correlation is None:
                continue  # this object's events are over the spam limit
            try:
                self.correlator.written(correlation, await self._write(correlation))
            except Exception as exc:  # noqa: BLE001
                log.warning("could not record event %s %s: %s", ev["reason"], ev["involvedObject"].get("name"), exc)

    async def _write(self, correlation: Correlation) -> Obj:
        assert self.api is not None
        ev = correlation.event
        ns = ev["metadata"]["namespace"]
        if correlation.repeat:
            patch = {"count": ev["count"], "lastTimestamp": ev["lastTimestamp"], "message": ev["message"]}
            try:
                return await self.api.patch("v1", "events", ev["metadata"]["name"], patch, namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise
            # Gone (events expire): write it anew, as client-go does.
            ev = {**ev, "metadata": {"name": ev["metadata"]["name"], "namespace": ns}}
        return await self.api.create("v1", "events", ev, namespace=ns)


__all__ = ["EventCorrelator", "EventRecorder", "build_event", "object_reference"]
