"""StatefulSet: revision hashing against upstream's own data, the sync plan as tables (ordered and
parallel pod management, scale down, rolling update with partition, OnDelete), then the controller
over FakeApi with a stand-in kubelet that makes pods Running and Ready."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime

import orjson
import pytest

from knet.api.resources import statefulsets as sts_resource
from knet.client import ApiError
from knet.client.fake import FakeApi
from knet.controllers import history
from knet.controllers.base import InformerFactory
from knet.controllers.statefulset import NO_STORAGE, StatefulSetController, new_pod, plan_sync

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# pkg/controller/statefulset/stateful_set_compatibility_test.go: the revision kube-controller-manager
# 1.33 made for this set, named by the hash of exactly these bytes (collisionCount 0).
UPSTREAM_DATA = (b'{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},'
                 b'"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test",'
                 b'"imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":'
                 b'"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst",'
                 b'"restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},'
                 b'"terminationGracePeriodSeconds":30}}}}')


def make_set(name="web", replicas=3, image="nginx:1", policy=None, partition=None, strategy=None, claims=None):
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid", "generation": 1},
           "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": image}]}}}}
    if policy:
        obj["spec"]["podManagementPolicy"] = policy
    if strategy:
        obj["spec"]["updateStrategy"] = {"type": strategy}
    if partition is not None:
        obj["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    if claims:
        obj["spec"]["volumeClaimTemplates"] = claims
    sts_resource.defaults(obj)
    return obj


def revision_for(sts, number=1):
    data = history.template_patch(sts)
    return history.new_revision(sts, data, number, hash_=history.hash_revision(data, 0),
                                hash_label=history.REVISION_HASH_LABEL)


def running(pod, ready=True, phase="Running", deleting=False):
    meta = {**pod["metadata"], "uid": pod["metadata"]["name"] + "-uid"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {**pod, "metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2025-12-31T00:00:00Z"}]}}


def pods_at(sts, rev, ordinals, **kw):
    return [running(new_pod(sts, i, rev["metadata"]["name"]), **kw) for i in ordinals]


def actions(plan):
    return [(verb, pod["metadata"]["name"]) for verb, pod in plan.actions]


def test_revision_name_hashes_the_bytes_upstream_hashes():
    assert history.hash_revision(orjson.loads(UPSTREAM_DATA), 0) == "c77f6d978"
    # the set of that test, defaulted by knet's apiserver, gives the very same revision data
    sts = {"metadata": {"name": "test", "namespace": "test"},
           "spec": {"selector": {"matchLabels": {"app": "foo"}},
                    "template": {"metadata": {"annotations": {"test": "value"}, "labels": {"app": "foo"}},
                                 "spec": {"containers": [{"image": "test", "name": "test"}]}}}}
    sts_resource.defaults(sts)
    assert history.go_json(history.template_patch(sts)) == UPSTREAM_DATA
    rev = history.new_revision({**sts, "apiVersion": "apps/v1", "kind": "StatefulSet",
                                "metadata": {**sts["metadata"], "uid": "ssuid"}},
                               history.template_patch(sts), 1, hash_="c77f6d978",
                               hash_label=history.REVISION_HASH_LABEL)
    assert rev["metadata"]["name"] == "test-c77f6d978"
    assert rev["metadata"]["labels"] == {"app": "foo", "controller.kubernetes.io/hash": "c77f6d978"}


def test_go_json_escapes_as_encoding_json():
    assert history.go_json({"b": "<a&b>", "a": 1}) == b'{"a":1,"b":"\\u003ca\\u0026b\\u003e"}'


def test_pod_identity_labels_and_storage():
    claims = [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}]
    sts = make_set(claims=claims)
    pod = new_pod(sts, 2, "web-abc")
    assert pod["metadata"]["name"] == "web-2"
    assert pod["metadata"]["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "web-2",
                                         "apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "web-abc"}
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("web-2", "web")
    assert pod["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-2"}}]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"


@pytest.mark.parametrize(("policy", "existing", "ready", "expected"), [
    pytest.param(None, [], True, [("create", "web-0")], id="ordered-first-pod"),
    pytest.param(None, [0], False, [], id="ordered-waits-for-ready"),
    pytest.param(None, [0], True, [("create", "web-1")], id="ordered-next-after-ready"),
    pytest.param(None, [0, 1, 2], True, [], id="ordered-steady"),
    pytest.param("Parallel", [], False, [("create", "web-0"), ("create", "web-1"), ("create", "web-2")],
                 id="parallel-all-at-once"),
    pytest.param("Parallel", [1], False, [("create", "web-0"), ("create", "web-2")], id="parallel-fills-gaps"),
])
def test_scale_up(policy, existing, ready, expected):
    sts = make_set(policy=policy)
    rev = revision_for(sts)
    plan = plan_sync(sts, pods_at(sts, rev, existing, ready=ready), rev, rev, 0, NOW)
    assert actions(plan) == expected


@pytest.mark.parametrize(("policy", "replicas", "pods", "expected"), [
    pytest.param(None, 1, {0: {}, 1: {}, 2: {}}, [("delete", "web-2")], id="ordered-highest-first"),
    pytest.param(None, 1, {0: {}, 1: {}, 2: {"deleting": True}}, [], id="ordered-waits-for-termination"),
    # processCondemned checks the target alone: a ready web-2 goes though web-1 is not ready
    pytest.param(None, 1, {0: {}, 1: {"ready": False}, 2: {}}, [("delete", "web-2")],
                 id="ordered-ready-victim-despite-unready-predecessor"),
    pytest.param(None, 1, {0: {"ready": False}, 1: {}, 2: {}}, [], id="ordered-blocks-on-unready-replica"),
    pytest.param(None, 1, {0: {}, 1: {}, 2: {"ready": False}}, [("delete", "web-2")],
                 id="ordered-unready-highest-may-go"),
    pytest.param("Parallel", 1, {0: {}, 1: {}, 2: {}}, [("delete", "web-2"), ("delete", "web-1")],
                 id="parallel-all-at-once"),
])
def test_scale_down_in_reverse(policy, replicas, pods, expected):
    sts = make_set(policy=policy, replicas=replicas)
    rev = revision_for(sts)
    existing = [running(new_pod(sts, i, rev["metadata"]["name"]), **kw) for i, kw in pods.items()]
    assert actions(plan_sync(sts, existing, rev, rev, 0, NOW)) == expected


def test_ordinals_start_names_the_pods_from_it():
    sts = make_set(replicas=2)
    sts["spec"]["ordinals"] = {"start": 5}
    rev = revision_for(sts)
    assert actions(plan_sync(sts, pods_at(sts, rev, [5]), rev, rev, 0, NOW)) == [("create", "web-6")]
    # web-0 is outside [5, 7): condemned, removed once the range is up
    assert actions(plan_sync(sts, pods_at(sts, rev, [0, 5, 6]), rev, rev, 0, NOW)) == [("delete", "web-0")]


def test_failed_pod_is_deleted_then_recreated():
    sts = make_set(replicas=2)
    rev = revision_for(sts)
    pods = pods_at(sts, rev, [0]) + pods_at(sts, rev, [1], phase="Failed")
    assert actions(plan_sync(sts, pods, rev, rev, 0, NOW)) == [("delete", "web-1")]


@pytest.mark.parametrize(("partition", "updated", "expected"), [
    pytest.param(None, [], [("delete", "web-2")], id="highest-ordinal-first"),
    pytest.param(None, [2], [("delete", "web-1")], id="then-the-next"),
    pytest.param(None, [0, 1, 2], [], id="done"),
    pytest.param(2, [2], [], id="partition-keeps-lower-ordinals"),
    pytest.param(1, [2], [("delete", "web-1")], id="partition-lowered"),
])
def test_rolling_update(partition, updated, expected):
    old = make_set(partition=partition)
    new = make_set(image="nginx:2", partition=partition)
    old_rev, new_rev = revision_for(old, 1), revision_for(new, 2)
    pods = [running(new_pod(new if i in updated else old, i,
                            (new_rev if i in updated else old_rev)["metadata"]["name"])) for i in range(3)]
    plan = plan_sync(new, pods, old_rev, new_rev, 0, NOW)
    assert actions(plan) == expected
    assert plan.status["updatedReplicas"] == len(updated)


def test_rolling_update_waits_for_the_replaced_pod():
    old, new = make_set(), make_set(image="nginx:2")
    old_rev, new_rev = revision_for(old, 1), revision_for(new, 2)
    pods = pods_at(old, old_rev, [0, 1]) + pods_at(new, new_rev, [2], ready=False)
    assert actions(plan_sync(new, pods, old_rev, new_rev, 0, NOW)) == []


def test_on_delete_never_deletes_for_an_update_but_recreates_at_the_new_revision():
    old, new = make_set(strategy="OnDelete"), make_set(image="nginx:2", strategy="OnDelete")
    old_rev, new_rev = revision_for(old, 1), revision_for(new, 2)
    pods = pods_at(old, old_rev, [0, 2])
    plan = plan_sync(new, pods, old_rev, new_rev, 0, NOW)
    assert actions(plan) == [("create", "web-1")]
    assert plan.actions[0][1]["spec"]["containers"][0]["image"] == "nginx:2"


def test_revisions_to_delete_keeps_live_and_the_limit():
    revs = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    assert [r["metadata"]["name"] for r in history.revisions_to_delete(revs, {"r5", "r1"}, 2)] == ["r2"]
    assert history.revisions_to_delete(revs, set(), -1) == []


# ---- the controller over FakeApi ---------------------------------------------------------------

async def play_kubelet(api: FakeApi, stop: asyncio.Event, log: list[str]) -> None:
    """Make each new pod Running and Ready (recording the order), and remove deleted ones."""
    while not stop.is_set():
        for pod in api.objects("v1", "pods"):
            name = pod["metadata"]["name"]
            if not pod.get("status"):
                log.append(name)
                await api.patch("v1", "pods", name, {"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2025-12-31T00:00:00Z"}]}},
                    namespace="default")
        await asyncio.sleep(0.01)


async def set_template(api: FakeApi, image: str) -> None:
    """Write a new template as the apiserver stores it (FakeApi does not default)."""
    current = await api.get("apps/v1", "statefulsets", "web", namespace="default")
    current["spec"]["template"] = make_set(image=image)["spec"]["template"]
    await api.update("apps/v1", "statefulsets", current, namespace="default")


async def test_ordered_scale_up_down_rollout_and_rollback(harness):
    api = harness.api
    api.seed("apps/v1", "statefulsets", make_set(replicas=3))
    ctrl = StatefulSetController(api, harness.informers)
    await harness.start(ctrl)
    stop, started = asyncio.Event(), []
    kubelet = asyncio.create_task(play_kubelet(api, stop, started))

    def names():
        return sorted(p["metadata"]["name"] for p in api.objects("v1", "pods"))

    def status():
        return api.objects("apps/v1", "statefulsets")[0].get("status") or {}

    try:
        await harness.until(lambda: status().get("readyReplicas") == 3)
        assert started == ["web-0", "web-1", "web-2"]
        # converged: no more writes (a status equal to the stored one is not written again)
        writes = len([c for c in api.calls if c[0] != "get"])
        await asyncio.sleep(0.3)
        assert len([c for c in api.calls if c[0] != "get"]) == writes
        [rev1] = api.objects("apps/v1", "controllerrevisions")
        assert rev1["revision"] == 1 and status()["currentRevision"] == rev1["metadata"]["name"]
        assert {p["metadata"]["labels"]["controller-revision-hash"] for p in api.objects("v1", "pods")} == \
            {rev1["metadata"]["name"]}
        # scale down: web-2 goes before web-1
        deleted = []
        real_delete = api.delete

        async def recording_delete(api_version, resource, name, **kw):
            if resource == "pods":
                deleted.append(name)
            return await real_delete(api_version, resource, name, **kw)

        api.delete = recording_delete
        await api.patch("apps/v1", "statefulsets", "web", {"spec": {"replicas": 1}}, namespace="default")
        await harness.until(lambda: names() == ["web-0"])
        assert deleted == ["web-2", "web-1"]
        # a new template: a second revision, web-0 replaced at it
        await set_template(api, "nginx:2")
        await harness.until(lambda: status().get("currentRevision") == status().get("updateRevision")
                            and len(api.objects("apps/v1", "controllerrevisions")) == 2
                            and status().get("updatedReplicas") == 1 and status().get("readyReplicas") == 1)
        [pod] = api.objects("v1", "pods")
        assert pod["spec"]["containers"][0]["image"] == "nginx:2"
        # back to the first template (what `kubectl rollout undo` does): revision 1 becomes 3
        await set_template(api, "nginx:1")
        await harness.until(lambda: sorted(r["revision"] for r in api.objects("apps/v1", "controllerrevisions"))
                            == [2, 3])
        await harness.until(lambda: status().get("currentRevision") == rev1["metadata"]["name"]
                            and status().get("readyReplicas") == 1)
    finally:
        stop.set()
        await kubelet


class NoClaimsApi(FakeApi):
    """An apiserver that serves no PersistentVolumeClaims (as knet's)."""

    async def create(self, api_version, resource, obj, **kw):
        if resource == "persistentvolumeclaims":
            raise ApiError.from_status(404, {"kind": "Status", "code": 404, "reason": "NotFound",
                                             "message": "the server could not find the requested resource"})
        return await super().create(api_version, resource, obj, **kw)


async def test_claims_without_storage_create_no_pod_and_say_why(harness):
    api = harness.api = NoClaimsApi()
    harness.informers = InformerFactory(api)
    claims = [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}]
    api.seed("apps/v1", "statefulsets", make_set(replicas=2, claims=claims))
    await harness.start(StatefulSetController(api, harness.informers))
    await harness.until(lambda: any(e.get("reason") == "FailedCreate" for e in api.objects("v1", "events")))
    [event] = [e for e in api.objects("v1", "events") if e.get("reason") == "FailedCreate"]
    assert event["type"] == "Warning"
    assert event["message"] == f"create Claim www-web-0 for Pod web-0 in StatefulSet web failed error: {NO_STORAGE}"
    await harness.until(lambda: (api.objects("apps/v1", "statefulsets")[0].get("status") or {}).get(
        "observedGeneration") == 1)
    assert api.objects("v1", "pods") == []


