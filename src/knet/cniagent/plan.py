"""What the CNI agent wants on its node, from the Node objects. Pure.

- The node's CNI config: knet's bridge conflist for the node's own `spec.podCIDR` (none until the
  node-IPAM controller has given it one: the kubelet keeps reporting NetworkPluginNotReady).
- host-gw routes: each other node's podCIDR via that node's InternalIP. Only ranges inside the
  cluster's pod range (`--ipalloc-range`) are routed: the agent owns that range's gateway routes
  and removes the ones no node claims any more (a deleted node, a changed address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from knet.net import cni

Obj = dict[str, Any]


def pod_cidr(node: Obj) -> str | None:
    return (node.get("spec") or {}).get("podCIDR") or None


def internal_ip(node: Obj) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP" and address.get("address"):
            return address["address"]
    return None


def node_conflist(node: Obj | None, ipam_data_dir: str) -> dict[str, Any] | None:
    """The conflist the node needs, or None while it has no podCIDR."""
    cidr = pod_cidr(node) if node is not None else None
    return cni.pod_network_conflist(cidr, ipam_data_dir) if cidr else None


def _inside(cidr: str, cluster_cidr: str) -> bool:
    try:
        net, cluster = ipaddress.ip_network(cidr, strict=False), ipaddress.ip_network(cluster_cidr, strict=False)
    except ValueError:
        return False
    return net.version == cluster.version and net.subnet_of(cluster)


@dataclass(frozen=True)
class NodeRoute:
    dst: str    # the other node's podCIDR (normalised)
    via: str    # its InternalIP
    node: str


def wanted_routes(nodes: Iterable[Obj], own: str, cluster_cidr: str) -> dict[str, NodeRoute]:
    """dst -> route for every other node with a podCIDR inside the cluster range and an
    InternalIP. Never the node's own range (its bridge serves it), and when two nodes claim one
    range (a conflict the IPAM controller should not make) the first by name wins, so every
    agent decides alike."""
    own_cidr = None
    by_name = sorted(nodes, key=lambda n: n["metadata"]["name"])
    for node in by_name:
        if node["metadata"]["name"] == own:
            own_cidr = pod_cidr(node)
    out: dict[str, NodeRoute] = {}
    for node in by_name:
        name, cidr, ip = node["metadata"]["name"], pod_cidr(node), internal_ip(node)
        if name == own or not cidr or not ip or not _inside(cidr, cluster_cidr):
            continue
        dst = str(ipaddress.ip_network(cidr, strict=False))
        if own_cidr and dst == str(ipaddress.ip_network(own_cidr, strict=False)):
            continue
        out.setdefault(dst, NodeRoute(dst, ip, name))
    return out


@dataclass(frozen=True)
class RouteChanges:
    replace: tuple[NodeRoute, ...]  # new routes and routes whose gateway changed
    delete: tuple[str, ...]         # destinations no node claims any more


def route_changes(current: dict[str, str], wanted: dict[str, NodeRoute]) -> RouteChanges:
    """From the kernel's gateway routes inside the cluster range (dst -> gateway) to `wanted`."""
    replace = tuple(r for dst, r in sorted(wanted.items()) if current.get(dst) != r.via)
    delete = tuple(sorted(dst for dst in current if dst not in wanted))
    return RouteChanges(replace, delete)
