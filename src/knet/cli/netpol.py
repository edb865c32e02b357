"""`knet netpol-controller` (the network add-on DaemonSet's policy container) and `knet netpol
render` (the rules a node would get, without applying them: what a simulated cluster answers)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click

from knet.cli.runtime import run_component


@click.command("netpol-controller")
@click.option("--hostname-override", default="", help="This node's name (default: the hostname).")
@click.option("--mode", default="", type=click.Choice(["", "iptables", "nftables"]),
              help="Kernel framework (default: the mode in --kube-proxy-config, else iptables).")
@click.option("--kube-proxy-config", default="", help="The kube-proxy ConfigMap's config.conf (for its mode).")
@click.option("--kubeconfig", default="", help="Default: in-cluster / $KUBECONFIG.")
@click.option("--metrics-bind-address", default="0.0.0.0:9809", show_default=True,
              help="/metrics and /healthz (empty or :0: off).")
@click.option("--render-only", is_flag=True, help="Compute the rules and log them, never touch the kernel.")
@click.option("--cleanup", is_flag=True, help="Remove this controller's rules (both modes) and exit.")
@click.option("--v", "verbosity", default=2, type=int, help="Log verbosity (klog-style).")
def netpol_controller(hostname_override: str, mode: str, kube_proxy_config: str, kubeconfig: str,
                      metrics_bind_address: str, render_only: bool, cleanup: bool, verbosity: int) -> None:
    """Enforce NetworkPolicies on this node (iptables or nftables, next to kube-proxy's rules)."""
    from knet.netpol import controller, server
    from knet.proxy.netfilter import RealNetfilter

    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cleanup:
        for m in ("iptables", "nftables"):
            controller.cleanup(RealNetfilter(), m)
        return
    opts = server.Options(node=hostname_override, mode=mode, kube_proxy_config=kube_proxy_config,
                          kubeconfig=kubeconfig, metrics_bind_address=metrics_bind_address, apply=not render_only)
    try:
        run_component(server.run(opts))
    except KeyboardInterrupt:
        pass


async def _objects_from_cluster(kubeconfig: str | None) -> dict[str, list[dict[str, Any]]]:
    from knet.client import ApiClient, load_config

    out = {}
    async with ApiClient(load_config(kubeconfig)) as api:
        for api_version, resource in (("networking.k8s.io/v1", "networkpolicies"), ("v1", "pods"),
                                      ("v1", "namespaces")):
            out[resource] = (await api.list(api_version, resource, namespace=None)).get("items") or []
    return out


@click.command("render")
@click.option("--node", "node_name", required=True, help="The node whose pods' rules to render.")
@click.option("--mode", type=click.Choice(["iptables", "nftables"]), default="iptables", show_default=True)
@click.option("-f", "--filename", type=click.File("r"),
              help="NetworkPolicies, Pods and Namespaces (YAML); default: the live cluster.")
@click.option("--kubeconfig", default=None, help="For the live cluster (default $KUBECONFIG).")
def render_cmd(node_name: str, mode: str, filename: Any, kubeconfig: str | None) -> None:
    """Print the policy rules NODE's controller programs (iptables-restore input or an nft script)."""
    from knet.netpol import render
    from knet.netpol.compiler import compile_node

    by_kind = _load(filename, kubeconfig)
    rules = compile_node(node_name, by_kind["networkpolicies"], by_kind["pods"], by_kind["namespaces"])
    sys.stdout.write(render.render_nftables(rules) if mode == "nftables" else render.render_iptables(rules))


def _load(filename: Any, kubeconfig: str | None) -> dict[str, list[dict[str, Any]]]:
    from knet.cli.proxy import _objects_from_yaml

    if not filename:
        return asyncio.run(_objects_from_cluster(kubeconfig))
    objs = _objects_from_yaml(filename.read())
    return {"networkpolicies": [o for o in objs if o.get("kind") == "NetworkPolicy"],
            "pods": [o for o in objs if o.get("kind") == "Pod"],
            "namespaces": [o for o in objs if o.get("kind") == "Namespace"]}


@click.command("check")
@click.argument("source")
@click.argument("destination")
@click.option("--port", type=int, required=True)
@click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp", show_default=True)
@click.option("-f", "--filename", type=click.File("r"), help="Objects (YAML); default: the live cluster.")
@click.option("--kubeconfig", default=None)
def check_cmd(source: str, destination: str, port: int, protocol: str, filename: Any, kubeconfig: str | None) -> None:
    """Would a new connection from pod SOURCE to pod DESTINATION (NAMESPACE/NAME, or an IP for
    SOURCE) on PORT be allowed? Evaluates every node's compiled rules as the kernel would; exit 0
    allowed, 1 denied. Works on simulated clusters, whose add-on programs no kernel."""
    from knet.netpol.compiler import compile_node, key_of, pod_ip
    from knet.netpol.verdict import allowed

    objs = _load(filename, kubeconfig)
    ips = {key_of(p): pod_ip(p) for p in objs["pods"]}

    def address(ref: str) -> str:
        if ref in ips and ips[ref]:
            return ips[ref]
        if ref.replace(".", "").isdigit():
            return ref
        raise click.ClickException(f"no pod {ref!r} with an address")
    nodes = {(p.get("spec") or {}).get("nodeName") for p in objs["pods"]} - {None, ""}
    rules = [compile_node(n, objs["networkpolicies"], objs["pods"], objs["namespaces"]) for n in sorted(nodes)]
    ok = allowed(rules, address(source), address(destination), protocol, port)
    click.echo(f"{source} -> {destination}:{port}/{protocol}: {'allowed' if ok else 'denied'}")
    sys.exit(0 if ok else 1)


@click.group("netpol")
def netpol_group() -> None:
    """NetworkPolicy tools."""


netpol_group.add_command(render_cmd)
netpol_group.add_command(check_cmd)


def register(group: click.Group) -> None:
    group.add_command(netpol_controller)
    group.add_command(netpol_group)
