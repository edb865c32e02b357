"""The watch side shared by every Store backend: a bounded history of events (for watches that
resume from a revision) and the fan-out of new events to open watches.

Pure asyncio bookkeeping, no I/O: a backend calls `publish` once per durable event, in revision
order, and serves `watch` / `subscribe` from here.

Fan-out is the apiserver's hottest loop at scale (every pod write reaches every pod watcher), so
a watcher is a plain list plus one future to wake its reader: publishing costs an append, and a
reader takes every event queued since its last read in one batch (one HTTP write for many events).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
from collections.abc import AsyncIterator

from knet.api.storage.base import Event, TooOld

MAX_PENDING = 20_000  # events queued for one slow watcher before its stream is ended


class Subscription:
    """One open watch: the events of a bucket (in one namespace, or all) after a revision.

    `next_batch` returns every event queued since the last call (waiting for the first), [] when
    its timeout passes first, and None once the stream has ended (closed, overflowed or reset)."""

    __slots__ = ("bucket", "namespace", "_cache", "_pending", "_limit", "_waiter", "_ended")

    def __init__(self, cache: WatchCache, bucket: str, namespace: str | None, backlog: list[Event]) -> None:
        self.bucket, self.namespace = bucket, namespace
        self._cache = cache
        self._pending = backlog
        self._limit = MAX_PENDING + len(backlog)  # the replayed history does not count as lag
        self._waiter: asyncio.Future | None = None
        self._ended = False

    def push(self, event: Event) -> None:
        if self._ended:
            return
        if len(self._pending) >= self._limit:
            # A watcher this far behind is cut off (kube-apiserver does the same); its client
            # resumes from the last version it saw.
            self.end()
            return
        self._pending.append(event)
        self._wake()

    def end(self) -> None:
        """Stop the stream: the reader gets what is already queued, then None."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_batch(self, timeout: float | None = None) -> list[Event] | None:
        if not self._pending and not self._ended:
            if timeout is not None and timeout <= 0:
                return []
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A timer on the future instead of asyncio.wait_for: no extra Task per wait.
            timer = loop.call_later(timeout, _resolve, waiter) if timeout is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        if self._pending:
            batch, self._pending = self._pending, []
            return batch
        return None if self._ended else []

    @property
    def published_revision(self) -> int:
        """The newest revision the cache has published: every event up to it has been queued to
        this watch (the store's own revision may be ahead, with writes not yet durable)."""
        return self._cache.published

    def close(self) -> None:
        self._ended = True
        self._cache._remove(self)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class WatchCache:
    def __init__(self, size: int, start_revision: int) -> None:
        self.history: collections.deque[Event] = collections.deque(maxlen=size)
        self.oldest = start_revision  # watches may resume from this revision or later
        self.published = start_revision  # the revision of the newest published event
        self._by_bucket: dict[str, set[Subscription]] = collections.defaultdict(set)

    def publish(self, event: Event) -> None:
        if len(self.history) == self.history.maxlen:
            self.oldest = self.history[0].revision
        self.history.append(event)
        self.published = event.revision
        subs = self._by_bucket.get(event.bucket)
        if subs:
            ns = event.namespace
            for s in subs:
                if s.namespace is None or s.namespace == ns:
                    s.push(event)

    def reset(self, revision: int) -> None:
        """Forget the history (it no longer describes the store) and end every open watch."""
        self.history.clear()
        self.oldest = self.published = revision
        for subs in self._by_bucket.values():
            for s in subs:
                s.end()

    def subscribe(self, bucket: str, namespace: str | None, since: int) -> Subscription:
        """A watch of `bucket` (in `namespace`, or all when None) from after revision `since`: the
        history first, then new events as they are published. TooOld when `since` predates the
        history, which the API answers with 410 Gone. Close it when done."""
        if since < self.oldest:
            raise TooOld(since, self.oldest)
        history = self.history
        start = bisect.bisect_right(history, since, key=lambda e: e.revision)
        # Replay and registration happen in one step (no await between), so the backlog covers
        # history up to now and `publish` everything after: nothing missed, nothing twice.
        backlog = [ev for ev in (history[i] for i in range(start, len(history)))
                   if ev.bucket == bucket and (namespace is None or ev.namespace == namespace)]
        sub = Subscription(self, bucket, namespace, backlog)
        self._by_bucket[bucket].add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        subs = self._by_bucket.get(sub.bucket)
        if subs is not None:
            subs.discard(sub)

    async def watch(self, bucket: str, namespace: str | None, since: int) -> AsyncIterator[Event]:
        """The events of `subscribe`, one at a time."""
        sub = self.subscribe(bucket, namespace, since)
        try:
            while True:
                batch = await sub.next_batch()
                if batch is None:
                    return
                for ev in batch:
                    yield ev
        finally:
            sub.close()
