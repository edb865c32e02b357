"""`knet up --dataplane sim`: what an operator sees with the real kubectl on a kubeadm cluster
(/work/shared/reference/kubeadm-service-networking-lab.txt), on a 2-node simulated cluster.

Address plan: node network = the /24 `knet up` picked (controlplane .2, node01 .3), pods
10.244.0.0/16, services 10.96.0.0/12 (kubernetes 10.96.0.1, kube-dns 10.96.0.10).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess

import pytest
import yaml

from knet.cluster.processes import component_of, proc_cmdline
from knet.cluster.testing import ClusterUnderTest

pytestmark = [
    pytest.mark.api,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the real kubectl"),
]


@pytest.fixture(scope="module")
def sim_cluster():
    cluster = ClusterUnderTest.up(nodes=2, dataplane="sim")
    try:
        yield cluster
    finally:
        cluster.down()


def rows(output: str) -> list[list[str]]:
    """kubectl table rows (header dropped), split on runs of spaces."""
    return [line.split() for line in output.strip().splitlines()[1:]]


def test_up_printed_each_step_and_how_to_use_it(sim_cluster):
    out = sim_cluster.up_output
    steps = ["Writing configuration", "Starting control-plane", "Installing CNI", "Nodes Ready",
             "kube-proxy ready", "CoreDNS ready"]
    positions = [out.index(f"✓ {s}") for s in steps]
    assert positions == sorted(positions)
    assert "✓ Installing CNI (knet-net ready on 2/2 nodes)" in out  # the network add-on, on every node
    assert f"kubectl cluster-info --context knet-{sim_cluster.name}" in out


def test_kubeconfig_context_is_merged_and_current(sim_cluster):
    kc = yaml.safe_load(sim_cluster.kubeconfig.read_text())
    assert kc["current-context"] == f"knet-{sim_cluster.name}"
    for section in ("clusters", "users", "contexts"):
        assert [e["name"] for e in kc[section]] == [f"knet-{sim_cluster.name}"]
    # plain kubectl (no --context) talks to the new cluster
    result = subprocess.run(["kubectl", "get", "ns", "kube-system", "-o", "name"], env=sim_cluster.env,
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "namespace/kube-system"


def test_get_nodes_wide(sim_cluster):
    out = sim_cluster.kubectl("get", "nodes", "-o", "wide").stdout
    header = out.splitlines()[0].split()
    assert header[:7] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP"]
    network = ipaddress.IPv4Network(sim_cluster.config["nodeNetwork"])
    table = {r[0]: r for r in rows(out)}
    assert sorted(table) == ["controlplane", "node01"]
    assert table["controlplane"][1:3] == ["Ready", "control-plane"]
    assert table["node01"][1:3] == ["Ready", "<none>"]
    for row in table.values():
        assert row[4] == "v1.29.0"
        assert ipaddress.IPv4Address(row[5]) in network
        assert row[6] == "<none>"
    assert table["controlplane"][5] == str(network[2])


def test_get_pods_all_namespaces(sim_cluster):
    # `knet up` returns once the cluster is usable; the ingress controller add-on may still be starting
    def all_running() -> str | None:
        out = sim_cluster.kubectl("get", "pods", "-A").stdout
        return out if all(r[3] == "Running" for r in rows(out)) else None

    out = sim_cluster.wait_for("every pod Running", all_running, timeout=60, interval=0.5)
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    table = rows(out)
    # kubeadm's kube-system, and the ingress controller add-on as ingress-nginx's manifest installs it
    assert [r[1].rsplit("-", 2)[0] for r in table if r[0] == "ingress-nginx"] == ["ingress-nginx-controller"], out
    table = [r for r in table if r[0] != "ingress-nginx"]
    assert all(r[0] == "kube-system" for r in table), out
    # the network add-on's pods run two containers (cni, netpol), as weave-net's do
    assert all(r[2] == ("2/2" if r[1].startswith("knet-net-") else "1/1") and r[3] == "Running" for r in table), out
    names = [r[1] for r in table]
    for static in ("kube-apiserver-controlplane", "kube-controller-manager-controlplane",
                   "kube-scheduler-controlplane"):
        assert static in names
    assert sum(n.startswith("coredns-") for n in names) == 2
    assert sum(n.startswith("kube-proxy-") for n in names) == 2
    assert sum(n.startswith("knet-net-") for n in names) == 2


def test_one_kube_proxy_pod_per_node(sim_cluster):
    out = sim_cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy", "-o",
                              "jsonpath={range .items[*]}{.spec.nodeName}{'\\n'}{end}").stdout
    assert sorted(out.split()) == ["controlplane", "node01"]


def test_get_services_all_namespaces(sim_cluster):
    out = sim_cluster.kubectl("get", "svc", "-A").stdout
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)",
                                           "AGE"]
    table = [r[:6] for r in rows(out)]
    ingress = [r for r in table if r[0] == "ingress-nginx"]
    assert [r[1:3] + [r[4]] for r in ingress] == [["ingress-nginx-controller", "NodePort", "<none>"]], out
    assert re.fullmatch(r"80:3\d{4}/TCP,443:3\d{4}/TCP", ingress[0][5]), out
    assert [r for r in table if r[0] != "ingress-nginx"] == [
        ["default", "kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        ["kube-system", "kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP"],
    ]


def test_get_daemonsets_all_namespaces(sim_cluster):
    out = sim_cluster.kubectl("get", "ds", "-A").stdout
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                           "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    # kube-proxy and knet's network add-on (the NetworkPolicy controller), one pod per node each
    assert [row[:8] for row in rows(out)] == [
        ["kube-system", "knet-net", "2", "2", "2", "2", "2", "kubernetes.io/os=linux"],
        ["kube-system", "kube-proxy", "2", "2", "2", "2", "2", "kubernetes.io/os=linux"]]


def squeeze(text: str) -> str:
    """Runs of spaces as one: kubectl's column widths depend on the longest key of a block."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def _pod_named(cluster, prefix: str) -> str:
    names = cluster.kubectl("get", "pods", "-n", "kube-system", "-o", "name").stdout.split()
    return next(n.split("/", 1)[1] for n in names if n.split("/", 1)[1].startswith(prefix))


