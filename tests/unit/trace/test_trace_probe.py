"""--probe's pure half: reading conntrack's answer and checking the kernel's outcome against the walk."""

from __future__ import annotations

import random
from pathlib import Path

from tests.unit.trace.cluster import CLUSTER_CIDR, SERVICE_CIDR, objects, web_service
from tests.unit.trace.test_trace_path import DENY_INGRESS_C

from knet.trace import path
from knet.trace.dataplane import RenderedDataplane
from knet.trace.probe import (
    ProbeResult,
    compare,
    compare_rules,
    parse_conntrack,
    parse_nft_trace,
    parse_xtables_trace,
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


def walk(*extra: dict, to: str = "svc/x/web"):
    view = ClusterView.of(objects(*extra))
    src = resolve(view, "x/a")
    dst = resolve(view, to, source=src)
    dp = RenderedDataplane(view, "iptables", CLUSTER_CIDR, (SERVICE_CIDR,))
    return path.trace(view, dp, src, dst, 80, rng=random.Random(0))


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
    assert ok and f"the same {len(on_node)} rules" in msg
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
