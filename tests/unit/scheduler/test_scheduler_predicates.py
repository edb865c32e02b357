"""Scheduling decisions: filter reasons, the FailedScheduling message, scoring and spreading."""

from __future__ import annotations

import pytest

from knet.scheduler.predicates import (
    NodeInfo,
    compute_filter_reasons,
    format_unschedulable_message,
    num_feasible_nodes_to_find,
    pod_requests,
    schedule,
)
from knet.scheduler.quantity import bytes_of, milli_cpu

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node(name, taints=(), labels=None, cpu="2", memory="4Gi", pods="110", unschedulable=False):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": list(taints), **({"unschedulable": True} if unschedulable else {})},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}


def pod(name="p", cpu=None, memory=None, owner="rs-1", **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    meta = {"name": name, "namespace": "default", "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web", "uid": owner, "controller": True}]
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}], **spec}}


@pytest.mark.parametrize(("text", "mcpu"), [("100m", 100), ("1", 1000), ("0.5", 500), ("2.5", 2500), (None, 0)])
def test_cpu_quantities(text, mcpu):
    assert milli_cpu(text) == mcpu


@pytest.mark.parametrize(("text", "n"), [("128Mi", 128 * 2**20), ("1G", 10**9), ("1e3", 1000), ("4Gi", 4 * 2**30)])
def test_memory_quantities(text, n):
    assert bytes_of(text) == n


def test_requests_take_max_of_init_containers():
    p = pod(cpu="100m", memory="64Mi", initContainers=[{"name": "i", "resources": {"requests": {"cpu": "500m"}}}])
    r = pod_requests(p)
    assert (r.milli_cpu, r.memory) == (500, 64 * 2**20)


@pytest.mark.parametrize(("the_pod", "the_node", "reasons"), [
    pytest.param(pod(), node("cp", taints=[CP_TAINT]), ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"], id="cp-taint"),
    pytest.param(pod(tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                   "effect": "NoSchedule"}]), node("cp", taints=[CP_TAINT]), [], id="tolerated"),
    pytest.param(pod(tolerations=[{"operator": "Exists"}]), node("cp", taints=[CP_TAINT]), [], id="tolerate-all"),
    pytest.param(pod(nodeSelector={"disk": "ssd"}), node("n"), ["node(s) didn't match Pod's node affinity/selector"], id="selector"),
    pytest.param(pod(nodeSelector={"disk": "ssd"}), node("n", labels={"disk": "ssd"}), [], id="selector-ok"),
    pytest.param(pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}),
        node("n1"), ["node(s) didn't match Pod's node affinity/selector"], id="matchFields-daemonset"),
    pytest.param(pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}),
        node("n1", labels={"zone": "b"}), [], id="affinity-notin"),
    pytest.param(pod(cpu="3"), node("n"), ["Insufficient cpu"], id="cpu"),
    pytest.param(pod(cpu="1", memory="8Gi"), node("n"), ["Insufficient memory"], id="memory"),
    pytest.param(pod(nodeName="other"), node("n"), ["node(s) didn't match the requested node name"], id="nodename"),
    pytest.param(pod(), node("n", unschedulable=True), ["node(s) were unschedulable"], id="cordoned"),
])
def test_filters(the_pod, the_node, reasons):
    assert compute_filter_reasons(the_pod, NodeInfo(the_node)) == reasons


def test_too_many_pods_counts_existing_pods():
    info = NodeInfo(node("n", pods="1"), pods=[pod("existing")])
    assert compute_filter_reasons(pod(), info) == ["Too many pods"]


def test_unschedulable_message_like_upstream():
    chosen, rejected = schedule(pod(cpu="3"), [NodeInfo(node("controlplane", taints=[CP_TAINT])),
                                               NodeInfo(node("node01"))])
    assert chosen is None
    assert format_unschedulable_message(2, rejected) == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }.")
    assert format_unschedulable_message(2, rejected, pod(cpu="3")) == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")
    assert format_unschedulable_message(2, rejected, pod(cpu="3", preemptionPolicy="Never")).endswith(
        "preemption: not eligible due to preemptionPolicy=Never.")


def test_replicas_spread_across_nodes_and_least_allocated_wins():
    a, b = NodeInfo(node("node01")), NodeInfo(node("node02"))
    a.pods.append(pod("web-1"))
    assert schedule(pod("web-2"), [a, b])[0] == "node02"  # spread: node02 has none of this workload
    b.pods.append(pod("web-2"))
    other = pod("db", cpu="1500m", owner="rs-db")
    b.pods.append(other)
    assert schedule(pod("web-3"), [a, b])[0] == "node01"  # equal spread, node01 less allocated


@pytest.mark.parametrize(("total", "wanted"), [(3, 3), (99, 99), (100, 100), (1000, 420), (5000, 500), (20000, 1000)])
def test_nodes_to_score_like_upstream(total, wanted):
    assert num_feasible_nodes_to_find(total) == wanted


def test_partial_search_starts_where_told():
    infos = [NodeInfo(node(f"n{i:03d}")) for i in range(200)]  # all feasible, 100 are enough
    chosen, rejected = schedule(pod(), infos, start=150)
    assert not rejected and chosen in {f"n{i:03d}" for i in list(range(150, 200)) + list(range(0, 50))}


def test_inlined_decision_matches_the_filter_and_score_functions():
    """schedule() inlines the common case; it must pick what the plain functions pick."""
    import random

    from knet.scheduler.predicates import compute_scores, filters_for, select_host

    rng = random.Random(7)
    for trial in range(300):
        infos = []
        for i in range(rng.randint(1, 30)):
            taints = [CP_TAINT] if rng.random() < 0.2 else []
            info = NodeInfo(node(f"n{i:02d}", cpu=str(rng.choice([1, 2, 4])), pods=str(rng.randint(1, 6)),
                                 taints=taints, unschedulable=rng.random() < 0.1))
            for j in range(rng.randint(0, 5)):
                info.pods.append(pod(f"p{trial}-{i}-{j}", cpu=rng.choice(["100m", "500m", None]),
                                     owner=rng.choice(["rs-a", "rs-b"])))
            infos.append(info)
        the_pod = pod("new", cpu=rng.choice(["100m", "1", None]), owner=rng.choice(["rs-a", "rs-b"]))
        feasible = [i for i in infos if not compute_filter_reasons(the_pod, i, filters_for(the_pod))]
        expected = select_host(compute_scores(the_pod, feasible)) if feasible else None
        assert schedule(the_pod, infos)[0] == expected
