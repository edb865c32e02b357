"""The service-lb controller (kube-controller-manager `--controllers` name `service-lb-controller`,
upstream's cloud service controller in the shape of MetalLB's controller): every Service of
`type: LoadBalancer` whose `spec.loadBalancerClass` is unset or knet's gets an address of the
node network's LoadBalancer pool in `status.loadBalancer.ingress[0]` (`ipMode: VIP`).

- `spec.loadBalancerIP` (deprecated, honoured as upstream's providers do) asks for one address:
  a Service asking for an address outside the pool or held by another Service gets none (it
  stays `<pending>`) and a Warning Event `AllocationFailed` says why.
- A Service of another class is another implementation's: left alone (status included).
- Deleting the Service, or changing its type or class away, releases the address (the status is
  cleared); Services still waiting are tried again then.
- The allocations are the Services' status: a restarted controller rebuilds them from it
  (oldest Service first when two claim one address; the other gets a new one).
- Events as upstream's service controller and MetalLB record them: `EnsuringLoadBalancer`,
  `IPAllocated` ("Assigned IP [...]"), `EnsuredLoadBalancer`, `AllocationFailed`,
  `DeletedLoadBalancer`.

The nodes make the addresses answer (knet.cniagent.l2announce); kube-proxy programs them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.client.informer import object_key
from knet.controllers.base import Controller, InformerFactory, split_key
from knet.ipam.lbpool import Allocator, Pool

log = logging.getLogger(__name__)

Obj = dict[str, Any]
# The class knet answers to besides none (a Service may name it to say so explicitly).
LOAD_BALANCER_CLASS = "knet.io/service-lb"
EVENT_COMPONENT = "service-controller"


def is_ours(svc: Obj) -> bool:
    """A LoadBalancer Service that knet's controller serves (no class, or knet's class)."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") in (None, "", LOAD_BALANCER_CLASS)


def ingress_ips(svc: Obj) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i["ip"] for i in ingress if isinstance(i, dict) and i.get("ip")]


def ingress_status(ip: str) -> list[Obj]:
    return [{"ip": ip, "ipMode": "VIP"}]


def _age_key(svc: Obj) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), object_key(svc))


def rebuild(allocator: Allocator, services: list[Obj]) -> list[str]:
    """Claim what the Services' status says they hold, oldest first; returns the keys whose claim
    failed (another Service has it, or it is not the pool's): they get a new address."""
    lost = []
    for svc in sorted(services, key=_age_key):
        if not is_ours(svc):
            continue
        for ip in ingress_ips(svc)[:1]:
            if not allocator.claim(object_key(svc), ip):
                lost.append(object_key(svc))
    return lost


class ServiceLBController(Controller):
    name = "service-lb-controller"
    workers = 1  # one allocator, one writer: allocations are decided in order

    def __init__(self, api: Api, informers: InformerFactory, pool: Pool, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.allocator = Allocator(pool)
        self.recorder = recorder or EventRecorder(api, EVENT_COMPONENT)
        self.services = informers.get("v1", "services")
        self.services.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), self._deleted)
        self._failed: dict[str, str] = {}  # key -> the last allocation error told (one Event per cause)

    def initial_keys(self) -> list[str]:
        lost = rebuild(self.allocator, self.services.list())
        for key in lost:
            log.info("%s: %s's address is another Service's or outside the pool: allocating anew", self.name, key)
        return self.services.keys()

    def _deleted(self, svc: Obj) -> None:
        self.queue.add(object_key(svc))

    def _retry_waiting(self) -> None:
        """An address came free: the Services still waiting for one try again."""
        for svc in self.services.list():
            if is_ours(svc) and not ingress_ips(svc):
                self.enqueue_obj(svc)

    async def sync_key(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None or (svc.get("metadata") or {}).get("deletionTimestamp"):
            if self.allocator.release(key) is not None:
                log.info("%s: released %s's address", self.name, key)
                self._retry_waiting()
            self._failed.pop(key, None)
            return
        if not is_ours(svc):
            await self._let_go(key, svc)
            return
        spec = svc.get("spec") or {}
        allocation = self.allocator.assign(key, spec.get("loadBalancerIP") or None)
        if allocation.ip is None:
            if ingress_ips(svc):  # it asked for another address, which it cannot have: pending again
                await self._write_status(svc, [])
            if self._failed.get(key) != allocation.error:
                self._failed[key] = allocation.error
                await self.recorder.event(svc, "Warning", "AllocationFailed",
                                          f'Failed to allocate IP for "{key}": {allocation.error}')
            return
        self._failed.pop(key, None)
        if ingress_ips(svc) == [allocation.ip] and _ip_modes(svc) == ["VIP"]:
            return
        await self.recorder.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        await self._write_status(svc, ingress_status(allocation.ip))
        await self.recorder.event(svc, "Normal", "IPAllocated", f"Assigned IP {json.dumps([allocation.ip])}")
        await self.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")

    async def _let_go(self, key: str, svc: Obj) -> None:
        """Not (or no longer) ours: release what it held; clear the status we wrote, unless
        another class's implementation owns it now."""
        released = self.allocator.release(key)
        self._failed.pop(key, None)
        spec = svc.get("spec") or {}
        foreign_class = spec.get("type") == "LoadBalancer"  # a LoadBalancer of another class
        if released is not None:
            self._retry_waiting()
            if not foreign_class and ingress_ips(svc):
                await self._write_status(svc, [])
            await self.recorder.event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
        elif not foreign_class and spec.get("type") != "LoadBalancer" and ingress_ips(svc) \
                and all(ip in self.allocator.pool for ip in ingress_ips(svc)):
            await self._write_status(svc, [])  # a type change seen only after a restart

    async def _write_status(self, svc: Obj, ingress: list[Obj]) -> None:
        ns, name = split_key(object_key(svc))
        try:
            await self.api.patch("v1", "services", name, {"status": {"loadBalancer": {"ingress": ingress or None}}},
                                 namespace=ns, subresource="status")
        except ApiError as exc:
            if exc.not_found:
                return
            raise


def _ip_modes(svc: Obj) -> list[str | None]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i.get("ipMode") for i in ingress if isinstance(i, dict)]


__all__ = ["LOAD_BALANCER_CLASS", "ServiceLBController", "is_ours", "rebuild"]
