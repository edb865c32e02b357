"""LoadBalancer addresses and the host in `knet trace`. Pure.

The host (`knet trace host ...`) sits on the node network (the cluster bridge) at the cluster
config's host address. It reaches a node's address directly, and a LoadBalancer address through
the one node that answers ARP for it: the node the network add-on's announcer picks
(knet.cniagent.l2announce.announced_by, the function every node's agent runs, asked here for each
node), whose kube-proxy then DNATs it. No node answers when the Service has no ready endpoint
(or, with externalTrafficPolicy Local, no usable node holds one): the host's connection fails
before any rule sees it.

From a pod the LoadBalancer address (ipMode VIP) never leaves the pod's node: that node's
kube-proxy takes it in prerouting, as it takes a ClusterIP.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from knet.controllers.servicelb import ingress_ips, is_ours
from knet.ipam.lbpool import Pool
from knet.trace.dataplane import Dataplane
from knet.trace.path import Hop, Path, TraceResult, trace
from knet.trace.view import ClusterView, Obj, Place, TraceError, _key, resolve

HOST_NAMES = ("host", "localhost")


def host_place(host_ip: str) -> Place:
    return Place("host", host_ip, "host")


def is_host(ref: str) -> bool:
    return ref in HOST_NAMES or ref == "node/host"


@dataclass
class LbAddress:
    ip: str
    service: str              # NAMESPACE/NAME
    svc: Obj
    announcer: str | None     # the node answering ARP; None: nobody
    why: str                  # how the announcer was chosen, or why nobody answers

    def lines(self, source: Place) -> list[str]:
        spec = self.svc.get("spec") or {}
        out = [f"{self.ip} is the LoadBalancer address of Service {self.service}"
               + (f" (loadBalancerSourceRanges {', '.join(spec['loadBalancerSourceRanges'])})"
                  if spec.get("loadBalancerSourceRanges") else "")
               + (" (externalTrafficPolicy Local)" if spec.get("externalTrafficPolicy") == "Local" else "")]
        if source.kind == "pod":
            out.append(f"from a pod the address stays on the pod's node {source.node}: its kube-proxy takes it "
                       "(ipMode VIP), no ARP")
        elif source.kind == "node":
            out.append(f"from node {source.name} the address stays on the node: its kube-proxy takes it (output)")
        else:
            out.append(f"ARP for {self.ip} on the node network: "
                       + (self.why if self.announcer else f"no node answers ({self.why})"))
        return out


def lb_address(view: ClusterView, ip: str, pool: Pool | None) -> LbAddress | None:
    """The LoadBalancer Service holding `ip` and the node announcing it (None: not an LB address)."""
    svc = next((s for s in view.services if (s.get("spec") or {}).get("type") == "LoadBalancer"
                and ip in ingress_ips(s)), None)
    if svc is None:
        return None
    key = _key(svc)
    if not is_ours(svc):
        return LbAddress(ip, key, svc, None, f"Service {key} is of loadBalancerClass "
                         f"{(svc.get('spec') or {}).get('loadBalancerClass')!r}: knet's nodes do not announce it")
    if pool is None or ip not in pool:
        return LbAddress(ip, key, svc, None, f"{ip} is outside the LoadBalancer pool ({pool or 'none'}): "
                         "no node announces it")
    from knet.cniagent.l2announce import announced_by

    slices = {key: [s for s in view.slices if (s.get("metadata") or {}).get("namespace") == key.split("/")[0]
                    and ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
                    == key.split("/", 1)[1]]}
    for name in view.node_names():
        if ip in announced_by(name, [svc], slices, view.nodes, pool):
            local = (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local"
            return LbAddress(ip, key, svc, name, f"answered by node {name} (the announcers' choice among "
                             + ("the Ready nodes with a ready endpoint of their own, externalTrafficPolicy Local"
                                if local else "the Ready nodes") + ")")
    return LbAddress(ip, key, svc, None, "Service " + key + (
        " has no ready endpoint on a usable node (externalTrafficPolicy Local)"
        if (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local" else " has no ready endpoint")
        + ": the connection times out before any node sees it")


def external_place(view: ClusterView, svc: Obj) -> Place:
    """A LoadBalancer Service at its external address (its first ingress IP)."""
    ips = ingress_ips(svc)
    if not ips:
        raise TraceError(f"Service {_key(svc)} has no LoadBalancer address (EXTERNAL-IP <pending>)")
    ports = (svc.get("spec") or {}).get("ports") or []
    return Place("service", ips[0], _key(svc), port=ports[0].get("port", 0) if ports else 0)


def resolve_target(view: ClusterView, ref: str, source: Place) -> Place:
    """TO as view.resolve reads it, plus `lb/[NS/]NAME` (a Service at its LoadBalancer address); a
    LoadBalancer address has its Service's first port; from the host, which cannot reach a
    ClusterIP, a LoadBalancer Service named as `svc/...` is its external address."""
    if ref.startswith("lb/"):
        rest = ref[3:]
        key = rest if "/" in rest else f"{source.name.split('/', 1)[0] if source.kind == 'pod' else 'default'}/{rest}"
        svc = view.service(key)
        if svc is None:
            raise TraceError(f"no Service {key}")
        return external_place(view, svc)
    place = resolve(view, ref, source=source)
    svc = view.service(place.name) if place.kind == "service" else None
    if svc is None or (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return place
    if place.ip in ingress_ips(svc):  # an address given as such: the Service's first port
        return Place("service", place.ip, place.name, port=external_place(view, svc).port, dns=place.dns)
    if source.kind == "host":
        return external_place(view, svc)
    return place


def entry_node(view: ClusterView, source: Place, target: Place, lb: LbAddress | None, via: str) -> str:
    """The node where the host's packet enters the cluster ("" for a pod or node source)."""
    if source.kind != "host":
        return via
    if via:
        return via
    if lb is not None:
        return lb.announcer or ""
    if target.kind == "node":
        return target.name
    raise TraceError(f"the host reaches only node addresses and LoadBalancer addresses, not {target.describe()} "
                     "(give --via NODE for a route you added yourself)")


def trace_from(view: ClusterView, dp: Dataplane, source: Place, target: Place, port: int, proto: str = "tcp", *,
               via: str = "", pool: Pool | None = None, rng: random.Random | None = None) -> TraceResult:
    """path.trace, knowing the host and LoadBalancer addresses: the host's packet enters at the
    node announcing the address (or at the node it names); the result's notes say how."""
    from knet.proxy.walk import Packet

    lb = lb_address(view, target.ip, pool)
    notes = lb.lines(source) if lb is not None else []
    if source.kind == "host" and lb is not None and lb.announcer is None and not via:
        if not port:
            raise TraceError(f"no port for {target.describe()}: give --port")
        hop = Hop("", "source", note=f"from {source.describe()}")
        return TraceResult(source, target, Packet(source.ip, target.ip, port, proto), dp.mode,
                           [Path(1.0, [hop], "unrouted", f"no node answers ARP for {target.ip}: {lb.why}",
                                 endpoint=f"{target.ip}:{port}")], notes=notes)
    node = entry_node(view, source, target, lb, via)
    result = trace(view, dp, source, target, port, proto, entry_node=node, rng=rng)
    result.notes = notes + result.notes
    return result
