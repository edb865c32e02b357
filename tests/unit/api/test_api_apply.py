"""Server-side apply bookkeeping: FieldsV1 sets, ownership on updates, conflicts, pruning."""

from __future__ import annotations

from knet.api import apply as ssa

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
          "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}}}


def test_fields_v1_uses_merge_keys_for_lists():
    tree = ssa.fields_v1(DEPLOY, "V1Deployment")
    assert tree == {"f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                        'k:{"name":"nginx"}': {".": {}, "f:name": {}, "f:image": {}}}}}}}
    paths = ssa.flatten(tree)
    assert ("f:spec", "f:replicas") in paths
    assert ssa.unflatten(paths) == tree
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")
    assert ssa.value_at(DEPLOY, image) == "nginx:1"
    assert ssa.path_text(image) == '.spec.template.spec.containers[name="nginx"].image'


def test_updates_move_ownership_and_applies_conflict():
    live = {**DEPLOY, "metadata": {**DEPLOY["metadata"]}}
    ssa.record_update(live, None, "creator", "apps/v1", "V1Deployment", "t0")
    changed = {**live, "spec": {**live["spec"], "replicas": 5}, "metadata": {**live["metadata"]}}
    ssa.record_update(changed, live, "scaler", "apps/v1", "V1Deployment", "t1")
    owners = {e["manager"]: ssa.flatten(e["fieldsV1"]) for e in changed["metadata"]["managedFields"]}
    assert owners["scaler"] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in owners["creator"]
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}
    found = ssa.conflicts(changed, applied, "kubectl", "V1Deployment")
    assert found == [("scaler", ("f:spec", "f:replicas"))]
    assert ssa.conflict_message(found, "apps/v1") == \
        'Apply failed with 1 conflict: conflict with "scaler" using apps/v1: .spec.replicas'
    same = {**applied, "spec": {"replicas": 5}}
    assert ssa.conflicts(changed, same, "kubectl", "V1Deployment") == []


def test_prune_keeps_co_owned_fields():
    obj = {"data": {"a": "1", "b": "2"}}
    removed = ssa.removed_fields({"f:data": {"f:a": {}, "f:b": {}}}, {"f:data": {"f:a": {}}})
    assert removed == {"f:data": {"f:b": None}}
    kept = ssa.keep_co_owned(removed, {("f:data", "f:b")})
    ssa.prune(obj, kept)
    assert obj == {"data": {"a": "1", "b": "2"}}
    ssa.prune(obj, removed)
    assert obj == {"data": {"a": "1"}}


def test_manager_from_user_agent():
    # kube-apiserver's prefixFromUserAgent (handlers/create.go): up to the first "/", no
    # non-printable characters, at most 128 bytes of UTF-8.
    cases = [
        ("kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9", "kubectl"),
        ("OpenAPI-Generator/37.0.2/python", "OpenAPI-Generator"),
        ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "node-fetch"),
        ("kopf/1.45.2", "kopf"),
        ("no slash at all", "no slash at all"),
        ("", ""),
        ("tab\there\x00/1", "tabhere"),
        ("x" * 200 + "/1", "x" * 128),
        ("é" * 100, "é" * 64),  # two bytes each: 64 fit, a 65th would make 130
    ]
    for user_agent, manager in cases:
        assert ssa.manager_from_user_agent(user_agent) == manager, user_agent


def test_a_subresource_write_is_its_own_entry():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    ssa.record_update(pod, None, "kubelet", "v1", "V1Pod", "t0")
    running = {**pod, "status": {"phase": "Running"}}
    ssa.record_update(running, pod, "kubelet", "v1", "V1Pod", "t1", "status")
    entries = [(e["manager"], e["operation"], e.get("subresource"), ssa.flatten(e["fieldsV1"]))
               for e in running["metadata"]["managedFields"]]
    assert entries[0][:3] == ("kubelet", "Update", None) and ("f:spec", "f:containers") in {
        p[:2] for p in entries[0][3]}
    assert entries[1] == ("kubelet", "Update", "status", {("f:status", "f:phase")})
    assert running["metadata"]["managedFields"][1]["subresource"] == "status"
    # The next status write updates that entry, not the main resource's.
    failed = {**running, "status": {"phase": "Failed"}}
    ssa.record_update(failed, running, "kubelet", "v1", "V1Pod", "t2", "status")
    assert [(e["manager"], e.get("subresource"), e["time"]) for e in failed["metadata"]["managedFields"]] == [
        ("kubelet", None, "t0"), ("kubelet", "status", "t2")]
