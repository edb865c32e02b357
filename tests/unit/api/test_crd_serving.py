"""CustomResourceDefinitions on a real ObjectService over an in-memory store: the CRD kind's
validation (after apiextensions-apiserver's ValidateCustomResourceDefinition cases), the
controller serving an established CRD (registry, names, conditions, conflicts), its custom
objects' printer columns and JSONPath, and the cleanup of a deleted CRD."""

from __future__ import annotations

import asyncio
import copy

import pytest

from knet.api.allocation import ServiceAllocator
from knet.api.crd import jsonpath
from knet.api.crd.controller import CrdController
from knet.api.errors import ApiError
from knet.api.resources import build_registry, crds
from knet.api.rest import ObjectService, Options
from knet.api.storage.sqlite import SqliteStore

GROUP = "stable.example.com"


def crd(plural: str = "crontabs", kind: str = "CronTab", group: str = GROUP, **version) -> dict:
    v = {"name": "v1", "served": True, "storage": True,
         "schema": {"openAPIV3Schema": {"type": "object", "properties": {
             "spec": {"type": "object", "properties": {
                 "cronSpec": {"type": "string"}, "image": {"type": "string"},
                 "replicas": {"type": "integer", "default": 1}}},
             "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
         "additionalPrinterColumns": [
             {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
             {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
             {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
             {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
         **version}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "versions": [v],
                     "names": {"plural": plural, "singular": plural[:-1], "kind": kind, "shortNames": ["ct"]}}}


def _errors(obj: dict, old: dict | None = None) -> list[str]:
    obj = copy.deepcopy(obj)
    crds.defaults(obj)
    return [str(e) for e in crds.validate(obj, old)]


def _with(change) -> dict:
    obj = crd()
    change(obj)
    return obj


# (what is changed, the field errors) after upstream's TestValidateCustomResourceDefinition cases
CRD_CASES = [
    ("valid", lambda o: None, []),
    ("name mismatch", lambda o: o["metadata"].update(name="other.stable.example.com"),
     ['metadata.name: Invalid value: "other.stable.example.com": must be spec.names.plural+"."+spec.group']),
    ("group without a dot", lambda o: (o["spec"].update(group="group"), o["metadata"].update(name="crontabs.group")),
     ['spec.group: Invalid value: "group": should be a domain with at least one dot']),
    ("missing scope", lambda o: o["spec"].pop("scope"), ["spec.scope: Required value"]),
    ("bad scope", lambda o: o["spec"].update(scope="Everywhere"),
     ['spec.scope: Unsupported value: "Everywhere": supported values: "Cluster", "Namespaced"']),
    ("bad plural", lambda o: (o["spec"]["names"].update(plural="Cron_Tabs"),
                              o["metadata"].update(name="Cron_Tabs.stable.example.com")),
     ['spec.names.plural: Invalid value: "Cron_Tabs": a DNS-1035 label must consist of lower case alphanumeric '
      "characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
      "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]),
    ("missing kind", lambda o: o["spec"]["names"].pop("kind"), ["spec.names.kind: Required value"]),
    ("kind is listKind", lambda o: o["spec"]["names"].update(listKind="CronTab"),
     ['spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same']),
    ("no storage version", lambda o: o["spec"]["versions"][0].update(storage=False),
     ['spec.versions: Invalid value: ["v1"]: must have exactly one version marked as storage version']),
    ("two storage versions", lambda o: o["spec"]["versions"].append({**o["spec"]["versions"][0], "name": "v2"}),
     ['spec.versions: Invalid value: ["v1","v2"]: must have exactly one version marked as storage version']),
    ("duplicate version", lambda o: o["spec"]["versions"].append({**o["spec"]["versions"][0], "storage": False}),
     ['spec.versions[1].name: Duplicate value: "v1"']),
    ("no schema", lambda o: o["spec"]["versions"][0].pop("schema"),
     ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]),
    ("not structural", lambda o: o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"].update(x={}),
     ["spec.versions[0].schema.openAPIV3Schema.properties[x].type: Required value: must not be empty for specified "
      "object fields"]),
    ("bad column", lambda o: o["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "X", "type": "text", "jsonPath": "spec"}),
     ['spec.versions[0].additionalPrinterColumns[4].type: Unsupported value: "text": supported values: "boolean", '
      '"date", "integer", "number", "string"',
      'spec.versions[0].additionalPrinterColumns[4].jsonPath: Invalid value: "spec": must be a simple json path']),
    ("bad scale paths", lambda o: o["spec"]["versions"][0].update(subresources={"scale": {
        "specReplicasPath": ".replicas", "statusReplicasPath": ".status.replicas"}}),
     ['spec.versions[0].subresources.scale.specReplicasPath: Invalid value: ".replicas": should be a json path '
      "under .spec"]),
    ("webhook conversion", lambda o: o["spec"].update(conversion={"strategy": "Webhook"}),
     ['spec.conversion.strategy: Unsupported value: "Webhook": supported values: "None"']),
    ("protected group", lambda o: (o["spec"].update(group="x.k8s.io"), o["metadata"].update(name="crontabs.x.k8s.io")),
     ["metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval "
      'annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111']),
    ("approved protected group", lambda o: (
        o["spec"].update(group="x.k8s.io"),
        o["metadata"].update(name="crontabs.x.k8s.io", annotations={"api-approved.kubernetes.io": "https://x/pull/1"})),
     []),
    ("preserveUnknownFields", lambda o: o["spec"].update(preserveUnknownFields=True),
     ["spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields "
      "to true in spec.versions[*].schema instead"]),
]


@pytest.mark.parametrize("name,change,expected", CRD_CASES, ids=[c[0] for c in CRD_CASES])
def test_crd_validation(name, change, expected):
    assert _errors(_with(change)) == expected


def test_crd_defaults_and_immutable_scope():
    obj = crd()
    crds.defaults(obj)
    assert obj["spec"]["names"]["listKind"] == "CronTabList" and obj["spec"]["conversion"] == {"strategy": "None"}
    changed = _with(lambda o: o["spec"].update(scope="Cluster"))
    assert _errors(changed, obj) == ['spec.scope: Invalid value: "Cluster": field is immutable']


@pytest.mark.parametrize("path,obj,found", [
    (".spec.a", {"spec": {"a": 1}}, [1]),
    ("{.spec.a}", {"spec": {"a": 1}}, [1]),
    (".spec.list[1]", {"spec": {"list": [1, 2]}}, [2]),
    (".spec.list[*].n", {"spec": {"list": [{"n": 1}, {"n": 2}]}}, [1, 2]),
    (".metadata.labels['app.kubernetes.io/name']", {"metadata": {"labels": {"app.kubernetes.io/name": "x"}}}, ["x"]),
    ('.status.conditions[?(@.type=="Ready")].status',
     {"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}}, ["True"]),
    (".spec.missing", {"spec": {}}, []),
])
def test_jsonpath(path, obj, found):
    assert jsonpath.find(obj, jsonpath.parse(path)) == found


@pytest.mark.parametrize("path", ["spec", ".spec[", "{range .items[*]}"])
def test_jsonpath_refuses(path):
    with pytest.raises(jsonpath.JSONPathError):
        jsonpath.parse(path)


@pytest.fixture
async def served():
    store = SqliteStore(":memory:")
    objects = ObjectService(build_registry(), store, ServiceAllocator("10.96.0.0/29", "30000-30001"))
    await objects.create(objects.registry.lookup("", "v1", "namespaces"), "", {"metadata": {"name": "default"}}, Options())
    controller = CrdController(objects.registry, objects)
    await controller.start()
    try:
        yield objects, controller
    finally:
        await controller.stop()
        await store.close()


async def _settled(objects: ObjectService, name: str, condition: str = "Established") -> dict:
    for _ in range(100):
        e = objects.store.get("apiextensions.k8s.io/customresourcedefinitions", "", name)
        if e is not None and (crds.condition(e.obj, condition) or {}).get("status") in ("True", "False"):
            return e.obj
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name}: no {condition} condition")


async def test_an_established_crd_is_served_and_its_objects_shown(served):
    objects, _ = served
    crd_type = objects.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert objects.registry.lookup(GROUP, "v1", "crontabs") is None
    await objects.create(crd_type, "", crd(), Options())
    got = await _settled(objects, f"crontabs.{GROUP}")
    assert crds.condition(got, "NamesAccepted")["status"] == "True"
    assert got["status"]["acceptedNames"]["plural"] == "crontabs" and got["status"]["storedVersions"] == ["v1"]
    rt = objects.registry.lookup(GROUP, "v1", "crontabs")
    assert rt is not None and rt.short_names == ("ct",) and rt.singular == "crontab"
    made = await objects.create(rt, "default", {"apiVersion": f"{GROUP}/v1", "kind": "CronTab",
                                                "metadata": {"name": "c"}, "spec": {"cronSpec": "* * * * */5"},
                                                "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                                Options())
    assert made["spec"]["replicas"] == 1 and made["metadata"]["generation"] == 1
    assert made["status"] == {}  # no status subresource: written with the object, pruned by the schema
    made["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert rt.row(made)[3] == "True"
    del made["status"]
    # without a status subresource a status change is a change: the generation counts it
    _, updated = await objects.update(rt, "default", "c", {**made, "status": {"replicas": 2}}, Options())
    assert updated["status"] == {"replicas": 2} and updated["metadata"]["generation"] == 2
    assert [c.name for c in rt.columns] == ["Name", "Spec", "Replicas", "Ready", "Age"]
    assert rt.row(made)[:4] == ["c", "* * * * */5", 1, None]


async def test_a_conflicting_crd_is_not_accepted(served):
    objects, _ = served
    crd_type = objects.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    # apps already has deployments: a CRD of that group and plural is not accepted
    taken = crd(plural="deployments", kind="MyDeployment", group="apps.example.com")
    taken["spec"]["group"] = "apps"
    taken["metadata"]["name"] = "deployments.apps"
    with pytest.raises(ApiError):  # "apps" has no dot: refused before the names controller
        await objects.create(crd_type, "", taken, Options())
    await objects.create(crd_type, "", crd(), Options())
    await _settled(objects, f"crontabs.{GROUP}")
    other = crd(plural="crontabs2", kind="CronTab")
    await objects.create(crd_type, "", other, Options())
    got = await _settled(objects, f"crontabs2.{GROUP}", "NamesAccepted")
    accepted = crds.condition(got, "NamesAccepted")
    assert (accepted["status"], accepted["reason"], accepted["message"]) == ("False", "KindConflict",
                                                                             '"CronTab" is already in use')
    assert objects.registry.lookup(GROUP, "v1", "crontabs2") is None
    # once the first is gone, its names are free: the second is accepted and served
    await objects.delete(crd_type, "", f"crontabs.{GROUP}", {}, Options())
    for _ in range(200):
        if objects.registry.lookup(GROUP, "v1", "crontabs2") is not None:
            break
        await asyncio.sleep(0.01)
    got = objects.store.get(crd_type.bucket, "", f"crontabs2.{GROUP}").obj
    assert crds.condition(got, "NamesAccepted")["status"] == "True"
    assert crds.condition(got, "Established")["status"] == "True"


async def test_a_deleted_crd_takes_its_objects_and_resource(served):
    objects, _ = served
    crd_type = objects.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    await objects.create(crd_type, "", crd(), Options())
    await _settled(objects, f"crontabs.{GROUP}")
    rt = objects.registry.lookup(GROUP, "v1", "crontabs")
    for i in range(3):
        await objects.create(rt, "default", {"metadata": {"name": f"c{i}"}, "spec": {}}, Options())
    await objects.delete(crd_type, "", f"crontabs.{GROUP}", {}, Options())
    for _ in range(200):
        if objects.store.get(crd_type.bucket, "", f"crontabs.{GROUP}") is None:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the CRD was not deleted")
    assert objects.store.list(rt.bucket)[0] == []
    await asyncio.sleep(0.05)
    assert objects.registry.lookup(GROUP, "v1", "crontabs") is None
    assert rt.bucket not in objects.registry.bucket_types


def test_aggregated_roles_hold_custom_resources_only_when_labelled():
    """admin/edit/view do not cover a custom resource until a ClusterRole labelled for their
    aggregation (rbac.authorization.k8s.io/aggregate-to-edit, -view) names it, as upstream."""
    from knet.api.auth import User
    from knet.api.authz import Attributes
    from knet.api.authz.aggregation import aggregate_all
    from knet.api.authz.bootstrappolicy import bootstrap_policy
    from knet.api.authz.rbac import RBACAuthorizer, StaticRbacSource

    g = "rbac.authorization.k8s.io"
    bindings = [{"kind": "RoleBinding", "metadata": {"name": f"{user}-{role}", "namespace": "team"},
                 "roleRef": {"apiGroup": g, "kind": "ClusterRole", "name": role},
                 "subjects": [{"kind": "User", "apiGroup": g, "name": user}]}
                for user, role in (("eve", "edit"), ("vic", "view"), ("ada", "admin"))]

    def can(objects: list[dict], user: str, verb: str) -> bool:
        roles = aggregate_all([o for o in objects if o["kind"] == "ClusterRole"])
        authz = RBACAuthorizer(StaticRbacSource(roles + [o for o in objects if o["kind"] != "ClusterRole"] + bindings))
        return authz.authorize(Attributes(user=User(user, "", ()), verb=verb, namespace="team", api_group=GROUP,
                                          resource="crontabs")).allowed

    policy = bootstrap_policy()
    assert not any(can(policy, u, v) for u in ("eve", "vic", "ada") for v in ("get", "create"))
    labelled = [
        {"kind": "ClusterRole", "metadata": {"name": "crontab-edit", "labels": {f"{g}/aggregate-to-edit": "true"}},
         "rules": [{"apiGroups": [GROUP], "resources": ["crontabs"], "verbs": ["create", "get", "list"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "crontab-view", "labels": {f"{g}/aggregate-to-view": "true"}},
         "rules": [{"apiGroups": [GROUP], "resources": ["crontabs"], "verbs": ["get", "list"]}]}]
    policy += labelled
    assert can(policy, "eve", "create") and can(policy, "ada", "create")  # admin aggregates edit
    assert can(policy, "vic", "get") and not can(policy, "vic", "create")


async def test_an_updated_crd_serves_its_new_versions_and_columns(served):
    objects, _ = served
    crd_type = objects.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    await objects.create(crd_type, "", crd(), Options())
    await _settled(objects, f"crontabs.{GROUP}")
    current = objects.store.get(crd_type.bucket, "", f"crontabs.{GROUP}").obj
    changed = copy.deepcopy(current)
    v2 = copy.deepcopy(changed["spec"]["versions"][0])
    v2.update(name="v2", storage=False, additionalPrinterColumns=[{"name": "Image", "type": "string",
                                                                    "jsonPath": ".spec.image"}])
    changed["spec"]["versions"].append(v2)
    await objects.update(crd_type, "", f"crontabs.{GROUP}", changed, Options())
    for _ in range(100):
        if objects.registry.lookup(GROUP, "v2", "crontabs") is not None:
            break
        await asyncio.sleep(0.01)
    v2_type = objects.registry.lookup(GROUP, "v2", "crontabs")
    assert v2_type.stored_as == (GROUP, "v1", "crontabs") and [c.name for c in v2_type.columns] == ["Name", "Image"]
    changed = copy.deepcopy(objects.store.get(crd_type.bucket, "", f"crontabs.{GROUP}").obj)
    changed["spec"]["versions"][1]["served"] = False
    await objects.update(crd_type, "", f"crontabs.{GROUP}", changed, Options())
    for _ in range(100):
        if objects.registry.lookup(GROUP, "v2", "crontabs") is None:
            break
        await asyncio.sleep(0.01)
    assert objects.registry.lookup(GROUP, "v2", "crontabs") is None
    assert objects.registry.lookup(GROUP, "v1", "crontabs") is not None
