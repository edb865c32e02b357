"""`knet kubelet` (the node agent), `knet workload agnhost|netexec`, `knet crictl`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import click

from knet.cli.runtime import run_component
from knet.node import kubeletconfig


async def _until_signalled(coro) -> None:
    """SIGTERM/SIGINT cancel the agent, so that it stops the pods it started (static control-plane
    pods in simulated mode are host processes that would otherwise outlive it)."""
    import signal

    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


@click.command("kubelet", context_settings={"ignore_unknown_options": False})
@click.option("--config", "config_file", default=None,
              help="The kubelet's KubeletConfiguration file; flags given on the command line override it.")
@click.option("--bootstrap-kubeconfig", default=None,
              help="Used only when --kubeconfig does not exist (TLS bootstrap: knet does not do it).")
@click.option("--container-runtime-endpoint", default="",
              help="unix:///PATH: the kubelet serves its container runtime endpoint (what crictl talks to) there.")
@click.option("--pod-infra-container-image", default="registry.k8s.io/pause:3.9",
              help="The sandbox (pause) image each pod's sandbox is reported with.")
@click.option("--cert-dir", default=kubeletconfig.DEFAULT_CERT_DIR)
@click.option("--hostname-override", default="")
@click.option("--node-ip", default="")
@click.option("--kubeconfig", default=None)
@click.option("--root-dir", default="/var/lib/kubelet")
@click.option("--pod-manifest-path", default=None)
@click.option("--cluster-dns", default="", help="comma-separated DNS server IPs")
@click.option("--cluster-domain", default="cluster.local")
@click.option("--dataplane", type=click.Choice(["real", "sim"]), default="real")
@click.option("--cni-bin-dir", default="", help="default: /opt/cni/bin if it has plugins, else /usr/lib/cni")
@click.option("--cni-conf-dir", default="/etc/cni/net.d")
@click.option("--tls-cert-file", default=None)
@click.option("--tls-private-key-file", default=None)
@click.option("--client-ca-file", default=None)
@click.option("--address", default="0.0.0.0")
@click.option("--port", type=int, default=10250)
@click.option("--register-with-taints", default="")
@click.option("--node-labels", default="")
@click.option("--pod-cidr", default=None)
@click.option("--kubernetes-version", envvar="KNET_KUBERNETES_VERSION", default="v1.29.0")
@click.option("--max-pods", type=int, default=110)
@click.option("--cgroup-root", default="")
@click.option("--pod-max-pids", type=int, default=-1)
@click.option("--node-status-update-frequency", default="10s")
@click.option("--node-lease-duration-seconds", type=int, default=40)
@click.option("--sim-nodes", type=int, default=0)
@click.option("--sim-node-prefix", default="sim-node-")
@click.option("--sim-node-cidr", default="172.31.0.0/16")
@click.option("--sim-node-list", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("-v", "--v", "verbosity", type=int, default=1)
@click.pass_context
def kubelet_cmd(ctx: click.Context, **opts) -> None:
    """The node agent: registers the node, runs its pods, reports their status."""
    from knet.node.agent import Kubelet

    logging.basicConfig(level=logging.DEBUG if opts["verbosity"] >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_component(_until_signalled(Kubelet(settings(ctx, opts)).run()))


def settings(ctx: click.Context, opts: dict):
    """The kubelet's KubeletConfig from its parsed command line (and --config's file)."""
    from knet.node.config import parse_node_list, sim_node_names

    sim_nodes = []
    if opts["sim_node_list"]:
        with open(opts["sim_node_list"]) as f:
            sim_nodes = parse_node_list(f.read(), opts["sim_node_cidr"])
    elif opts["sim_nodes"]:
        sim_nodes = sim_node_names(opts["sim_nodes"], opts["sim_node_prefix"], opts["sim_node_cidr"])
    given = {name for name in opts if ctx.get_parameter_source(name) in (
        click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)}
    try:
        cfg = kubelet_config(opts, given, sim_nodes, read_config_file(opts["config_file"]))
    except (kubeletconfig.KubeletConfigError, ValueError, OSError) as exc:
        raise click.ClickException(f"failed to run Kubelet: {exc}") from exc
    if not sim_nodes and not cfg.hostname_override:
        import socket

        # upstream: the node is named after the machine's hostname (lower-cased)
        cfg.hostname_override = socket.gethostname().lower()
    if not cfg.node_ip:
        cfg.node_ip = node_ip_of(cfg.hostname_override) if not sim_nodes else "127.0.0.1"
    return cfg


def read_config_file(path: str | None) -> dict:
    """The fields of --config's KubeletConfiguration ({} without --config)."""
    if not path:
        return {}
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise click.ClickException(f'failed to load Kubelet config file {path}, error failed to read kubelet config '
                                   f'file "{path}", error: open {path}: {(exc.strerror or str(exc)).lower()}') from exc
    try:
        return kubeletconfig.parse(text, path)
    except kubeletconfig.KubeletConfigError as exc:
        raise click.ClickException(f"failed to run Kubelet: {exc}") from exc


