"""A node's kubelet looks and answers like kubeadm's (issue #15 items 2 and 3), tried from the node's
shell (`knet ssh node01`, `ssh node01` from controlplane) on the session cluster: its command
line, its /var/lib/kubelet/config.yaml saying what it does, its container runtime endpoint
(/var/run/containerd/containerd.sock) that crictl in the node asks, its iptables chains; and, as an
attacker, that neither a pod nor a non-root user of the node can use that endpoint."""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest
import yaml

from .cluster_namespaces import cluster_namespace, wait_running

pytestmark = pytest.mark.e2e

SOCKET = "/var/run/containerd/containerd.sock"
KUBEADM_KUBELET = ("/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
                   "--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml "
                   f"--container-runtime-endpoint=unix://{SOCKET} --pod-infra-container-image=registry.k8s.io/pause:3.9")


def sh(cluster, node: str, script: str, timeout: float = 30.0):
    return cluster.ssh(node, "sh", "-c", script, timeout=timeout)


def ok(cluster, node: str, script: str) -> str:
    p = sh(cluster, node, script)
    assert p.returncode == 0, (script, p.stdout, p.stderr)
    return p.stdout


def columns(line: str) -> list[str]:
    """A crictl table row's cells (tabwriter pads with 3+ spaces; cells hold single spaces)."""
    return re.split(r"\s{3,}", line.strip())


@pytest.fixture(scope="module")
def marked_pod(knet_cluster):
    """A pod on node01 that printed a marker, in a namespace of its own (deleted at the end)."""
    marker = f"hello-{secrets.token_hex(4)}"
    with cluster_namespace(knet_cluster, f"kcri-{secrets.token_hex(3)}") as ns:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "marked", "namespace": ns},
               "spec": {"nodeName": "node01", "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "main", "image": "busybox:1.36",
                                        "command": ["sh", "-c", f"echo {marker}; echo second-line; sleep 3600"]}]}}
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        wait_running(knet_cluster, ns, "marked")
        yield ns, marker


def test_ps_shows_kubeadms_kubelet(knet_cluster):
    for node in ("controlplane", "node01"):
        lines = [line for line in ok(knet_cluster, node, "ps -efww | grep kubelet").splitlines()
                 if "/usr/bin/kubelet" in line and "grep" not in line]
        assert len(lines) == 1, lines
        command = lines[0].split(None, 7)[7]
        assert command.startswith(KUBEADM_KUBELET), command
        assert "python" not in command and "--hostname-override" not in command


