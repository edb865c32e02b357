"""The network add-on's CNI agent on `knet up` (the session `knet_cluster`, 3 real nodes), as a
kubeadm user sees weave-net's or kindnet's: the `knet-net` DaemonSet's pods run 2/2 containers on
every node, `ps -ef | grep alloc` on a node shows the pod range, the node's CNI config dir holds
the conflist the agent wrote for the node's podCIDR, `kubectl logs -c cni` says what it wrote,
each node routes the other nodes' podCIDRs via their addresses, and deleting the add-on pod on a
node changes nothing: the config and the routes stay, pods keep talking across nodes, and the new
pod takes over. (Pods waiting for a missing config: tests/e2e/test_dataplane_pods.py.)
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

CONFLIST = "10-knet.conflist"


def _nodes(c) -> dict[str, dict]:
    return {n["metadata"]["name"]: n for n in json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]}


def _internal_ip(node: dict) -> str:
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def _addon_pods(c) -> dict[str, dict]:
    pods = json.loads(c.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=knet-net", "-o", "json").stdout)
    return {p["spec"].get("nodeName", ""): p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")}


def _pod_range(c) -> str:
    cm = json.loads(c.kubectl("get", "cm", "kubeadm-config", "-n", "kube-system", "-o", "json").stdout)
    return yaml.safe_load(cm["data"]["ClusterConfiguration"])["networking"]["podSubnet"]


def _conf_dir(c, node: str) -> str:
    """The node's CNI config dir as the node and the add-on see it (kubeadm's /etc/cni/net.d): the
    node shows its kubelet's --cni-conf-dir there (_state_conf_dir, knet.cluster.nodefs)."""
    return "/etc/cni/net.d"


def _state_conf_dir(c, node: str) -> Path:
    return c.state_dir / c.name / "nodes" / node / "cni" / "net.d"


def test_every_node_runs_the_addon_with_its_cni_agent(knet_cluster):
    c = knet_cluster
    names = set(_nodes(c))
    ds = json.loads(c.kubectl("get", "ds", "knet-net", "-n", "kube-system", "-o", "json").stdout)
    assert [x["name"] for x in ds["spec"]["template"]["spec"]["containers"]] == ["cni", "netpol"]
    c.wait_for("knet-net Ready on every node", lambda: json.loads(c.kubectl(
        "get", "ds", "knet-net", "-n", "kube-system", "-o", "json").stdout)["status"].get("numberReady") == len(names),
        timeout=60, interval=0.5)
    wide = c.kubectl("get", "ds", "-n", "kube-system", "knet-net", "-o", "wide").stdout
    assert re.search(rf"knet-net\s+{len(names)}\s+{len(names)}\s+{len(names)}\s", wide) and "cni,netpol" in wide, wide
    rows = [line.split() for line in c.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=knet-net",
                                               "-o", "wide", "--no-headers").stdout.splitlines()]
    assert {r[6] for r in rows} == names and all(r[1] == "2/2" and r[2] == "Running" for r in rows), rows


def test_ps_on_a_node_shows_the_pod_range(knet_cluster):
    # The reference transcript's `ps -ef | grep alloc`, answering "what is the pod range".
    out = knet_cluster.ssh("node01", "ps", "-ef").stdout
    lines = [line for line in out.splitlines() if "alloc" in line and "cni-agent" in line]
    assert len(lines) == 1, out
    assert f"--ipalloc-range={_pod_range(knet_cluster)}" in lines[0].split()
    assert "--hostname-override=node01" in lines[0].split()


def test_each_node_has_the_conflist_for_its_pod_cidr_and_routes_to_the_others(knet_cluster):
    c = knet_cluster
    nodes = _nodes(c)
    pods = _addon_pods(c)
    for name, node in nodes.items():
        cidr = node["spec"]["podCIDR"]
        ls = c.ssh(name, "ls", _conf_dir(c, name))
        assert ls.stdout.split() == [CONFLIST], ls.stdout + ls.stderr
        conf = json.loads(c.ssh(name, "cat", f"{_conf_dir(c, name)}/{CONFLIST}").stdout)
        assert json.loads((_state_conf_dir(c, name) / CONFLIST).read_text()) == conf  # what the kubelet reads
        assert conf["plugins"][0]["type"] == "bridge"
        assert conf["plugins"][0]["ipam"]["ranges"] == [[{"subnet": cidr}]]
        log = c.kubectl("logs", "-n", "kube-system", pods[name]["metadata"]["name"], "-c", "cni").stdout
        assert re.search(rf"(wrote CNI config|CNI config) {re.escape(_conf_dir(c, name))}/{CONFLIST}.*podCIDR {cidr}",
                         log), log
        routes = c.ssh(name, "ip", "-4", "route", "show").stdout
        for other, other_node in nodes.items():
            if other != name:
                want = f"{other_node['spec']['podCIDR']} via {_internal_ip(other_node)} dev eth0"
                assert want in routes, f"{name}: {routes}"
                assert f"route {other_node['spec']['podCIDR']} via {_internal_ip(other_node)} (node {other})" in log