async def test_orphaned_pods_are_adopted_not_recreated(harness):
    """After `kubectl delete sts web --cascade=orphan` and a new `web`, its pods are claimed."""
    api = harness.api
    sts = make_set(replicas=2)
    rev = revision_for(sts)
    for pod in pods_at(sts, rev, [0, 1]):
        pod["metadata"].pop("ownerReferences")
        api.seed("v1", "pods", pod)
    api.seed("apps/v1", "statefulsets", sts)
    await harness.start(StatefulSetController(api, harness.informers))
    await harness.until(lambda: all(p["metadata"].get("ownerReferences") for p in api.objects("v1", "pods"))
                        and (api.objects("apps/v1", "statefulsets")[0].get("status") or {}).get("readyReplicas") == 2)
    assert sorted(p["metadata"]["name"] for p in api.objects("v1", "pods")) == ["web-0", "web-1"]
    assert not [c for c in api.calls if c[:2] == ("create", "pods")]


# ---- stateful_set_utils_test.go ------------------------------------------------------------------

def upstream_set(replicas=3):
    """newStatefulSet: `foo`, a claim template `datadir` and a hostPath volume `home`."""
    sts = make_set(name="foo", replicas=replicas, claims=[
        {"metadata": {"name": "datadir"}, "spec": {"resources": {"requests": {"storage": "1"}}}}])
    sts["spec"]["serviceName"] = "governingsvc"
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "home", "hostPath": {"path": "/tmp/home"}}]
    return sts


