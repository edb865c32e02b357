"""What every controller shares: a shared informer factory, a de-duplicating work queue with
rate-limited retries, and the Controller loop (level-triggered: sync_key(key) reads the caches
and makes the world match, whatever events led there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from knet.client import Api, ApiError, Informer
from knet.client.informer import object_key

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class InformerFactory:
    """One Informer per (apiVersion, resource, namespace), shared by every controller."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._informers: dict[tuple[str, str, str | None], Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, api_version: str, resource: str, namespace: str | None = None) -> Informer:
        key = (api_version, resource, namespace)
        if key not in self._informers:
            self._informers[key] = Informer(self.api, api_version, resource, namespace=namespace)
        return self._informers[key]

    def start(self) -> None:
        for inf in self._informers.values():
            if not any(t.get_name() == f"informer:{id(inf)}" for t in self._tasks):
                self._tasks.append(asyncio.create_task(inf.run(), name=f"informer:{id(inf)}"))

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(inf.wait_synced(timeout) for inf in self._informers.values()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class WorkQueue:
    """Keys waiting to be synced. A key is queued at most once; a key being processed that is
    added again is re-queued when its sync finishes (client-go's dirty/processing sets)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(0.05 * (2**n), 30.0))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> str:
        key = await self._queue.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class Controller:
    """Subclasses set `name`, wire their informers in __init__, and implement `sync_key`."""

    name = "controller"
    workers = 2

    def __init__(self) -> None:
        self.queue = WorkQueue()
        self._tasks: list[asyncio.Task[None]] = []

    async def sync_key(self, key: str) -> None:
        raise NotImplementedError

    def initial_keys(self) -> Iterable[str]:
        """Keys to sync once the caches are warm (everything, so a restart converges)."""
        return ()

    def enqueue_obj(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    async def run(self) -> None:
        for key in self.initial_keys():
            self.queue.add(key)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for t in self._tasks:
                t.cancel()
            self.queue.close()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync_key(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if namespace_terminating(exc):
                    self.queue.forget(key)  # its namespace is going away with everything in it
                else:
                    log.warning("%s: sync %s failed: %s", self.name, key, exc)
                    self.queue.add_rate_limited(key)
            except Exception as exc:  # noqa: BLE001 -- retry with back-off, like client-go
                log.warning("%s: sync %s failed: %s", self.name, key, exc)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)


async def slow_start_batch(count: int, fn: Callable[[], Awaitable[None]], initial: int = 1) -> int:
    """Call fn `count` times in batches of 1, 2, 4, ... run concurrently (upstream slowStartBatch):
    a failing request (quota, terminating namespace) is seen after a few calls, not after hundreds.
    Stops after the first batch with a failure and raises its first error; returns the successes."""
    done, batch = 0, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(errors)
        if errors:
            raise errors[0]
        batch = min(2 * batch, count - done)
    return done


def namespace_terminating(exc: ApiError) -> bool:
    """403 "unable to create new content in namespace X because it is being terminated"."""
    return exc.status == 403 and "being terminated" in exc.message


def split_key(key: str) -> tuple[str | None, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


def owner_reference(owner: Obj, *, block: bool = True) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": block}


def controller_of(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def controller_uid_index(obj: Obj) -> list[str]:
    """Informer index function: the uid of the object's controller (none for orphans)."""
    ref = controller_of(obj)
    return [str(ref.get("uid"))] if ref is not None and ref.get("uid") else []


def orphan_namespace_index(obj: Obj) -> list[str]:
    """Informer index function: the namespace of an object that has no controller."""
    if controller_of(obj) is not None:
        return []
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def is_owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")
