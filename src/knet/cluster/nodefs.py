"""A kubeadm node's filesystem and its sshd, per node, backed by the cluster's state dir (issue 15).

`knet up` writes, for each node of the real dataplane, the plan its PID 1 builds the node's view
from (knet.net.nodeview: /etc, /var/lib, /var/log, /opt and /root as overlays of the host's over a
tmpfs, the state dir's files bound at kubeadm's paths), the kubelet's config.yaml, and the node's
OpenSSH server: its host key, its config (listening on the node's address only) and root's
~/.ssh (the cluster's client key on the control plane, trusted by every node).
Nothing here writes to the host's /etc, /var, /opt or /root: only the state dir.

Where kubeadm's paths come from (STATE = the cluster's state dir, NODE = STATE/nodes/NAME):
  /etc/kubernetes/kubelet.conf      STATE/kubeconfig/kubelet-NAME.conf
  /etc/kubernetes/admin.conf, controller-manager.conf, scheduler.conf (control plane)
                                    STATE/kubeconfig/*.conf
  /etc/kubernetes/manifests/        NODE/manifests (the kubelet's --pod-manifest-path)
  /etc/kubernetes/pki/              STATE/pki (control plane); a worker has only pki/ca.crt
  /etc/cni/net.d/                   NODE/cni/net.d (the add-on's CNI agent writes the conflist)
  /opt/cni/bin/                     the host's CNI plugins (the kubelet's --cni-bin-dir), read-only
  /var/lib/kubelet/                 NODE (the kubelet's --root-dir: config.yaml, pods/, pki/)
  /var/lib/cni/networks/            NODE/cni/ipam (host-local's leases)
  /var/lib/etcd/                    STATE/data/etcd (control plane, etcd storage)
  /var/log/pods/, /var/log/containers/   NODE/log/pods, NODE/log/containers
  /root/.ssh/                       NODE/ssh/root; /root/.kube/config: admin.conf (control plane)
  /run/containerd/                  NODE/run/containerd (the kubelet's runtime endpoint, containerd.sock)
  /etc/crictl.yaml                  NODE/crictl.yaml (runtime-endpoint: that socket)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from knet.cluster import hostdirs
from knet.cluster.agents import CNI_BIN_DIR, RUNTIME_ENDPOINT
from knet.cluster.config import ClusterConfig, NodeSpec
from knet.cluster.paths import ClusterPaths
from knet.cluster.pki import write_file

OVERLAID = ("/etc", "/var/lib", "/var/log", "/opt", "/root")
# Every path some node shows (view_plan): one node's lacking them must not show the host's.
KUBEADM_PATHS = frozenset({"/etc/kubernetes", "/etc/cni", "/opt/cni", "/var/lib/kubelet", "/var/lib/etcd",
                           "/var/lib/cni", "/var/log/pods", "/var/log/containers"})
VIEW_PLAN = "view.json"            # knet.net.machines.VIEW_PLAN
SSHD_CONFIG = "ssh/sshd_config"    # knet.net.machines.SSHD_CONFIG
KUBELET_CONFIG = "config.yaml"     # /var/lib/kubelet/config.yaml
CRICTL_CONFIG = "crictl.yaml"      # /etc/crictl.yaml
# The runtime endpoint's directory (containerd's). Not under an overlaid directory: the node's
# PID 1 binds the node's own over it (a mount point knet up makes on the host's /run, a tmpfs,
# when missing, as for sshd's /run/sshd), so that a host's containerd socket is never the node's.
RUNTIME_DIR = "/run/containerd"
SSHD = "/usr/sbin/sshd"
SSH_PORT = 22


def ssh_dir(paths: ClusterPaths) -> Path:
    """The cluster's ssh client key (id_ed25519), which every node's root trusts."""
    return paths.root / "ssh"


def node_ssh_dir(paths: ClusterPaths, node: str) -> Path:
    return paths.node_dir(node) / "ssh"


def root_ssh_dir(paths: ClusterPaths, node: str) -> Path:
    """What the node's root sees as ~/.ssh."""
    return node_ssh_dir(paths, node) / "root"


def log_dirs(paths: ClusterPaths, node: str) -> tuple[Path, Path]:
    """(/var/log/pods, /var/log/containers) of the node."""
    return paths.node_dir(node) / "log" / "pods", paths.node_dir(node) / "log" / "containers"


def view_plan(config: ClusterConfig, paths: ClusterPaths, node: NodeSpec) -> dict[str, Any]:
    """The node's filesystem plan (knet.net.nodeview). Pure."""
    ndir = paths.node_dir(node.name)
    binds: list[tuple[Path | str, str, bool]] = [(paths.kubelet_kubeconfig(node.name), "/etc/kubernetes/kubelet.conf", True)]
    if node.is_control_plane:
        binds += [
            (paths.admin_kubeconfig, "/etc/kubernetes/admin.conf", True),
            (paths.component_kubeconfig("controller-manager"), "/etc/kubernetes/controller-manager.conf", True),
            (paths.component_kubeconfig("scheduler"), "/etc/kubernetes/scheduler.conf", True),
            (paths.pki, "/etc/kubernetes/pki", False),
        ]
    else:  # kubeadm join leaves a worker only the CA's certificate
        binds.append((paths.pki / "ca.crt", "/etc/kubernetes/pki/ca.crt", True))
    binds += [
        (paths.manifests_dir(node.name), "/etc/kubernetes/manifests", False),
        (paths.cni_conf_dir(node.name), "/etc/cni/net.d", False),
        (CNI_BIN_DIR, "/opt/cni/bin", True),
        (ndir, "/var/lib/kubelet", False),
        (ndir / "cni" / "ipam", "/var/lib/cni/networks", False),
    ]
    if node.is_control_plane and config.storage == "etcd":
        binds.append((paths.data / "etcd", "/var/lib/etcd", False))
    pods_log, containers_log = log_dirs(paths, node.name)
    binds += [(pods_log, "/var/log/pods", False), (containers_log, "/var/log/containers", False),
              (root_ssh_dir(paths, node.name), "/root/.ssh", False),
              (runtime_dir(paths, node.name), RUNTIME_DIR, False),
              (ndir / CRICTL_CONFIG, "/etc/crictl.yaml", True)]
    if node.is_control_plane:  # kubectl as root, as after kubeadm's "To start using your cluster"
        binds.append((paths.admin_kubeconfig, "/root/.kube/config", True))
    return {
        "overlays": list(OVERLAID),
        # The state dir stays the host's, wherever it is (the default is under /var/lib).
        "keep": [str(paths.root.parent)],
        "binds": [[str(s), t, ro] for s, t, ro in binds],
        # kubeadm's paths that are not this node's (the host may have them: Debian's etcd package
        # makes /var/lib/etcd): a node shows only its own.
        "hide": sorted(KUBEADM_PATHS - {t for _, t, _ in binds}),
    }