def test_get_parent_name_and_ordinal():
    from knet.controllers.statefulset import is_member, parent_and_ordinal
    sts = upstream_set()
    pod = new_pod(sts, 1, "r")
    assert parent_and_ordinal(pod) == ("foo", 1)
    assert parent_and_ordinal({"metadata": {"name": "1-bar"}}) == ("", -1)
    other = {**sts, "metadata": {**sts["metadata"], "name": "foo2"}}
    assert is_member(sts, pod) and not is_member(other, pod)


def test_identity_and_storage_match_and_are_restored():
    from knet.controllers.statefulset import identity_matches, storage_matches, with_identity
    sts = upstream_set()
    fresh = new_pod(sts, 1, "r")
    assert identity_matches(sts, fresh) and storage_matches(sts, fresh)
    assert fresh["spec"]["volumes"] == [{"name": "datadir", "persistentVolumeClaim": {"claimName": "datadir-foo-1"}},
                                        {"name": "home", "hostPath": {"path": "/tmp/home"}}]
    broken = [
        {**fresh, "metadata": {**fresh["metadata"], "name": "foo"}},
        {**fresh, "metadata": {**fresh["metadata"], "namespace": ""}},
        {**fresh, "metadata": {**fresh["metadata"], "labels": {"app": "foo"}}},
    ]
    assert not any(identity_matches(sts, p) for p in broken)
    assert identity_matches(sts, with_identity(sts, broken[1])) and identity_matches(sts, with_identity(sts, broken[2]))
    no_volumes = {**fresh, "spec": {**fresh["spec"], "volumes": []}}
    wrong_claim = {**fresh, "spec": {**fresh["spec"], "volumes": [
        {"name": "datadir", "persistentVolumeClaim": {"claimName": "foo"}}]}}
    not_a_claim = {**fresh, "spec": {**fresh["spec"], "volumes": [{"name": "datadir", "emptyDir": {}}]}}
    bad_ordinal = {**fresh, "metadata": {**fresh["metadata"], "name": "bar"}}
    for pod in (no_volumes, wrong_claim, not_a_claim, bad_ordinal):
        assert not storage_matches(sts, pod)
    for pod in (no_volumes, wrong_claim, not_a_claim):
        assert storage_matches(sts, with_identity(sts, pod))


