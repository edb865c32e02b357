"""Readiness checks `knet up` waits on."""

from __future__ import annotations

from knet.cluster import readiness


def node(name, ready, cidr=None):
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(node_name, phase="Running", ready=True, deleting=False):
    meta = {"name": f"p-{node_name}"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_nodes_ready_reports_the_missing_ones():
    nodes = [node("controlplane", True), node("node01", False)]
    assert readiness.nodes_ready(nodes, {"controlplane", "node01", "node02"}) == {"node01", "node02"}


def test_nodes_without_pod_cidr():
    nodes = [node("controlplane", True, "10.244.0.0/24"), node("node01", True)]
    assert readiness.nodes_without_pod_cidr(nodes, {"controlplane", "node01"}) == {"node01"}


def test_daemonset_coverage_needs_running_ready_pods():
    pods = [pod("controlplane"), pod("node01", ready=False), pod("node02", deleting=True)]
    assert readiness.pods_not_running_on(pods, {"controlplane", "node01", "node02"}) == {"node01", "node02"}
    assert readiness.running_ready_count([pod("a"), pod("b", phase="Pending")]) == 1


def test_running_count_ignores_terminating_pods():
    assert readiness.running_count([pod("a", ready=False), pod("b", deleting=True), pod("c", phase="Pending")]) == 1
