"""--probe's pure half: reading conntrack's answer and checking the kernel's outcome against the walk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests.unit.proxy.proxy_objects import endpoint_slice, ep, service
from tests.unit.trace.cluster import CLUSTER_CIDR, SERVICE_CIDR, objects, web_service
from tests.unit.trace.test_trace_path import DENY_INGRESS_C

from knet.trace import path
from knet.trace.dataplane import RenderedDataplane
from knet.trace.probe import (
    ProbeResult,
    compare,
    compare_rules,
    iptables_trace_rules,
    nft_segments,
    nft_trace_table,
    parse_conntrack,
    parse_nft_trace,
    parse_xtables_trace,
    trace_match,
    traced_nodes,
    walk_visits,
    xtables_segments,
)
from knet.trace.view import ClusterView, resolve

CONNTRACK = (
    "tcp      6 117 TIME_WAIT src=10.244.1.2 dst=10.96.0.10 sport=40111 dport=80 src=10.244.2.4 dst=10.244.1.2 "
    "sport=80 dport=40111 [ASSURED] mark=0 use=1\n"
    "tcp      6 86399 ESTABLISHED src=10.244.1.2 dst=10.96.0.10 sport=40222 dport=80 src=10.244.1.3 "
    "dst=10.244.1.2 sport=80 dport=40222 [ASSURED] mark=0 use=1\n")


def test_conntrack_reply_source_is_the_endpoint() -> None:
    assert parse_conntrack(CONNTRACK, "10.244.1.2", 40222) == "10.244.1.3:80"
    assert parse_conntrack(CONNTRACK, "10.244.1.2", 40111) == "10.244.2.4:80"
    assert parse_conntrack(CONNTRACK, "10.244.1.2", 1) == ""


def test_conntrack_on_the_node_that_translated_a_nodeport() -> None:
    """A NodePort at another node's address: the source's node sees no translation; the entry on the
    target node (its source maybe masqueraded on the way) is found by destination and source port."""
    here = ("tcp      6 117 TIME_WAIT src=10.244.1.2 dst=192.168.0.3 sport=40333 dport=30080 src=192.168.0.3 "
            "dst=10.244.1.2 sport=30080 dport=40333 [ASSURED] mark=0 use=1\n")
    assert parse_conntrack(here, "10.244.1.2", 40333) == "192.168.0.3:30080"
    there = ("tcp      6 117 TIME_WAIT src=10.244.1.2 dst=192.168.0.3 sport=40333 dport=30080 src=10.244.1.3 "
             "dst=192.168.0.3 sport=80 dport=15001 [ASSURED] mark=0 use=1\n")
    assert parse_conntrack(there, "", 40333, "192.168.0.3") == "10.244.1.3:80"
    assert parse_conntrack(there, "", 40333, "192.168.0.2") == ""  # another node's NodePort: not this one
    assert parse_conntrack(there, "", 40334, "192.168.0.3") == ""


def walk(*extra: dict, to: str = "svc/x/web", mode: str = "iptables", port: int = 80, proto: str = "tcp"):
    view = ClusterView.of(objects(*extra))
    src = resolve(view, "x/a")
    dst = resolve(view, to, source=src)
    dp = RenderedDataplane(view, mode, CLUSTER_CIDR, (SERVICE_CIDR,))
    return path.trace(view, dp, src, dst, port, proto, rng=random.Random(0))


def test_agreement_and_disagreement() -> None:
    r = walk(DENY_INGRESS_C, *web_service())  # x/b delivered, x/c dropped
    assert compare(r, ProbeResult("connected", "10.244.1.3:80"))[0]
    ok, msg = compare(r, ProbeResult("connected", "10.244.2.4:80"))
    assert not ok and "dropped by NetworkPolicy" in msg  # the kernel reached what the walk drops
    ok, msg = compare(r, ProbeResult("connected", "10.244.9.9:80"))
    assert not ok and "no walked path reaches" in msg
    assert not compare(r, ProbeResult("timeout"))[0]  # one path is delivered: a timeout disagrees
    none = walk(*web_service(endpoints=()))
    assert compare(none, ProbeResult("refused"))[0]
    assert not compare(none, ProbeResult("timeout"))[0]
    denied = walk(DENY_INGRESS_C, to="x/c")
    assert compare(denied, ProbeResult("timeout"))[0] and not compare(denied, ProbeResult("refused"))[0]


LIVE = Path(__file__).parent / "live"  # what the kernel's own tracers printed for one SYN (a DNAT, a drop)


def test_kernel_trace_outputs_parse() -> None:
    nft = parse_nft_trace((LIVE / "nft-monitor-trace.txt").read_text())
    assert nft == [
        ("ip kube-proxy", "nat-prerouting", "jump services"),
        ("ip kube-proxy", "services", 'ip daddr 10.96.0.10 tcp dport 80 counter packets 0 bytes 0 dnat to '
                                      '10.77.0.9:80 comment "svc x"'),
        ("ip kube-proxy", "filter-forward", "ct state new jump fwdx"),
        ("ip kube-proxy", "fwdx", 'ip daddr 10.77.0.9 drop comment "nope"'),
    ]
    xt = parse_xtables_trace((LIVE / "xtables-monitor-trace.txt").read_text())
    assert xt == [("nat", "PREROUTING", '-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m comment '
                                        '--comment "svc x" -j DNAT --to-destination 10.77.0.9:80')]
    # through a bridge (a pod's packet on cni0) the id changes between prerouting and forward
    bridged = parse_xtables_trace((LIVE / "xtables-monitor-trace-bridge.txt").read_text())
    assert [(t, c) for t, c, _ in bridged] == [("nat", "PREROUTING"), ("filter", "FORWARD")]
    retransmitted = (LIVE / "xtables-monitor-trace-bridge.txt").read_text() * 2  # the SYN again: not counted
    assert parse_xtables_trace(retransmitted) == bridged


def test_kernel_rules_compared_with_the_walk_on_the_source_node() -> None:
    r = walk(*web_service(endpoints=(("10.244.1.3", "node01"),)))
    on_node = [(s.table, s.chain, s.rule) for h in r.path.hops if h.node == "node01" for s in h.steps]
    ok, msg = compare_rules(r, ProbeResult("connected", "10.244.1.3:80", kernel=on_node, kernel_node="node01"))
    assert ok and f"the same rules: {len(on_node)} on node node01" in msg
    ok, msg = compare_rules(r, ProbeResult("connected", "10.244.1.3:80", kernel=on_node[:2], kernel_node="node01"))
    assert not ok and "rule 3: the kernel matched (nothing more)" in msg
    assert not compare_rules(r, ProbeResult("connected", "10.244.1.3:80", kernel=[], kernel_node="node01"))[0]


def test_rules_compare_without_comments() -> None:
    """xtables-monitor prints an unquoted comment as a bare `--` (seen on iptables v1.8.9)."""
    from knet.trace.probe import _norm

    kernel = "-A KUBE-SEP-Y44M -p tcp -m comment -- -m tcp -j DNAT --to-destination 10.244.1.3:8080"
    walked = "-A KUBE-SEP-Y44M -p tcp -m comment --comment trace-e2e/echo:http -m tcp -j DNAT --to-destination 10.244.1.3:8080"
    assert _norm(kernel) == _norm(walked)
    assert _norm('-A X -m comment --comment "a b" -j Y') == "-A X -j Y"


NODE_IPS = {"node01": "192.168.0.2", "node02": "192.168.0.3"}


def kernel_of(p: path.Path) -> dict[str, list[list[tuple[str, str, str]]]]:
    """What a kernel that took walked path p would trace on each node: each pass's rules."""
    out: dict[str, list[list[tuple[str, str, str]]]] = {}
    for node, steps in walk_visits(p):
        out.setdefault(node, []).append([(s.table, s.chain, s.rule) for s in steps])
    return out


