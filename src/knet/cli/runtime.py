"""How every long-running knet component runs: on uvloop, with a garbage-collection policy for
big in-memory caches.

The apiserver holds every object of the cluster as decoded JSON, and each informer-based client
(controller-manager, scheduler, kubelet, kube-proxy, DNS) a copy of what it watches: millions of
long-lived dicts and lists that CPython's cyclic garbage collector would otherwise traverse again
and again as the caches grow (a fifth of the apiserver's CPU in a 6,000-pod run; in a client,
decoding 30,000 new pods cost 1.8 s with the default thresholds against 0.5 s with these). They
never form cycles (refcounting frees them), so: young collections are rarer (they mostly find
short-lived objects already freed), automatic full collections are off, and once a minute a
collection of the young generations reclaims the cycles that lived long enough to get there, then
freezes the survivors so that later collections skip them. Every tenth round unfreezes and
collects everything (a second or two of CPU with 30,000 pods cached): cycles that became garbage
after they were frozen go too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any

GC_THRESHOLDS = (50_000, 50, 1_000_000)
COLLECTION_SECONDS = 60.0
FULL_COLLECTION_ROUNDS = 10


async def _collect_garbage_periodically() -> None:
    rounds = 0
    while True:
        await asyncio.sleep(COLLECTION_SECONDS)
        rounds += 1
        if rounds % FULL_COLLECTION_ROUNDS == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)  # the young generations; what survives them ages into the frozen heap
        gc.freeze()


@contextlib.asynccontextmanager
async def long_lived_heap() -> AsyncIterator[None]:
    """The garbage-collection policy above, for as long as the block runs."""
    gc.freeze()  # what start-up built (modules, schemas, parsed flags) is never garbage
    gc.set_threshold(*GC_THRESHOLDS)
    collector = asyncio.create_task(_collect_garbage_periodically())
    try:
        yield
    finally:
        collector.cancel()


async def _with_policy(main: Coroutine[Any, Any, Any]) -> Any:
    # SIGTERM stops the component (a component with its own shutdown installs its own handler
    # over this one). Without a handler a component that is a container's PID 1 would never
    # see it: the kernel drops signals its namespace's init does not handle, so `kubectl delete
    # pod` would wait out the whole grace period and end with SIGKILL.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with long_lived_heap():
        return await main


def run_component(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a component's main coroutine on uvloop (asyncio's own loop if uvloop is missing) under
    the garbage-collection policy above, until it returns or SIGTERM stops it (None)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        run: Any = asyncio.run
    else:
        run = uvloop.run
    try:
        return run(_with_policy(main))
    except asyncio.CancelledError:
        return None
