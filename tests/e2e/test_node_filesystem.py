"""A node looks like a kubeadm node from its shell (issue 15 item 2 and `ssh node01`): the
kubelet's and CNI's files at kubeadm's paths, backed by the cluster's state dir, nothing written to
the host's /etc, /var, /opt or /root/.ssh; an OpenSSH server per node that the controlplane's root
reaches with the cluster's key; nothing of it left after `knet down`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from knet.cluster.testing import ClusterUnderTest
from knet.net.names import netns_name

from .cluster_namespaces import busybox_pod, cluster_namespace, wait_running
from .conftest import real_mode_problem

pytestmark = pytest.mark.e2e

# What the host had before any cluster of this session existed (taken at collection time).
KUBEADM_HOST_PATHS = ("/etc/kubernetes", "/etc/cni", "/opt/cni", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/cni",
                      "/var/log/pods", "/var/log/containers", "/root/.kube/config")
HOST_HAD = {p: os.path.lexists(p) for p in KUBEADM_HOST_PATHS}


def _tree(path: str) -> dict[str, tuple[int, int]]:
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            out[os.path.join(root, name)] = (st.st_mtime_ns, st.st_size)
    return out


HOST_ROOT_SSH = _tree("/root/.ssh")


def sh(cluster, node: str, script: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return cluster.ssh(node, "sh", "-c", script, timeout=timeout)


def lines(cluster, node: str, script: str) -> list[str]:
    p = sh(cluster, node, script)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.split()


def test_controlplane_shows_kubeadms_files(knet_cluster):
    state = knet_cluster.state_dir / knet_cluster.name
    assert sorted(lines(knet_cluster, "controlplane", "ls /etc/kubernetes")) == [
        "admin.conf", "controller-manager.conf", "kubelet.conf", "manifests", "pki", "scheduler.conf"]
    manifests = lines(knet_cluster, "controlplane", "ls /etc/kubernetes/manifests")
    mirror_pods = knet_cluster.kubectl("get", "pods", "-n", "kube-system", "--field-selector",
                                       "spec.nodeName=controlplane", "-o", "json").stdout
    static = sorted(p["metadata"]["name"].removesuffix("-controlplane") + ".yaml"
                    for p in json.loads(mirror_pods)["items"]
                    if (p["metadata"].get("annotations") or {}).get("kubernetes.io/config.mirror"))
    assert sorted(manifests) == static and "kube-apiserver.yaml" in manifests
    # the same files as the cluster's state dir, not copies that could drift
    admin = sh(knet_cluster, "controlplane", "cat /etc/kubernetes/admin.conf").stdout
    assert admin == (state / "kubeconfig" / "admin.conf").read_text()
    pki = lines(knet_cluster, "controlplane", "ls /etc/kubernetes/pki")
    assert {"ca.crt", "ca.key", "apiserver.crt", "sa.key"} <= set(pki), pki
    # root's kubectl works with ~/.kube/config, as after kubeadm init
    nodes = lines(knet_cluster, "controlplane", "env -u KUBECONFIG kubectl get nodes -o name")
    assert nodes == ["node/controlplane", "node/node01", "node/node02"]
    kubelet_config = yaml.safe_load(sh(knet_cluster, "controlplane", "cat /var/lib/kubelet/config.yaml").stdout)
    assert kubelet_config["kind"] == "KubeletConfiguration"
    assert kubelet_config["staticPodPath"] == "/etc/kubernetes/manifests"
    dns_ip = knet_cluster.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert kubelet_config["clusterDNS"] == [dns_ip]
    var_lib = lines(knet_cluster, "controlplane", "ls /var/lib")
    assert {"kubelet", "cni"} <= set(var_lib), var_lib
    if knet_cluster.config.get("storage") == "etcd":
        assert "etcd" in var_lib
        assert lines(knet_cluster, "controlplane", "ls /var/lib/etcd") == ["member"]
    assert {"bridge", "host-local", "loopback", "portmap"} <= set(lines(knet_cluster, "controlplane", "ls /opt/cni/bin"))
    assert "pods" in lines(knet_cluster, "controlplane", "ls /var/lib/kubelet")


@pytest.mark.parametrize("node", ["controlplane", "node01"])
def test_cni_conf_dir_holds_the_addons_conflist_for_the_nodes_pod_cidr(knet_cluster, node):
    cidr = knet_cluster.kubectl("get", "node", node, "-o", "jsonpath={.spec.podCIDR}").stdout
    files = lines(knet_cluster, node, "ls /etc/cni/net.d")
    assert len(files) == 1 and files[0].endswith(".conflist"), files
    conflist = json.loads(sh(knet_cluster, node, f"cat /etc/cni/net.d/{files[0]}").stdout)
    assert cidr and cidr in json.dumps(conflist), (cidr, conflist)


def test_a_nodes_ip_tools_see_its_own_namespace_not_the_hosts_others(knet_cluster):
    # A namespace made on the host after the node started (another cluster, a test's): the node's
    # `ip addr` once printed "Error: Peer netns reference is invalid." for it, and `ip netns list`
    # showed every namespace of the machine.
    later = f"knet-later-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", later], check=True)
    try:
        p = knet_cluster.ssh("node01", "ip", "addr")
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert "inet 10." in p.stdout or "cni0" in p.stdout
        listed = knet_cluster.ssh("node01", "ip", "netns", "list")
        assert listed.returncode == 0 and listed.stderr == "", listed.stderr
        # Its own name only: the kubelet recognises its node by it (KUBE-KUBELET-CANARY is its).
        assert [line.split()[0] for line in listed.stdout.splitlines()] == [netns_name(knet_cluster.name, "node01")]
        assert "KUBE-KUBELET-CANARY" in knet_cluster.ssh("node01", "iptables", "-t", "mangle", "-S").stdout
    finally:
        subprocess.run(["ip", "netns", "del", later], check=False)


def test_a_worker_has_its_kubelet_conf_and_the_cas_certificate_only(knet_cluster):
    assert sorted(lines(knet_cluster, "node01", "ls /etc/kubernetes")) == ["kubelet.conf", "manifests", "pki"]
    assert lines(knet_cluster, "node01", "ls /etc/kubernetes/pki") == ["ca.crt"]
    assert lines(knet_cluster, "node01", "ls /var/lib") and "etcd" not in lines(knet_cluster, "node01", "ls /var/lib")
    assert "kubelet" in lines(knet_cluster, "node01", "ls /var/lib")
    p = sh(knet_cluster, "node01", "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node node01 -o name")
    assert p.stdout.strip() == "node/node01", p.stdout + p.stderr


def test_var_log_containers_links_a_running_containers_log(knet_cluster):
    marker = f"knet-log-{secrets.token_hex(4)}"
    with cluster_namespace(knet_cluster, f"logs-{secrets.token_hex(3)}") as ns:
        pod = busybox_pod("talker", ns)
        pod["spec"]["containers"][0]["command"] = ["sh", "-c", f"echo {marker}; sleep 3600"]
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        wait_running(knet_cluster, ns, "talker")
        got = json.loads(knet_cluster.kubectl("get", "pod", "talker", "-n", ns, "-o", "json").stdout)
        node, uid = got["spec"]["nodeName"], got["metadata"]["uid"]
        container_id = got["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        link = f"/var/log/containers/talker_{ns}_main-{container_id}.log"
        knet_cluster.wait_for("the container's log link", lambda: marker in sh(knet_cluster, node, f"cat {link}").stdout,
                              timeout=20, interval=0.2)
        assert sh(knet_cluster, node, f"readlink {link}").stdout.strip() == f"/var/log/pods/{ns}_talker_{uid}/main/0.log"
        assert marker in sh(knet_cluster, node, f"cat /var/log/pods/{ns}_talker_{uid}/main/0.log").stdout
    knet_cluster.wait_for("the link gone with the pod", lambda: sh(
        knet_cluster, node, f"ls /var/log/containers /var/log/pods | grep -c _{ns}").stdout.strip() == "0",
        timeout=60, interval=0.5)


def test_a_pod_does_not_see_the_nodes_kubeadm_files(knet_cluster):
    pods = json.loads(knet_cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=knet-net",
                                           "--field-selector", "spec.nodeName=controlplane", "-o", "json").stdout)
    name = pods["items"][0]["metadata"]["name"]
    p = knet_cluster.kubectl("exec", "-n", "kube-system", name, "-c", "cni", "--", "sh", "-c",
                             "ls -A /etc/kubernetes/pki /etc/kubernetes/manifests; cat /etc/kubernetes/admin.conf; "
                             "test -e /etc/kubernetes/pki/ca.key && echo VISIBLE; grep -c controlplane /etc/hosts",
                             check=False)
    # empty mount points at most; the hostNetwork pod still reads the node's names
    assert p.stdout.split() == ["/etc/kubernetes/manifests:", "/etc/kubernetes/pki:", "1"], p.stdout + p.stderr


def test_ssh_node01_from_controlplane(knet_cluster):
    p = sh(knet_cluster, "controlplane", "ssh node01 crictl ps", timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split()[:2] == ["CONTAINER", "IMAGE"] and "kube-proxy" in p.stdout, p.stdout
    p = sh(knet_cluster, "controlplane", "ssh node01 iptables --list", timeout=60)
    assert p.returncode == 0 and "Chain INPUT (policy ACCEPT)" in p.stdout and "KUBE-" in p.stdout, p.stdout + p.stderr
    assert lines(knet_cluster, "controlplane", "ssh node01 hostname") == ["node01"]
    assert lines(knet_cluster, "controlplane", "ssh node02 cat /etc/hostname") == ["node02"]


def test_sshd_listens_on_the_node_address_and_takes_the_cluster_key_only(knet_cluster):
    ip = next(n["ip"] for n in knet_cluster.config["nodes"] if n["name"] == "node01")
    listening = [line.split()[3] for line in sh(knet_cluster, "node01", "ss -Hlnt").stdout.splitlines()
                 if line.split()[3].endswith(":22")]
    assert listening == [f"{ip}:22"], listening
    # no password, and a worker holds no key the other nodes trust
    p = sh(knet_cluster, "controlplane", "ssh -o BatchMode=yes -o PubkeyAuthentication=no node01 true")
    assert p.returncode == 255 and "Permission denied" in p.stderr, p.stderr
    p = sh(knet_cluster, "node01", "ssh -o BatchMode=yes controlplane true")
    assert p.returncode == 255 and "Permission denied" in p.stderr, p.stderr


def test_the_hosts_own_files_are_untouched(knet_cluster):
    assert knet_cluster.kubectl("get", "nodes").returncode == 0  # the session cluster is up
    for path, had in HOST_HAD.items():
        if not had:
            assert not os.path.lexists(path), f"{path} was created on the host"
    assert _tree("/root/.ssh") == HOST_ROOT_SSH


def _mounts() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(cmdline)
    return found


def test_knet_down_leaves_no_mount_and_no_sshd():
    problem = real_mode_problem()
    if problem:
        pytest.fail(f"real dataplane unavailable: {problem}")
    before = _mounts()
    cluster = ClusterUnderTest.up(nodes=2, dataplane="real")
    try:
        state = str(cluster.state_dir / cluster.name)
        sshd = [c for c in _processes_mentioning(state) if c.startswith("sshd: ")]
        assert len(sshd) == 2, sshd  # one per node
        assert sh(cluster, "node01", "grep -c ' /etc/kubernetes/' /proc/self/mountinfo").stdout.strip() != "0"
    finally:
        cluster.down()
    assert _processes_mentioning(state) == []
    after = _mounts()
    assert [m for m in after if state in m] == []
    assert sorted(m for m in after if " overlay " in m) == sorted(m for m in before if " overlay " in m)