def test_running_and_ready_needs_phase_and_condition():
    from knet.controllers.statefulset import running_and_ready
    pod = new_pod(upstream_set(), 1, "r")
    assert not running_and_ready(pod)
    pod["status"] = {"phase": "Running"}
    assert not running_and_ready(pod)
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert running_and_ready(pod)


def test_new_pod_controller_ref():
    ref = new_pod(upstream_set(1), 0, "r")["metadata"]["ownerReferences"][0]
    assert (ref["apiVersion"], ref["kind"], ref["name"], ref["uid"], ref["controller"]) == \
        ("apps/v1", "StatefulSet", "foo", "foo-uid", True)


def test_create_apply_revision():
    """TestCreateApplyRevision: a revision applied to a changed set restores the revision's template;
    a revision made from it equals the first and carries the set's annotations."""
    from knet.controllers.statefulset import with_template
    sts = upstream_set(1)
    revision = revision_for(sts)
    changed = copy.deepcopy(sts)
    changed["spec"]["template"]["spec"]["containers"][0]["name"] = "foo"
    changed["metadata"]["annotations"] = {"foo": "bar"}
    restored = with_template(changed, revision)
    again = revision_for(restored, 2)
    assert again["data"] == revision["data"] and again["metadata"]["name"] == revision["metadata"]["name"]
    assert again["metadata"]["annotations"] == {"foo": "bar"}
