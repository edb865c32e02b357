"""Is the cluster usable yet? Pure checks over API objects (wire dicts)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def node_ready(node: Obj) -> bool:
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_running_ready(pod: Obj) -> bool:
    status = pod.get("status", {})
    if status.get("phase") != "Running" or pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_running(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and not pod.get("metadata", {}).get("deletionTimestamp")


def nodes_ready(nodes: list[Obj], expected: set[str]) -> set[str]:
    """The expected nodes that are not Ready yet."""
    ready = {n["metadata"]["name"] for n in nodes if node_ready(n)}
    return expected - ready


def nodes_without_pod_cidr(nodes: list[Obj], expected: set[str]) -> set[str]:
    have = {n["metadata"]["name"] for n in nodes if n.get("spec", {}).get("podCIDR")}
    return expected - have


def pods_not_running_on(pods: list[Obj], nodes: set[str]) -> set[str]:
    """Nodes that have no Running+Ready pod among `pods` (a DaemonSet's pods)."""
    covered = {p.get("spec", {}).get("nodeName") for p in pods if pod_running_ready(p)}
    return nodes - covered


def running_ready_count(pods: list[Obj]) -> int:
    return sum(1 for p in pods if pod_running_ready(p))


def running_count(pods: list[Obj]) -> int:
    return sum(1 for p in pods if pod_running(p))


def ready_endpoint_count(slices: list[Obj]) -> int:
    """Distinct ready addresses across a Service's EndpointSlices."""
    return len({addr for eps in slices for ep in eps.get("endpoints") or []
                if (ep.get("conditions") or {}).get("ready") for addr in ep.get("addresses") or []})
