"""The walk across nodes: a new connection from FROM to TO, hook by hook on each node it crosses,
with the routing decision between them, and what it all means in Kubernetes terms. Pure: the rules,
routes and addresses come from a Dataplane (dataplane.py), the objects from a ClusterView.

On a node a packet from a pod or from outside passes prerouting (kube-proxy's DNAT), then input
(to one of the node's own addresses) or forward (the policy controller's checks: the source pod's
egress, the destination pod's ingress, for pods on this node) and postrouting (masquerade); a
packet the node itself sends passes output and postrouting. The route table then says where it
goes: a pod on this node's bridge, another node (host-gw: via that node's address) or nowhere.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field

from knet.proxy.walk import MASQ_BIT, Flow, Packet, Step
from knet.trace.dataplane import Dataplane, NodeRules, route_lookup
from knet.trace.view import ClusterView, Place, TraceError, pod_node

MAX_NODES = 4
POLICY_MARK = 0x10000  # the policy controller's "allowed" bit (netpol/render.py MARK)
_COMMENT = re.compile(r'--comment "([^"]*)"|--comment (\S+)|(?<![-\w])comment "([^"]*)"')
_POLICY_RULE = re.compile(r"^(\S+/\S+) (ingress|egress) rule (\d+)")


def comment_of(rule: str) -> str:
    m = _COMMENT.search(rule)
    return next((g for g in m.groups() if g is not None), "") if m else ""


@dataclass
class Hop:
    node: str
    hook: str                 # prerouting, input, forward, output, postrouting, route, deliver
    steps: list[Step] = field(default_factory=list)
    note: str = ""


@dataclass
class Path:
    """One way the connection can go."""
    probability: float
    hops: list[Hop]
    verdict: str              # "delivered", "rejected", "dropped", "unrouted"
    reason: str
    endpoint: str = ""        # "ip:port" after DNAT (or the destination itself)
    endpoint_pod: str = ""
    node: str = ""            # the node it ends on
    dnat: str = ""
    masquerade: bool = False
    masquerade_why: str = ""
    affinity: str = ""
    policy: list[str] = field(default_factory=list)  # how NetworkPolicies decided


@dataclass
class TraceResult:
    source: Place
    target: Place
    packet: Packet
    mode: str
    paths: list[Path]
    sources: dict[str, str] = field(default_factory=dict)  # node -> where its rules came from
    chosen: int = 0
    notes: list[str] = field(default_factory=list)  # what the walk alone does not show (ARP, ...)

    @property
    def path(self) -> Path:
        return self.paths[self.chosen]


def _hook(nr: NodeRules, flow: Flow, hook: str) -> list[tuple[Flow, Hop]]:
    before = len(flow.steps)
    return [(f, Hop(nr.name, hook, f.steps[before:])) for f in nr.walker.hook(flow, hook)]


def _verdict_reason(view: ClusterView, flow: Flow) -> tuple[str, str]:
    step = flow.verdict_step
    verdict = "rejected" if flow.verdict == "REJECT" else "dropped"
    if step is None:
        return verdict, f"{verdict} by a chain's policy"
    comment = comment_of(step.rule)
    where = f"{step.table} {step.chain}"
    if step.table == "ip knet-netpol" or step.chain.startswith("KNET-"):
        if comment.endswith(" isolated"):
            pod, direction = comment.rsplit(" ", 2)[:2]
            return verdict, (f"{verdict} by NetworkPolicy: pod {pod} is selected by policies for {direction} "
                             f"and none of their rules allows this connection ({where})")
        return verdict, f"{verdict} by the network add-on's policy rules: {comment or step.rule} ({where})"
    lookup = next((s for s in reversed(flow.steps) if "@no-endpoint" in s.note), None)  # nftables' vmaps
    if "has no endpoints" in comment or lookup is not None:
        svc = comment.replace(" has no endpoints", "") if lookup is None else _svc_from_note(lookup.note)
        if lookup is not None:
            where = f"{lookup.table} {lookup.chain}"
        return verdict, f"{verdict} by kube-proxy: Service {svc} has no endpoints ({where})"
    if "has no local endpoints" in comment:
        return verdict, (f"{verdict} by kube-proxy: {comment} (externalTrafficPolicy: Local and no endpoint "
                         f"on this node) ({where})")
    if "firewall" in step.chain.lower() or step.chain.startswith("KUBE-FW") or "firewall" in step.note:
        return verdict, (f"{verdict} by kube-proxy: the source is not in the Service's "
                         f"loadBalancerSourceRanges ({where}{': ' + comment if comment else ''})")
    return verdict, f"{verdict} by {where}: {step.rule}"


def _svc_from_note(note: str) -> str:
    m = re.search(r'comment "([^"]*)"', note)
    return m.group(1) if m else note


def _policy_lines(view: ClusterView, hops: list[Hop]) -> list[str]:
    """Which policy rule allowed the connection, from the rules it crossed."""
    out = []
    candidate = ""
    for hop in hops:
        for s in hop.steps:
            c = comment_of(s.rule)
            if _POLICY_RULE.match(c):
                candidate = c
            m = re.search(r"mark (0x[0-9a-f]+)", s.note)
            if m and int(m.group(1), 16) & POLICY_MARK and candidate:
                pol = _POLICY_RULE.match(candidate)
                assert pol is not None
                out.append(f"allowed by NetworkPolicy {pol.group(1)} {pol.group(2)} rule {pol.group(3)} "
                           f"(checked on node {hop.node})")
                candidate = ""
    return out


def selecting_policies(view: ClusterView, place: Place, direction: str) -> list[str]:
    """The NetworkPolicies that select a pod for ingress or egress (what isolates it)."""
    from knet.netpol.compiler import compile_node

    if place.kind != "pod":
        return []
    rules = compile_node(place.node, view.policies, view.pods, view.namespaces)
    pods = rules.ingress if direction == "ingress" else rules.egress
    return sorted({pol for p in pods if p.pod == place.name for pol in p.policies})


def trace(view: ClusterView, dp: Dataplane, source: Place, target: Place, port: int, proto: str = "tcp",
          *, entry_node: str = "", rng: random.Random | None = None) -> TraceResult:
    if not port:
        raise TraceError(f"no port for {target.describe()}: give --port")
    node = source.node or entry_node or (target.node if target.kind == "node" else "")
    if not node:
        names = view.node_names()
        if not names:
            raise TraceError("the cluster has no nodes")
        node = names[0]
    packet = Packet(source.ip, target.ip, port, proto)
    # a node, or a hostNetwork pod (its address is its node's), sends from the node itself
    first = "output" if source.kind == "node" or (source.ip and source.ip == view.node_ip(node)) else "prerouting"
    start = Hop(node, "source", note=(f"from {source.describe()}" if source.kind in ("pod", "node")
                                      else f"from {source.describe()}, arriving at node {node}" if source.kind == "host"
                                      else f"from {source.ip}, outside the cluster, arriving at node {node}"))
    paths: list[Path] = []
    sources: dict[str, str] = {}
    # the walk's flows change their packet (DNAT, masquerade): result.packet stays what was sent
    work: list[tuple[Flow, list[Hop], str, str, int]] = [(Flow(copy.copy(packet), node=node), [start], node, first, 0)]
    while work:
        flow, hops, at, how, visits = work.pop(0)
        nr = dp.node(at)
        sources[at] = nr.source
        for f, h in _visit(nr, flow, how):
            walked = hops + h
            if f.verdict:
                verdict, reason = _verdict_reason(view, f)
                paths.append(_path(view, f, walked, verdict, reason, at))
                continue
            if h[-1].hook == "input":  # to the node's own address
                paths.append(_path(view, f, walked, "delivered",
                                   f"delivered to node {at} itself ({f.packet.dst}:{f.packet.dport}: a "
                                   "hostNetwork pod or node process must listen there)", at))
                continue
            route = route_lookup(nr.routes, f.packet.dst)
            if route is None:
                paths.append(_path(view, f, walked + [Hop(at, "route", note="no route")], "unrouted",
                                   f"node {at} has no route to {f.packet.dst}", at))
                continue
            nxt = view.node_by_ip(route.via or f.packet.dst)
            nxt = "" if nxt == at else nxt
            if nxt and visits + 1 < MAX_NODES:
                if f.masquerade or f.mark & MASQ_BIT:
                    f.packet.src = view.node_ip(at)
                walked = walked + [Hop(at, "route", note=f"{route.text()} -> node {nxt}")]
                f.mark = 0  # marks do not cross the wire
                work.append((f, walked, nxt, "prerouting", visits + 1))
                continue
            pod = view.pod_by_ip(f.packet.dst)
            walked = walked + [Hop(at, "route", note=route.text())]
            if pod is not None and pod_node(pod) == at and not route.via:
                key = f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
                paths.append(_path(view, f, walked, "delivered",
                                   f"delivered to pod {key} ({f.packet.dst}:{f.packet.dport}) on node {at}", at, key))
            elif route.via or route.dev != "cni0":
                paths.append(_path(view, f, walked, "delivered",
                                   f"leaves the cluster from node {at} {route.text()} to {f.packet.dst}", at))
            else:
                paths.append(_path(view, f, walked, "unrouted",
                                   f"no pod has address {f.packet.dst} on node {at} (a stale endpoint?)", at))
    paths.sort(key=lambda p: (-p.probability, p.endpoint))
    result = TraceResult(source, target, packet, dp.mode, paths, sources)
    if len(paths) > 1:
        r = rng or random.Random()
        result.chosen = r.choices(range(len(paths)), weights=[p.probability for p in paths])[0]
    return result


def _visit(nr: NodeRules, flow: Flow, first: str) -> list[tuple[Flow, list[Hop]]]:
    """The hooks of one node, forks and all."""
    out: list[tuple[Flow, list[Hop]]] = []
    for f, h1 in _hook(nr, flow, first):
        local = f.packet.dst in nr.local_ips or f.packet.dst.startswith("127.")
        if f.verdict:
            out.append((f, [h1]))
        elif first == "output":
            for g, h2 in _hook(nr, f, "postrouting"):
                if local and not g.verdict:
                    out += [(x, [h1, h2, h3]) for x, h3 in _hook(nr, g, "input")]
                else:
                    out.append((g, [h1, h2]))
        elif local:
            out += [(g, [h1, h2]) for g, h2 in _hook(nr, f, "input")]
        else:
            for g, h2 in _hook(nr, f, "forward"):
                if g.verdict:
                    out.append((g, [h1, h2]))
                else:
                    out += [(x, [h1, h2, h3]) for x, h3 in _hook(nr, g, "postrouting")]
    return out


def _path(view: ClusterView, f: Flow, hops: list[Hop], verdict: str, reason: str, node: str,
          pod: str = "") -> Path:
    if not pod and (target := view.pod_by_ip(f.packet.dst)) is not None:
        pod = f"{target['metadata'].get('namespace')}/{target['metadata'].get('name')}"
    why = ""
    if f.masquerade:
        why = f"marked by {f.masquerade_why}" if f.masquerade_why else "masqueraded"
    return Path(f.probability, hops, verdict, reason, endpoint=f"{f.packet.dst}:{f.packet.dport}",
                endpoint_pod=pod, node=node, dnat=f.dnat, masquerade=f.masquerade, masquerade_why=why,
                affinity=f.affinity, policy=_policy_lines(view, hops))
