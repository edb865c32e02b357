"""Packet flows through kube-proxy's rules as knet renders them, walked in both proxy modes: upstream's
runPacketFlowTests tables (pkg/proxy/iptables/proxier_test.go and pkg/proxy/nftables/proxier_test.go:
TestClusterIPGeneral, TestLoadBalancer, TestNoEndpointsReject; the ETP Local, external IP and
hairpin cases of TestOverall*Rules and the golden fixtures), each case with its expected output
(the endpoints the packet may be DNATed to, or DROP/REJECT) and masquerade; plus session affinity
with a client in the affinity list. Address plan as upstream's: pods 10.0.0.0/8, ClusterIPs
172.30.0.0/16, node 192.168.0.2, LB IPs 1.2.3.4 / 5.6.7.8, clients 203.0.113.0/24."""

from __future__ import annotations

import re

import pytest
from tests.unit.proxy.proxy_golden_helpers import load_objects
from tests.unit.proxy.proxy_objects import endpoint_slice, ep, service

from knet.proxy import iptables, iptables_walk, nftables, nftables_walk
from knet.proxy.model import state_from_objects
from knet.proxy.options import RenderOptions
from knet.proxy.walk import Packet

NODE = "test-node"
NODE_IP = "192.168.0.2"
NODE_IPS = [NODE_IP, "192.168.1.2"]
EXTERNAL = "203.0.113.2"          # upstream testExternalClient
EXTERNAL_BLOCKED = "203.0.113.130"  # upstream testExternalClientBlocked (outside 203.0.113.0/25)
OPTS = {
    "iptables": RenderOptions(node_name=NODE, node_ip=NODE_IP, cluster_cidr="10.0.0.0/8"),
    "nftables": RenderOptions(node_name=NODE, node_ip=NODE_IP, cluster_cidr="10.0.0.0/8",
                              node_port_addresses=("192.168.0.2/32",), node_ips=tuple(NODE_IPS),
                              service_cidrs=("172.30.0.0/16",)),
}
# upstream's newest nftables rules (kubernetesVersion v1.37; knet.proxy.nftables.Shape): the same flows
OPTS["nftables-v1.37"] = RenderOptions(**{**OPTS["nftables"].__dict__, "kubernetes_version": "v1.37.0"})
MODES = ["iptables", "nftables", "nftables-v1.37"]


def _port(name: str, port: int, proto: str = "TCP", **kw) -> dict:
    return {"name": name, "port": port, "protocol": proto, **kw}


def cluster_ip_general() -> list[dict]:
    """upstream TestClusterIPGeneral."""
    return [
        service("svc1", "172.30.0.41", ports=[_port("http", 80)]),
        service("svc2", "172.30.0.42", ns="ns2", ports=[
            _port("http", 80), _port("https", 443, targetPort=8443), _port("dns-udp", 53, "UDP"),
            _port("dns-tcp", 53, targetPort=5353), _port("dns-sctp", 53, "SCTP")]),
        endpoint_slice("svc1", [ep("10.180.0.1", NODE)], ports=[_port("http", 80)]),
        endpoint_slice("svc2", [ep("10.180.0.1", NODE), ep("10.180.2.1", "node2")], ns="ns2", ports=[
            _port("http", 80), _port("https", 8443), _port("dns-udp", 53, "UDP"), _port("dns-tcp", 5353),
            _port("dns-sctp", 53, "SCTP")]),
    ]


