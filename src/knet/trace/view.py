"""The cluster as `knet trace` sees it: the API objects it needs, and what FROM/TO name. Pure.

FROM/TO: `ns/name` or `name` (a pod; default namespace), `svc/name` or `svc/ns/name` or
`name.ns.svc[.cluster.local]` (a Service), `node/name` or a node's name, an IP address, or (TO
only) any other DNS name, resolved with the cluster DNS's own answer logic (knet.dns) through the
source pod's search path, as its resolver would (dnsPolicy ClusterFirst, ndots 5).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


class TraceError(Exception):
    pass


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _key(o: Obj) -> str:
    m = _meta(o)
    return f"{m.get('namespace', '')}/{m.get('name', '')}" if m.get("namespace") else m.get("name", "")


def is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


@dataclass
class ClusterView:
    pods: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    slices: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    policies: list[Obj] = field(default_factory=list)
    namespaces: list[Obj] = field(default_factory=list)
    cluster_domain: str = "cluster.local"

    @classmethod
    def of(cls, objects: list[Obj], cluster_domain: str = "cluster.local") -> ClusterView:
        by = {"Pod": [], "Service": [], "EndpointSlice": [], "Node": [], "NetworkPolicy": [], "Namespace": []}
        for o in objects:
            by.setdefault(o.get("kind", ""), []).append(o)
        return cls(by["Pod"], by["Service"], by["EndpointSlice"], by["Node"], by["NetworkPolicy"],
                   by["Namespace"], cluster_domain)

    # -- lookups -------------------------------------------------------------------------------

    def pod(self, key: str) -> Obj | None:
        return self._index()["pods"].get(key)

    def live_pods(self) -> list[Obj]:
        return [p for p in self.pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and not (p.get("spec") or {}).get("hostNetwork")]

    def pod_by_ip(self, ip: str) -> Obj | None:
        return self._index()["pods_by_ip"].get(ip)

    def service(self, key: str) -> Obj | None:
        return next((s for s in self.services if _key(s) == key), None)

    def _index(self) -> dict[str, Any]:
        """Lookups by name and address, built once (a view is read, never changed)."""
        idx = self.__dict__.get("_idx")
        if idx is None:
            nodes = {_meta(n).get("name", ""): n for n in self.nodes}
            idx = {"nodes": nodes, "names": sorted(nodes),
                   "pods_by_ip": {}, "pods": {_key(p): p for p in self.pods}}
            idx["node_ip"] = {name: next((a.get("address", "") for a in (n.get("status") or {}).get("addresses") or []
                                          if a.get("type") == "InternalIP"), "") for name, n in nodes.items()}
            idx["node_by_ip"] = {ip: name for name, ip in idx["node_ip"].items() if ip}
            for p in self.live_pods():
                idx["pods_by_ip"].setdefault(pod_ip(p), p)
            self.__dict__["_idx"] = idx
        return idx

    def node(self, name: str) -> Obj | None:
        return self._index()["nodes"].get(name)

    def node_names(self) -> list[str]:
        return self._index()["names"]

    def node_ip(self, name: str) -> str:
        return self._index()["node_ip"].get(name, "")

    def node_by_ip(self, ip: str) -> str:
        return self._index()["node_by_ip"].get(ip, "")

    def pod_cidr(self, name: str) -> str:
        return ((self.node(name) or {}).get("spec") or {}).get("podCIDR", "")

    def node_of_pod_ip(self, ip: str) -> str:
        for n in self.node_names():
            cidr = self.pod_cidr(n)
            if cidr and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False):
                return n
        return ""

    def service_by_ip(self, ip: str) -> Obj | None:
        for s in self.services:
            spec = s.get("spec") or {}
            ips = [spec.get("clusterIP", ""), *(spec.get("externalIPs") or []),
                   *[i.get("ip", "") for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]]
            if ip in ips:
                return s
        return None

    def service_of_node_port(self, port: int, proto: str) -> Obj | None:
        for s in self.services:
            for p in (s.get("spec") or {}).get("ports") or []:
                if p.get("nodePort") == port and p.get("protocol", "TCP").lower() == proto:
                    return s
        return None

    def endpoints_of(self, svc: Obj) -> list[str]:
        """Every address in the Service's EndpointSlices."""
        m = _meta(svc)
        out = []
        for sl in self.slices:
            sm = _meta(sl)
            if sm.get("namespace") == m.get("namespace") and \
                    (sm.get("labels") or {}).get("kubernetes.io/service-name") == m.get("name"):
                for ep in sl.get("endpoints") or []:
                    out += ep.get("addresses") or []
        return out


def pod_ip(pod: Obj) -> str:
    return (pod.get("status") or {}).get("podIP", "")


