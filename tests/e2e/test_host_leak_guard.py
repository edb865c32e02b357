"""The leak guard on a host that forwards and masquerades (knet.net.hostroutes), in a sandbox.

The test's host has ip_forward=0, so it would forward nothing anyway. Here a private namespace
plays a host that forwards and NATs everything out of its uplink (as Docker hosts do), with a
cluster bridge and a node behind it, and an "outside" namespace at the far end of the uplink:

  node  (eth0 192.168.77.2/24, default via .1)  ── bridge kgbr (192.168.77.1/24) ── host
  host  (ip_forward=1, uplink 198.18.0.1/24, default via 198.18.0.2, MASQUERADE -o uplink)
  outside (198.18.0.2/24, 203.0.113.9/32 on lo: "the internet")

Without the guard the node reaches 203.0.113.9 (the control); with it the node's packets stop at
the host, which answers "unreachable"; after remove_host_side they flow again. All traffic stays
in these namespaces.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from knet.net import hostroutes

pytestmark = pytest.mark.e2e


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {result.stderr}")
    return result


@pytest.fixture
def sandbox():
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
        sh("ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", host, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "uplink", "-j", "MASQUERADE")
        yield host, node, outside
    finally:
        for ns in (node, outside, host):
            sh("ip", "netns", "del", ns, check=False)


def in_ns(ns: str):
    def run(argv, stdin=None):
        return hostroutes.run_command(["ip", "netns", "exec", ns, *argv], stdin)

    return run


def node_reaches_outside(node: str) -> bool:
    return sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "203.0.113.9", check=False).returncode == 0


def test_guard_stops_a_forwarding_masquerading_host_from_passing_cluster_traffic_on(sandbox):
    host, node, _ = sandbox
    assert node_reaches_outside(node), "the sandbox host does not forward: the control failed"
    hostroutes.install_leak_guard("kgbr", run=in_ns(host))
    assert not node_reaches_outside(node)
    ping = sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "203.0.113.9", check=False)
    assert "Unreachable" in ping.stdout  # told at once, not left to time out
    # the host itself still reaches out, and the node still reaches the host
    assert sh("ip", "netns", "exec", host, "ping", "-c1", "-W1", "203.0.113.9", check=False).returncode == 0
    assert sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "192.168.77.1", check=False).returncode == 0
    assert sh("ip", "netns", "exec", node, "ping", "-c1", "-W1", "198.18.0.1", check=False).returncode == 0
    assert hostroutes.remove_host_side("kgbr", run=in_ns(host)) == ["rule iif kgbr"]
    assert node_reaches_outside(node)
