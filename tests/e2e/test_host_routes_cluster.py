"""The host reaches the cluster, and nothing leaks (issue #15 item 4).

The host routes the pod and Service ranges to the controlplane node on the cluster bridge:
`curl <ClusterIP>` and `curl`/`ping <podIP>` work from the host's shell as on a kubeadm
controlplane. Nodes have a default route to the host, which forwards nothing from the bridge.
No test sends anything to an address outside the cluster: the leak probe sends to unassigned
addresses inside the cluster's ranges (routed into the cluster) and watches the host's
default-route interface, with the cluster bridge watched alongside to prove the packets went.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time

import pytest

from knet.cluster.testing import ClusterUnderTest
from knet.net.names import ClusterNetwork

from .cluster_namespaces import cluster_namespace
from .packet_probe import PacketWatch, default_route_interfaces

pytestmark = pytest.mark.e2e


def run(*argv: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def bridge_of(cluster) -> str:
    return ClusterNetwork(cluster.name).bridge


def control_plane_ip(cluster) -> str:
    return next(n["ip"] for n in cluster.config["nodes"] if n["role"] == "control-plane")


def route_get(*args: str) -> dict:
    result = run("ip", "-j", "route", "get", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def curl(url: str, timeout: float = 3) -> subprocess.CompletedProcess[str]:
    return run("curl", "-sS", "-k", "--max-time", str(timeout), url, timeout=timeout + 5)


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: NS}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


def test_host_reaches_a_service_and_every_pod(knet_cluster):
    cluster = knet_cluster
    with cluster_namespace(cluster, "hostroute") as ns:
        cluster.kubectl("apply", "-f", "-", input=WEB.replace("NS", ns))

        def pods():
            out = cluster.kubectl("get", "pods", "-n", ns, "-l", "app=web", "-o", "json").stdout
            items = json.loads(out)["items"]
            ready = [p for p in items if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in p["status"].get("conditions", []))]
            return len(ready) == 3 and {p["metadata"]["name"]: (p["status"]["podIP"], p["spec"]["nodeName"])
                                        for p in ready}

        by_name = cluster.wait_for("3 Ready web pods", pods, timeout=90, interval=0.3)
        # some pod runs off the controlplane: the host's packets to it cross two nodes
        assert {node for _, node in by_name.values()} - {"controlplane"}
        cluster_ip = cluster.kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
        assert ipaddress.IPv4Address(cluster_ip) in ipaddress.IPv4Network(cluster.config["serviceSubnet"])

        # the host's route to the ClusterIP goes to the controlplane on the cluster bridge
        route = route_get(cluster_ip)
        assert (route["dev"], route.get("gateway")) == (bridge_of(cluster), control_plane_ip(cluster))

        # curl <ClusterIP> from the host: the controlplane's kube-proxy spreads it over the pods
        def answered():
            seen = set()
            for _ in range(12):
                result = curl(f"http://{cluster_ip}/hostname")
                assert result.returncode == 0, result.stderr
                seen.add(result.stdout.strip())
            return seen == set(by_name) and seen

        cluster.wait_for("curl <ClusterIP> from the host to reach every pod", answered, timeout=30)
        # ...and the apiserver behind the kubernetes Service (anonymous /healthz, as kubeadm allows)
        assert curl(f"https://{ipaddress.IPv4Network(cluster.config['serviceSubnet'])[1]}/healthz").stdout == "ok"

        # ping and curl every pod IP, on the controlplane and on the workers
        for name, (pod_ip, node) in by_name.items():
            assert run("ping", "-c1", "-W2", pod_ip).returncode == 0, f"ping {pod_ip} ({node})"
            result = curl(f"http://{pod_ip}/hostname")
            assert (result.returncode, result.stdout.strip()) == (0, name), f"curl {pod_ip} on {node}: {result.stderr}"


def test_no_packet_to_a_cluster_address_leaves_the_machine(knet_cluster):
    cluster = knet_cluster
    bridge, cp = bridge_of(cluster), control_plane_ip(cluster)
    pods = ipaddress.IPv4Network(cluster.config["podSubnet"])
    services = ipaddress.IPv4Network(cluster.config["serviceSubnet"])
    host_ip = str(ipaddress.IPv4Network(cluster.config["nodeNetwork"])[1])
    # Addresses nothing owns: the last of each range (podCIDRs are handed out from the start).
    no_pod, no_service = str(pods[-2]), str(services[-2])
    taken = cluster.kubectl("get", "svc", "-A", "-o", "jsonpath={.items[*].spec.clusterIP}").stdout.split()
    assert no_service not in taken

    # The host's routes: both ranges into the cluster; never the default route.
    for address in (no_pod, no_service):
        route = route_get(address)
        assert (route["dev"], route.get("gateway")) == (bridge, cp), route
    # Every node's default route is the host, which forwards nothing from the bridge: its guard
    # rule refuses them (a lookup, nothing sent; 198.51.100.1 is TEST-NET-2).
    for node in cluster.config["nodes"]:
        routes = cluster.ssh(node["name"], "ip", "-j", "route", "show", "default").stdout
        assert [(r["gateway"], r["dev"]) for r in json.loads(routes)] == [(host_ip, "eth0")]
        assert run("ip", "route", "get", "198.51.100.1", "from", node["ip"], "iif", bridge).returncode != 0
    # the host's nameservers are unreachable inside the nodes: a node's resolver fails at once
    # (no packet), not after waiting on the host's rate-limited refusals
    from knet.net.hostroutes import nameserver_addresses, node_nameserver_routes

    with open("/etc/resolv.conf") as f:
        expected = node_nameserver_routes(nameserver_addresses(f.read()), cluster.config["nodeNetwork"])
    unreachable = cluster.ssh("node01", "ip", "route", "show", "type", "unreachable").stdout.split("\n")
    assert sorted(f"route replace unreachable {line.split()[1]}/32" for line in unreachable if line.strip()) \
        == sorted(expected)
    rules = json.loads(run("ip", "-j", "rule", "show").stdout)
    assert {"priority": 100, "src": "all", "iif": bridge, "action": "prohibit"} in rules

    uplinks = default_route_interfaces()
    assert uplinks, "the host has no default route to watch"
    watched = [pods, services]
    watches = [PacketWatch(dev, watched) for dev in uplinks]
    with PacketWatch(bridge, watched) as on_bridge:
        for w in watches:
            w.__enter__()
        try:
            run("ping", "-c2", "-i0.2", "-W1", no_pod)
            run("ping", "-c2", "-i0.2", "-W1", no_service)
            curl(f"http://{no_service}/", timeout=1)
            # from a worker, whose default route is the host: to pods nowhere, to Services nobody
            # has. The host refuses at once what it would route on (ICMP "packet filtered"), so a
            # node is not left waiting (its resolver, say).
            refused = cluster.ssh("node01", "ping", "-c2", "-i0.2", "-W1", no_pod)
            cluster.ssh("node01", "sh", "-c", f"curl -s --max-time 1 http://{no_service}/ || true")
            time.sleep(0.3)
        finally:
            for w in watches:
                w.__exit__(None, None, None)
    assert {no_pod, no_service} <= set(on_bridge.seen)  # the probe saw the packets go into the cluster
    assert f"From {host_ip} icmp_seq=1 Packet filtered" in refused.stdout, refused.stdout
    for w in watches:
        assert w.seen == [], f"packets to cluster addresses left by {w.ifname}: {w.seen}"


def _rules_and_routes() -> tuple[list[str], list[str]]:
    return (run("ip", "rule", "show").stdout.splitlines(),
            run("ip", "route", "show", "table", "all").stdout.splitlines())


def _processes_naming(marker: str) -> list[int]:
    from knet.cluster.processes import proc_cmdline

    return [int(e) for e in os.listdir("/proc") if e.isdigit() and any(marker in a for a in proc_cmdline(int(e)))]


def test_a_second_cluster_gets_free_ranges_and_down_after_kill_9_removes_its_routes(knet_cluster, tmp_path):
    first = knet_cluster
    rules_before, routes_before = _rules_and_routes()
    second = ClusterUnderTest.up(nodes=2, dataplane="real", state_dir=tmp_path)
    try:
        ranges = [ipaddress.IPv4Network(c.config[k]) for c in (first, second)
                  for k in ("nodeNetwork", "podSubnet", "serviceSubnet")]
        assert not any(a.overlaps(b) for i, a in enumerate(ranges) for b in ranges[i + 1:]), ranges
        # the defaults were taken by the first cluster: the second says what it took instead
        if first.config["podSubnet"] == "10.244.0.0/16":
            assert f"podSubnet 10.244.0.0/16 overlaps 10.244.0.0/16, a route on this host " \
                   f"(10.244.0.0/16 dev {bridge_of(first)}): using {second.config['podSubnet']}" in second.up_output
        if first.config["serviceSubnet"] == "10.96.0.0/12":
            assert f"using {second.config['serviceSubnet']}" in second.up_output
        # both are reachable from the host at once
        for c in (first, second):
            kubernetes_ip = ipaddress.IPv4Network(c.config["serviceSubnet"])[1]
            assert curl(f"https://{kubernetes_ip}/healthz").stdout == "ok", c.name
            dns_ips = c.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o",
                                "jsonpath={.items[*].status.podIP}").stdout.split()
            assert dns_ips and all(ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(c.config["podSubnet"])
                                   for ip in dns_ips)
            assert run("ping", "-c1", "-W2", dns_ips[0]).returncode == 0, (c.name, dns_ips[0])
        # ...and neither reaches the other: a node's packets to the other cluster's pods, Services
        # or nodes stop at the host (its bridge's guard rule: "Packet filtered"), both ways
        for here, there in ((second, first), (first, second)):
            their_pod = there.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o",
                                      "jsonpath={.items[0].status.podIP}").stdout
            their_node = next(n["ip"] for n in there.config["nodes"] if n["name"] == "node01")
            for address in (their_pod, their_node):
                ping = here.ssh("node01", "ping", "-c1", "-W2", address)
                assert ping.returncode != 0 and "Packet filtered" in ping.stdout, (here.name, address, ping.stdout)
            their_api = ipaddress.IPv4Network(there.config["serviceSubnet"])[1]
            reached = here.ssh("node01", "curl", "-sS", "-k", "--max-time", "3", f"https://{their_api}/healthz")
            assert reached.returncode != 0 and reached.stdout != "ok", (here.name, reached)
        bridge = bridge_of(second)
        rules_during, routes_during = _rules_and_routes()
        assert [r for r in rules_during if f"iif {bridge}" in r] == [f"100:\tfrom all iif {bridge} prohibit"]
        assert {f"{second.config[k]} via {control_plane_ip(second)} dev {bridge}" for k in ("podSubnet", "serviceSubnet")} \
            <= {r.strip() for r in routes_during}
        # kill -9 every process of the second cluster: nothing of it runs, its host side remains
        pids = _processes_naming(str(tmp_path))
        assert pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        result = second.down()
    assert result.returncode == 0, result.stderr
    rules_after, routes_after = _rules_and_routes()
    assert rules_after == rules_before
    assert [r for r in routes_after if bridge in r or second.config["podSubnet"] in r
            or second.config["serviceSubnet"] in r] == []
    assert "removed host routes and rules" in result.stdout
    # Also after kill -9: the nodes' namespaces and the bridge, said by name.
    assert f"removed network namespaces knet-{second.name}-controlplane, knet-{second.name}-node01 and links " \
        in result.stdout and bridge in result.stdout


@pytest.mark.parametrize("field", ["podSubnet", "serviceSubnet", "nodeNetwork"])
def test_a_range_set_in_the_config_that_overlaps_is_refused(knet_cluster, tmp_path, field):
    from knet.cluster.bootstrap import knet_argv

    taken = knet_cluster.config[field]
    config = tmp_path / "cluster.yaml"
    config.write_text(f"kind: Cluster\napiVersion: knet.io/v1alpha1\n{field}: {taken}\n")
    name = f"ovl{os.getpid() % 10000}"
    env = {**os.environ, "KNET_STATE_DIR": str(tmp_path / "state"), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    rules_before, routes_before = _rules_and_routes()
    result = subprocess.run([*knet_argv(), "up", "--name", name, "--dataplane", "real", "--config", str(config)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert f"{field} {taken} overlaps {taken}, a route on this host" in result.stderr
    assert "set another" in result.stderr
    # refused before anything was made
    assert not (tmp_path / "state" / name).exists()
    assert ClusterNetwork(name).bridge not in run("ip", "-o", "link", "show").stdout
    assert _rules_and_routes() == (rules_before, routes_before)


def test_a_pod_range_over_the_hosts_own_network_is_refused(knet_cluster, tmp_path):
    """An attacker's (or a careless) config must not hijack the host's LAN with a more specific route."""
    from knet.cluster.bootstrap import knet_argv

    lan = [r["dst"] for r in json.loads(run("ip", "-j", "-4", "route", "show", "proto", "kernel").stdout)
           if not r["dev"].startswith("kn") and r.get("dst") and "/" in r["dst"]]
    assert lan, "no directly connected network on the host"
    inside = ipaddress.IPv4Network(lan[0]).network_address
    config = tmp_path / "cluster.yaml"
    config.write_text(f"kind: Cluster\napiVersion: knet.io/v1alpha1\npodSubnet: {inside}/30\nnodeCIDRMaskSize: 30\nnodes: 1\n")
    env = {**os.environ, "KNET_STATE_DIR": str(tmp_path / "state"), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    result = subprocess.run([*knet_argv(), "up", "--name", "lanjack", "--dataplane", "real", "--config", str(config)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "podSubnet" in result.stderr and "overlaps" in result.stderr, result
    assert str(inside) not in run("ip", "route", "show", "dev", ClusterNetwork("lanjack").bridge).stdout
