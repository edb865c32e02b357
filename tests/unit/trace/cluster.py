"""A two-node cluster as API objects for the trace tests: the netpol tests' pods (upstream's e2e
model: namespaces x, y, z, pods a, b, c serving 80 and 81) on node01 (192.168.0.2, podCIDR
10.244.1.0/24) and node02 (192.168.0.3, 10.244.2.0/24), plus Services in namespace x."""

from __future__ import annotations

from typing import Any

from tests.unit.netpol.fixtures import NAMESPACES, PODS, policy  # noqa: F401 - re-exported
from tests.unit.proxy.proxy_objects import endpoint_slice, ep, service

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
EXTERNAL_CLIENT = "203.0.113.2"
NODES = {"node01": ("192.168.0.2", "10.244.1.0/24"), "node02": ("192.168.0.3", "10.244.2.0/24")}


def node(name: str) -> dict[str, Any]:
    ip, cidr = NODES[name]
    return {"kind": "Node", "metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


def web_service(name: str = "web", cluster_ip: str = "10.96.0.10", endpoints: tuple[tuple[str, str], ...] = (
        ("10.244.1.3", "node01"), ("10.244.2.4", "node02")), **spec: Any) -> list[dict[str, Any]]:
    """A Service in x on port 80 (name p80) and its slice (x/b on node01, x/c on node02 by default)."""
    return [service(name, cluster_ip, ns="x", **spec),
            endpoint_slice(name, [ep(ip, node) for ip, node in endpoints], ns="x")]


def objects(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return ([node(n) for n in NODES] + [{**n, "kind": "Namespace"} for n in NAMESPACES]
            + [{**p, "kind": "Pod"} for p in PODS] + list(extra))
