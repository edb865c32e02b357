"""Node machines on their own: namespaces, hostname, PID namespace, addresses, idempotence, and
teardown that finds everything again (also after a crash) without touching other clusters.

Address plan: two free /24s of 172.30.64.0/18 (clusters A and A-b), from dataplane_netplan."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import pytest

from knet.net.machines import (
    cluster_network,
    create_node_machine,
    load_machine,
    node_exec_argv,
    teardown_cluster_network,
)
from knet.net.names import link_prefix

from .node_networks import free_node_networks

pytestmark = pytest.mark.e2e


@pytest.fixture
def names(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    monkeypatch.setenv("KNET_STATE_DIR", str(tmp_path))
    a = "m" + uuid.uuid4().hex[:5]
    yield a, a + "-b"
    for cluster in (a + "-b", a):
        teardown_cluster_network(cluster)


def _run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def _netns():
    return _run(["ip", "netns", "list"]).stdout


def test_node_machine_is_a_small_linux_host(names):
    cluster, _ = names
    net = cluster_network(cluster, free_node_networks(1)[0])
    prefix = net.node_ip(0).rsplit(".", 1)[0]
    hosts = {"controlplane": net.node_ip(0), "node01": net.node_ip(1)}
    cp = create_node_machine(net, "controlplane", net.node_ip(0), hosts=hosts)
    create_node_machine(net, "node01", net.node_ip(1), hosts=hosts)
    assert create_node_machine(net, "node01", net.node_ip(1), hosts=hosts) == load_machine(cluster, "node01")
    out = _run(node_exec_argv(cluster, "node01") + ["sh", "-c", "hostname; ps -e -o pid= | wc -l; "
                                                    "ip -o -4 addr show dev eth0; ip route; "
                                                    "cat /proc/sys/net/ipv4/ip_forward; getent hosts controlplane; "
                                                    "ping -c1 -W1 controlplane >/dev/null && echo reach"]).stdout
    lines = out.splitlines()
    assert lines[0] == "node01"
    assert int(lines[1]) <= 5  # its own PID namespace: init, sh and the tools it runs
    assert f"inet {prefix}.3/24" in lines[2]
    # the default route leads to the host, which forwards nothing from the bridge (its guard rule)
    assert f"default via {prefix}.1 dev eth0" in [line.strip() for line in lines]
    rules = _run(["ip", "rule", "show"]).stdout
    assert f"from all iif {net.bridge} prohibit" in rules
    assert "10.96.0.0/12 dev eth0 scope link" in out
    assert "1" in lines and [f"{prefix}.2", "controlplane"] in [line.split() for line in lines]
    assert lines[-1] == "reach"
    assert _run(["ip", "netns", "exec", cp.netns, "hostname", "-I"]).stdout.split() == [f"{prefix}.2"]
    # the host reaches the nodes on the bridge, which carries the host's address
    assert _run(["ping", "-c1", "-W1", net.node_ip(1)]).returncode == 0


def test_teardown_after_a_crash_and_beside_a_prefix_sharing_cluster(names):
    a, b = names
    cidr_a, cidr_b = free_node_networks(2)
    net_a, net_b = cluster_network(a, cidr_a), cluster_network(b, cidr_b)
    machine = create_node_machine(net_a, "n1", net_a.node_ip(0))
    create_node_machine(net_b, "n1", net_b.node_ip(0))
    # a crash: the node's init dies and its records vanish; only names on the host remain
    os.kill(machine.init_pid, signal.SIGKILL)
    os.remove(os.path.join(os.environ["KNET_STATE_DIR"], a, "nodes", "n1", "machine.json"))
    teardown_cluster_network(a)
    left = _netns()
    assert f"knet-{a}-n1" not in left.split()
    assert f"knet-{b}-n1" in left  # the other cluster, whose name extends ours, is untouched
    links = _run(["ip", "-o", "link", "show"]).stdout
    assert link_prefix(a) not in links and link_prefix(b) in links
    rules = _run(["ip", "rule", "show"]).stdout
    assert f"iif {net_a.bridge} " not in rules and f"iif {net_b.bridge} " in rules  # the guard goes with its cluster
    teardown_cluster_network(b)
    assert f"knet-{b}-n1" not in _netns() and link_prefix(b) not in _run(["ip", "-o", "link", "show"]).stdout
    assert f"iif {net_b.bridge} " not in _run(["ip", "rule", "show"]).stdout