def test_the_kernel_is_compared_on_every_node_the_packet_crosses() -> None:
    """x/a (node01) -> the Service -> x/c on node02: the walk's passes through node01 (DNAT, route)
    and node02 (forward to the pod) each against what that node's kernel traced."""
    r = walk(*web_service(endpoints=(("10.244.2.4", "node02"),)))
    assert traced_nodes(r) == ["node01", "node02"]
    assert [n for n, _ in walk_visits(r.path)] == ["node01", "node02"]
    kernel = kernel_of(r.path)
    assert kernel["node02"][0], "the walk matched rules on node02 (its FORWARD chain)"
    ok, msg = compare_rules(r, ProbeResult("connected", "10.244.2.4:80", segments=kernel))
    assert ok and "on node node01" in msg and "on node node02" in msg, msg
    # a retransmitted SYN is a further pass: not compared
    again = {n: segs + segs for n, segs in kernel.items()}
    assert compare_rules(r, ProbeResult("connected", "10.244.2.4:80", segments=again))[0]
    # node02's kernel matched something else: a disagreement there, named
    wrong = {**kernel, "node02": [kernel["node02"][0][:-1] + [("filter", "FORWARD", "-A FORWARD -j DROP")]]}
    ok, msg = compare_rules(r, ProbeResult("connected", "10.244.2.4:80", segments=wrong))
    assert not ok and msg.startswith("on node node02, rule") and "-A FORWARD -j DROP" in msg, msg
    # node02's kernel never saw the packet, though the walk sends it there
    ok, msg = compare_rules(r, ProbeResult("connected", "10.244.2.4:80", segments={**kernel, "node02": []}))
    assert not ok and "did not see the packet on node node02" in msg, msg


