"""ReplicaSet and Deployment: pure rollout arithmetic tables, then both controllers over FakeApi."""

from __future__ import annotations

import pytest

from knet.controllers.deployment import (
    DeploymentController,
    compute_rollout,
    compute_surge_unavailable,
    compute_template_hash,
    copied_annotations,
)
from knet.controllers.replicaset import ReplicaSetController, ReplicationManager, compute_replica_diff


def deploy(replicas=3, surge=None, unavailable=None, strategy="RollingUpdate", image="nginx"):
    rolling = {k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": strategy, **({"rollingUpdate": rolling} if rolling else {})},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def rs(name, replicas, available=None, created="2026-01-01T00:00:00Z"):
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": replicas if available is None else available}}


@pytest.mark.parametrize(("replicas", "surge", "unavail", "expected"), [
    pytest.param(3, None, None, (1, 0), id="defaults-25pct-3"),
    pytest.param(10, None, None, (3, 2), id="defaults-25pct-10"),
    pytest.param(4, 0, 0, (0, 1), id="both-zero-means-one-unavailable"),
    pytest.param(4, "50%", 1, (2, 1), id="mixed"),
])
def test_surge_and_unavailable(replicas, surge, unavail, expected):
    assert compute_surge_unavailable(deploy(replicas, surge, unavail)) == expected


@pytest.mark.parametrize(("new", "olds", "expected"), [
    pytest.param(rs("new", 0, 0), [rs("old", 3)], {"new": 1}, id="surge-one-new"),
    pytest.param(rs("new", 1, 0), [rs("old", 3)], {}, id="new-not-available-old-held"),
    pytest.param(rs("new", 1, 1), [rs("old", 3)], {"old": 2}, id="new-available-old-down"),
    pytest.param(rs("new", 3, 3), [rs("old", 1)], {"old": 0}, id="finish"),
    pytest.param(rs("new", 1, 0), [rs("old", 3, 1)], {}, id="unhealthy-old-no-budget-at-max-unavailable-0"),
    pytest.param(rs("new", 3, 3), [], {}, id="steady"),
    pytest.param(rs("new", 3, 3), [rs("old", 0)], {}, id="steady-with-history"),
])
def test_rolling_update_steps(new, olds, expected):
    assert compute_rollout(deploy(3), new, olds) == expected


def test_unhealthy_old_replicas_are_cleaned_up_first():
    # maxUnavailable 1: budget = 4 total - 2 minAvailable - 1 new unavailable = 1 unhealthy old pod
    assert compute_rollout(deploy(3, unavailable=1), rs("new", 1, 0), [rs("old", 3, 1)]) == {"old": 2}


def test_recreate_waits_for_old_pods():
    d = deploy(3, strategy="Recreate")
    assert compute_rollout(d, rs("new", 0, 0), [rs("old", 3)]) == {"old": 0}
    gone = rs("old", 0)
    gone["status"]["replicas"] = 2
    assert compute_rollout(d, rs("new", 0, 0), [gone]) == {}
    assert compute_rollout(d, rs("new", 0, 0), [rs("old", 0)]) == {"new": 3}


def test_template_hash_is_stable_and_safe():
    h = compute_template_hash(deploy()["spec"]["template"])
    assert h == compute_template_hash(deploy()["spec"]["template"])
    assert h != compute_template_hash(deploy(image="httpd")["spec"]["template"])
    assert h != compute_template_hash(deploy()["spec"]["template"], collision_count=1)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def _pod(name, ready=True, node="node01", phase="Running"):
    return {"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node}, "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_replica_diff_deletes_unscheduled_and_unready_first():
    pods = [_pod("ready"), _pod("unready", ready=False), _pod("unscheduled", node=None, phase="Pending")]
    assert compute_replica_diff(3, pods) == (0, [])
    _, victims = compute_replica_diff(1, pods)
    assert [p["metadata"]["name"] for p in victims] == ["unscheduled", "unready"]
    assert compute_replica_diff(5, pods, pending_creates=1)[0] == 1


async def make_ready(api, ns="default"):
    """Play the kubelet: every pod of the namespace becomes Running and Ready."""
    for p in api.objects("v1", "pods"):
        if p.get("status", {}).get("phase") != "Running":
            p["status"] = {"phase": "Running", "podIP": "10.244.1.9",
                           "conditions": [{"type": "Ready", "status": "True"}]}
            await api.update("v1", "pods", p, namespace=ns, subresource="status")


@pytest.mark.parametrize("latency", [pytest.param(0.0, id="fresh-cache"), pytest.param(0.03, id="lagging-cache")])
async def test_deployment_rollout_scale_and_status(harness, latency):
    from knet.client.fake import FakeApi
    from knet.controllers.base import InformerFactory
    api = harness.api = FakeApi(watch_latency=latency)
    harness.informers = InformerFactory(api)
    api.seed("apps/v1", "deployments", deploy(3))
    await harness.start(DeploymentController(api, harness.informers),
                        ReplicaSetController(api, harness.informers))

    async def converged(image, replicas):
        await make_ready(api)
        [d] = api.objects("apps/v1", "deployments")
        st = d.get("status") or {}
        pods = api.objects("v1", "pods")
        return (st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
                and st.get("replicas") == replicas and len(pods) == replicas
                and all(p["spec"]["containers"][0]["image"] == image for p in pods))

    await harness.until(lambda: converged("nginx", 3))
    [first_rs] = api.objects("apps/v1", "replicasets")
    h = first_rs["metadata"]["labels"]["pod-template-hash"]
    assert first_rs["metadata"]["name"] == f"web-{h}"
    assert all(p["metadata"]["name"].startswith(f"web-{h}-") for p in api.objects("v1", "pods"))
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in api.objects("v1", "pods"))
    # rolling update to a new image: pods are replaced, never fewer than 3 - 0 available (maxUnavailable 0)
    d = (await api.get("apps/v1", "deployments", "web", namespace="default"))
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "httpd"
    d["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await api.update("apps/v1", "deployments", d, namespace="default")
    await harness.until(lambda: converged("httpd", 3))
    rss = {r["metadata"]["name"]: r for r in api.objects("apps/v1", "replicasets")}
    assert rss[first_rs["metadata"]["name"]]["spec"]["replicas"] == 0
    [d] = api.objects("apps/v1", "deployments")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    conds = {c["type"]: c["reason"] for c in d["status"]["conditions"]}
    assert conds == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    # scale down
    await api.patch("apps/v1", "deployments", "web", {"spec": {"replicas": 1}}, namespace="default")
    await harness.until(lambda: converged("httpd", 1))
    # never more pods than replicas + maxSurge were asked for at once: no duplicate creations
    creates = [c for c in api.calls if c[:2] == ("create", "pods")]
    assert len(creates) == 3 + 3  # three pods, then three replacements
    reasons = {e["reason"] for e in api.objects("v1", "events")}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "SuccessfulDelete"} <= reasons


async def test_replicaset_replaces_deleted_pod(harness):
    api = harness.api
    api.seed("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}})
    await harness.start(ReplicaSetController(api, harness.informers))
    await harness.until(lambda: len(api.objects("v1", "pods")) == 2)
    victim = api.objects("v1", "pods")[0]["metadata"]["name"]
    await api.delete("v1", "pods", victim, namespace="default")
    await harness.until(lambda: len(api.objects("v1", "pods")) == 2
                        and victim not in {p["metadata"]["name"] for p in api.objects("v1", "pods")})
    await harness.until(lambda: api.objects("apps/v1", "replicasets")[0].get("status", {}).get("replicas") == 2)


async def test_replication_controller_keeps_its_pods_by_a_label_map(harness):
    """A v1 ReplicationController is kept as a ReplicaSet is, with its plain label-map selector;
    its pods are owned by it and a stray pod matching the map is adopted."""
    api = harness.api
    api.seed("v1", "replicationcontrollers", {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"a": "b"},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}})
    await harness.start(ReplicationManager(api, harness.informers))
    await harness.until(lambda: len(api.objects("v1", "pods")) == 2)
    owners = {r["kind"] for p in api.objects("v1", "pods") for r in p["metadata"]["ownerReferences"]}
    assert owners == {"ReplicationController"}
    await harness.until(lambda: api.objects("v1", "replicationcontrollers")[0].get("status", {}).get("replicas") == 2)
    await api.patch("v1", "replicationcontrollers", "rc", {"spec": {"replicas": 1}}, namespace="default")
    await harness.until(lambda: len(api.objects("v1", "pods")) == 1)
    events = {e["source"]["component"] for e in api.objects("v1", "events")}
    assert events == {"replication-controller"}