def pod_node(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("nodeName", "")


# -- what FROM and TO name --------------------------------------------------------------------

@dataclass
class Place:
    kind: str          # "pod", "service", "node", "host" (the machine), "ip" (outside, or unknown)
    ip: str
    name: str = ""     # "ns/pod", "ns/svc", node name
    node: str = ""     # the node it is on (pods, nodes)
    port: int = 0      # a default port (a Service's first port, a pod's first containerPort)
    dns: list[str] = field(default_factory=list)  # how a DNS name was resolved

    def describe(self) -> str:
        if self.kind == "pod":
            return f"pod {self.name} ({self.ip}) on node {self.node}"
        if self.kind == "service":
            return f"Service {self.name} ({self.ip})"
        if self.kind == "node":
            return f"node {self.name} ({self.ip})"
        if self.kind == "host":
            return f"the host ({self.ip}, on the node network)"
        return f"{self.ip}"


def _service_place(view: ClusterView, svc: Obj, dns: list[str] | None = None) -> Place:
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    ip = spec.get("clusterIP", "")
    if ip in ("", "None"):
        raise TraceError(f"Service {_key(svc)} is headless (no ClusterIP): trace one of its pods instead")
    return Place("service", ip, _key(svc), port=ports[0].get("port", 0) if ports else 0, dns=dns or [])


def _pod_place(pod: Obj) -> Place:
    if not pod_ip(pod):
        raise TraceError(f"pod {_key(pod)} has no IP yet (phase {(pod.get('status') or {}).get('phase')})")
    ports = [p.get("containerPort", 0) for c in (pod.get("spec") or {}).get("containers") or []
             for p in c.get("ports") or []]
    return Place("pod", pod_ip(pod), _key(pod), pod_node(pod), ports[0] if ports else 0)


def place_of_ip(view: ClusterView, ip: str) -> Place:
    if (pod := view.pod_by_ip(ip)) is not None:
        return _pod_place(pod)
    if node := view.node_by_ip(ip):
        return Place("node", ip, node, node)
    if (svc := view.service_by_ip(ip)) is not None:
        return Place("service", ip, _key(svc))
    return Place("ip", ip)


def resolve(view: ClusterView, ref: str, *, source: Place | None = None) -> Place:
    """What FROM or TO names (TO: `source` given, so DNS names resolve as that pod would)."""
    if is_ip(ref):
        return place_of_ip(view, ref)
    if ref.startswith("svc/") or ref.startswith("service/"):
        rest = ref.split("/", 1)[1]
        key = rest if "/" in rest else f"{_default_ns(source)}/{rest}"
        svc = view.service(key)
        if svc is None:
            raise TraceError(f"no Service {key}")
        return _service_place(view, svc)
    if ref.startswith("node/"):
        name = ref.split("/", 1)[1]
        if view.node(name) is None:
            raise TraceError(f"no node {name}")
        return Place("node", view.node_ip(name), name, name)
    if ref.startswith("pod/"):
        ref = ref[4:]
    if "/" in ref:
        pod = view.pod(ref)
        if pod is None:
            raise TraceError(f"no pod {ref}")
        return _pod_place(pod)
    if view.node(ref) is not None:
        return Place("node", view.node_ip(ref), ref, ref)
    pod = view.pod(f"{_default_ns(source)}/{ref}")
    if pod is not None and "." not in ref:
        return _pod_place(pod)
    if source is None:
        raise TraceError(f"no pod or node {ref!r} (a DNS name is only resolved for TO)")
    return resolve_dns(view, ref, source)


def _default_ns(source: Place | None) -> str:
    if source is not None and source.kind == "pod":
        return source.name.split("/", 1)[0]
    return "default"


def search_path(view: ClusterView, source: Place) -> list[str]:
    """The resolv.conf search list the kubelet writes for a ClusterFirst pod (a node's own resolver
    knows no cluster names: only the cluster domain is tried)."""
    d = view.cluster_domain
    if source.kind == "pod":
        return [f"{source.name.split('/', 1)[0]}.svc.{d}", f"svc.{d}", d]
    return [f"default.svc.{d}", f"svc.{d}", d]


def resolve_dns(view: ClusterView, name: str, source: Place) -> Place:
    from knet.trace import dnsanswer

    tried = []
    candidates = [name.rstrip(".")] if name.endswith(".") or name.count(".") >= 5 else \
        [f"{name}.{s}" for s in search_path(view, source)] + [name]
    for qname in candidates:
        answer = dnsanswer.lookup(view, qname)
        tried.append(f"{qname}: {', '.join(answer) if answer else 'NXDOMAIN'}")
        if answer:
            ip = answer[0]
            place = place_of_ip(view, ip)
            if place.kind == "service":
                svc = view.service(place.name)
                place = _service_place(view, svc) if svc else place
            place.dns = tried + ([f"{len(answer)} addresses (headless Service): tracing to the first"]
                                 if len(answer) > 1 else [])
            return place
    raise TraceError(f"{name!r} does not resolve from {source.describe()} (tried {'; '.join(tried)})")
