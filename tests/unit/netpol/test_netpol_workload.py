"""bench/netpol_workload.py: the percentiles the NetworkPolicy bench reports, and that its synthetic
objects and policies are what the bench says they are, checked through the real compiler."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import netpol_workload as w  # noqa: E402

from knet.netpol.compiler import compile_node  # noqa: E402
from knet.netpol.verdict import allowed  # noqa: E402


def test_percentile_is_nearest_rank_on_sorted_values():
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert w.percentile(values, 50) == 51
    assert w.percentile(values, 99) == 99
    assert w.percentile(values, 100) == 100
    assert w.percentile(values, 0) == 1
    assert w.percentile([7.0], 99) == 7
    assert math.isnan(w.percentile([], 50))


def test_summary():
    assert w.summary([3.0, 1.0, 2.0]) == {"n": 3, "p50": 2.0, "p99": 3.0, "max": 3.0}
    assert w.summary([]) == {"n": 0}


def test_synthetic_cluster_on_one_node_programs_every_policy():
    policies, pods, namespaces = w.synthetic_cluster(1000, 1000)
    assert len(policies) == 1000 and len(pods) == 1000
    assert len({w.pod_ip(i) for i in range(1000)}) == 1000
    rules = compile_node("node01", policies, pods, namespaces)
    ingress = [pr for pr in rules.policies if pr.direction == "ingress"]
    egress = [pr for pr in rules.policies if pr.direction == "egress"]
    assert len(ingress) == 1000 and len(egress) == 200  # every fifth policy has egress
    assert all(pr.allows for pr in ingress)  # every shape resolves to some allowed peer
    assert len(rules.ingress) == 1000  # each pod is selected (4 policies select each)
    assert Counter(len(p.policies) for p in rules.ingress) == {4: 1000}


def test_spread_over_nodes_splits_pods_and_not_whole_policies():
    policies, pods, namespaces = w.synthetic_cluster(1000, 1000, nodes=10)
    per_node = Counter(p["spec"]["nodeName"] for p in pods)
    assert len(per_node) == 10 and max(per_node.values()) - min(per_node.values()) <= 7
    rules = compile_node("node01", policies, pods, namespaces)
    assert len(rules.ingress) == per_node["node01"]
    assert 300 <= len({pr.policy for pr in rules.policies}) <= 500  # a policy's pods sit on several nodes


def test_free_pods_are_neither_selected_nor_named():
    policies, pods, namespaces = w.synthetic_cluster(1000, 1000)
    pair = [w.free_pod("client", "10.244.200.2"), w.free_pod("server", "10.244.200.3")]
    rules = compile_node("node01", policies, pods + pair, namespaces)
    isolated = {p.ip for p in rules.ingress + rules.egress}
    assert not isolated & {"10.244.200.2", "10.244.200.3"}
    named = {c for pr in rules.policies for a in pr.allows if a.peer for c in a.peer.cidrs}
    assert not named & {"10.244.200.2/32", "10.244.200.3/32"}
    assert allowed([rules], "10.244.200.2", "10.244.200.3", "tcp", 8080)


def _target_cluster(i: int):
    labels = {"app": "netpol-bench-server"}
    pods = [w.synthetic_pod(1, "node01", ns="b", ip="10.244.1.2", **labels, **{w.TARGET_LABEL: f"t{i:03d}"}),
            w.synthetic_pod(2, "node01", ns="b", ip="10.244.1.3", **labels, **{w.TARGET_LABEL: "t999"}),
            w.synthetic_pod(3, "node01", ns="b", ip="10.244.1.4", app="netpol-bench-client"),
            w.synthetic_pod(4, "node01", ns="b", ip="10.244.1.5", **{w.CLIENT_LABEL: f"t{i:03d}"})]
    return [w.target_policy(i, "b")], pods, [{"metadata": {"name": "b"}}]


def test_target_policy_cuts_the_prober_from_its_target_only():
    for i in (0, 1):  # deny-all and allow-only-from-others
        rules = compile_node("node01", *_target_cluster(i))
        assert [p.ip for p in rules.ingress] == ["10.244.1.2"]
        assert not allowed([rules], "10.244.1.4", "10.244.1.2", "tcp", 80)   # prober -> target: cut
        assert allowed([rules], "10.244.1.4", "10.244.1.3", "tcp", 80)       # other servers: open
        # the odd policies still let their own clients in (on port 80 only); the even ones nobody
        assert allowed([rules], "10.244.1.5", "10.244.1.2", "tcp", 80) == bool(i % 2)
        assert not allowed([rules], "10.244.1.5", "10.244.1.2", "tcp", 81)
