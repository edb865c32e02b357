"""The leak guard on a host that forwards and masquerades (knet.net.hostroutes), in a sandbox.

A private namespace plays a host that forwards and NATs everything out of its uplink (as Docker
hosts do) or one that does not forward (ip_forward=0), with a cluster bridge and a node behind
it, and an "outside" namespace at the far end of the uplink:

  node  (eth0 192.168.77.2/24, default via .1)  ── bridge kgbr (192.168.77.1/24) ── host
  host  (ip_forward=1|0, uplink 198.18.0.1/24, default via 198.18.0.2, MASQUERADE -o uplink)
  outside (198.18.0.2/24, 203.0.113.9/32 on lo: "the internet")

On the forwarding host the node reaches 203.0.113.9 without the guard (the control); with it the
node's packets stop at the host, which refuses them at once on both hosts (the guard
turns forwarding on for the bridge alone, so that the refusal is told); remove_host_side turns
it off before it deletes the rule. All traffic stays in these namespaces.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from knet.net import hostroutes

pytestmark = pytest.mark.e2e


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {result.stderr}")
    return result


@pytest.fixture(params=[1, 0], ids=["host-forwards", "host-does-not-forward"])
def sandbox(request):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:4]
    host, node, outside = f"kg-host-{tag}", f"kg-node-{tag}", f"kg-out-{tag}"
    for ns in (host, node, outside):
        sh("ip", "netns", "add", ns)
    try:
        batch = f"""
link add kgbr netns {host} type bridge
link add kgn0 netns {host} type veth peer name eth0 netns {node}
link add uplink netns {host} type veth peer name eth0 netns {outside}
"""
        sh("ip", "-batch", "-", stdin=batch)
        sh("ip", "-n", host, "-batch", "-", stdin="""
link set lo up
link set kgbr up
addr add 192.168.77.1/24 dev kgbr
link set kgn0 master kgbr up
link set uplink up
addr add 198.18.0.1/24 dev uplink
route add default via 198.18.0.2
""")
        sh("ip", "-n", node, "-batch", "-", stdin="""
link set lo up
link set eth0 up
addr add 192.168.77.2/24 dev eth0
route add default via 192.168.77.1
""")
        sh("ip", "-n", outside, "-batch", "-", stdin="""
link set lo up
addr add 203.0.113.9/32 dev lo
link set eth0 up
addr add 198.18.0.2/24 dev eth0
""")
        sh("ip", "netns", "exec", host, "sysctl", "-qw", f"net.ipv4.ip_forward={request.param}")
        sh("ip", "netns", "exec", host, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "uplink", "-j", "MASQUERADE")
        yield host, node, request.param
    finally:
        for ns in (node, outside, host):
            sh("ip", "netns", "del", ns, check=False)


def in_ns(ns: str):
    def run(argv, stdin=None):
        return hostroutes.run_command(["ip", "netns", "exec", ns, *argv], stdin)

    return run


def node_reaches_outside(node: str) -> bool:
    return sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "203.0.113.9", check=False).returncode == 0


def test_guard_stops_the_host_from_passing_cluster_traffic_on(sandbox):
    host, node, forwarding = sandbox
    assert node_reaches_outside(node) == bool(forwarding), "the control failed"
    hostroutes.install_leak_guard("kgbr", run=in_ns(host))
    started = time.monotonic()
    ping = sh("ip", "netns", "exec", node, "ping", "-c1", "-W5", "203.0.113.9", check=False)
    # refused, and told at once (the kernel rate-limits such ICMP: this is the first one)
    assert ping.returncode != 0 and "Packet filtered" in ping.stdout and time.monotonic() - started < 2, ping
    assert not node_reaches_outside(node)
    # the host itself still reaches out, and the node still reaches the host
    assert sh("ip", "netns", "exec", host, "ping", "-c1", "-W1", "203.0.113.9", check=False).returncode == 0
    assert sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "192.168.77.1", check=False).returncode == 0
    assert sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "198.18.0.1", check=False).returncode == 0
    # removal never opens a window: forwarding on the bridge goes off before the rule goes
    assert hostroutes.remove_host_side("kgbr", run=in_ns(host)) == ["rule iif kgbr"]
    assert sh("ip", "netns", "exec", host, "sysctl", "-n", "net.ipv4.conf.kgbr.forwarding").stdout.strip() == "0"
    assert not node_reaches_outside(node)