def test_config_yaml_says_what_the_kubelet_does(knet_cluster, marked_pod):
    ns, _ = marked_pod
    config = yaml.safe_load(ok(knet_cluster, "node01", "cat /var/lib/kubelet/config.yaml"))
    assert config["kind"] == "KubeletConfiguration" and config["cgroupDriver"] == "cgroupfs"
    # the pods' resolver is the kubelet's clusterDNS and clusterDomain, from this file alone (no flag)
    resolv = knet_cluster.kubectl("exec", "-n", ns, "marked", "--", "cat", "/etc/resolv.conf").stdout
    assert re.findall(r"^nameserver (\S+)", resolv, re.M) == config["clusterDNS"], resolv
    assert f"svc.{config['clusterDomain']}" in resolv
    # its client CA is the cluster's: the apiserver's kubelet client is let in (kubectl logs)
    assert config["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert knet_cluster.kubectl("logs", "-n", ns, "marked").returncode == 0
    # staticPodPath: the control plane's static pods come from there
    assert config["staticPodPath"] == "/etc/kubernetes/manifests"
    assert "kube-apiserver.yaml" in ok(knet_cluster, "controlplane", "ls /etc/kubernetes/manifests").split()


def test_the_runtime_endpoint_is_a_root_only_socket(knet_cluster):
    listing = ok(knet_cluster, "node01", f"ls -l {SOCKET}").split()
    assert listing[0] == "srw-rw----" and listing[2:4] == ["root", "root"], listing
    crictl_yaml = yaml.safe_load(ok(knet_cluster, "node01", "cat /etc/crictl.yaml"))
    assert crictl_yaml["runtime-endpoint"] == f"unix://{SOCKET}"


def test_crictl_in_the_node(knet_cluster, marked_pod):
    ns, marker = marked_pod
    ps = ok(knet_cluster, "node01", "crictl ps").splitlines()
    assert columns(ps[0]) == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]
    rows = [columns(line) for line in ps[1:]]
    mine = [r for r in rows if r[-1] == "marked"]
    assert len(mine) == 1 and mine[0][3] == "Running" and mine[0][4] == "main", rows
    assert any(r[4] == "kube-proxy" for r in rows)
    # only node01's: not the controlplane's static pods, and node02's socket has node02's only
    assert not any(r[-1].startswith("kube-apiserver") for r in rows)
    assert "marked" not in ok(knet_cluster, "node02", "crictl ps")

    full_id = ok(knet_cluster, "node01", "crictl ps -q --name '^main$'").split()
    pod = json.loads(knet_cluster.kubectl("get", "pod", "-n", ns, "marked", "-o", "json").stdout)
    status_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    assert status_id in full_id
    assert mine[0][0] == status_id[:13]

    doc = json.loads(ok(knet_cluster, "node01", f"crictl inspect {status_id[:13]}"))
    s = doc["status"]
    assert s["id"] == status_id and s["state"] == "CONTAINER_RUNNING" and s["image"]["image"] == "busybox:1.36"
    assert s["labels"]["io.kubernetes.pod.name"] == "marked" and s["labels"]["io.kubernetes.pod.namespace"] == ns
    assert s["labels"]["io.kubernetes.pod.uid"] == pod["metadata"]["uid"]
    assert s["logPath"].startswith(f"/var/log/pods/{ns}_marked_{pod['metadata']['uid']}/main/")
    # info.pid is the container's process, as the node sees it
    cmdline = ok(knet_cluster, "node01", f"tr '\\0' ' ' < /proc/{doc['info']['pid']}/cmdline")
    assert "sleep 3600" in cmdline or marker in cmdline, cmdline

    pods = ok(knet_cluster, "node01", "crictl pods").splitlines()
    assert columns(pods[0]) == ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]
    mine_pod = [columns(line) for line in pods[1:] if columns(line)[3] == "marked"]
    assert len(mine_pod) == 1 and mine_pod[0][2] == "Ready" and mine_pod[0][4] == ns and mine_pod[0][6] == "(default)"
    inspectp = json.loads(ok(knet_cluster, "node01", f"crictl inspectp {doc['info']['sandboxID']}"))
    assert inspectp["status"]["network"]["ip"] == pod["status"]["podIP"]

    logs = ok(knet_cluster, "node01", f"crictl logs {status_id}")
    assert logs.splitlines()[:2] == [marker, "second-line"]
    assert ok(knet_cluster, "node01", f"crictl logs --tail 1 {status_id}").splitlines() == ["second-line"]

    images = [columns(line) for line in ok(knet_cluster, "node01", "crictl images").splitlines()]
    assert images[0] == ["IMAGE", "TAG", "IMAGE ID", "SIZE"]
    assert ["busybox", "1.36"] in [r[:2] for r in images] and ["registry.k8s.io/pause", "3.9"] in [r[:2] for r in images]

    assert "RuntimeApiVersion:  v1" in ok(knet_cluster, "node01", "crictl version")
    info = json.loads(ok(knet_cluster, "node01", "crictl info"))
    assert {c["type"]: c["status"] for c in info["status"]["conditions"]} == {"RuntimeReady": True,
                                                                              "NetworkReady": True}


def test_crictl_errors_as_crictl(knet_cluster):
    p = sh(knet_cluster, "node01", "crictl inspect 0123456789abcdef")
    assert p.returncode == 1 and "NotFound" in p.stderr and "0123456789abcdef" in p.stderr
    p = sh(knet_cluster, "node01", "crictl frobnicate")
    assert p.returncode == 1 and "No help topic for 'frobnicate'" in p.stderr
    # another endpoint, from the flag and from the environment, overrides /etc/crictl.yaml
    p = sh(knet_cluster, "node01", "crictl -r unix:///run/nothing.sock ps")
    assert p.returncode == 1 and "dial unix /run/nothing.sock" in p.stderr
    p = sh(knet_cluster, "node01", "CONTAINER_RUNTIME_ENDPOINT=unix:///run/nothing.sock crictl ps")
    assert p.returncode == 1 and "dial unix /run/nothing.sock" in p.stderr


def test_crictl_over_ssh_from_the_controlplane(knet_cluster):
    p = sh(knet_cluster, "controlplane", "ssh node01 crictl pods", timeout=60)
    assert p.returncode == 0 and "kube-proxy-" in p.stdout, p.stdout + p.stderr