def runtime_dir(paths: ClusterPaths, node: str) -> Path:
    """The node's /run/containerd: where its kubelet serves the runtime endpoint (the socket)."""
    return paths.node_dir(node) / "run" / "containerd"


def crictl_config(endpoint: str) -> str:
    """/etc/crictl.yaml as on a kubeadm lab node: crictl asks the node's runtime endpoint. Pure."""
    return yaml.safe_dump({"runtime-endpoint": endpoint, "image-endpoint": endpoint, "timeout": 10,
                           "debug": False}, sort_keys=False)


def kubelet_config_file(kubelet_configuration: dict[str, Any]) -> str:
    """/var/lib/kubelet/config.yaml: the kubelet-config ConfigMap's KubeletConfiguration, as
    kubeadm writes it on each node."""
    return yaml.safe_dump(kubelet_configuration, sort_keys=True)


def sshd_config(node: NodeSpec, host_key: Path) -> str:
    """The node's sshd: keys only, root by key, on the node's address only. Pure."""
    return "\n".join([
        "# sshd of a knet node (written by knet up): ssh.service of a kubeadm node",
        f"ListenAddress {node.ip}:{SSH_PORT}",
        f"HostKey {host_key}",
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def known_hosts(host_keys: dict[NodeSpec, str]) -> str:
    """root's known_hosts: every node by name and address, so `ssh node01` asks nothing. Pure."""
    return "".join(f"{n.name},{n.ip} {key.split()[0]} {key.split()[1]}\n" for n, key in host_keys.items())


def _keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at path (kept if there already); returns the public key line."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                       capture_output=True)
    return Path(f"{path}.pub").read_text().strip()


def write_node_files(config: ClusterConfig, paths: ClusterPaths, kubelet_configuration: dict[str, Any]) -> None:
    """Every real node's view plan, kubelet config.yaml, ssh keys and sshd config."""
    with_sshd = os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None
    if not with_sshd:  # the rest of the node works without it
        print(f"knet: {SSHD} or ssh-keygen not found (install openssh-server): nodes run no sshd, "
              "`ssh NODE` is refused", file=sys.stderr)
    client_key = ssh_dir(paths) / "id_ed25519"
    client_pub = _keygen(client_key, f"root@{config.control_plane.name}") if with_sshd else ""
    host_keys = {n: _keygen(node_ssh_dir(paths, n.name) / "ssh_host_ed25519_key", f"root@{n.name}")
                 for n in config.nodes} if with_sshd else {}
    for node in config.nodes:
        ndir = paths.node_dir(node.name)
        for d in (paths.manifests_dir(node.name), paths.cni_conf_dir(node.name), ndir / "cni" / "ipam",
                  *log_dirs(paths, node.name)):
            d.mkdir(parents=True, exist_ok=True)
        if node.is_control_plane and config.storage == "etcd":
            (paths.data / "etcd").mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(ndir / KUBELET_CONFIG, kubelet_config_file(kubelet_configuration))
        write_file(ndir / CRICTL_CONFIG, crictl_config(RUNTIME_ENDPOINT))
        runtime_dir(paths, node.name).mkdir(parents=True, exist_ok=True)
        os.chmod(runtime_dir(paths, node.name), 0o711)
        home_ssh = root_ssh_dir(paths, node.name)
        home_ssh.mkdir(parents=True, exist_ok=True)
        os.chmod(home_ssh, 0o700)  # sshd's StrictModes
        if with_sshd:
            write_file(home_ssh / "authorized_keys", client_pub + "\n", 0o600)
            write_file(home_ssh / "known_hosts", known_hosts(host_keys), 0o644)
            if node.is_control_plane:
                write_file(home_ssh / "id_ed25519", client_key.read_bytes(), 0o600)
                write_file(home_ssh / "id_ed25519.pub", client_pub + "\n", 0o644)
            write_file(ndir / SSHD_CONFIG, sshd_config(node, node_ssh_dir(paths, node.name) / "ssh_host_ed25519_key"))
        write_file(ndir / VIEW_PLAN, json.dumps(view_plan(config, paths, node), indent=1))
    # Made if missing, noted so that the last `knet down` removes them (knet.cluster.hostdirs).
    hostdirs.ensure(RUNTIME_DIR, 0o711)  # the mount point of every node's own /run/containerd
    if with_sshd:
        # sshd's privilege separation directory (compiled in): what ssh.service's
        # RuntimeDirectory makes on any machine with openssh-server; empty, root's, 0755.
        hostdirs.ensure("/run/sshd", 0o755)