def test_a_node_the_kernel_reached_and_the_walk_does_not_disagrees() -> None:
    r = walk(*web_service(endpoints=(("10.244.1.3", "node01"),)))  # x/b: stays on node01
    kernel = kernel_of(r.path)
    assert set(kernel) == {"node01"}
    assert compare_rules(r, ProbeResult("connected", "10.244.1.3:80", segments={**kernel, "node02": []}))[0]
    ok, msg = compare_rules(r, ProbeResult("connected", "10.244.1.3:80",
                                           segments={**kernel, "node02": [[("filter", "FORWARD", "-A FORWARD")]]}))
    assert not ok and "on node node02, where the walk does not go" in msg


def test_the_kernel_path_is_the_one_to_the_nodes_it_crossed() -> None:
    """Both endpoints dropped by policy (a timeout has no endpoint to say which): the walked path
    compared is the one through the nodes the kernel traced."""
    deny_b = {**DENY_INGRESS_C, "metadata": {"name": "deny-b", "namespace": "x"},
              "spec": {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"]}}
    r = walk(DENY_INGRESS_C, deny_b, *web_service())
    assert {p.verdict for p in r.paths} == {"dropped"} and len(r.paths) == 2
    to_c = next(p for p in r.paths if p.endpoint.startswith("10.244.2.4"))
    ok, msg = compare_rules(r, ProbeResult("timeout", segments=kernel_of(to_c)))
    assert ok and "node node02" in msg, msg


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_udp_walks_to_the_services_udp_port(mode: str) -> None:
    """A UDP Service port: the walk follows the UDP rules (the probe's datagram is traced as udp)."""
    svc = [service("web", "10.96.0.10", ns="x", ports=[{"name": "dns", "port": 53, "protocol": "UDP",
                                                         "targetPort": 5353}]),
           endpoint_slice("web", [ep("10.244.2.4", "node02")], ns="x",
                          ports=[{"name": "dns", "port": 5353, "protocol": "UDP"}])]
    r = walk(*svc, mode=mode, port=53, proto="udp")
    assert r.path.verdict == "delivered" and r.path.endpoint == "10.244.2.4:5353", r.path.reason
    assert compare(r, ProbeResult("connected", "10.244.2.4:5353", protocol="udp"))[0]
    ok, msg = compare(r, ProbeResult("connected", "10.244.2.4:5353", protocol="udp"))
    assert msg.startswith("answered from 10.244.2.4:5353"), msg
    m = trace_match(r, 45000, NODE_IPS)
    assert m.proto == "udp" and "udp dport { 53, 5353 } udp sport 45000" in nft_trace_table(m)
    assert "tcp flags" not in nft_trace_table(m) and "--syn" not in iptables_trace_rules(m)[0]


def test_the_tracing_rule_matches_the_packet_wherever_it_arrives() -> None:
    """From the source (with its port) to the ClusterIP or an endpoint; after a masquerade (a
    NodePort) from a node of the path, any source port (the masquerade is fully random)."""
    r = walk(*web_service())
    m = trace_match(r, 45000, NODE_IPS)
    assert m.saddrs == ("10.244.1.2",) and m.sport == 45000
    assert m.daddrs == ("10.244.1.3", "10.244.2.4", "10.96.0.10") and m.dports == (80,)
    table = nft_trace_table(m)
    assert ("ip saddr 10.244.1.2 ip daddr { 10.244.1.3, 10.244.2.4, 10.96.0.10 } tcp dport 80 tcp sport 45000 "
            "tcp flags & (fin|syn|rst|ack) == syn meta nftrace set 1") in table
    assert "hook prerouting priority -400" in table and "hook output" not in table
    assert "hook output priority -400" in nft_trace_table(m, output=True)
    assert iptables_trace_rules(m) == [["PREROUTING", "-p", "tcp", "-s", "10.244.1.2", "-d",
                                        "10.244.1.3,10.244.2.4,10.96.0.10", "--sport", "45000", "--syn",
                                        "-m", "multiport", "--dports", "80", "-j", "TRACE"]]
    np = walk(*web_service(type="NodePort", ports=[{"name": "p80", "port": 80, "protocol": "TCP",
                                                    "nodePort": 30080}]), to="192.168.0.3", port=30080)
    assert any(p.masquerade for p in np.paths), [p.reason for p in np.paths]
    m = trace_match(np, 45000, NODE_IPS)
    assert m.sport is None and {"10.244.1.2", "192.168.0.3"} <= set(m.saddrs) and m.dports == (80, 30080)
    assert "sport" not in nft_trace_table(m)


def test_each_pass_through_a_node_is_a_segment() -> None:
    xt = (LIVE / "xtables-monitor-trace-bridge.txt").read_text()
    assert len(xtables_segments(xt * 2)) == 2 and xtables_segments(xt * 2)[1] == parse_xtables_trace(xt)
    nft = (LIVE / "nft-monitor-trace.txt").read_text()
    assert nft_segments(nft)[0] == parse_nft_trace(nft)
    assert xtables_segments("") == [] and parse_xtables_trace("") == []
