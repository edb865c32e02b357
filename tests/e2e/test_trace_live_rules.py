"""The rules `knet trace` reads on a real node walk like the ones it renders: knet's kube-proxy and
policy controller rules (both modes) loaded into a network namespace with iptables-restore / nft -f,
read back the way `knet trace` reads a node (iptables-save or `nft list table`, `ip -j addr`,
`ip -j route`), give the same flows as the rendered text for pod -> Service, pod -> pod with a
policy allowing, a policy dropping, an external client to a NodePort, an unallocated ClusterIP."""

from __future__ import annotations

import shlex
import subprocess
import uuid

import pytest
from tests.unit.trace.cluster import CLUSTER_CIDR, SERVICE_CIDR, objects, web_service
from tests.unit.trace.test_trace_path import ALLOW_A_TO_B, DENY_INGRESS_B

from knet.netpol import render as netpol_render
from knet.netpol.compiler import compile_node
from knet.proxy import iptables, nftables
from knet.proxy.model import state_from_objects
from knet.proxy.options import RenderOptions
from knet.proxy.walk import Packet, through_node
from knet.trace.dataplane import READ_RULES, READ_SCRIPT, RenderedDataplane, node_rules_from_dump
from knet.trace.view import ClusterView

pytestmark = pytest.mark.e2e

PACKETS = [Packet("10.244.1.2", "10.96.0.10", 80), Packet("10.244.1.2", "10.244.1.3", 80),
           Packet("10.244.1.9", "10.244.1.3", 80), Packet("10.244.1.2", "10.244.1.3", 81),
           Packet("203.0.113.2", "192.168.0.2", 30080), Packet("10.244.1.2", "10.96.0.99", 80)]


@pytest.fixture
def netns():
    name = f"knet-test-trace-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in ("ip link add kntr0 type veth peer name kntr1", "ip link set kntr0 up", "ip link set kntr1 up", "ip addr add 192.168.0.2/24 dev kntr0",
                    "ip addr add 10.244.1.1/24 dev kntr0", "ip link set lo up"):
            subprocess.run(["ip", "netns", "exec", name, *cmd.split()], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_live_rules_walk_as_rendered(netns: str, mode: str) -> None:
    view = ClusterView.of(objects(DENY_INGRESS_B, ALLOW_A_TO_B, *web_service(
        type="NodePort", sessionAffinity="ClientIP", ports=[{"name": "p80", "port": 80, "protocol": "TCP",
                                                             "nodePort": 30080}])))
    opts = RenderOptions(node_name="node01", node_ip="192.168.0.2", cluster_cidr=CLUSTER_CIDR,
                         node_ips=("192.168.0.2", "127.0.0.1"), service_cidrs=(SERVICE_CIDR,))
    state = state_from_objects([{**o, "kind": "Service"} for o in view.services]
                               + [{**o, "kind": "EndpointSlice"} for o in view.slices], "node01")
    policy = compile_node("node01", view.policies, view.pods, view.namespaces)

    def run(*argv: str, stdin: str | None = None) -> str:
        p = subprocess.run(["ip", "netns", "exec", netns, *argv], input=stdin, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    if mode == "nftables":
        run("nft", "-f", "-", stdin=nftables.render(state, opts))
        run("nft", "-f", "-", stdin=netpol_render.render_nftables(policy))
    else:
        run("iptables-restore", stdin=iptables.merge_with_foreign({}, iptables.render(state, opts)))
        run("iptables-restore", "--noflush", stdin=netpol_render.render_iptables(policy))
        run("iptables", "-I", "FORWARD", "1", *shlex.split(netpol_render.jump_rule()))
    live = node_rules_from_dump("node01", mode, run("sh", "-c", READ_SCRIPT.format(rules=READ_RULES[mode])))
    assert {"192.168.0.2", "10.244.1.1"} <= live.local_ips
    rendered = RenderedDataplane(view, mode, CLUSTER_CIDR, (SERVICE_CIDR,)).node("node01")
    for packet in PACKETS:
        got = [through_node(dp.walker, packet, dp.local_ips) for dp in (live, rendered)]
        flows = [sorted((f.dnat, f.verdict, round(f.probability, 3), f.masquerade) for f in t.flows) for t in got]
        assert flows[0] == flows[1], packet
        assert not [s.note for f in got[0].flows for s in f.steps if "assumed" in s.note], packet
