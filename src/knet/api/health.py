"""kube-apiserver's health endpoints: /healthz, /livez and /readyz, each a list of named checks.

As upstream (k8s.io/apiserver/pkg/server/healthz): `GET /readyz` answers `ok` when every check
passes; with `?verbose` it lists them (`[+]ping ok`, ..., `readyz check passed`); when one fails
the answer is always the list (`[-]etcd failed: reason withheld`, ..., `readyz check failed`)
with HTTP 500, the reason kept out of this public answer. `?exclude=NAME` (repeatable) skips a
check; `/readyz/NAME` runs one check alone and tells its reason when it fails.

/livez and /healthz run ping, log, etcd and the post-start hooks; /readyz adds etcd-readiness,
informer-sync and shutdown (which fails once the server stops serving, so load balancers drain
it first). The etcd checks really ask the store (StoreProbe): a cheap read with a short timeout,
at most once a second whatever the number of probes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("knet.api.health")

ENDPOINTS = ("healthz", "livez", "readyz")
PROBE_INTERVAL = 1.0  # seconds between two store probes (upstream: half the check timeout)
PROBE_TIMEOUT = 2.0  # kube-apiserver's --etcd-healthcheck-timeout and --etcd-readycheck-timeout

# The post-start hooks knet's apiserver runs before it serves (ApiServer.start), by upstream's names.
POST_START_HOOKS = (
    "poststarthook/start-system-namespaces-controller",  # default, kube-system, kube-public, kube-node-lease
    "poststarthook/start-service-ip-repair-controllers",  # the ClusterIP/NodePort allocators rebuilt
    "poststarthook/bootstrap-controller",  # Service default/kubernetes and its endpoints
)


@dataclass(frozen=True)
class Check:
    """A named health check: `run()` is None when healthy, else why not."""

    name: str
    run: Callable[[], str | None]


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


def _quoted(names: Iterable[str]) -> str:
    return ",".join(f'"{n}"' for n in sorted(names))


def aggregate(endpoint: str, checks: Iterable[Check], *, verbose: bool, exclude: Iterable[str]) -> Answer:
    """The answer of GET /ENDPOINT (upstream's handleRootHealth)."""
    excluded = {e.strip() for e in exclude if e.strip()}
    lines: list[str] = []
    failed: list[str] = []
    for check in checks:
        if check.name in excluded:
            excluded.discard(check.name)
            lines.append(f"[+]{check.name} excluded: ok\n")
            continue
        reason = check.run()
        if reason is None:
            lines.append(f"[+]{check.name} ok\n")
        else:
            # The reason stays out of this unauthenticated answer (upstream: "reason withheld");
            # the log has it.
            lines.append(f"[-]{check.name} failed: reason withheld\n")
            failed.append(f"[-]{check.name} failed: {reason}")
    if excluded:
        lines.append(f"warn: some health checks cannot be excluded: no matches for {_quoted(excluded)}\n")
    if failed:
        log.info("%s check failed: %s", endpoint, "; ".join(failed))
        return Answer(500, f"{''.join(lines)}{endpoint} check failed\n")
    if not verbose:
        return Answer(200, "ok")
    return Answer(200, f"{''.join(lines)}{endpoint} check passed\n")


def single(checks: Iterable[Check], name: str) -> Answer | None:
    """The answer of GET /ENDPOINT/NAME (upstream's adaptCheckToHandler); None: no such check."""
    for check in checks:
        if check.name == name:
            reason = check.run()
            if reason is None:
                return Answer(200, "ok")
            return Answer(500, f"internal server error: {reason}\n")
    return None


class StoreProbe:
    """The store's health as the etcd checks see it: what the store knows without asking (its
    etcd watch is down), else the last probe's answer. A probe is a real read of the backend
    (Store.check_health), sent in the background at most once per `interval` while someone asks,
    so a burst of health requests costs the store one request a second at most (as upstream's
    rate-limited etcd check, which answers the last probe's result in between)."""

    def __init__(self, store, interval: float = PROBE_INTERVAL, timeout: float = PROBE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._error: str | None = None  # the store was read when it opened: healthy until told otherwise
        self._sent = -math.inf
        self._task: asyncio.Task | None = None

    def error(self) -> str | None:
        known = self._store.connection_error()
        self._refresh()
        return known or self._error

    def _refresh(self) -> None:
        if self._task is not None or self._clock() - self._sent < self._interval:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sent = self._clock()
        self._task = loop.create_task(self._probe())

    async def _probe(self) -> None:
        try:
            await self._store.check_health(self._timeout)
            self._error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._task = None

    async def wait(self) -> None:
        """Until the probe in flight (if any) has answered (for tests and shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class HealthChecks:
    """The check lists of /healthz, /livez and /readyz for one apiserver."""

    def __init__(self, probe: StoreProbe, *, started: Callable[[], bool], serving: Callable[[], bool]) -> None:
        self.probe = probe

        def etcd() -> str | None:
            return self.probe.error()

        def hook() -> str | None:
            return None if started() else "not finished"

        def shutdown() -> str | None:
            return None if serving() else "the server is not serving (starting, or shutting down)"

        common = [Check("ping", lambda: None), Check("log", lambda: None), Check("etcd", etcd)]
        hooks = [Check(name, hook) for name in POST_START_HOOKS]
        self.lists: dict[str, list[Check]] = {
            "healthz": [*common, *hooks],
            "livez": [*common, *hooks],
            # informer-sync: the store's cache is loaded (whole) before the server starts.
            "readyz": [*common, Check("etcd-readiness", etcd), Check("informer-sync", hook), *hooks,
                       Check("shutdown", shutdown)],
        }

    def answer(self, path: str, verbose: bool, exclude: Iterable[str]) -> Answer | None:
        """The answer for /ENDPOINT or /ENDPOINT/CHECK; None when the path names no check."""
        endpoint, _, name = path.strip("/").partition("/")
        checks = self.lists.get(endpoint)
        if checks is None:
            return None
        if not name:
            return aggregate(endpoint, checks, verbose=verbose, exclude=exclude)
        return single(checks, name)

    async def close(self) -> None:
        await self.probe.close()