def load_balancer() -> list[dict]:
    """upstream TestLoadBalancer."""
    return [
        service("svc1", "172.30.0.41", type="LoadBalancer", ports=[_port("p80", 80, nodePort=3001)],
                loadBalancerSourceRanges=["192.168.0.0/24", " 203.0.113.0/25"])
        | {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8"}]}}},
        endpoint_slice("svc1", [ep("10.180.0.1")]),
    ]


def no_endpoints() -> list[dict]:
    """upstream TestNoEndpointsReject."""
    return [service("svc1", "172.30.0.41", type="LoadBalancer", externalIPs=["192.168.99.11"],
                    ports=[_port("p80", 80, nodePort=3001)])
            | {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}]


FIXTURES = {
    "clusterip": cluster_ip_general,
    "lb": load_balancer,
    "noendpoints": no_endpoints,
    "etplocal": lambda: load_objects("etp_local.yaml"),
    "overall": lambda: load_objects("overall.yaml"),
    "extip": lambda: load_objects("nonlocal_external_ips.yaml"),
}

# (fixture, source, destination, port, protocol, output, masquerade); "" output: not a Service
CASES = [
    # TestClusterIPGeneral
    ("clusterip", "10.180.0.2", "172.30.0.41", 80, "tcp", "10.180.0.1:80", False, "simple clusterIP"),
    ("clusterip", "10.180.0.1", "172.30.0.41", 80, "tcp", "10.180.0.1:80", True, "hairpin to cluster IP"),
    ("clusterip", "10.180.0.2", "172.30.0.42", 80, "tcp", "10.180.0.1:80, 10.180.2.1:80", False, "multiple endpoints"),
    ("clusterip", "10.180.0.2", "172.30.0.42", 443, "tcp", "10.180.0.1:8443, 10.180.2.1:8443", False, "targetPort"),
    ("clusterip", "10.180.0.2", "172.30.0.42", 53, "tcp", "10.180.0.1:5353, 10.180.2.1:5353", False, "same port TCP"),
    ("clusterip", "10.180.0.2", "172.30.0.42", 53, "udp", "10.180.0.1:53, 10.180.2.1:53", False, "same port UDP"),
    ("clusterip", "10.180.0.2", "172.30.0.42", 53, "sctp", "10.180.0.1:53, 10.180.2.1:53", False, "same port SCTP"),
    ("clusterip", "10.180.0.2", "172.30.0.41", 443, "tcp", "REJECT|DROP", False, "other service's port"),
    # TestLoadBalancer
    ("lb", "10.0.0.2", "172.30.0.41", 80, "tcp", "10.180.0.1:80", False, "pod to cluster IP"),
    ("lb", EXTERNAL, NODE_IP, 3001, "tcp", "10.180.0.1:80", True, "external to nodePort"),
    ("lb", EXTERNAL_BLOCKED, NODE_IP, 3001, "tcp", "10.180.0.1:80", True, "nodePort bypasses source ranges"),
    ("lb", EXTERNAL, "1.2.3.4", 80, "tcp", "10.180.0.1:80", True, "accepted external to LB1"),
    ("lb", EXTERNAL, "5.6.7.8", 80, "tcp", "10.180.0.1:80", True, "accepted external to LB2"),
    ("lb", EXTERNAL_BLOCKED, "1.2.3.4", 80, "tcp", "DROP", False, "blocked external to LB1"),
    ("lb", EXTERNAL_BLOCKED, "5.6.7.8", 80, "tcp", "DROP", False, "blocked external to LB2"),
    ("lb", "10.0.0.2", "1.2.3.4", 80, "tcp", "DROP", False, "pod to LB1 blocked by source ranges"),
    ("lb", NODE_IP, "1.2.3.4", 80, "tcp", "10.180.0.1:80", True, "node to LB1 allowed by source ranges"),
    ("lb", "1.2.3.4", "1.2.3.4", 80, "tcp", "10.180.0.1:80", True, "same node to LB1, SNATted to LB1"),
    # TestNoEndpointsReject
    ("noendpoints", "10.0.0.2", "172.30.0.41", 80, "tcp", "REJECT", False, "pod to cluster IP"),
    ("noendpoints", EXTERNAL, "192.168.99.11", 80, "tcp", "REJECT", False, "external to external IP"),
    ("noendpoints", "10.0.0.2", NODE_IP, 3001, "tcp", "REJECT", False, "pod to NodePort"),
    ("noendpoints", EXTERNAL, NODE_IP, 3001, "tcp", "REJECT", False, "external to NodePort"),
    ("noendpoints", "10.0.0.2", "1.2.3.4", 80, "tcp", "REJECT", False, "pod to LB IP"),
    ("noendpoints", EXTERNAL, "1.2.3.4", 80, "tcp", "REJECT", False, "external to LB IP"),
    # externalTrafficPolicy: Local, with a local endpoint (etp_local.yaml) and without (overall.yaml svc2)
    ("etplocal", "10.0.0.2", "172.30.0.41", 80, "tcp", "10.180.0.1:80, 10.180.2.1:80", False, "pod to clusterIP"),
    ("etplocal", EXTERNAL, "192.168.99.11", 80, "tcp", "10.180.2.1:80", False, "external to externalIP: local only"),
    ("etplocal", EXTERNAL, "1.2.3.4", 80, "tcp", "10.180.2.1:80", False, "external to LB: local only"),
    ("etplocal", EXTERNAL, NODE_IP, 3001, "tcp", "10.180.2.1:80", False, "external to NodePort: local only"),
    ("etplocal", NODE_IP, "1.2.3.4", 80, "tcp", "10.180.0.1:80, 10.180.2.1:80", True, "node to LB short-circuit"),
    ("overall", EXTERNAL, "1.2.3.4", 80, "tcp", "DROP", False, "ETP Local, no local endpoints: dropped"),
    ("overall", "10.0.0.2", "1.2.3.4", 80, "tcp", "10.180.0.2:80", False, "ETP Local: pod traffic short-circuited"),
    ("overall", "10.180.0.1", "172.30.0.41", 80, "tcp", "10.180.0.1:80", True, "hairpin"),
    ("overall", "10.0.0.2", "172.30.0.46", 80, "tcp", "REJECT", False, "no endpoints"),
    ("overall", "10.0.0.2", "10.0.0.3", 80, "tcp", "", False, "no match"),
    # externalIP with Cluster policy: off-node clients masqueraded
    ("extip", EXTERNAL, "192.168.99.11", 80, "tcp", "10.180.0.1:80, 10.180.2.1:80", True, "external to externalIP"),
]


def _render(mode: str, objects: list[dict]) -> str:
    state = state_from_objects(objects, NODE)
    return iptables.render(state, OPTS[mode]) if mode == "iptables" else nftables.render(state, OPTS[mode])


def test_v137_rules_have_no_endpoint_chains_or_single_endpoint_maps() -> None:
    """What the flows below walk in the v1.37 shape (or they would pass on v1.29 rules)."""
    text = _render("nftables-v1.37", cluster_ip_general())
    assert "chain ip kube-proxy endpoint-" not in text and "vmap {" not in text and "mark-for-masquerade" not in text
    assert "dnat ip addr . port to numgen" in text


def _walk(mode: str, text: str, packet: Packet, affinity: dict[str, set[str]] | None = None):
    if mode == "iptables":
        return iptables_walk.trace(text, packet, NODE_IPS, affinity)
    return nftables_walk.trace(text, packet, NODE_IPS, affinity)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fixture", "src", "dst", "port", "proto", "output", "masq", "name"), CASES,
                         ids=[c[-1] for c in CASES])