def _status_with_progressing(reason, last_update, updated=1, available=1, replicas=3):
    return {"replicas": replicas, "updatedReplicas": updated, "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": reason,
                            "message": 'ReplicaSet "web-new" is progressing.',
                            "lastUpdateTime": last_update, "lastTransitionTime": last_update}]}


@pytest.mark.parametrize(("new_available", "now", "reason"), [
    pytest.param(1, "2026-01-01T00:09:00Z", "ReplicaSetUpdated", id="stalled-within-deadline"),
    pytest.param(1, "2026-01-01T00:10:01Z", "ProgressDeadlineExceeded", id="stalled-past-deadline"),
    pytest.param(2, "2026-01-01T00:10:01Z", "ReplicaSetUpdated", id="progress-resets-the-clock"),
])
def test_progress_deadline(new_available, now, reason):
    from knet.controllers.deployment import compute_deployment_status
    d = deploy(3)
    d["status"] = _status_with_progressing("ReplicaSetUpdated", "2026-01-01T00:00:00Z")
    new = {"metadata": {"name": "web-new"}, "status": {"replicas": 3, "readyReplicas": new_available,
                                                          "availableReplicas": new_available}}
    new["status"]["replicas"] = 1
    old = {"metadata": {"name": "web-old"}, "status": {"replicas": 2, "readyReplicas": 0, "availableReplicas": 0}}
    status = compute_deployment_status(d, new, [new, old], now)
    prog = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert prog["reason"] == reason
    if reason == "ProgressDeadlineExceeded":
        assert prog["status"] == "False" and prog["message"] == 'ReplicaSet "web-new" has timed out progressing.'
    if new_available == 2:
        assert prog["lastUpdateTime"] == now


