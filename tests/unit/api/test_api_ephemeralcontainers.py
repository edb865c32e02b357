"""pods/ephemeralcontainers on a real ObjectService over an in-memory store: what a client sees
of kube-apiserver's ephemeral-container rules.

The tables port upstream's pkg/apis/core/validation/validation_test.go TestValidateEphemeralContainers
(its success and failure cases that apply to knet: name collisions, required fields, pull policy,
targetContainerName, subPath/subPathExpr and the disallowed fields) and
TestValidatePodEphemeralContainersUpdate (adding, keeping, reordering, removing, changing,
static pods)."""

from __future__ import annotations

import copy

import pytest

from knet.api.errors import ApiError
from knet.api.resources import build_registry, ephemeralcontainers, pods
from knet.api.rest import ObjectService, Options
from knet.api.storage.sqlite import SqliteStore

SUB = "ephemeralcontainers"


def debugger(name: str = "debugger", **fields) -> dict:
    return {"name": name, "image": "busybox", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePolicy": "File", **fields}


def pod_spec(*ephemeral: dict, init: bool = False) -> dict:
    spec = {"containers": [{"name": "ctr", "image": "image", "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePolicy": "File"}],
            "volumes": [{"name": "vol", "emptyDir": {}}], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
    if init:
        spec["initContainers"] = [{"name": "ictr", "image": "image", "imagePullPolicy": "IfNotPresent",
                                   "terminationMessagePolicy": "File"}]
    if ephemeral:
        spec["ephemeralContainers"] = list(ephemeral)
    return spec


# TestValidateEphemeralContainers' successCases (the ones knet's API has the fields for).
SUCCESS = {
    "Empty Ephemeral Containers": pod_spec(),
    "Single Container": pod_spec(debugger()),
    "Multiple Containers": pod_spec(debugger("debug1"), debugger("debug2")),
    "Single Container with Target": pod_spec(debugger(targetContainerName="ctr")),
    "All allowed fields": pod_spec(debugger(
        command=["bash"], args=["bash"], workingDir="/", envFrom=[{"configMapRef": {"name": "dummy"}}],
        env=[{"name": "TEST", "value": "TRUE"}], volumeMounts=[{"name": "vol", "mountPath": "/vol"}],
        terminationMessagePath="/dev/termination-log", securityContext={}, stdin=True, stdinOnce=True, tty=True)),
}

# TestValidateEphemeralContainers' failureCases: (spec, field, type).
FAILURE = {
    "Name Collision with Container.Containers": (
        pod_spec(debugger("ctr"), debugger("debug1")), "spec.ephemeralContainers[0].name", "Duplicate"),
    "Name Collision with Container.InitContainers": (
        pod_spec(debugger("ictr"), init=True), "spec.ephemeralContainers[0].name", "Duplicate"),
    "Name Collision with EphemeralContainers": (
        pod_spec(debugger("debug1"), debugger("debug1")), "spec.ephemeralContainers[1].name", "Duplicate"),
    "empty Container Name": (
        pod_spec(debugger("")), "spec.ephemeralContainers[0].name", "Required"),
    "empty Container Image": (
        pod_spec(debugger(image="")), "spec.ephemeralContainers[0].image", "Required"),
    "invalid image pull policy": (
        pod_spec(debugger(imagePullPolicy="PullThreeTimes")), "spec.ephemeralContainers[0].imagePullPolicy",
        "NotSupported"),
    "TargetContainerName doesn't exist": (
        pod_spec(debugger(targetContainerName="bogus")), "spec.ephemeralContainers[0].targetContainerName",
        "NotFound"),
    "Targets an ephemeral container": (
        pod_spec(debugger("debug1"), debugger("debug2", targetContainerName="debug1")),
        "spec.ephemeralContainers[1].targetContainerName", "NotFound"),
    "SubPath not allowed": (
        pod_spec(debugger(volumeMounts=[{"name": "vol", "mountPath": "/vol", "subPath": "foo"}])),
        "spec.ephemeralContainers[0].volumeMounts[0].subPath", "Forbidden"),
    "SubPathExpr not allowed": (
        pod_spec(debugger(volumeMounts=[{"name": "vol", "mountPath": "/vol", "subPathExpr": "$(POD_NAME)"}])),
        "spec.ephemeralContainers[0].volumeMounts[0].subPathExpr", "Forbidden"),
    "Unknown volume": (
        pod_spec(debugger(volumeMounts=[{"name": "nope", "mountPath": "/vol"}])),
        "spec.ephemeralContainers[0].volumeMounts[0].name", "NotFound"),
    "Disallowed field Lifecycle": (
        pod_spec(debugger(lifecycle={"preStop": {"exec": {"command": ["ls", "-l"]}}})),
        "spec.ephemeralContainers[0].lifecycle", "Forbidden"),
    "Disallowed field LivenessProbe": (
        pod_spec(debugger(livenessProbe={"tcpSocket": {"port": 80}, "successThreshold": 1})),
        "spec.ephemeralContainers[0].livenessProbe", "Forbidden"),
    "Disallowed field Ports": (
        pod_spec(debugger(ports=[{"protocol": "TCP", "containerPort": 80}])),
        "spec.ephemeralContainers[0].ports", "Forbidden"),
    "Disallowed field ReadinessProbe": (
        pod_spec(debugger(readinessProbe={"tcpSocket": {"port": 80}})),
        "spec.ephemeralContainers[0].readinessProbe", "Forbidden"),
    "Disallowed field StartupProbe": (
        pod_spec(debugger(startupProbe={"tcpSocket": {"port": 80}, "successThreshold": 1})),
        "spec.ephemeralContainers[0].startupProbe", "Forbidden"),
    "Disallowed field Resources": (
        pod_spec(debugger(resources={"limits": {"cpu": "10"}})),
        "spec.ephemeralContainers[0].resources", "Forbidden"),
    "Container uses disallowed field: ResizePolicy": (
        pod_spec(debugger(resizePolicy=[{"resourceName": "cpu", "restartPolicy": "NotRequired"}])),
        "spec.ephemeralContainers[0].resizePolicy", "Forbidden"),
    "Forbidden RestartPolicy: Always": (
        pod_spec(debugger(restartPolicy="Always")), "spec.ephemeralContainers[0].restartPolicy", "Forbidden"),
}


@pytest.mark.parametrize("name", SUCCESS)
def test_valid_ephemeral_containers(name):
    assert ephemeralcontainers.validate_containers(SUCCESS[name]) == []


@pytest.mark.parametrize("name", FAILURE)
def test_invalid_ephemeral_containers(name):
    spec, field, kind = FAILURE[name]
    errs = ephemeralcontainers.validate_containers(spec)
    assert (field, kind) in [(e.field, e.type) for e in errs], errs


def test_an_empty_resources_is_not_set():
    """The defaults give every container `resources: {}` (Go's zero value): not a set field."""
    assert ephemeralcontainers.validate_containers(pod_spec(debugger(resources={}))) == []


def pod(*ephemeral: dict, annotations: dict | None = None) -> dict:
    meta = {"name": "pod", "namespace": "ns"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": pod_spec(*ephemeral)}


# TestValidatePodEphemeralContainersUpdate: (old, new, error field or None).
UPDATES = {
    "no ephemeral containers": (pod(), pod(), None),
    "No change in Ephemeral Containers": (
        pod(debugger("debugger1"), debugger("debugger2")), pod(debugger("debugger1"), debugger("debugger2")), None),
    "Ephemeral Container list order changes": (
        pod(debugger("debugger1"), debugger("debugger2")), pod(debugger("debugger2"), debugger("debugger1")), None),
    "Add an Ephemeral Container": (pod(), pod(debugger("debugger1")), None),
    "Add two Ephemeral Containers": (pod(), pod(debugger("debugger1"), debugger("debugger2")), None),
    "Add to an existing Ephemeral Containers": (
        pod(debugger("debugger1")), pod(debugger("debugger1"), debugger("debugger2")), None),
    "Add to an existing Ephemeral Containers, list order changes": (
        pod(debugger("debugger1"), debugger("debugger2")),
        pod(debugger("debugger3"), debugger("debugger2"), debugger("debugger1")), None),
    "Remove an Ephemeral Container": (pod(debugger("debugger1")), pod(), "spec.ephemeralContainers"),
    "Replace an Ephemeral Container": (
        pod(debugger("firstone")), pod(debugger("thentheother")), "spec.ephemeralContainers"),
    "Change an Ephemeral Containers": (
        pod(debugger("debugger1"), debugger("debugger2")),
        pod(debugger("debugger1"), debugger("debugger2", image="debian")), "spec.ephemeralContainers"),
    "add ephemeral container to static pod": (
        pod(annotations={"kubernetes.io/config.mirror": "foo"}),
        pod(debugger("debugger1"), annotations={"kubernetes.io/config.mirror": "foo"}), ""),
}


@pytest.mark.parametrize("name", UPDATES)
def test_ephemeral_container_updates(name):
    old, new, field = UPDATES[name]
    errs = ephemeralcontainers.validate_update(new, old)
    if field is None:
        assert errs == []
    else:
        assert errs and all(e.field == field and e.type == "Forbidden" for e in errs), errs


@pytest.fixture
async def service():
    store = SqliteStore(":memory:")
    objects = ObjectService(build_registry(), store, None)
    await objects.create(objects.registry.lookup("", "v1", "namespaces"), "", {"metadata": {"name": "ns"}}, Options())
    try:
        yield objects
    finally:
        await store.close()


def causes(exc: ApiError) -> list[tuple[str, str]]:
    return [(c["field"], c["reason"]) for c in exc.details["causes"]]


async def test_the_subresource_adds_a_container_and_nothing_else(service):
    rt = service.registry.lookup("", "v1", "pods")
    created = await service.create(rt, "ns", {"metadata": {"name": "pod", "labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "ctr", "image": "busybox"}]}}, Options())
    # kubectl debug's strategic merge patch, plus changes the subresource must drop.
    patch = {"metadata": {"labels": {"a": "changed"}},
             "spec": {"activeDeadlineSeconds": 5, "ephemeralContainers": [
                 {"name": "debugger-abc", "image": "busybox", "targetContainerName": "ctr", "stdin": True,
                  "tty": True, "command": ["sh"]}]}}
    _, obj = await service.patch(rt, "ns", "pod", "strategic", patch, Options(), SUB)
    ec = obj["spec"]["ephemeralContainers"]
    assert [c["name"] for c in ec] == ["debugger-abc"]
    assert ec[0]["terminationMessagePolicy"] == "File" and ec[0]["imagePullPolicy"] == "Always"  # defaulted
    assert ec[0]["stdin"] is True and ec[0]["tty"] is True
    assert obj["metadata"]["labels"] == {"a": "b"} and "activeDeadlineSeconds" not in obj["spec"]
    assert obj["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    # A second one is added beside it; the first stays.
    _, obj = await service.patch(rt, "ns", "pod", "strategic",
                                 {"spec": {"ephemeralContainers": [{"name": "two", "image": "busybox"}]}}, Options(), SUB)
    assert [c["name"] for c in obj["spec"]["ephemeralContainers"]] == ["debugger-abc", "two"]


async def test_refusals_are_422_with_field_causes(service):
    rt = service.registry.lookup("", "v1", "pods")
    await service.create(rt, "ns", {"metadata": {"name": "pod"},
                                    "spec": {"containers": [{"name": "ctr", "image": "busybox"}]}}, Options())
    bad = {"spec": {"ephemeralContainers": [{"name": "ctr", "image": "busybox", "targetContainerName": "nope",
                                             "ports": [{"containerPort": 80}]}]}}
    with pytest.raises(ApiError) as err:
        await service.patch(rt, "ns", "pod", "strategic", bad, Options(), SUB)
    assert err.value.code == 422
    assert set(causes(err.value)) == {
        ("spec.ephemeralContainers[0].name", "FieldValueDuplicate"),
        ("spec.ephemeralContainers[0].targetContainerName", "FieldValueNotFound"),
        ("spec.ephemeralContainers[0].ports", "FieldValueForbidden")}
    await service.patch(rt, "ns", "pod", "strategic",
                        {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}, Options(), SUB)
    # Removing (a JSON patch can say so) or changing one is refused.
    with pytest.raises(ApiError) as err:
        await service.patch(rt, "ns", "pod", "json", [{"op": "remove", "path": "/spec/ephemeralContainers/0"}],
                            Options(), SUB)
    assert err.value.code == 422 and causes(err.value) == [("spec.ephemeralContainers", "FieldValueForbidden")]
    assert "may not be removed" in err.value.message
    with pytest.raises(ApiError) as err:
        await service.patch(rt, "ns", "pod", "json", [{"op": "replace", "path": "/spec/ephemeralContainers/0/image",
                                                       "value": "other"}], Options(), SUB)
    assert "may not be changed" in err.value.message


async def test_a_plain_pod_write_cannot_add_or_create_ephemeral_containers(service):
    rt = service.registry.lookup("", "v1", "pods")
    spec = {"containers": [{"name": "ctr", "image": "busybox"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}
    with pytest.raises(ApiError) as err:
        await service.create(rt, "ns", {"metadata": {"name": "pod"}, "spec": copy.deepcopy(spec)}, Options())
    assert err.value.code == 422 and causes(err.value) == [("spec.ephemeralContainers", "FieldValueForbidden")]
    await service.create(rt, "ns", {"metadata": {"name": "pod"}, "spec": {"containers": spec["containers"]}},
                         Options())
    with pytest.raises(ApiError) as err:
        await service.patch(rt, "ns", "pod", "strategic", {"spec": {"ephemeralContainers": spec["ephemeralContainers"]}},
                            Options())
    assert err.value.code == 422 and causes(err.value) == [("spec", "FieldValueForbidden")]


async def test_static_pods_take_none(service):
    rt = service.registry.lookup("", "v1", "pods")
    await service.create(rt, "ns", {"metadata": {"name": "pod", "annotations": {"kubernetes.io/config.mirror": "x"}},
                                    "spec": {"containers": [{"name": "ctr", "image": "busybox"}]}}, Options())
    with pytest.raises(ApiError) as err:
        await service.patch(rt, "ns", "pod", "strategic",
                            {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}, Options(), SUB)
    assert err.value.code == 422 and "static pods do not support ephemeral containers" in err.value.message


def test_the_pod_kind_routes_the_subresource():
    assert "ephemeralcontainers" in pods.RESOURCE.subresources
    assert pods.RESOURCE.subresource_write("ephemeralcontainers") is not None
