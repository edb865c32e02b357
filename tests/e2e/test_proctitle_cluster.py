"""`ps -ef` on a node shows kubeadm's processes (issue #15 item 3): each component titled with its
command line, as the reference transcript's `ps -ef | grep alloc` and `ps -ef | grep proxy` show
on a kubeadm controlplane, not `python3 …/knet …`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


# kubeadm v1.29's kubelet, as `ps -ef` shows it on its nodes
KUBEADM_KUBELET = ("/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
                   "--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml "
                   "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock "
                   "--pod-infra-container-image=registry.k8s.io/pause:3.9")


def _commands(cluster, node: str) -> list[str]:
    """The CMD column of `ps -efww` in the node (UID PID PPID C STIME TTY TIME CMD)."""
    out = cluster.ssh(node, "ps", "-efww").stdout
    rows = [line.split(None, 7) for line in out.splitlines()[1:]]
    return [row[7] for row in rows if len(row) == 8]


def _pod_command(cluster, name: str) -> str:
    pod = json.loads(cluster.kubectl("get", "pod", "-n", "kube-system", name, "-o", "json").stdout)
    container = pod["spec"]["containers"][0]
    return " ".join([*container.get("command", []), *container.get("args", [])])


def _one(commands: list[str], prefix: str) -> str:
    found = [c for c in commands if c.startswith(prefix)]
    assert len(found) == 1, (prefix, commands)
    return found[0]


def _pod_range(cluster) -> str:
    return cluster.config.get("podSubnet") or "10.244.0.0/16"


def test_ps_on_controlplane_shows_the_control_plane_as_kubeadms(knet_cluster):
    commands = _commands(knet_cluster, "controlplane")
    apiserver = _one(commands, "kube-apiserver --advertise-address=")
    controller_manager = _one(commands, "kube-controller-manager --allocate-node-cidrs=true ")
    scheduler = _one(commands, "kube-scheduler ")
    for line in (apiserver, controller_manager, scheduler):
        assert "python" not in line and "knet" not in line.split()[0], line
    # Each title is its static pod's command, exactly as `kubectl get pod -o yaml` shows it.
    assert apiserver == _pod_command(knet_cluster, "kube-apiserver-controlplane")
    assert controller_manager == _pod_command(knet_cluster, "kube-controller-manager-controlplane")
    assert scheduler == _pod_command(knet_cluster, "kube-scheduler-controlplane")
    for flag in ("--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
                 "--service-cluster-ip-range=10.96.0.0/12", "--service-account-issuer=https://kubernetes.default.svc"
                 ".cluster.local"):
        assert flag in apiserver.split(), flag

    # The transcript's `ps -ef | grep alloc`: the pod range from kube-controller-manager and the add-on.
    alloc = [c for c in commands if "alloc" in c]
    pod_range = _pod_range(knet_cluster)
    assert any(c.startswith("kube-controller-manager ") and f"--cluster-cidr={pod_range}" in c.split()
               for c in alloc), alloc
    assert any(c.startswith("/usr/local/bin/knet-cni-agent ") and f"--ipalloc-range={pod_range}" in c.split()
               for c in alloc), alloc
    # ... and `ps -ef | grep proxy`: this node's kube-proxy, word for word as in the transcript.
    proxy = [c for c in commands if "proxy" in c]
    assert "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=controlplane" \
        in proxy, proxy

    kubelet = _one(commands, "/usr/bin/kubelet ")
    assert kubelet.startswith(KUBEADM_KUBELET) and "python" not in kubelet
    assert "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule" in kubelet.split()
    # what `ps -e`, `top` and `pgrep -x` show: the binaries' names (the kernel's 15 bytes)
    names = set(knet_cluster.ssh("controlplane", "ps", "-eo", "comm=").stdout.split())
    assert {"kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy"} <= names, names
    pgrep = knet_cluster.ssh("controlplane", "pgrep", "-x", "kube-apiserver").stdout.split()
    assert len(pgrep) == 1, pgrep


def test_ps_on_a_worker_shows_kubelet_and_kube_proxy(knet_cluster):
    commands = _commands(knet_cluster, "node01")
    kubelet = _one(commands, "/usr/bin/kubelet ")
    words = kubelet.split()
    # kubeadm's command line; the node's name is its hostname, its settings /var/lib/kubelet/config.yaml
    assert kubelet.startswith(KUBEADM_KUBELET) and "python" not in kubelet
    assert any(w.startswith("--root-dir=") for w in words)
    assert not any(w.startswith(("--hostname-override", "--register-with-taints")) for w in words), words
    # its supervisor (systemd's Restart=always) says what it is
    supervisor = _one(commands, "knet-supervise ")
    assert supervisor.split()[1].startswith("--state=") and "python" not in supervisor
    proxy = _one(commands, "/usr/local/bin/kube-proxy ")
    assert proxy == "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=node01"
    proxy_pod = knet_cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy",
                                     "--field-selector=spec.nodeName=node01", "-o", "name").stdout.split()
    assert len(proxy_pod) == 1
    netpol = _one(commands, "/usr/local/bin/knet-netpol ")
    assert "--hostname-override=node01" in netpol.split()
    # nothing of knet's own components shows as the interpreter running knet
    assert not [c for c in commands if " as-binary " in c or "bin/knet " in c], commands
    # the kubelet's and kube-proxy's titles are theirs alone: node02's are not here
    assert not [c for c in commands if "--hostname-override=node02" in c]


def test_coredns_shows_its_image_entrypoint_and_args(knet_cluster):
    lines = [c for node in ("controlplane", "node01", "node02") for c in _commands(knet_cluster, node)
             if c.startswith("/coredns ")]
    assert lines == ["/coredns -conf /etc/coredns/Corefile"] * 2, lines  # kubeadm's two replicas
