"""NetworkPolicy (networking.k8s.io/v1) -> the allow rules of the pods on one node. Pure, no I/O.

Semantics, as the upstream API documents them (and kube-network-policies implements them):
- A policy selects pods in its own namespace (`spec.podSelector`, `{}` = all). hostNetwork pods are
  never selected (they share the node's address) and are no peer of a podSelector either.
- `policyTypes` absent: Ingress, plus Egress when the policy has egress rules (API defaulting).
- A pod is isolated for a direction when any policy of that direction selects it; what is allowed is
  the union of the rules of every such policy (additive). Unselected pods are open.
- A rule with no peers allows every peer; with no ports every port. A peer is a podSelector (pods in
  the policy's namespace), a namespaceSelector (every pod of the matching namespaces), both (pods of
  the matching namespaces matching the podSelector), or an ipBlock (a CIDR minus `except`).
- Ports: numbers (with `endPort`: a range), or names resolved per destination pod: against the
  selected pod for ingress, against the peer pod for egress (an ipBlock peer has no named ports).
  Protocol TCP unless said (UDP, SCTP).
Replies and traffic between a pod and its own node are not this module's concern: the renderers
accept ESTABLISHED/RELATED, and they hook only forwarded traffic (see render_iptables).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from knet.selectors import matches, selector_requirements

Obj = dict[str, Any]
INGRESS = "ingress"
EGRESS = "egress"


@dataclass(frozen=True)
class PortMatch:
    protocol: str                 # "tcp", "udp", "sctp"
    port: int | None = None       # None: every port of the protocol
    end_port: int | None = None   # a range port..end_port


@dataclass(frozen=True)
class Peer:
    """Addresses: pod IPs as /32, or an ipBlock's CIDR with its exceptions."""
    cidrs: tuple[str, ...]
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Allow:
    """One allowed flow of a policy. For ingress `peer` is the source, for egress the destination;
    `local_ip` (ingress, named ports) limits it to one selected pod's address."""
    comment: str
    peer: Peer | None = None              # None: any address
    ports: tuple[PortMatch, ...] | None = None  # None: any port, any protocol
    local_ip: str | None = None


@dataclass
class PolicyRules:
    policy: str          # "namespace/name"
    direction: str       # INGRESS or EGRESS
    allows: list[Allow] = field(default_factory=list)


@dataclass
class IsolatedPod:
    pod: str             # "namespace/name"
    ip: str
    policies: list[str]  # policy keys that select it, in that direction


@dataclass
class Guard:
    """While a pod that a policy isolates (in `direction`) is bound to this node but has no address
    in the API yet, new connections to (ingress) / from (egress) addresses of the node's podCIDR
    that are no known pod's are dropped: the new pod's address is among them until its status
    (with podIP) reaches the controller and its own rules take over. Known pods pass unchanged."""
    direction: str
    pod_cidr: str
    pending: list[str]       # "namespace/name" of the pending isolated pods
    known_ips: list[str]     # every address of a pod on this node (hostNetwork excluded), sorted


@dataclass
class NodeRules:
    node: str
    ingress: list[IsolatedPod] = field(default_factory=list)
    egress: list[IsolatedPod] = field(default_factory=list)
    policies: list[PolicyRules] = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)   # at most one per direction, ingress first

    def rule_count(self) -> int:
        return len(self.ingress) + len(self.egress) + sum(len(p.allows) for p in self.policies)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def key_of(obj: Obj) -> str:
    meta = _meta(obj)
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def policy_types(policy: Obj) -> list[str]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if not types:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    return [t.lower() for t in types]


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    return status.get("podIP") or next((p.get("ip", "") for p in status.get("podIPs") or []), "")


