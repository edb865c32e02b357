"""Files of a new cluster: resolved config, PKI, kubeconfigs, tokens, static pod manifests.

Effectful but local (only the cluster's state dir); no processes, no namespaces.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import yaml

from knet.cluster import pki
from knet.cluster.config import ClusterConfig
from knet.cluster.manifests import control_plane_manifests
from knet.cluster.paths import ClusterPaths


def knet_argv() -> list[str]:
    """How the node agents run `knet` on this machine (the script next to this Python first)."""
    beside = Path(sys.executable).parent / "knet"
    if beside.exists():
        return [str(beside)]
    import shutil

    found = shutil.which("knet")
    if found:
        return [found]
    return [sys.executable, "-c", "from knet.cli.main import main; main()"]


def write_config(config: ClusterConfig, paths: ClusterPaths) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    for d in (paths.logs, paths.pids, paths.data, paths.kubeconfig_dir):
        d.mkdir(parents=True, exist_ok=True)
    pki.write_file(paths.config_file, yaml.safe_dump(config.to_dict(), sort_keys=False))


def write_pki(config: ClusterConfig, paths: ClusterPaths) -> None:
    """kubeadm's certificate set plus one kubeconfig per component and node."""
    ips = {"127.0.0.1", config.kubernetes_service_ip, config.control_plane.ip, config.api_server_host}
    cp = pki.create_control_plane_pki(
        paths.pki, apiserver_ips=sorted(ips), apiserver_names=[config.control_plane.name], reuse_ca=False
    )
    ca = cp.ca()
    if config.storage == "etcd":
        pki.create_etcd_pki(paths.pki, node_name=config.control_plane.name,
                            node_ips=sorted({config.control_plane.ip, config.api_server_host}))
    server = config.server_url
    admin = pki.load_cert_key(paths.pki, "admin")
    pki.write_kubeconfig(paths.admin_kubeconfig, pki.kubeconfig(
        cluster_name="kubernetes", server=server, ca_pem=ca.cert_pem, user="kubernetes-admin", client=admin))
    pki.write_client_kubeconfig(paths.component_kubeconfig("controller-manager"), ca, server=server,
                                user="system:kube-controller-manager")
    pki.write_client_kubeconfig(paths.component_kubeconfig("scheduler"), ca, server=server,
                                user="system:kube-scheduler")
    # Real nodes each run their own agent with its own identity; simulated nodes share two
    # agents (up.start_agents), which get theirs when they start.
    if config.dataplane == "real":
        for node in config.nodes:
            write_node_identity(config, paths, ca, node.name, node.ip)
        from knet.cluster import addons, nodefs

        nodefs.write_node_files(config, paths, addons.kubelet_configuration(config))
    # A static token for scripted access (kube-apiserver --token-auth-file format).
    token = secrets.token_hex(16)
    pki.write_file(paths.token_file, f'{token},kubernetes-admin,kubernetes-admin,"system:masters"\n', 0o600)


# The one agent hosting every simulated worker is no single node, so it cannot be one for the
# Node authorizer: it gets its own user, which `knet up` binds to the `system:node` ClusterRole
# (the pre-Node-authorizer way; addons.sim_kubelet_binding). NodeRestriction leaves it alone.
SIM_WORKERS_USER = "kubelet-sim-workers"


def node_agent_identity(node: str) -> tuple[str, list[str]]:
    """(user, groups) of the agent for `node`: `system:node:NODE` in `system:nodes` (the Node
    authorizer and NodeRestriction apply), or the shared simulated workers' agent."""
    if node == "sim-workers":
        return SIM_WORKERS_USER, []
    return f"system:node:{node}", ["system:nodes"]


def write_node_identity(config: ClusterConfig, paths: ClusterPaths, ca: pki.CertKey, node: str, ip: str) -> None:
    """The node agent's client kubeconfig (node_agent_identity) and its serving certificate."""
    user, groups = node_agent_identity(node)
    pki.write_client_kubeconfig(paths.kubelet_kubeconfig(node), ca, server=config.server_url, user=user,
                                groups=groups)
    serving = pki.issue_cert(ca, node, dns_names=[node, "localhost"], ip_addresses=sorted({ip, "127.0.0.1"}),
                             server=True)
    pki.write_cert_key(paths.node_dir(node) / "pki", "kubelet", serving)


def write_manifests(config: ClusterConfig, paths: ClusterPaths) -> None:
    manifest_dir = paths.manifests_dir(config.control_plane.name)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for worker in config.workers:
        paths.manifests_dir(worker.name).mkdir(parents=True, exist_ok=True)
    for file_name, pod in control_plane_manifests(config, paths).items():
        pki.write_file(manifest_dir / file_name, yaml.safe_dump(pod, sort_keys=False))
