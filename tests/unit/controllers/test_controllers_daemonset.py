"""DaemonSet: eligibility and plans as tables, then the controller with the scheduler over FakeApi."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from knet.controllers.daemonset import (
    DaemonSetController,
    compute_daemon_plan,
    daemon_pod,
    ds_template_hash,
    node_should_run_daemon,
)
from knet.scheduler.scheduler import Scheduler

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ds(tolerations=None, node_selector=None, image="kube-proxy", host_network=False):
    spec = {"containers": [{"name": "c", "image": image}], "tolerations": tolerations or []}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system", "uid": "ds-uid", "generation": 1},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                     "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}}, "spec": spec}}}


def node(name, taints=(), labels=None):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": list(taints)}, "status": {"allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"}}}


@pytest.mark.parametrize(("the_ds", "the_node", "runs"), [
    pytest.param(ds(), node("n"), True, id="plain"),
    pytest.param(ds(), node("cp", [CP_TAINT]), False, id="cp-taint-not-tolerated"),
    pytest.param(ds(tolerations=[{"operator": "Exists"}]), node("cp", [CP_TAINT]), True, id="kube-proxy-tolerates-all"),
    pytest.param(ds(node_selector={"os": "linux"}), node("n"), False, id="selector-miss"),
    pytest.param(ds(node_selector={"os": "linux"}), node("n", labels={"os": "linux"}), True, id="selector-hit"),
    pytest.param(ds(), node("n", [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), True,
                 id="auto-toleration-not-ready"),
    pytest.param(ds(), node("n", [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
                 False, id="network-unavailable-needs-hostnetwork"),
    pytest.param(ds(host_network=True),
                 node("n", [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]), True,
                 id="hostnetwork-tolerates-network-unavailable"),
])
def test_node_eligibility(the_ds, the_node, runs):
    assert node_should_run_daemon(the_ds, the_node) is runs


def test_daemon_pod_is_pinned_by_match_fields_and_owned():
    p = daemon_pod(ds(), "node01", "abc")
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node01"]}]}]
    ref = p["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("DaemonSet", "kube-proxy", True)
    assert p["metadata"]["labels"]["controller-revision-hash"] == "abc"
    assert "nodeName" not in p["spec"]


def _running(p, name, node_name):
    return {**p, "metadata": {**p["metadata"], "name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {**p["spec"], "nodeName": node_name},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def test_plan_creates_missing_deletes_ineligible_and_rolls_one_at_a_time():
    d = ds()
    h = ds_template_hash(d)
    nodes = [node("a"), node("b"), node("c", [CP_TAINT])]
    stale = [_running(daemon_pod(d, n, "old"), f"p-{n}", n) for n in ("a", "c")]
    plan = compute_daemon_plan(d, nodes, stale, h, NOW)
    assert plan.create_on == ["b"]
    # p-c is on a tainted node: deleted; p-a outdated but b is unavailable: budget 1 - 1 = 0
    assert [p["metadata"]["name"] for p in plan.delete] == ["p-c"]
    fresh_b = _running(daemon_pod(d, "b", h), "p-b", "b")
    plan = compute_daemon_plan(d, nodes[:2], [stale[0], fresh_b], h, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["p-a"] and plan.create_on == []


@pytest.mark.parametrize("latency", [pytest.param(0.0, id="fresh-cache"), pytest.param(0.03, id="lagging-cache")])
async def test_one_pod_per_node_new_nodes_get_pods(harness, latency):
    from knet.client.fake import FakeApi
    from knet.controllers.base import InformerFactory
    api = harness.api = FakeApi(watch_latency=latency)
    harness.informers = InformerFactory(api)
    api.seed("v1", "nodes", node("controlplane", [CP_TAINT]))
    api.seed("v1", "nodes", node("node01"))
    api.seed("apps/v1", "daemonsets", ds(tolerations=[{"operator": "Exists"}]))
    await harness.start(DaemonSetController(api, harness.informers), Scheduler(api, harness.informers))

    def placement():
        return sorted(p["spec"].get("nodeName") or "-" for p in api.objects("v1", "pods"))

    await harness.until(lambda: placement() == ["controlplane", "node01"])
    api.seed("v1", "nodes", node("node02"))
    await harness.until(lambda: placement() == ["controlplane", "node01", "node02"])
    [d] = api.objects("apps/v1", "daemonsets")
    await harness.until(lambda: api.objects("apps/v1", "daemonsets")[0].get("status", {}).get(
        "currentNumberScheduled") == 3)
    assert d["metadata"]["name"] == "kube-proxy"
    assert len([c for c in api.calls if c[:2] == ("create", "pods")]) == 3  # one per node, never twice
    await api.delete("v1", "nodes", "node02")
    await harness.until(lambda: placement() == ["controlplane", "node01"])


async def test_controller_revisions_record_the_history_rollout_undo_restores(harness):
    """`kubectl rollout history ds` lists the DaemonSet's ControllerRevisions; `rollout undo`
    patches the template back, and the matching old revision is renumbered as the newest."""
    api = harness.api
    api.seed("v1", "nodes", node("node01"))
    api.seed("apps/v1", "daemonsets", ds(image="agent:1"))
    await harness.start(DaemonSetController(api, harness.informers))

    def revisions():
        return sorted((r["revision"], r["metadata"]["name"]) for r in api.objects("apps/v1", "controllerrevisions"))

    async def set_image(image):
        current = await api.get("apps/v1", "daemonsets", "kube-proxy", namespace="kube-system")
        current["spec"]["template"]["spec"]["containers"][0]["image"] = image
        await api.update("apps/v1", "daemonsets", current, namespace="kube-system")

    await harness.until(lambda: len(revisions()) == 1)
    [(number, name)] = revisions()
    [rev] = api.objects("apps/v1", "controllerrevisions")
    pod_hash = api.objects("v1", "pods")[0]["metadata"]["labels"]["controller-revision-hash"]
    assert (number, name) == (1, f"kube-proxy-{pod_hash}")
    assert rev["metadata"]["labels"] == {"k8s-app": "kube-proxy", "controller-revision-hash": pod_hash}
    assert rev["data"]["spec"]["template"]["$patch"] == "replace"
    assert rev["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    await set_image("agent:2")
    await harness.until(lambda: [n for n, _ in revisions()] == [1, 2])
    await set_image("agent:1")
    await harness.until(lambda: [n for n, _ in revisions()] == [2, 3])
    assert dict((n, rname) for n, rname in revisions())[3] == name
