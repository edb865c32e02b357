"""What `knet trace` reads from a real node, parsed without root: tests/unit/trace/live/ holds the
output of its read script (iptables-save or `nft list table ip kube-proxy` / `ip knet-netpol`,
`ip -j -4 route`, `ip -j -4 addr`, /proc/net/xt_recent) in a namespace loaded with knet's own
rules for tests/unit/trace/cluster.py's node01 (tests/e2e/test_trace_live_rules.py does the same live).
The walk over what was read must equal the walk over the rendered text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.unit.trace.cluster import CLUSTER_CIDR, SERVICE_CIDR, objects, web_service
from tests.unit.trace.test_trace_path import ALLOW_A_TO_B, DENY_INGRESS_B

from knet.proxy.walk import Packet, through_node
from knet.trace.dataplane import RenderedDataplane, node_rules_from_dump, parse_recent, route_lookup
from knet.trace.view import ClusterView

LIVE = Path(__file__).parent / "live"
PACKETS = [Packet("10.244.1.2", "10.96.0.10", 80), Packet("10.244.1.2", "10.244.1.3", 80),
           Packet("10.244.1.9", "10.244.1.3", 80), Packet("10.244.1.2", "10.244.1.3", 81),
           Packet("203.0.113.2", "192.168.0.2", 30080), Packet("10.244.1.2", "10.96.0.99", 80)]


def view() -> ClusterView:
    return ClusterView.of(objects(DENY_INGRESS_B, ALLOW_A_TO_B, *web_service(
        type="NodePort", sessionAffinity="ClientIP",
        ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 30080}])))


def summary(trace) -> list[tuple]:
    return sorted((f.dnat, f.verdict, round(f.probability, 3), f.masquerade) for f in trace.flows)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_read_rules_walk_as_rendered(mode: str) -> None:
    live = node_rules_from_dump("node01", mode, (LIVE / f"node01-{mode}.dump").read_text())
    assert live.local_ips == {"127.0.0.1", "192.168.0.2", "10.244.1.1"}
    route = route_lookup(live.routes, "10.244.2.4")
    assert route is not None and (route.dst, route.via) == ("10.244.2.0/24", "192.168.0.3")
    rendered = RenderedDataplane(view(), mode, CLUSTER_CIDR, (SERVICE_CIDR,)).node("node01")
    for packet in PACKETS:
        got = through_node(live.walker, packet, live.local_ips)
        assert summary(got) == summary(through_node(rendered.walker, packet, live.local_ips)), packet
        assert not [s.note for f in got.flows for s in f.steps if "assumed" in s.note], packet
        assert not [s.rule for f in got.flows for s in f.steps if s.rule.startswith("comment ")], packet
    # the policy's verdicts as read: x/a may reach x/b on 80, x/z (10.244.1.9) may not
    assert summary(through_node(live.walker, PACKETS[1], live.local_ips))[0][1] == ""
    assert summary(through_node(live.walker, PACKETS[2], live.local_ips))[0][1] == "DROP"


def test_affinity_lists_pin_the_client() -> None:
    dump = (LIVE / "node01-iptables.dump").read_text()
    sep = re.search(r'-> 10\.244\.2\.4:80" -m recent --rcheck .*?--name (\S+)', dump)  # iptables-save's order
    assert sep
    recent = (f"#/proc/net/xt_recent/{sep.group(1)}\n"
              "src=10.244.1.2 ttl: 64 last_seen: 4295123 oldest_pkt: 1 4295123\n")
    assert parse_recent(recent) == {sep.group(1): {"10.244.1.2"}}
    live = node_rules_from_dump("node01", "iptables", dump + recent)
    pinned = through_node(live.walker, PACKETS[0], live.local_ips)
    assert summary(pinned) == [("10.244.2.4:80", "", 1.0, False)] and pinned.flows[0].affinity
    other = through_node(live.walker, Packet("10.244.1.5", "10.96.0.10", 80), live.local_ips)
    assert [f.dnat for f in other.flows] == ["10.244.1.3:80", "10.244.2.4:80"]


def test_a_chain_comment_is_no_rule() -> None:
    """`nft list` prints a chain's comment inside its body; the chain's rules are the lines after it."""
    live = node_rules_from_dump("node01", "nftables", (LIVE / "node01-nftables.dump").read_text())
    rules = live.walker.rs["ip kube-proxy"].chains["reject-chain"].rules
    assert rules == ["reject"]