def test_describe_coredns_pod(sim_cluster):
    name = _pod_named(sim_cluster, "coredns-")
    out = sim_cluster.kubectl("describe", "pod", name, "-n", "kube-system").stdout
    for expected in (
        f"Name:                 {name}",
        "Namespace:            kube-system",
        "Priority Class Name:  system-cluster-critical",
        "Service Account:      coredns",
        "Status:               Running",
        "Controlled By:  ReplicaSet/coredns-",
        "Image:         registry.k8s.io/coredns/coredns:v1.11.1",
        "Ports:         53/UDP, 53/TCP, 9153/TCP",
        "-conf",
        "/etc/coredns/Corefile",
        "Liveness:     http-get http://:8080/health delay=60s timeout=5s period=10s #success=1 #failure=5",
        "Readiness:    http-get http://:8181/ready delay=0s timeout=1s period=10s #success=1 #failure=3",
        "/etc/coredns from config-volume (ro)",
        "Node-Selectors:              kubernetes.io/os=linux",
        "Tolerations:                 CriticalAddonsOnly op=Exists",
        "node-role.kubernetes.io/control-plane:NoSchedule",
    ):
        assert squeeze(expected) in squeeze(out), f"{expected!r} not in:\n{out}"
    assert "k8s-app=kube-dns" in out


def test_describe_kube_proxy_pod(sim_cluster):
    name = _pod_named(sim_cluster, "kube-proxy-")
    out = sim_cluster.kubectl("describe", "pod", name, "-n", "kube-system").stdout
    for expected in (
        "Priority Class Name:  system-node-critical",
        "Service Account:      kube-proxy",
        "Controlled By:  DaemonSet/kube-proxy",
        "Image:         registry.k8s.io/kube-proxy:v1.29.0",
        "/usr/local/bin/kube-proxy",
        "--config=/var/lib/kube-proxy/config.conf",
        "--hostname-override=$(NODE_NAME)",
        "NODE_NAME:   (v1:spec.nodeName)",
        "/var/lib/kube-proxy from kube-proxy (rw)",
        "Tolerations:                 op=Exists",
    ):
        assert squeeze(expected) in squeeze(out), f"{expected!r} not in:\n{out}"
    # hostNetwork: the pod IP is its node's IP
    node_ip = sim_cluster.kubectl("get", "pod", name, "-n", "kube-system", "-o",
                                  "jsonpath={.status.hostIP} {.status.podIP}").stdout.split()
    assert len(node_ip) == 2 and node_ip[0] == node_ip[1]


