"""A real cluster's nodes listen where a kubeadm node's do, and the cluster holds kubeadm's objects
(issue #15 items 3 (ports) and 5), as an operator checks them: `ss -lntp` in a node, `curl -k
https://127.0.0.1:10257/healthz`, `kubectl version`, `kubectl get cm -A`, kube-proxy's log."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e


def listeners(cluster, node: str) -> dict[tuple[str, int], str]:
    """(address, port) -> the listening process's name, from `ss -lntpH` in the node."""
    out = cluster.ssh(node, "ss", "-lntpH").stdout
    found = {}
    for line in out.splitlines():
        fields = line.split()
        address, _, port = fields[3].rpartition(":")
        name = re.search(r'users:\(\("([^"]+)"', line)
        found[(address, int(port))] = name.group(1) if name else ""
    return found


def node_ip(cluster, name: str) -> str:
    return next(n["ip"] for n in cluster.config["nodes"] if n["name"] == name)


def test_ss_in_the_controlplane_lists_each_component_on_its_port(knet_cluster):
    cp = node_ip(knet_cluster, "controlplane")
    seen = listeners(knet_cluster, "controlplane")
    expected = {
        (cp, 6443): "kube-apiserver",
        ("127.0.0.1", 2379): "etcd", (cp, 2379): "etcd", (cp, 2380): "etcd",
        ("127.0.0.1", 10257): "kube-controller",  # the kernel's 15-character comm of kube-controller-manager
        ("127.0.0.1", 10259): "kube-scheduler",
    }
    for where, name in expected.items():
        assert seen.get(where) == name, (where, name, seen)
    # the kubelet on every address, kube-proxy's metrics on loopback and its healthz on all, as upstream binds them
    for where in (("0.0.0.0", 10250), ("127.0.0.1", 10249), ("0.0.0.0", 10256)):
        assert where in seen, (where, seen)


def test_ss_in_a_worker_lists_the_kubelet_and_kube_proxy_only(knet_cluster):
    seen = listeners(knet_cluster, "node01")
    ports = {port for _, port in seen}
    assert {10250, 10249, 10256} <= ports
    assert not ports & {6443, 2379, 2380, 10257, 10259}


@pytest.mark.parametrize("port", [10257, 10259])
def test_controller_manager_and_scheduler_answer_healthz_over_https_on_loopback_only(knet_cluster, port):
    ok = knet_cluster.ssh("controlplane", "curl", "-sk", "--max-time", "5", f"https://127.0.0.1:{port}/healthz")
    assert (ok.returncode, ok.stdout) == (0, "ok")
    # TLS with the component's own self-signed certificate (curl without -k refuses it)
    strict = knet_cluster.ssh("controlplane", "curl", "-s", "--max-time", "5", f"https://127.0.0.1:{port}/healthz")
    assert strict.returncode == 60  # CURLE_PEER_FAILED_VERIFICATION
    # everything but the health paths is refused to an anonymous caller
    forbidden = knet_cluster.ssh("controlplane", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                 "--max-time", "5", f"https://127.0.0.1:{port}/metrics")
    assert forbidden.stdout == "403"
    # bound to loopback, as kubeadm's --bind-address=127.0.0.1: not on the node's address
    outside = knet_cluster.ssh("node01", "curl", "-sk", "--max-time", "3",
                               f"https://{node_ip(knet_cluster, 'controlplane')}:{port}/healthz")
    assert outside.returncode == 7  # connection refused


def test_kubectl_version_reports_one_version(knet_cluster):
    """The server and the nodes say the cluster's kubernetesVersion (v1.29.0), as on the
    reference cluster. A version-matching kubectl dispatcher may then run kubectl 1.29, whose
    SPDY exec, attach and port-forward knet serves (knet.api.spdyrelay; test_spdy_streaming_cluster)."""
    want = knet_cluster.config["kubernetesVersion"]
    out = json.loads(knet_cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == want
    kubelets = knet_cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}").stdout
    assert set(kubelets.split()) == {want}


def test_kubeadms_configmaps(knet_cluster):
    listing = knet_cluster.kubectl("get", "cm", "-A", "--no-headers").stdout
    names = {tuple(line.split()[:2]) for line in listing.splitlines()}
    for ns_name in [("kube-system", "extension-apiserver-authentication"),
                    ("kube-system", "kube-apiserver-legacy-service-account-token-tracking"),
                    ("kube-public", "cluster-info"), ("kube-system", "kubeadm-config"),
                    ("kube-system", "kubelet-config"), ("kube-system", "kube-proxy"), ("kube-system", "coredns")]:
        assert ns_name in names, ns_name
    auth = json.loads(knet_cluster.kubectl("get", "cm", "-n", "kube-system", "extension-apiserver-authentication",
                                           "-o", "json").stdout)["data"]
    pki = knet_cluster.state_dir / knet_cluster.name / "pki"
    # kubeadm's six keys: the client CA and the front proxy's request-header settings
    assert auth == {"client-ca-file": (pki / "ca.crt").read_text(),
                    "requestheader-client-ca-file": (pki / "front-proxy-ca.crt").read_text(),
                    "requestheader-allowed-names": '["front-proxy-client"]',
                    "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
                    "requestheader-group-headers": '["X-Remote-Group"]',
                    "requestheader-username-headers": '["X-Remote-User"]'}
    since = knet_cluster.kubectl("get", "cm", "-n", "kube-system", "kube-apiserver-legacy-service-account-token-tracking",
                                 "-o", "jsonpath={.data.since}").stdout
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", since)
    info = knet_cluster.kubectl("get", "cm", "-n", "kube-public", "cluster-info", "-o", "jsonpath={.data.kubeconfig}").stdout
    assert "certificate-authority-data:" in info and ":6443" in info


def test_kube_proxy_logs_which_proxier_it_uses(knet_cluster):
    mode = knet_cluster.config["proxyMode"] or "iptables"
    logs = knet_cluster.kubectl("logs", "-n", "kube-system", "-l", "k8s-app=kube-proxy", "--tail=-1",
                                "--prefix").stdout
    lines = [line for line in logs.splitlines() if f'"Using {mode} Proxier"' in line]
    assert len({line.split("]")[0] for line in lines}) == len(knet_cluster.config["nodes"]), logs[-2000:]