def is_policy_pod(pod: Obj) -> bool:
    """A pod NetworkPolicy applies to (as selected pod or podSelector peer): pod network, has an
    address, not finished, not being deleted with its address gone."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    try:  # IPv4 only (knet's pod network); an address that is none would break the node's rules
        ipaddress.IPv4Address(pod_ip(pod))
    except ValueError:
        return False
    return True


def is_pending_pod(pod: Obj) -> bool:
    """A pod bound to a node (the scheduler's binding) whose address the API does not know yet:
    its sandbox may be starting. Not hostNetwork, not finished, not being deleted."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or spec.get("hostNetwork") or _meta(pod).get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return not pod_ip(pod)


def named_port(pod: Obj, name: str, protocol: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and (port.get("protocol") or "TCP").lower() == protocol:
                return int(port["containerPort"])
    return None


class PodIndex:
    """Pods by namespace and by (namespace, label, value), in their given order: a selector looks at
    the pods of its namespace carrying its rarest matchLabels pair, not at every pod."""

    def __init__(self, pods: list[Obj]) -> None:
        self.by_ns: dict[str, list[Obj]] = {}
        self.by_label: dict[tuple[str, str, Any], list[Obj]] = {}
        for pod in pods:
            meta = _meta(pod)
            ns = meta.get("namespace", "")
            self.by_ns.setdefault(ns, []).append(pod)
            for k, v in (meta.get("labels") or {}).items():
                self.by_label.setdefault((ns, k, v), []).append(pod)

    def select(self, namespace: str, selector: Obj | None) -> list[Obj]:
        """The pods of `namespace` the label selector matches (None: all of them), in index order.
        The candidates are a superset (a matchLabels pair must be present); the full selector
        decides, as labels_match_selector does."""
        pods = self.by_ns.get(namespace, [])
        if selector is None:
            return list(pods)
        for k, v in (selector.get("matchLabels") or {}).items():
            candidates = self.by_label.get((namespace, k, str(v)), [])
            if len(candidates) < len(pods):
                pods = candidates
        reqs = selector_requirements(selector)
        return [p for p in pods if matches(reqs, _meta(p).get("labels"))]


@dataclass
class Cluster:
    """What the compiler reads, indexed once per compile."""
    pods: list[Obj]
    namespaces: dict[str, Obj]
    peer_cache: dict[tuple[str, str, str], list[Obj]] = field(default_factory=dict)
    index: PodIndex = field(default_factory=lambda: PodIndex([]))
    order: dict[int, int] = field(default_factory=dict)  # id(pod) -> its place in `pods`
    _by_ip: list[Obj] | None = None

    @classmethod
    def of(cls, pods: list[Obj], namespaces: list[Obj]) -> Cluster:
        policy_pods = [p for p in pods if is_policy_pod(p)]
        return cls(policy_pods, {_meta(n).get("name", ""): n for n in namespaces}, index=PodIndex(policy_pods),
                   order={id(p): i for i, p in enumerate(policy_pods)})

    def ns_labels(self, namespace: str) -> dict[str, str]:
        ns = self.namespaces.get(namespace)
        labels = dict(_meta(ns).get("labels") or {}) if ns else {}
        # The API server sets this label on every namespace (1.21+); match it even on objects without it.
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels

    def by_ip(self, pods: list[Obj]) -> list[Obj]:
        """`pods` by address (ties in the order of `self.pods`)."""
        return sorted(pods, key=lambda p: (pod_ip(p), self.order[id(p)]))

    def all_by_ip(self) -> list[Obj]:
        if self._by_ip is None:
            self._by_ip = self.by_ip(self.pods)
        return self._by_ip


def _peer_pods(cluster: Cluster, policy_ns: str, peer: Obj) -> list[Obj]:
    pod_sel = peer.get("podSelector")
    ns_sel = peer.get("namespaceSelector")
    # many policies name the same peers: select each distinct one once per compile
    key = (policy_ns if ns_sel is None else "", repr(pod_sel), repr(ns_sel))
    if key not in cluster.peer_cache:
        cluster.peer_cache[key] = _select_peer_pods(cluster, policy_ns, pod_sel, ns_sel)
    return cluster.peer_cache[key]


def _select_peer_pods(cluster: Cluster, policy_ns: str, pod_sel: Obj | None, ns_sel: Obj | None) -> list[Obj]:
    if ns_sel is None:
        namespaces = [policy_ns]
    else:
        reqs = selector_requirements(ns_sel)
        namespaces = [ns for ns in cluster.index.by_ns if matches(reqs, cluster.ns_labels(ns))]
    out = [pod for ns in namespaces for pod in cluster.index.select(ns, pod_sel)]
    return cluster.by_ip(out)


def _split_ports(ports: list[Obj] | None) -> tuple[tuple[PortMatch, ...] | None, list[tuple[str, str]]]:
    """(numeric port matches or None for "any port", [(name, protocol)] named ports)."""
    if not ports:
        return None, []
    numeric: list[PortMatch] = []
    named: list[tuple[str, str]] = []
    for p in ports:
        proto = (p.get("protocol") or "TCP").lower()
        port = p.get("port")
        if port is None:
            numeric.append(PortMatch(proto))
        elif isinstance(port, str) and not port.isdigit():
            named.append((port, proto))
        else:
            end = p.get("endPort")
            numeric.append(PortMatch(proto, int(port), int(end) if end else None))
    return tuple(numeric), named


def _resolve_named(pod: Obj, named: list[tuple[str, str]]) -> tuple[PortMatch, ...]:
    out = []
    for name, proto in named:
        number = named_port(pod, name, proto)
        if number is not None:
            out.append(PortMatch(proto, number))
    return tuple(out)


def _policy_allows(policy: Obj, direction: str, cluster: Cluster, selected: list[Obj]) -> list[Allow]:
    spec = policy.get("spec") or {}
    ns = _meta(policy).get("namespace", "")
    pkey = key_of(policy)
    peer_field = "from" if direction == INGRESS else "to"
    allows: list[Allow] = []
    for i, rule in enumerate(spec.get(direction) or [], 1):
        comment = f"{pkey} {direction} rule {i}"
        numeric, named = _split_ports(rule.get("ports"))
        # peers: list of (Peer or None, the pods behind it or None for "not pods")
        peers: list[tuple[Peer | None, list[Obj] | None]] = []
        if not rule.get(peer_field):
            peers.append((None, None))
        for peer in rule.get(peer_field) or []:
            block = peer.get("ipBlock")
            if block:
                peers.append((Peer((block["cidr"],), tuple(block.get("except") or ())), None))
                continue
            pods = _peer_pods(cluster, ns, peer)
            if pods:
                peers.append((Peer(tuple(f"{pod_ip(p)}/32" for p in pods)), pods))
        for peer, pods in peers:
            if numeric is None or numeric:
                allows.append(Allow(comment, peer, numeric))
            if not named:
                continue
            if direction == INGRESS:  # named ports of the selected (destination) pod
                for pod in selected:
                    resolved = _resolve_named(pod, named)
                    if resolved:
                        allows.append(Allow(f"{comment} on {key_of(pod)}", peer, resolved, local_ip=pod_ip(pod)))
            else:  # named ports of the destination pod: a pod peer, or any pod for "to anywhere"
                if peer is not None and pods is None:
                    continue  # an ipBlock has no named ports
                for pod in pods if pods is not None else cluster.all_by_ip():
                    resolved = _resolve_named(pod, named)
                    if resolved:
                        allows.append(Allow(f"{comment} to {key_of(pod)}", Peer((f"{pod_ip(pod)}/32",)), resolved))
    return allows


def compile_node(node: str, policies: list[Obj], pods: list[Obj], namespaces: list[Obj],
                 pod_cidr: str = "") -> NodeRules:
    """The rules for the pods on `node`; with the node's `pod_cidr`, the guards for its pending
    isolated pods (see Guard)."""
    cluster = Cluster.of(pods, namespaces)
    local = PodIndex(sorted((p for p in cluster.pods if (p.get("spec") or {}).get("nodeName") == node), key=key_of))
    out = NodeRules(node=node)
    isolated: dict[str, dict[str, IsolatedPod]] = {INGRESS: {}, EGRESS: {}}
    for policy in sorted(policies, key=key_of):
        ns = _meta(policy).get("namespace", "")
        selected = local.select(ns, (policy.get("spec") or {}).get("podSelector") or {})
        if not selected:
            continue
        for direction in (INGRESS, EGRESS):
            if direction not in policy_types(policy):
                continue
            pkey = key_of(policy)
            out.policies.append(PolicyRules(pkey, direction, _policy_allows(policy, direction, cluster, selected)))
            for pod in selected:
                entry = isolated[direction].setdefault(key_of(pod), IsolatedPod(key_of(pod), pod_ip(pod), []))
                entry.policies.append(pkey)
    out.ingress = sorted(isolated[INGRESS].values(), key=lambda p: p.pod)
    out.egress = sorted(isolated[EGRESS].values(), key=lambda p: p.pod)
    if pod_cidr and policies:
        out.guards = _guards(node, policies, pods, cluster, pod_cidr)
    return out


def _guards(node: str, policies: list[Obj], pods: list[Obj], cluster: Cluster, pod_cidr: str) -> list[Guard]:
    pending = PodIndex(sorted((p for p in pods if (p.get("spec") or {}).get("nodeName") == node
                               and is_pending_pod(p)), key=key_of))
    if not pending.by_ns:
        return []
    selected: dict[str, set[str]] = {INGRESS: set(), EGRESS: set()}
    for policy in policies:
        ns = _meta(policy).get("namespace", "")
        if ns not in pending.by_ns:
            continue
        found = pending.select(ns, (policy.get("spec") or {}).get("podSelector") or {})
        for direction in policy_types(policy):
            if direction in selected:
                selected[direction].update(key_of(p) for p in found)
    if not selected[INGRESS] and not selected[EGRESS]:
        return []
    # every address a pod of this node holds, finished pods excluded (their address may be reused)
    known = sorted({pod_ip(p) for p in cluster.pods if (p.get("spec") or {}).get("nodeName") == node},
                   key=lambda ip: int(ipaddress.IPv4Address(ip)))
    cidr = str(ipaddress.IPv4Network(pod_cidr, strict=False))
    return [Guard(d, cidr, sorted(selected[d]), known) for d in (INGRESS, EGRESS) if selected[d]]
