"""Node lifecycle: silent nodes become Ready=Unknown, their pods not ready, tainted unreachable."""

from __future__ import annotations

import pytest

from knet.controllers.nodelifecycle import NodeLifecycleController, compute_taints, compute_unknown_conditions

NOW = "2026-01-01T00:01:00Z"


def node(ready="True", taints=()):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node01"}, "spec": {"taints": list(taints)},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


@pytest.mark.parametrize(("ready", "keys"), [
    pytest.param("True", []),
    pytest.param("False", [("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")]),
    pytest.param("Unknown", [("node.kubernetes.io/unreachable", "NoSchedule"),
                             ("node.kubernetes.io/unreachable", "NoExecute")]),
])
def test_taints_follow_ready(ready, keys):
    assert [(t["key"], t["effect"]) for t in compute_taints(node(ready), NOW)] == keys


def test_taints_keep_others_and_drop_stale():
    cp = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    stale = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}
    assert compute_taints(node("True", [cp, stale]), NOW) == [cp]


def test_unknown_conditions_like_upstream():
    [cond] = compute_unknown_conditions(node(), NOW)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert cond["lastTransitionTime"] == NOW and cond["lastHeartbeatTime"] == "2026-01-01T00:00:00Z"


async def test_silent_node_goes_unknown_and_pods_not_ready(harness):
    api = harness.api
    api.seed("v1", "nodes", node())
    api.seed("coordination.k8s.io/v1", "leases", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
              "metadata": {"name": "node01", "namespace": "kube-node-lease"},
              "spec": {"holderIdentity": "node01", "renewTime": "2026-01-01T00:00:00.000000Z"}})
    api.seed("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                            "spec": {"nodeName": "node01"},
                            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    clock = [0.0]
    ctrl = NodeLifecycleController(api, harness.informers, grace_period=40, monitor_period=0.01,
                                   clock=lambda: clock[0])
    await harness.start(ctrl)
    await harness.until(lambda: 0 < len(ctrl._observed))
    # the lease is renewed in time: nothing happens
    clock[0] = 30.0
    lease = await api.get("coordination.k8s.io/v1", "leases", "node01", namespace="kube-node-lease")
    lease["spec"]["renewTime"] = "2026-01-01T00:00:30.000000Z"
    await api.update("coordination.k8s.io/v1", "leases", lease, namespace="kube-node-lease")
    await harness.until(lambda: ctrl._observed["node01"][1] == 30.0)
    clock[0] = 65.0
    seen = ctrl.passes
    await harness.until(lambda: ctrl.passes >= seen + 2)  # two whole passes at t=65s: still Ready
    assert (await api.get("v1", "nodes", "node01"))["status"]["conditions"][0]["status"] == "True"
    clock[0] = 71.0  # 41s since the last renewal
    await harness.until(lambda: api.objects("v1", "nodes")[0]["status"]["conditions"][0]["status"] == "Unknown")
    await harness.until(lambda: api.objects("v1", "pods")[0]["status"]["conditions"][0]["status"] == "False")
    await harness.until(lambda: {t["key"] for t in api.objects("v1", "nodes")[0]["spec"].get("taints", [])}
                        == {"node.kubernetes.io/unreachable"})
    assert any(e["reason"] == "NodeNotReady" for e in api.objects("v1", "events"))


async def test_taints_leave_as_soon_as_the_node_turns_ready(harness):
    api = harness.api
    api.seed("v1", "nodes", node(ready="False"))
    ctrl = NodeLifecycleController(api, harness.informers, grace_period=40, monitor_period=3600)
    await harness.start(ctrl)
    await harness.until(lambda: {t["key"] for t in api.objects("v1", "nodes")[0]["spec"].get("taints", [])}
                        == {"node.kubernetes.io/not-ready"})
    n = await api.get("v1", "nodes", "node01")
    n["status"]["conditions"][0]["status"] = "True"
    await api.update("v1", "nodes", n, subresource="status")
    # no monitor pass happens within the hour: the update itself must clear the taints
    await harness.until(lambda: not api.objects("v1", "nodes")[0]["spec"].get("taints"))


def _pod(tolerations):
    return {"metadata": {"name": "p"}, "spec": {"tolerations": tolerations}}


UNREACHABLE_NODE = {"metadata": {"name": "n"}, "spec": {"taints": [
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]}}


@pytest.mark.parametrize(("tolerations", "due"), [
    pytest.param([], "now", id="untolerated-at-once"),
    pytest.param([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                   "tolerationSeconds": 300}], "2026-01-01T00:05:00+00:00", id="default-300s"),
    pytest.param([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}], None,
                 id="daemonset-forever"),
])
def test_taint_eviction_time(tolerations, due):
    from datetime import UTC, datetime

    from knet.controllers.nodelifecycle import compute_eviction_time
    now = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    got = compute_eviction_time(_pod(tolerations), UNREACHABLE_NODE, now)
    assert (got == now) if due == "now" else ((got.isoformat() if got else None) == due)