async def test_relabelled_pod_is_released_and_replaced(harness):
    api = harness.api
    api.seed("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}})
    await harness.start(ReplicaSetController(api, harness.informers))
    await harness.until(lambda: len(api.objects("v1", "pods")) == 2)
    quarantined = api.objects("v1", "pods")[0]["metadata"]["name"]
    await api.patch("v1", "pods", quarantined, {"metadata": {"labels": {"a": "debug"}}}, namespace="default")
    await harness.until(lambda: len(api.objects("v1", "pods")) == 3)
    pod = await api.get("v1", "pods", quarantined, namespace="default")
    assert not pod["metadata"].get("ownerReferences")  # an orphan now, kept for debugging


def _annotated_rs(name, replicas, created, max_replicas, desired=10, available=None):
    r = rs(name, replicas, available, created=created)
    r["metadata"]["annotations"] = {"deployment.kubernetes.io/max-replicas": str(max_replicas),
                                    "deployment.kubernetes.io/desired-replicas": str(desired)}
    return r


def test_proportional_scaling_like_the_kubernetes_docs():
    # docs "Proportional scaling": 10 replicas, maxSurge 3, maxUnavailable 2; a stuck rollout holds
    # old=8, new=5; scaling to 15 adds 3 to the old ReplicaSet and 2 to the new one.
    from knet.controllers.deployment import compute_proportional_scale, detect_scaling_event
    d = deploy(15, surge=3, unavailable=2)
    old = _annotated_rs("old", 8, "2026-01-01T00:00:00Z", 13)
    new = _annotated_rs("new", 5, "2026-01-01T00:01:00Z", 13, available=0)
    assert detect_scaling_event(d, [new, old])
    assert compute_proportional_scale(d, new, [old]) == {"old": 11, "new": 7}
    # and scaling back down to 10 removes them the same way
    d10 = deploy(10, surge=3, unavailable=2)
    old11 = _annotated_rs("old", 11, "2026-01-01T00:00:00Z", 18, desired=15)
    new7 = _annotated_rs("new", 7, "2026-01-01T00:01:00Z", 18, desired=15, available=0)
    assert compute_proportional_scale(d10, new7, [old11]) == {"old": 8, "new": 5}


@pytest.mark.parametrize(("new", "olds", "expected"), [
    pytest.param(_annotated_rs("new", 3, "b", 4, desired=3), [], {"new": 5}, id="single-active-takes-all"),
    pytest.param(_annotated_rs("new", 5, "b", 4, desired=3), [_annotated_rs("old", 1, "a", 4, desired=3)],
                 {"old": 0}, id="saturated-new-drops-old"),
])
def test_scaling_shapes(new, olds, expected):
    from knet.controllers.deployment import compute_proportional_scale
    assert compute_proportional_scale(deploy(5), new, olds) == expected


async def _running_replicaset(harness, replicas):
    """ReplicaSet default/r (selector a=b) under a running controller, once its pods exist."""
    api = harness.api
    api.seed("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}})
    ctl = ReplicaSetController(api, harness.informers)
    await harness.start(ctl)
    await harness.until(lambda: len(api.objects("v1", "pods")) == replicas)
    return ctl


async def test_replicaset_status_follows_pods_while_its_sync_is_busy(harness):
    """A sync busy with a long burst of creations must not hold readyReplicas back."""
    import asyncio

    api = harness.api
    ctl = await _running_replicaset(harness, 4)

    async def busy(key):  # every sync now takes "forever", as a 500-pod burst does under load
        await asyncio.Event().wait()

    ctl.sync_key = busy
    await make_ready(api)
    await harness.until(lambda: api.objects("apps/v1", "replicasets")[0].get("status", {}).get("readyReplicas") == 4)


def _rs_pod(labels, owner_uid="rs-uid", *, phase="Pending", ready=False, deleting=False):
    pod = {"metadata": {"name": "p", "namespace": "default", "labels": labels,
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "r", "uid": owner_uid, "controller": True}]},
           "spec": {}, "status": {"phase": phase}}
    if ready:
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod


