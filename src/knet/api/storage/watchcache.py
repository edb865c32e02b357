"""The watch side shared by every Store backend: a bounded history of events (for watches that
resume from a revision) and the fan-out of new events to open watches.

Pure asyncio bookkeeping, no I/O: a backend calls `publish` once per durable event, in revision
order, and serves `watch` from here.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
from collections.abc import AsyncIterator

from knet.api.storage.base import Event, TooOld

MAX_PENDING = 20_000  # events queued for one slow watcher before its stream is ended


class _Watcher:
    __slots__ = ("bucket", "namespace", "queue", "overflowed")

    def __init__(self, bucket: str, namespace: str | None) -> None:
        self.bucket, self.namespace = bucket, namespace
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.overflowed = False


class WatchCache:
    def __init__(self, size: int, start_revision: int) -> None:
        self.history: collections.deque[Event] = collections.deque(maxlen=size)
        self.oldest = start_revision  # watches may resume from this revision or later
        self._watchers: set[_Watcher] = set()

    def publish(self, event: Event) -> None:
        if len(self.history) == self.history.maxlen:
            self.oldest = self.history[0].revision
        self.history.append(event)
        for w in self._watchers:
            if w.bucket == event.bucket and (w.namespace is None or w.namespace == event.namespace):
                if w.overflowed:
                    continue
                if w.queue.qsize() >= MAX_PENDING:
                    # A watcher this far behind is cut off (kube-apiserver does the same); its
                    # client resumes from the last version it saw.
                    w.overflowed = True
                    w.queue.put_nowait(None)
                    continue
                w.queue.put_nowait(event)

    def reset(self, revision: int) -> None:
        """Forget the history (it no longer describes the store) and end every open watch."""
        self.history.clear()
        self.oldest = revision
        for w in self._watchers:
            w.queue.put_nowait(None)

    async def watch(self, bucket: str, namespace: str | None, since: int) -> AsyncIterator[Event]:
        """Events of `bucket` (in `namespace`, or all when None) after revision `since`: the
        history first, then new ones as they are published. TooOld when `since` predates the
        history, which the API answers with 410 Gone."""
        if since < self.oldest:
            raise TooOld(since, self.oldest)
        watcher = _Watcher(bucket, namespace)
        # Register before replaying so nothing published meanwhile is missed; the replay covers
        # history up to now and the queue everything after (deduplicated by revision).
        self._watchers.add(watcher)
        try:
            last = since
            start = bisect.bisect_right(self.history, since, key=lambda e: e.revision)
            history = self.history
            for ev in [history[i] for i in range(start, len(history))]:
                if ev.bucket == bucket and (namespace is None or ev.namespace == namespace):
                    last = ev.revision
                    yield ev
            while True:
                ev = await watcher.queue.get()
                if ev is None:
                    return
                if ev.revision > last:
                    last = ev.revision
                    yield ev
        finally:
            self._watchers.discard(watcher)

