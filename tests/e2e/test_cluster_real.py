"""A real 3-node cluster as an operator sees it from inside the nodes (`knet ssh`), and a
`knet down` that leaves the host as it found it."""

from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from knet.cluster.processes import proc_cmdline
from knet.cluster.testing import ClusterUnderTest

pytestmark = pytest.mark.e2e


def node_ips(cluster) -> dict[str, str]:
    return {n["name"]: n["ip"] for n in cluster.config["nodes"]}


@pytest.mark.parametrize("node", ["controlplane", "node01", "node02"])
def test_ssh_hostname_and_address(knet_cluster, node):
    assert knet_cluster.ssh(node, "hostname").stdout.strip() == node
    addrs = knet_cluster.ssh(node, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"inet {node_ips(knet_cluster)[node]}/24" in addrs


def test_node_ips_are_in_the_node_network_and_match_kubectl(knet_cluster):
    network = ipaddress.IPv4Network(knet_cluster.config["nodeNetwork"])
    out = knet_cluster.kubectl("get", "nodes", "-o",
                               "jsonpath={range .items[*]}{.metadata.name} {.status.addresses[0].address}"
                               "{'\\n'}{end}").stdout
    seen = dict(line.split() for line in out.strip().splitlines())
    assert seen == node_ips(knet_cluster)
    assert all(ipaddress.IPv4Address(ip) in network for ip in seen.values())


def test_ps_in_a_worker_shows_only_that_nodes_agents(knet_cluster):
    out = knet_cluster.ssh("node01", "ps", "-ef").stdout
    kubelet_lines = [line for line in out.splitlines() if " /usr/bin/kubelet " in line]
    # kubeadm's kubelet (its name is the node's hostname): node01's own, by the state dir it shows
    assert len(kubelet_lines) == 1 and "/nodes/node01 " in kubelet_lines[0] + " "
    proxy_lines = [line for line in out.splitlines() if "kube-proxy" in line and "--config=" in line]
    assert proxy_lines and "--hostname-override=node01" in proxy_lines[0]
    assert "--hostname-override=node02" not in out
    assert "apiserver" not in out


def test_ps_on_controlplane_shows_kubeadms_flags(knet_cluster):
    out = knet_cluster.ssh("controlplane", "ps", "-ef").stdout
    # the ranges knet up chose (the defaults 10.96.0.0/12 and 10.244.0.0/16 unless another cluster holds them)
    assert f"--service-cluster-ip-range={knet_cluster.config['serviceSubnet']}" in out
    assert f"--cluster-cidr={knet_cluster.config['podSubnet']}" in out
    assert "--allocate-node-cidrs=true" in out


def test_controlplane_resolves_inside_nodes(knet_cluster):
    out = knet_cluster.ssh("node01", "getent", "hosts", "controlplane").stdout
    assert out.split()[0] == node_ips(knet_cluster)["controlplane"]


def test_iptables_list_in_a_node_shows_kube_proxy_chains(knet_cluster):
    def listing():
        out = knet_cluster.ssh("node01", "iptables", "-t", "nat", "--list", "-n").stdout
        return "KUBE-SERVICES" in out and out

    out = knet_cluster.wait_for("kube-proxy's chains in node01", listing, timeout=20)
    assert "KUBE-POSTROUTING" in out


def _host_snapshot(cluster: str, state_dir) -> dict[str, set[str]]:
    """What the host holds of one cluster: namespaces and links by its name prefix, mounts by
    path (other engineers' clusters come and go on the same host meanwhile)."""
    from knet.net.names import link_prefix

    def lines(*argv: str) -> set[str]:
        return set(subprocess.run(argv, capture_output=True, text=True).stdout.splitlines())

    links = {line.split(":")[1].strip().split("@")[0] for line in lines("ip", "-o", "link", "show")}
    mounts = {line.split()[1] for line in lines("cat", "/proc/self/mounts")}
    netns = {line.split()[0] for line in lines("ip", "netns", "list") if line}
    return {
        "netns": {n for n in netns if n.startswith(f"knet-{cluster}-")},
        "links": {n for n in links if n.startswith(link_prefix(cluster))},
        "mounts": {m for m in mounts if m.startswith((str(state_dir), f"/run/netns/knet-{cluster}-"))},
    }


def _knet_processes(marker: str) -> list[list[str]]:
    """Every process whose command line names `marker` (read from /proc: ps may cut long lines)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = proc_cmdline(int(entry))
            if any(marker in a for a in argv):
                found.append(argv)
    return found


def test_up_then_down_leaves_no_trace(tmp_path):
    from knet.cluster.host import real_dataplane_problem

    if real_dataplane_problem():
        pytest.skip(real_dataplane_problem())
    cluster = ClusterUnderTest.up(nodes=2, dataplane="real", state_dir=tmp_path, proxy_mode="nftables")
    try:
        # --proxy-mode reaches kube-proxy: its table appears in the node
        cm = cluster.kubectl("get", "cm", "kube-proxy", "-n", "kube-system", "-o", "jsonpath={.data.config\\.conf}")
        assert "\nmode: nftables\n" in cm.stdout
        cluster.wait_for("kube-proxy's nftables table in node01", lambda: cluster.ssh(
            "node01", "nft", "list", "table", "ip", "kube-proxy").returncode == 0, timeout=20)
        during = _host_snapshot(cluster.name, tmp_path)
        assert during["netns"] == {f"knet-{cluster.name}-controlplane", f"knet-{cluster.name}-node01"}
        assert len(during["links"]) == 3, during  # the bridge and one veth per node
        running = _knet_processes(str(tmp_path))
        assert any(os.path.basename(argv[0]) == "etcd" for argv in running)  # the store, as kubeadm's
    finally:
        result = cluster.down()
    assert result.returncode == 0, result.stderr
    assert _host_snapshot(cluster.name, tmp_path) == {"netns": set(), "links": set(), "mounts": set()}
    assert _knet_processes(str(tmp_path)) == []
    assert not (tmp_path / cluster.name).exists()


def test_down_cleans_a_half_made_cluster(tmp_path):
    """`knet up` killed mid-way (machines made, agents starting): `knet down` still removes it all."""
    import signal
    import time

    from knet.cluster.bootstrap import knet_argv
    from knet.cluster.host import real_dataplane_problem

    if real_dataplane_problem():
        pytest.skip(real_dataplane_problem())
    name = f"half{os.getpid() % 10000}"
    env = {**os.environ, "KNET_STATE_DIR": str(tmp_path), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    up = subprocess.Popen([*knet_argv(), "up", "--name", name, "--dataplane", "real"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (tmp_path / name / "pids" / "kubelet-node01.pid").exists():
            time.sleep(0.02)
        assert (tmp_path / name / "pids" / "kubelet-node01.pid").exists(), "knet up never started the agents"
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert f"knet-{name}-node01" in _host_snapshot(name, tmp_path)["netns"]
    down = subprocess.run([*knet_argv(), "down", "--name", name], env=env, capture_output=True, text=True,
                          timeout=60)
    assert down.returncode == 0, down.stderr
    assert _host_snapshot(name, tmp_path) == {"netns": set(), "links": set(), "mounts": set()}
    assert _knet_processes(str(tmp_path)) == []
    assert not (tmp_path / name).exists()