def test_packet_flow(mode: str, fixture: str, src: str, dst: str, port: int, proto: str, output: str, masq: bool,
                     name: str) -> None:
    t = _walk(mode, _render(mode, FIXTURES[fixture]()), Packet(src, dst, port, proto))
    if mode == "nftables-v1.37" and name == "hairpin" and fixture == "overall":
        # v1.36+ masquerades hairpin traffic by the hairpin-connections set, which holds this
        # node's endpoints only; overall.yaml's 10.180.0.1 has no nodeName, so it cannot be a pod
        # here reaching itself ("hairpin to cluster IP" above covers a local endpoint)
        masq = False
    if "|" in output:  # upstream: iptables accepts it (no rule), nftables rejects (cluster-ips-check)
        assert t.output in ("", *output.split("|")), name
    else:
        assert t.output == output, name
    assert t.masquerade == masq, name
    # every DNATed flow says which rule did it and with what probability
    flows = [f for f in t.flows if f.dnat]
    assert abs(sum(f.probability for f in flows) - (1.0 if flows else 0.0)) < 1e-6
    assert all(any(s.note.startswith("DNAT to") or "DNAT to" in s.note for s in f.steps) for f in flows)


def test_probabilities_are_the_kernels(mode: str = "") -> None:
    """Three endpoints: iptables' statistic chain (1/3, then 1/2 of the rest) and nftables' numgen
    both give each endpoint one third."""
    objs = [service("svc1", "172.30.0.41"), endpoint_slice("svc1", [ep(f"10.180.0.{i}") for i in (1, 2, 3)])]
    for m in MODES:
        t = _walk(m, _render(m, objs), Packet("10.0.0.2", "172.30.0.41", 80))
        probs = {f.dnat: round(f.probability, 6) for f in t.flows}
        assert probs == {f"10.180.0.{i}:80": round(1 / 3, 6) for i in (1, 2, 3)}, m


def _affinity_name(mode: str, text: str, endpoint: str) -> str:
    ip, port = endpoint.split(":")
    if mode == "iptables":
        m = re.search(rf'-> {re.escape(endpoint)}" -m recent --name (\S+) --rcheck', text)
    else:
        m = re.search(rf"ip saddr @(affinity-\S+) goto endpoint-\S+__{re.escape(ip)}/{port}", text)
    assert m, text
    return m.group(1)


@pytest.mark.parametrize("mode", MODES)
def test_session_affinity_pins_a_known_client(mode: str) -> None:
    objs = [service("svc1", "172.30.0.41", sessionAffinity="ClientIP"),
            endpoint_slice("svc1", [ep("10.180.0.4"), ep("10.180.0.5")])]
    text = _render(mode, objs)
    fresh = _walk(mode, text, Packet("10.0.0.2", "172.30.0.41", 80))
    assert fresh.output == "10.180.0.4:80, 10.180.0.5:80" and not any(f.affinity for f in fresh.flows)
    known = {_affinity_name(mode, text, "10.180.0.5:80"): {"10.0.0.2"}}
    pinned = _walk(mode, text, Packet("10.0.0.2", "172.30.0.41", 80), known)
    assert pinned.output == "10.180.0.5:80"
    assert [f.probability for f in pinned.flows] == [1.0] and pinned.flows[0].affinity
    other = _walk(mode, text, Packet("10.0.0.3", "172.30.0.41", 80), known)  # another client: not pinned
    assert other.output == "10.180.0.4:80, 10.180.0.5:80"
