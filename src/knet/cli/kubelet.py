"""`knet kubelet` (the node agent), `knet workload agnhost|netexec`, `knet crictl`."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import urllib.request

import click

from knet.cli.runtime import run_component


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
@click.option("--hostname-override", default="")
@click.option("--node-ip", default="")
@click.option("--kubeconfig", default=None)
@click.option("--root-dir", default="/var/lib/kubelet")
@click.option("--pod-manifest-path", default=None)
@click.option("--cluster-dns", default="", help="comma-separated DNS server IPs")
@click.option("--cluster-domain", default="cluster.local")
@click.option("--dataplane", type=click.Choice(["real", "sim"]), default="real")
@click.option("--cni-bin-dir", default="/usr/lib/cni")
@click.option("--cni-conf-dir", default="/etc/cni/net.d")
@click.option("--tls-cert-file", default=None)
@click.option("--tls-private-key-file", default=None)
@click.option("--client-ca-file", default=None)
@click.option("--address", default="0.0.0.0")
@click.option("--port", type=int, default=10250)
@click.option("--register-with-taints", default="")
@click.option("--node-labels", default="")
@click.option("--pod-cidr", default=None)
@click.option("--kubernetes-version", default="v1.29.0")
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
def kubelet_cmd(**opts) -> None:
    """The node agent: registers the node, runs its pods, reports their status."""
    from knet.node.agent import Kubelet
    from knet.node.config import KubeletConfig, parse_labels, parse_node_list, parse_taints, sim_node_names

    logging.basicConfig(level=logging.DEBUG if opts["verbosity"] >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim_nodes = []
    if opts["sim_node_list"]:
        with open(opts["sim_node_list"]) as f:
            sim_nodes = parse_node_list(f.read(), opts["sim_node_cidr"])
    elif opts["sim_nodes"]:
        sim_nodes = sim_node_names(opts["sim_nodes"], opts["sim_node_prefix"], opts["sim_node_cidr"])
    if not sim_nodes and not opts["hostname_override"]:
        import socket

        opts["hostname_override"] = socket.gethostname()
    freq = opts["node_status_update_frequency"].rstrip("s")
    cfg = KubeletConfig(
        hostname_override=opts["hostname_override"], node_ip=opts["node_ip"] or "127.0.0.1",
        kubeconfig=opts["kubeconfig"], root_dir=opts["root_dir"], pod_manifest_path=opts["pod_manifest_path"],
        cluster_dns=[s for s in opts["cluster_dns"].split(",") if s], cluster_domain=opts["cluster_domain"],
        dataplane=opts["dataplane"], cni_bin_dir=opts["cni_bin_dir"], cni_conf_dir=opts["cni_conf_dir"],
        tls_cert_file=opts["tls_cert_file"], tls_private_key_file=opts["tls_private_key_file"],
        client_ca_file=opts["client_ca_file"], address=opts["address"], port=opts["port"],
        register_with_taints=parse_taints(opts["register_with_taints"]),
        node_labels=parse_labels(opts["node_labels"]), pod_cidr=opts["pod_cidr"],
        kubernetes_version=opts["kubernetes_version"], max_pods=opts["max_pods"],
        node_status_update_frequency=float(freq), node_lease_duration_seconds=opts["node_lease_duration_seconds"],
        sim_nodes=sim_nodes, cgroup_root=opts["cgroup_root"], pod_max_pids=opts["pod_max_pids"],
    )
    run_component(_until_signalled(Kubelet(cfg).run()))


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


def _kubelet_rows(cluster: str, node: str) -> list[dict]:
    from knet.net.state import node_dir

    endpoint_file = node_dir(cluster, node) / "kubelet-endpoint"
    base = endpoint_file.read_text().strip() if endpoint_file.exists() else None
    if base is None:
        raise click.ClickException(f"no running kubelet recorded for node {node!r} of cluster {cluster!r}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    pki = node_dir(cluster, node).parent.parent / "pki"
    crt, key = pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
    if crt.exists() and key.exists():
        ctx.load_cert_chain(str(crt), str(key))
    with urllib.request.urlopen(f"{base}/containers", context=ctx, timeout=5) as resp:
        rows = json.loads(resp.read())["containers"]
    return [r for r in rows if r["node"] == node]


@click.command("crictl")
@click.option("--name", "cluster", default="knet", help="cluster name")
@click.argument("node")
@click.argument("what", type=click.Choice(["ps", "pods"]), default="ps")
@click.option("-a", "--all", "show_all", is_flag=True, help="show all containers, not only running ones")
@click.option("--name-filter", "name_filter", default=None)
def crictl_cmd(cluster: str, node: str, what: str, show_all: bool, name_filter: str | None) -> None:
    """List a node's containers (`ps`) or pod sandboxes (`pods`) in crictl's columns."""
    from knet.node.crictl import format_pods, format_ps

    rows = _kubelet_rows(cluster, node)
    sys.stdout.write(format_ps(rows, show_all=show_all, name=name_filter) if what == "ps" else format_pods(rows))


def register(group: click.Group) -> None:
    group.add_command(kubelet_cmd)
    group.add_command(workload_group)
    group.add_command(crictl_cmd)
