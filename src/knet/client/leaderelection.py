"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it
(kube-controller-manager and kube-scheduler hold `kube-system/kube-controller-manager` and
`kube-system/kube-scheduler` this way, which `kubectl get leases -n kube-system` shows).

A candidate takes the lease when it is free, released (empty holder), or expired: expiry is
judged by when *this* candidate last saw the record change plus leaseDurationSeconds, so clocks
need not agree. The leader renews every retry period and gives up (the caller exits) if it could
not renew within the renew deadline. On a clean stop it releases the lease so a successor does not
have to wait for it to expire.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from knet.client.errors import ApiError
from knet.client.protocol import Api

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASES = ("coordination.k8s.io/v1", "leases")


class LostLeadershipError(Exception):
    """The lease could not be renewed within the renew deadline."""


def micro_time(dt: datetime | None = None) -> str:
    return (dt or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    def __init__(self, api: Api, name: str, *, namespace: str = "kube-system", identity: str | None = None,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need leaseDuration > renewDeadline > retryPeriod > 0")
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self._observed: tuple[str, float] | None = None  # (record fingerprint, when we saw it change)
        self.is_leader = False

    def _fingerprint(self, spec: Obj) -> str:
        return f"{spec.get('holderIdentity')}|{spec.get('renewTime')}|{spec.get('leaseDurationSeconds')}"

    async def try_acquire_or_renew(self) -> bool:
        now_wall = datetime.now(UTC)
        try:
            lease = await self.api.get(*LEASES, self.name, namespace=self.namespace)
        except ApiError as exc:
            if not exc.not_found:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                             "acquireTime": micro_time(now_wall), "renewTime": micro_time(now_wall),
                             "leaseTransitions": 0}}
            try:
                await self.api.create(*LEASES, body, namespace=self.namespace)
            except ApiError as create_exc:
                if create_exc.already_exists:
                    return False
                raise
            self._observed = (self._fingerprint(body["spec"]), self.clock())
            return True
        spec = dict(lease.get("spec") or {})
        fingerprint = self._fingerprint(spec)
        if self._observed is None or self._observed[0] != fingerprint:
            self._observed = (fingerprint, self.clock())
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = self.clock() > self._observed[1] + duration
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = micro_time(now_wall)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        spec.update({"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                     "renewTime": micro_time(now_wall)})
        try:
            updated = await self.api.update(*LEASES, {**lease, "spec": spec}, namespace=self.namespace)
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        self._observed = (self._fingerprint(updated.get("spec") or spec), self.clock())
        return True

    async def acquire(self) -> None:
        log.info("attempting to acquire leader lease %s/%s...", self.namespace, self.name)
        # An API server that is not up yet (refused/5xx) is retried quickly, so a control plane
        # whose processes start together comes up fast; a lease held by another candidate is
        # retried every retry period, as upstream.
        error_backoff = 0.1
        while True:
            try:
                if await self.try_acquire_or_renew():
                    self.is_leader = True
                    log.info("successfully acquired lease %s/%s", self.namespace, self.name)
                    return
                delay = self.retry_period * (1 + 0.2 * random.random())
            except (ApiError, OSError) as exc:
                log.warning("error acquiring lease %s/%s: %s", self.namespace, self.name, exc)
                delay = error_backoff
                error_backoff = min(error_backoff * 2, self.retry_period)
            await asyncio.sleep(delay)

    async def keep_renewing(self) -> None:
        """Renew until cancelled; raise LostLeadershipError when the renew deadline passes."""
        last_renew = self.clock()
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                ok = await self.try_acquire_or_renew()
            except (ApiError, OSError) as exc:
                log.warning("error renewing lease %s/%s: %s", self.namespace, self.name, exc)
                ok = False
            if ok:
                last_renew = self.clock()
            elif self.clock() - last_renew > self.renew_deadline:
                self.is_leader = False
                raise LostLeadershipError(f"failed to renew lease {self.namespace}/{self.name}")

    async def release(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = await self.api.get(*LEASES, self.name, namespace=self.namespace)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update({"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()})
            await self.api.update(*LEASES, {**lease, "spec": spec}, namespace=self.namespace)
            log.info("released lease %s/%s", self.namespace, self.name)
        except (ApiError, OSError) as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)


async def run_as_leader(elector: LeaderElector, work: Callable[[], Awaitable[None]]) -> None:
    """Acquire, then run `work` while renewing; stop work (and raise) on lost leadership; release
    the lease however this ends."""
    await elector.acquire()
    worker = asyncio.ensure_future(work())
    renewer = asyncio.ensure_future(elector.keep_renewing())
    try:
        done, _ = await asyncio.wait({worker, renewer}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # re-raise LostLeadershipError or the work's own failure
    finally:
        for task in (worker, renewer):
            task.cancel()
        await asyncio.gather(worker, renewer, return_exceptions=True)
        await elector.release()