@pytest.mark.parametrize(("old", "new", "syncs"), [
    pytest.param(_rs_pod({"a": "b"}), _rs_pod({"a": "b"}, phase="Running", ready=True), False, id="status-only"),
    pytest.param(_rs_pod({"a": "b"}), _rs_pod({"a": "c"}), True, id="relabelled"),
    pytest.param(_rs_pod({"a": "b"}), _rs_pod({"a": "b"}, deleting=True), True, id="terminating"),
    pytest.param(_rs_pod({"a": "b"}, phase="Running"), _rs_pod({"a": "b"}, phase="Failed"), True, id="failed"),
    pytest.param(_rs_pod({"a": "b"}), _rs_pod({"a": "b"}, owner_uid="other"), True, id="new-owner"),
])
async def test_replicaset_syncs_on_pod_changes_that_alter_the_set(harness, old, new, syncs):
    import time

    ctl = ReplicaSetController(harness.api, harness.informers)
    ctl._pod_updated(old, new)
    assert (len(ctl.queue) == 1) is syncs
    assert len(ctl.status_queue) == 1  # the status is recounted in any case: at once, after a quiet while
    ctl._last_report["default/r"] = time.monotonic()
    ctl._pod_updated(old, new)
    assert "default/r" in ctl.status_queue._timers  # ... and at most once a second
    ctl.status_queue.close()


async def test_replicaset_status_counts_each_pod_once():
    from datetime import UTC, datetime

    from knet.controllers.replicaset import compute_rs_status

    rs_obj = {"metadata": {"generation": 3}, "spec": {"minReadySeconds": 10,
                                                       "template": {"metadata": {"labels": {"a": "b"}}}}}
    now = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    long_ready = _rs_pod({"a": "b"}, phase="Running", ready=True)
    long_ready["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    just_ready = _rs_pod({"a": "b", "x": "y"}, phase="Running", ready=True)
    just_ready["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T00:00:55Z"
    status = compute_rs_status(rs_obj, [long_ready, just_ready, _rs_pod({"a": "c"}),
                                        _rs_pod({"a": "b"}, ready=True, deleting=True)], now)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1,
                      "observedGeneration": 3}


async def test_replicaset_adopts_a_matching_orphan_pod_when_it_appears(harness):
    api = harness.api
    await _running_replicaset(harness, 2)
    await api.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "bare", "namespace": "default", "labels": {"a": "b"}},
                                    "spec": {"containers": []}}, namespace="default")

    def owned_by_r():
        return [p for p in api.objects("v1", "pods") if not p["metadata"].get("deletionTimestamp")
                and any(ref.get("name") == "r" for ref in p["metadata"].get("ownerReferences") or [])]

    # adopted (it carries the ReplicaSet's ownerReference), then one of three is one too many; the
    # write history, not the current objects: the surplus pod deleted may be "bare" itself, at once
    await harness.until(lambda: any(res == "pods" and obj["metadata"]["name"] == "bare"
                                    and obj["metadata"].get("ownerReferences")
                                    for _, _, res, _, obj in api.history))
    await harness.until(lambda: len(owned_by_r()) == 2 and len(api.objects("v1", "pods")) == 2)


@pytest.mark.parametrize(("deploy_annotations", "rs_annotations", "copied"), [
    ({"kubernetes.io/change-cause": "v2"}, {}, {"kubernetes.io/change-cause": "v2"}),
    ({"kubernetes.io/change-cause": "v2"}, {"kubernetes.io/change-cause": "v2"}, {}),  # already there
    ({"kubernetes.io/change-cause": "v3"}, {"kubernetes.io/change-cause": "v2"}, {"kubernetes.io/change-cause": "v3"}),
    # upstream's annotationsToSkip stay the Deployment's own
    ({"kubectl.kubernetes.io/last-applied-configuration": "{}", "deployment.kubernetes.io/revision": "4",
      "deployment.kubernetes.io/desired-replicas": "3", "deployment.kubernetes.io/max-replicas": "4",
      "deployment.kubernetes.io/revision-history": "1", "deprecated.deployment.rollback.to": "1", "team": "a"},
     {}, {"team": "a"}),
])
def test_deployment_annotations_copied_to_its_replicasets(deploy_annotations, rs_annotations, copied):
    d = deploy()
    d["metadata"]["annotations"] = deploy_annotations
    assert copied_annotations(d, {"metadata": {"annotations": rs_annotations}}) == copied