def kubelet_config(opts: dict, given: set[str], sim_nodes: list, from_file: dict):
    """The KubeletConfig: flags given on the command line over the config file over the defaults."""
    from knet.node.config import KubeletConfig, parse_labels, parse_taints

    kubeconfig = opts["kubeconfig"]
    if kubeconfig and not os.path.exists(kubeconfig) and opts["bootstrap_kubeconfig"]:
        raise ValueError(f"--kubeconfig {kubeconfig} does not exist and knet's kubelet does no TLS bootstrap "
                         f"with --bootstrap-kubeconfig {opts['bootstrap_kubeconfig']}")
    freq = opts["node_status_update_frequency"]
    flags = {
        "hostname_override": opts["hostname_override"], "node_ip": opts["node_ip"], "kubeconfig": kubeconfig,
        "root_dir": opts["root_dir"], "pod_manifest_path": opts["pod_manifest_path"],
        "cluster_dns": [s for s in opts["cluster_dns"].split(",") if s], "cluster_domain": opts["cluster_domain"],
        "dataplane": opts["dataplane"], "cni_bin_dir": opts["cni_bin_dir"], "cni_conf_dir": opts["cni_conf_dir"],
        "tls_cert_file": opts["tls_cert_file"], "tls_private_key_file": opts["tls_private_key_file"],
        "client_ca_file": opts["client_ca_file"], "address": opts["address"], "port": opts["port"],
        "register_with_taints": parse_taints(opts["register_with_taints"]),
        "node_labels": parse_labels(opts["node_labels"]), "pod_cidr": opts["pod_cidr"],
        "kubernetes_version": opts["kubernetes_version"], "max_pods": opts["max_pods"],
        "node_status_update_frequency": kubeletconfig.parse_duration(freq if freq[-1:].isalpha() else freq + "s"),
        "node_lease_duration_seconds": opts["node_lease_duration_seconds"], "cgroup_root": opts["cgroup_root"],
        "pod_max_pids": opts["pod_max_pids"], "container_runtime_endpoint": opts["container_runtime_endpoint"],
        "pod_infra_container_image": opts["pod_infra_container_image"],
    }
    # each KubeletConfig field here is set by the option of the same name
    explicit = {field: value for field, value in flags.items() if field in given}
    defaults = {field: value for field, value in flags.items() if field not in explicit}
    merged = kubeletconfig.merge(defaults, from_file, explicit)
    if not merged["tls_cert_file"] and not merged["tls_private_key_file"]:
        crt, key = kubeletconfig.default_tls_files(opts["cert_dir"])
        if os.path.exists(crt) and os.path.exists(key):
            merged["tls_cert_file"], merged["tls_private_key_file"] = crt, key
    if not merged["cni_bin_dir"]:
        merged["cni_bin_dir"] = default_cni_bin_dir()
    return KubeletConfig(**merged, sim_nodes=sim_nodes)


CNI_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")


def default_cni_bin_dir() -> str:
    """containerd's CNI bin_dir (/opt/cni/bin, which a knet node shows), else where Debian's
    containernetworking-plugins puts them."""
    for d in CNI_BIN_DIRS:
        if os.path.isfile(os.path.join(d, "loopback")):
            return d
    return CNI_BIN_DIRS[-1]


def node_ip_of(hostname: str) -> str:
    """Upstream's node IP without --node-ip: the hostname's address (not a loopback one), else
    the address of the interface of the default route."""
    import ipaddress
    import socket
    import subprocess

    try:
        ip = socket.gethostbyname(hostname)
        if not ipaddress.ip_address(ip).is_loopback:
            return ip
    except OSError:
        pass
    route = subprocess.run(["ip", "-4", "-o", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    if "dev" in route:
        dev = route[route.index("dev") + 1]
        addr = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", dev], capture_output=True, text=True).stdout.split()
        if "inet" in addr:
            return addr[addr.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


@click.group("workload")
def workload_group() -> None:
    """Built-in workloads that stand in for container images."""


_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@workload_group.command("agnhost", context_settings=_PASS_THROUGH)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def agnhost_cmd(argv: tuple[str, ...]) -> None:
    """The e2e test image's tool: `agnhost netexec|serve-hostname|connect|porter|pause|dns-*` ARGS."""
    from knet.node.agnhost.main import main

    sys.exit(main(list(argv)))


@workload_group.command("netexec", context_settings=_PASS_THROUGH)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def netexec_cmd(argv: tuple[str, ...]) -> None:
    """`agnhost netexec` (HTTP /hostname, /clientip, /echo, /dial, ... plus UDP on 8081)."""
    from knet.node.agnhost.main import main

    sys.exit(main(["netexec", *argv]))


# Where a node's kubelet serves its runtime endpoint, as the host sees it (knet.cluster.nodefs shows
# the node's STATE/nodes/NODE/run/containerd as /run/containerd).
def node_runtime_socket(cluster: str, node: str) -> str:
    from knet.net.state import node_dir

    return str(node_dir(cluster, node) / "run" / "containerd" / "containerd.sock")


@click.command("crictl", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                           "help_option_names": []})
@click.option("--name", "cluster", default="knet", help="cluster name")
@click.argument("node")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def crictl_cmd(cluster: str, node: str, argv: tuple[str, ...]) -> None:
    """crictl on NODE's container runtime endpoint: `knet crictl [--name CLUSTER] NODE ps|pods|inspect|
    inspectp|logs|images|info|version ...` (what `crictl ...` answers in the node's shell)."""
    from knet.cli.cluster import cluster_config_with_node
    from knet.node import crictl

    cfg = cluster_config_with_node(cluster, node)  # an unknown cluster or node is said as such
    path = node_runtime_socket(cluster, node)
    if not os.path.exists(path) and cfg.dataplane != "real":
        raise click.ClickException(
            f'cluster "{cluster}" has a simulated dataplane: node "{node}" runs no containers for crictl to list '
            "(create the cluster with --dataplane real, as root; kubectl get pods -o wide shows its pods)")
    if not os.path.exists(path):
        raise click.ClickException(f"no container runtime endpoint of node {node!r} of cluster {cluster!r} "
                                   f"({path} is missing: is the node's kubelet running?)")
    sys.exit(crictl.run(["--runtime-endpoint", f"unix://{path}", *argv]))


def register(group: click.Group) -> None:
    group.add_command(kubelet_cmd)
    group.add_command(workload_group)
    group.add_command(crictl_cmd)
