"""The network add-on's LoadBalancer announcer (MetalLB's layer-2 speaker; Cilium's agent does the
same from its node agent): one node answers ARP on the cluster bridge for each LoadBalancer
address, so the host (`curl http://<EXTERNAL-IP>`) sends to that node, whose kube-proxy DNATs it.

Which node: as MetalLB's layer2 ShouldAnnounce decides it, each agent on its own from the same
objects, so that exactly one node answers:
- no ready endpoint anywhere: nobody (the address does not answer, as a cloud's LB with no
  healthy backend);
- `externalTrafficPolicy: Local`: the nodes with a ready endpoint of their own; `Cluster`: every
  node; in both, only Ready nodes without the `node.kubernetes.io/exclude-from-external-load-balancers`
  label;
- of those, the first by sha256(node + "#" + address).
Only addresses of the pool are announced (a user allowed to write services/status cannot make a
node answer for the host's or another node's address), and only for Services of knet's class.

`announced_by(...)` is pure; `serve` watches Services, EndpointSlices and Nodes and keeps an
ArpResponder's set current (a gratuitous ARP for each address it takes over).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from knet.controllers.servicelb import ingress_ips, is_ours
from knet.ipam.lbpool import Pool

log = logging.getLogger("knet.cniagent.l2announce")
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
Obj = dict[str, Any]


def node_usable(node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    if EXCLUDE_LABEL in labels:
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def ready_endpoint_nodes(slices: Iterable[Obj]) -> set[str] | None:
    """The nodes with a ready endpoint in `slices`; None when there is no ready endpoint at all."""
    nodes: set[str] = set()
    any_ready = False
    for s in slices:
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            any_ready = True
            if ep.get("nodeName"):
                nodes.add(ep["nodeName"])
    return nodes if any_ready else None


def announcer(ip: str, candidates: Iterable[str]) -> str | None:
    """MetalLB's choice among the candidate nodes: the lowest sha256(node#ip)."""
    ordered = sorted(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
    return ordered[0] if ordered else None


def announced_by(me: str, services: Iterable[Obj], slices_of: dict[str, list[Obj]], nodes: Iterable[Obj],
                 pool: Pool) -> dict[str, str]:
    """{address: service key} that node `me` announces."""
    usable = {n["metadata"]["name"] for n in nodes if node_usable(n)}
    mine: dict[str, str] = {}
    for svc in services:
        if not is_ours(svc):
            continue
        meta = svc.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        with_endpoints = ready_endpoint_nodes(slices_of.get(key, []))
        if with_endpoints is None:
            continue
        local = (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local"
        candidates = usable & with_endpoints if local else usable
        for ip in ingress_ips(svc):
            if ip in pool and announcer(ip, candidates) == me:
                mine[ip] = key
    return mine


async def serve(api: Any, me: str, pool: Pool, ifname: str = "eth0") -> None:
    """Announce this node's share of the LoadBalancer addresses on `ifname` until cancelled."""
    from knet.client import Informer
    from knet.net.arp import ArpResponder

    wake = asyncio.Event()
    services = Informer(api, "v1", "services")
    slices = Informer(api, "discovery.k8s.io/v1", "endpointslices")
    nodes = Informer(api, "v1", "nodes")
    for inf in (services, slices, nodes):
        inf.add_handler(on_add=lambda _o: wake.set(), on_update=lambda _o, _n: wake.set(),
                        on_delete=lambda _o: wake.set())
    tasks = [asyncio.create_task(inf.run()) for inf in (services, slices, nodes)]
    current: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    responder = ArpResponder(ifname, lambda ip: ip in current)
    responder.start(loop)
    try:
        for inf in (services, slices, nodes):
            await inf.wait_synced()
        log.info("LoadBalancer announcer on %s (%s): pool %s", me, ifname, pool)
        while True:
            wake.clear()
            by_service: dict[str, list[Obj]] = {}
            for s in slices.list():
                meta = s.get("metadata") or {}
                name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
                if name:
                    by_service.setdefault(f"{meta.get('namespace')}/{name}", []).append(s)
            wanted = announced_by(me, services.list(), by_service, nodes.list(), pool)
            for ip in sorted(set(current) - set(wanted)):
                log.info("no longer announcing %s (%s)", ip, current[ip])
            taken = sorted(set(wanted) - set(current))
            current.clear()
            current.update(wanted)
            for ip in taken:
                log.info("announcing %s (%s) from node %s on %s", ip, wanted[ip], me, ifname)
                responder.announce(ip)
            await wake.wait()
            await asyncio.sleep(0.05)  # a burst of changes (a rollout) is one recomputation
    finally:
        responder.close(loop)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