def test_neither_a_pod_nor_a_non_root_user_reaches_the_runtime(knet_cluster):
    p = sh(knet_cluster, "node01", "setpriv --reuid=65534 --regid=65534 --clear-groups crictl ps")
    assert p.returncode == 1 and "connect: permission denied" in p.stderr, p.stderr
    p = sh(knet_cluster, "node01", f"setpriv --reuid=65534 --regid=65534 --clear-groups python3 -c "
                                   f"\"import socket; s=socket.socket(socket.AF_UNIX); s.connect('{SOCKET}')\"")
    assert p.returncode != 0 and "PermissionError" in p.stderr, p.stderr
    with cluster_namespace(knet_cluster, f"kcri-att-{secrets.token_hex(3)}") as ns:
        for name, host_network in (("plain", False), ("hostnet", True)):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                   "spec": {"nodeName": "node01", "hostNetwork": host_network, "terminationGracePeriodSeconds": 0,
                            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
            knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        for name in ("plain", "hostnet"):
            wait_running(knet_cluster, ns, name)
            p = knet_cluster.kubectl("exec", "-n", ns, name, "--", "sh", "-c",
                                     "ls /run/containerd /var/run/containerd 2>&1; "
                                     "find / -xdev -name containerd.sock 2>/dev/null; echo done", check=False)
            assert "containerd.sock" not in p.stdout and p.stdout.strip().endswith("done"), (name, p.stdout)


def _chain(cluster, node: str, table: str, chain: str) -> list[str]:
    return ok(cluster, node, f"iptables -t {table} -S {chain}").splitlines()


def test_the_kubelets_iptables_chains(knet_cluster):
    listing = ok(knet_cluster, "node01", "iptables -t nat -L KUBE-KUBELET-CANARY")
    assert listing.splitlines()[0] == "Chain KUBE-KUBELET-CANARY (0 references)"
    for table in ("mangle", "filter"):
        assert _chain(knet_cluster, "node01", table, "KUBE-KUBELET-CANARY") == ["-N KUBE-KUBELET-CANARY"]
    assert _chain(knet_cluster, "node01", "mangle", "KUBE-IPTABLES-HINT") == ["-N KUBE-IPTABLES-HINT"]
    firewall = _chain(knet_cluster, "node01", "filter", "KUBE-FIREWALL")
    assert firewall[1:] == ['-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming '
                            'localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP'], firewall
    for chain in ("INPUT", "OUTPUT"):  # one jump each, though kube-proxy writes the same one too
        assert _chain(knet_cluster, "node01", "filter", chain).count(f"-A {chain} -j KUBE-FIREWALL") == 1
    listing = ok(knet_cluster, "node01", "iptables --list")
    assert "Chain KUBE-FIREWALL (2 references)" in listing and "Chain KUBE-KUBELET-CANARY (0 references)" in listing
    # never in the host's own tables
    import subprocess

    for table in ("mangle", "nat", "filter"):
        host = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
        assert "KUBE-KUBELET-CANARY" not in host and "KUBE-IPTABLES-HINT" not in host


def test_a_flush_is_repaired_by_the_canary(knet_cluster):
    node = "node02"
    ok(knet_cluster, node, "iptables -D INPUT -j KUBE-FIREWALL; iptables -D OUTPUT -j KUBE-FIREWALL; "
                           "iptables -F KUBE-FIREWALL; "
                           "for t in mangle nat filter; do iptables -t $t -X KUBE-KUBELET-CANARY; done")
    assert "-A INPUT -j KUBE-FIREWALL" not in _chain(knet_cluster, node, "filter", "INPUT")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "-A INPUT -j KUBE-FIREWALL" in _chain(knet_cluster, node, "filter", "INPUT") and \
                sh(knet_cluster, node, "iptables -t nat -S KUBE-KUBELET-CANARY").returncode == 0:
            break
        time.sleep(0.5)
    assert _chain(knet_cluster, node, "filter", "INPUT").count("-A INPUT -j KUBE-FIREWALL") == 1
    assert _chain(knet_cluster, node, "filter", "OUTPUT").count("-A OUTPUT -j KUBE-FIREWALL") == 1
    assert len(_chain(knet_cluster, node, "filter", "KUBE-FIREWALL")) == 2  # -N and the one rule
    assert sh(knet_cluster, node, "iptables -t mangle -S KUBE-KUBELET-CANARY").returncode == 0


def test_crictl_ps_all_shows_the_exited_instance(knet_cluster):
    with cluster_namespace(knet_cluster, f"kcri-rs-{secrets.token_hex(3)}") as ns:
        name = f"crash{secrets.token_hex(2)}"
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crashy", "namespace": ns},
               "spec": {"nodeName": "node01", "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": name, "image": "busybox:1.36",
                                        "command": ["sh", "-c", "echo attempt-output; sleep 1; exit 3"]}]}}
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))

        def restarted():
            p = json.loads(knet_cluster.kubectl("get", "pod", "-n", ns, "crashy", "-o", "json").stdout)
            return (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1

        knet_cluster.wait_for("crashy restarted", restarted, timeout=30, interval=0.3)
        rows = [columns(line) for line in ok(knet_cluster, "node01", f"crictl ps -a --name {name}").splitlines()[1:]]
        assert len(rows) == 2 and {r[3] for r in rows} <= {"Running", "Exited"} and "Exited" in {r[3] for r in rows}
        assert sorted(r[5] for r in rows) == ["0", "1"] or sorted(r[5] for r in rows) == ["1", "2"], rows
        exited = next(r for r in rows if r[3] == "Exited")
        assert ok(knet_cluster, "node01", f"crictl logs {exited[0]}").strip() == "attempt-output"
        assert exited[0] not in ok(knet_cluster, "node01", f"crictl ps -q --name {name}")