def test_kube_proxy_configmap_yaml(sim_cluster):
    out = sim_cluster.kubectl("get", "cm", "kube-proxy", "-n", "kube-system", "-o", "yaml").stdout
    cm = yaml.safe_load(out)
    assert cm["metadata"]["labels"] == {"app": "kube-proxy"}
    conf = yaml.safe_load(cm["data"]["config.conf"])
    assert conf["kind"] == "KubeProxyConfiguration"
    assert conf["mode"] == ""
    assert conf["clusterCIDR"] == "10.244.0.0/16"
    kc = yaml.safe_load(cm["data"]["kubeconfig.conf"])
    # 6443 unless another apiserver on this host holds it (sim mode listens on the host's loopback)
    assert kc["clusters"][0]["cluster"]["server"] == f"https://controlplane:{sim_cluster.config['apiServerPort']}"
    assert "config.conf: |-\n    apiVersion: kubeproxy.config.k8s.io/v1alpha1\n    bindAddress: 0.0.0.0\n" in out


def _control_plane_cmdlines(cluster) -> dict[str, list[str]]:
    """argv of the cluster's running control-plane processes (what `ps -ef | grep ...` shows)."""
    marker = f"{cluster.state_dir}/{cluster.name}/"
    found: dict[str, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = proc_cmdline(int(entry))
        component = component_of(argv)
        if any(marker in a for a in argv) and component in ("apiserver", "controller-manager", "scheduler"):
            found[component] = argv
    return found


def test_ps_shows_the_control_plane_flags(sim_cluster):
    procs = _control_plane_cmdlines(sim_cluster)
    assert "--service-cluster-ip-range=10.96.0.0/12" in procs["apiserver"]
    assert "--secure-port=6443" in procs["apiserver"] or sim_cluster.config["apiServerPort"] != 6443
    assert "--cluster-cidr=10.244.0.0/16" in procs["controller-manager"]
    assert "--allocate-node-cidrs=true" in procs["controller-manager"]
    assert "--service-cluster-ip-range=10.96.0.0/12" in procs["controller-manager"]
    assert any(a.startswith("--kubeconfig=") for a in procs["scheduler"])


def test_ps_ef_grep_finds_the_control_plane_by_kubeadms_binary_names(sim_cluster):
    ps = subprocess.run(["ps", "-efww"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in ps.splitlines() if f"{sim_cluster.state_dir}/{sim_cluster.name}/" in line]
    for binary, flag in (("kube-apiserver", "--service-cluster-ip-range=10.96.0.0/12"),
                         ("kube-controller-manager", "--cluster-cidr=10.244.0.0/16"),
                         ("kube-scheduler", "--kubeconfig=")):
        assert any(binary in line and flag in line for line in ours), f"ps -ef | grep {binary}: nothing"


def test_status_lists_the_cluster_and_its_nodes(sim_cluster):
    out = sim_cluster.knet("status").stdout
    assert f"cluster {sim_cluster.name}: dataplane=sim api=ok" in out
    assert "node controlplane(" in out and "node node01(" in out
    assert "EXITED" not in out


def test_up_refuses_an_existing_name(sim_cluster):
    result = sim_cluster.knet("up", "--name", sim_cluster.name, "--dataplane", "sim")
    assert result.returncode != 0
    assert f"knet down --name {sim_cluster.name}" in result.stderr


def test_ssh_into_a_simulated_node_says_why_not(sim_cluster):
    result = sim_cluster.ssh("node01", "hostname")
    assert result.returncode != 0
    assert "simulated" in result.stderr


def test_logs_of_a_control_plane_mirror_pod(sim_cluster):
    out = sim_cluster.kubectl("logs", "-n", "kube-system", "kube-apiserver-controlplane").stdout
    assert "serving on 127.0.0.1:" in out
