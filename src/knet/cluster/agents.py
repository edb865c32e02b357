"""Node agent command lines (docs/contracts.md sections 6 and 7). Pure."""

from __future__ import annotations

import sys

from knet.cluster.config import ClusterConfig, NodeSpec
from knet.cluster.paths import ClusterPaths
from knet.node.cgroups import cgroup_root
from knet.proctitle import KUBELET_BINARY

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CNI_BIN_DIR = "/usr/lib/cni"


# kubeadm v1.29's kubelet command line (kubelet.service's drop-in 10-kubeadm.conf with
# kubeadm-flags.env), in the node's own paths (knet.cluster.nodefs shows them there).
KUBEADM_KUBELET_FLAGS = (
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
)
RUNTIME_ENDPOINT = "unix:///var/run/containerd/containerd.sock"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"


def kubelet_argv(config: ClusterConfig, paths: ClusterPaths, node: NodeSpec, knet: list[str]) -> list[str]:
    """The kubelet of a real node, run inside the node as `/usr/bin/kubelet ...` (knet.cli.binary:
    `ps` in the node shows the kubelet as kubeadm's systemd unit runs it). Its settings are the
    node's /var/lib/kubelet/config.yaml (clusterDNS, clusterDomain, staticPodPath, the client CA);
    its name is the node's hostname and its address the one /etc/hosts gives that name, as
    upstream's kubelet finds them. knet adds only what is its own: the state dir the node shows as
    /var/lib/kubelet (--root-dir) and the cgroup the cluster's pods live under (--cgroup-root).
    The control-plane label is not the kubelet's to set (NodeRestriction refuses `node-role.*`
    labels from a node): `knet up` adds it with the admin's credentials, as kubeadm's
    mark-control-plane phase does; the taint comes with registration, as kubeadm's does."""
    argv = [
        *knet, "as-binary", f"--image=registry.k8s.io/kubelet:{config.kubernetes_version}", KUBELET_BINARY,
        *KUBEADM_KUBELET_FLAGS,
        f"--container-runtime-endpoint={RUNTIME_ENDPOINT}",
        f"--pod-infra-container-image={PAUSE_IMAGE}",
        f"--root-dir={paths.node_dir(node.name)}",
        f"--cgroup-root={cgroup_root(config.name, node.name)}",
    ]
    if node.is_control_plane:
        argv += [f"--register-with-taints={CONTROL_PLANE_LABEL}:NoSchedule"]
    return argv


SUPERVISOR_STATE = "kubelet.supervisor"  # in the node's dir: "CHILD_PID RESTARTS"
SUPERVISED_ARGV = "kubelet.argv"         # in the node's dir: the kubelet's argv (JSON)


def supervised(argv_file: str, state_file: str) -> list[str]:
    """The command running the argv in argv_file under knet's supervisor (knet.node.supervise),
    which restarts it when it dies."""
    return [sys.executable, "-m", "knet.node.supervise", f"--state={state_file}", f"--argv-file={argv_file}"]


def sim_node_list(nodes: tuple[NodeSpec, ...]) -> str:
    """The --sim-node-list file: `NAME IP` per line."""
    return "".join(f"{n.name} {n.ip}\n" for n in nodes)


def sim_kubelet_argv(config: ClusterConfig, paths: ClusterPaths, group: str, nodes: tuple[NodeSpec, ...],
                     node_list_file: str, knet: list[str], *, port: int) -> list[str]:
    """One `knet kubelet --dataplane=sim` process hosting simulated `nodes` (listed in node_list_file).

    `--hostname-override` names the node that hosts the process's static pods (the first one); the
    control plane gets its own process so that only it carries kubeadm's taint.
    """
    group_dir = paths.node_dir(group)
    host = nodes[0]
    argv = [
        *knet, "kubelet",
        "--dataplane=sim",
        f"--sim-node-list={node_list_file}",
        f"--hostname-override={host.name}",
        f"--node-ip={host.ip}",
        f"--kubeconfig={paths.kubelet_kubeconfig(group)}",
        f"--root-dir={group_dir}",
        f"--cluster-dns={config.dns_service_ip}",
        f"--cluster-domain={config.dns_domain}",
        f"--tls-cert-file={group_dir / 'pki' / 'kubelet.crt'}",
        f"--tls-private-key-file={group_dir / 'pki' / 'kubelet.key'}",
        f"--client-ca-file={paths.pki / 'ca.crt'}",
        f"--kubernetes-version={config.kubernetes_version}",
        "--address=127.0.0.1",
        f"--port={port}",
    ]
    if host.is_control_plane:
        argv += [
            f"--pod-manifest-path={paths.manifests_dir(host.name)}",
            f"--register-with-taints={CONTROL_PLANE_LABEL}:NoSchedule",
        ]
    return argv
