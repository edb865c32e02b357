"""`knet kube-proxy` (the DaemonSet pod's process) and `knet proxy render` (rules without root)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click
import yaml

from knet.cli.runtime import run_component


@click.command("kube-proxy", context_settings={"ignore_unknown_options": False})
@click.option("--config", "config_path", help="KubeProxyConfiguration file (the ConfigMap's config.conf).")
@click.option("--hostname-override", default="", help="This node's name.")
@click.option("--proxy-mode", default="", type=click.Choice(["", "iptables", "nftables"]))
@click.option("--kubeconfig", default="", help="Overrides clientConnection.kubeconfig.")
@click.option("--cluster-cidr", default="")
@click.option("--metrics-bind-address", default="")
@click.option("--healthz-bind-address", default="")
@click.option("--v", "verbosity", default=2, type=int, help="Log verbosity (klog-style).")
def kube_proxy(config_path: str | None, hostname_override: str, proxy_mode: str, kubeconfig: str,
               cluster_cidr: str, metrics_bind_address: str, healthz_bind_address: str, verbosity: int) -> None:
    """Program this node's iptables or nftables rules for Services (kube-proxy)."""
    from knet.proxy import server

    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = server.load(config_path, server.Overrides(
        hostname=hostname_override, mode=proxy_mode, kubeconfig=kubeconfig, cluster_cidr=cluster_cidr,
        metrics_bind_address=metrics_bind_address, healthz_bind_address=healthz_bind_address))
    try:
        run_component(server.run(cfg))
    except KeyboardInterrupt:
        pass


def _objects_from_yaml(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc.get("kind", "").endswith("List") and "items" in doc:
            for item in doc["items"]:
                item.setdefault("kind", doc["kind"][:-4] if doc["kind"] != "List" else item.get("kind"))
                out.append(item)
        else:
            out.append(doc)
    return out


async def _objects_from_cluster(kubeconfig: str | None) -> list[dict[str, Any]]:
    from knet.client import ApiClient, load_config

    async with ApiClient(load_config(kubeconfig)) as api:
        svcs = await api.list("v1", "services", namespace=None)
        slices = await api.list("discovery.k8s.io/v1", "endpointslices", namespace=None)
    return ([{**s, "kind": "Service"} for s in svcs.get("items") or []]
            + [{**s, "kind": "EndpointSlice"} for s in slices.get("items") or []])


@click.command("render")
@click.option("--mode", type=click.Choice(["iptables", "nftables"]), default="iptables", show_default=True)
@click.option("--node", "node_name", default="", help="Node name (decides which endpoints are local).")
@click.option("--node-ip", default="", help="The node's address.")
@click.option("--cluster-cidr", default="", help="Pod CIDR: traffic from it is not masqueraded.")
@click.option("-f", "--filename", type=click.File("r"), help="Services and EndpointSlices (YAML); default: the live cluster.")
@click.option("--kubeconfig", default=None, help="For the live cluster (default $KUBECONFIG).")
@click.option("--masquerade-all", is_flag=True)
@click.option("--masquerade-bit", default=14, show_default=True, type=int)
@click.option("--localhost-nodeports/--no-localhost-nodeports", default=True, show_default=True)
@click.option("--nodeport-addresses", default="", help="Comma-separated CIDRs (default: every local address).")
@click.option("--service-cidr", default="", help="nftables: drop traffic to unallocated ClusterIPs in it.")
@click.option("--kubernetes-version", default="", help="nftables: write this kube-proxy release's rules "
              "(v1.36+: no endpoint chains; v1.37+: no map for one endpoint); default v1.29's.")
def render(mode: str, node_name: str, node_ip: str, cluster_cidr: str, filename: Any, kubeconfig: str | None,
           masquerade_all: bool, masquerade_bit: int, localhost_nodeports: bool, nodeport_addresses: str,
           service_cidr: str, kubernetes_version: str) -> None:
    """Print the rules kube-proxy on NODE would program (iptables-restore input or an nft script)."""
    from knet.proxy import iptables, nftables
    from knet.proxy.model import state_from_objects
    from knet.proxy.options import RenderOptions

    objects = _objects_from_yaml(filename.read()) if filename else asyncio.run(_objects_from_cluster(kubeconfig))
    npa = tuple(c.strip() for c in nodeport_addresses.split(",") if c.strip())
    opts = RenderOptions(node_name=node_name, node_ip=node_ip, cluster_cidr=cluster_cidr,
                         masquerade_all=masquerade_all, masquerade_bit=masquerade_bit,
                         localhost_node_ports=localhost_nodeports, node_port_addresses=npa,
                         node_ips=(node_ip, "127.0.0.1") if node_ip else ("127.0.0.1",),
                         service_cidrs=tuple(c for c in service_cidr.split(",") if c),
                         kubernetes_version=kubernetes_version)
    state = state_from_objects(objects, node_name)
    text = iptables.render(state, opts) if mode == "iptables" else nftables.render(state, opts)
    sys.stdout.write(text)


@click.group("proxy")
def proxy_group() -> None:
    """kube-proxy tools."""


proxy_group.add_command(render)


def register(group: click.Group) -> None:
    group.add_command(kube_proxy)
    group.add_command(proxy_group)