def test_logs_of_the_daemonset_name_the_container(knet_cluster):
    out = knet_cluster.kubectl("logs", "-n", "kube-system", "ds/knet-net", "-c", "cni").stdout
    assert "knet CNI agent on node" in out and f"pod range {_pod_range(knet_cluster)} (--ipalloc-range)" in out


SERVER = """
apiVersion: v1
kind: Pod
metadata: {{name: cni-srv, namespace: {ns}}}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080"]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
"""


def test_deleting_the_addon_pod_keeps_the_network_and_the_new_pod_takes_over(knet_cluster):
    c = knet_cluster
    ns = f"cni-{int(time.time())}"
    c.kubectl("create", "namespace", ns)
    try:
        c.kubectl("apply", "-f", "-", input=SERVER.format(ns=ns))
        ip = c.wait_for("pod cni-srv Running with an IP", lambda: (lambda p: p["status"].get("podIP") if all(
            s.get("ready") for s in p["status"].get("containerStatuses") or [{}]) else None)(json.loads(c.kubectl(
                "get", "pod", "cni-srv", "-n", ns, "-o", "json").stdout)), timeout=60)

        def answer() -> str:  # from another node, across the host-gw route to node01's podCIDR
            return c.ssh("node02", "curl", "-s", "--max-time", "2", f"http://{ip}:8080/hostname", timeout=10).stdout

        assert answer() == "cni-srv"
        conflist = f"{_conf_dir(c, 'node01')}/{CONFLIST}"
        before = c.ssh("node01", "stat", "-c", "%i %Y", conflist).stdout
        routes_before = c.ssh("node01", "ip", "-4", "route", "show").stdout
        old = _addon_pods(c)["node01"]["metadata"]["name"]
        c.kubectl("delete", "pod", "-n", "kube-system", old, "--wait=false")
        end = time.monotonic() + 6
        while time.monotonic() < end:  # while the add-on pod goes and comes back, traffic flows
            assert answer() == "cni-srv", "cross-node traffic cut while the add-on pod restarted"
        # Its containers stop on SIGTERM (as PID 1 of their PID namespace they must handle it),
        # well before the 30 s grace period would end in SIGKILL.
        c.kubectl("wait", "--for=delete", f"pod/{old}", "-n", "kube-system", "--timeout=20s")
        new = c.wait_for("a new knet-net pod Ready on node01", lambda: (lambda p: p if p and p["metadata"]["name"] != old
                         and all(s.get("ready") for s in p["status"].get("containerStatuses") or [{"ready": False}])
                         else None)(_addon_pods(c).get("node01")), timeout=60, interval=0.5)
        log = c.wait_for("the new agent's take-over in its log", lambda: (lambda out: out if "is current" in out
                         else None)(c.kubectl("logs", "-n", "kube-system", new["metadata"]["name"], "-c", "cni",
                                              check=False).stdout), timeout=30, interval=0.5)
        assert "wrote CNI config" not in log and " added" not in log, log  # nothing to redo
        assert c.ssh("node01", "stat", "-c", "%i %Y", conflist).stdout == before  # not rewritten
        assert c.ssh("node01", "ip", "-4", "route", "show").stdout == routes_before
        assert answer() == "cni-srv"
    finally:
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_addon_account_reads_nodes_and_may_not_change_them(knet_cluster):
    # As an attacker holding the add-on pod's token: it reads Nodes (podCIDRs, addresses) and no more.
    sa = "system:serviceaccount:kube-system:knet-net"

    def can(*args: str) -> str:
        return knet_cluster.kubectl("auth", "can-i", *args, f"--as={sa}", check=False).stdout.strip()

    assert [can("list", "nodes"), can("watch", "nodes"), can("get", "nodes")] == ["yes"] * 3
    assert [can("patch", "nodes"), can("delete", "nodes"), can("update", "nodes/status"),
            can("create", "pods", "-n", "kube-system"), can("get", "secrets", "-n", "kube-system")] == ["no"] * 5
