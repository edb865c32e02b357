"""Kubernetes protobuf bodies (what kubectl's typed clients send) decode to wire dicts."""

from __future__ import annotations

import pytest

from knet.api.protobuf import ProtobufError, decode
from knet.api.protowire import encode_bytes_field as f
from knet.api.protowire import encode_varint


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = f(1, api_version.encode()) + f(2, kind.encode())
    return b"k8s\x00" + f(1, type_meta) + f(2, raw)


def map_entry(number: int, key: str, value: bytes) -> bytes:
    return f(number, f(1, key.encode()) + f(2, value))


def test_configmap_with_labels_and_binary_data():
    meta = f(1, b"cfg") + f(3, b"default") + map_entry(11, "app", b"web") + f(8, b"")  # zero creationTimestamp
    raw = f(1, meta) + map_entry(2, "k", b"v") + map_entry(3, "bin", b"\x00\x01")
    obj = decode(envelope("v1", "ConfigMap", raw))
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "web"},
                                "creationTimestamp": None},
                   "data": {"k": "v"}, "binaryData": {"bin": "AAE="}}


def test_deployment_keeps_meaningful_zeros_and_int_or_string():
    container = f(1, b"c") + f(2, b"nginx") + f(6, varint_field(3, 80))  # ports: containerPort 80
    pod_spec = f(2, container)
    template = f(2, pod_spec)
    strategy = f(1, b"RollingUpdate") + f(2, f(1, varint_field(1, 0) + varint_field(2, 1)) + f(2, varint_field(1, 1) + f(3, b"25%")))
    spec = varint_field(1, 0) + f(3, template) + f(4, strategy)  # replicas: 0 is kept
    obj = decode(envelope("apps/v1", "Deployment", f(1, f(1, b"d")) + f(2, spec)))
    assert obj["spec"]["replicas"] == 0
    assert obj["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "nginx",
                                                              "ports": [{"containerPort": 80}]}]
    assert obj["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}


def test_rejects_garbage():
    with pytest.raises(ProtobufError):
        decode(b'{"kind": "Pod"}')
    with pytest.raises(ProtobufError):
        decode(b"k8s\x00\x0a\xff")
    with pytest.raises(ProtobufError):
        decode(envelope("example.com/v1", "Widget", b""))


def test_token_request_bound_object_keeps_its_uid():
    """`kubectl create token --bound-object-uid` (protobuf): BoundObjectReference's Go field UID
    is JSON `uid`, not the proto-derived `uID` (which NodeRestriction would see as no uid)."""
    ref = f(1, b"Pod") + f(2, b"v1") + f(3, b"web") + f(4, b"1234")
    spec = f(1, b"vault") + f(3, ref) + varint_field(4, 3600)
    obj = decode(envelope("authentication.k8s.io/v1", "TokenRequest", f(1, f(1, b"sa")) + f(2, spec)))
    assert obj["spec"] == {"audiences": ["vault"], "expirationSeconds": 3600,
                           "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "1234"}}


def test_hpa_keeps_a_stated_zero_window_and_min_replicas():
    """An autoscaling/v2 HPA as kubectl's typed client encodes it: a stated
    stabilizationWindowSeconds: 0 means "no window" and minReplicas: 0 must reach validation
    (422), neither may be read as unset."""
    ref = f(1, b"Deployment") + f(2, b"web") + f(3, b"apps/v1")
    scale_down = f(1, b"Max") + varint_field(3, 0)
    spec = f(1, ref) + varint_field(2, 0) + varint_field(3, 3) + f(5, f(2, scale_down))
    obj = decode(envelope("autoscaling/v2", "HorizontalPodAutoscaler", f(1, f(1, b"h")) + f(2, spec)))
    assert obj["spec"]["minReplicas"] == 0 and obj["spec"]["maxReplicas"] == 3
    assert obj["spec"]["behavior"] == {"scaleDown": {"selectPolicy": "Max", "stabilizationWindowSeconds": 0}}


def test_inline_structs_are_at_their_parents_level():
    """Go's `json:",inline"` embeddings (Volume.VolumeSource, Probe.ProbeHandler,
    EphemeralContainer.EphemeralContainerCommon) are fields of their own in protobuf: what
    `kubectl debug node/...` (a hostPath volume of /) and `--copy-to` send must keep them."""
    volume = f(1, b"host-root") + f(2, f(1, f(1, b"/")))  # volumeSource.hostPath.path
    # volumeSource.configMap.localObjectReference.name
    config = f(1, b"cfg") + f(2, f(19, f(1, f(1, b"kube-root-ca.crt"))))
    probe = f(1, f(1, f(1, b"true")))  # handler.exec.command
    container = f(1, b"debugger") + f(2, b"busybox") + f(10, probe)
    ephemeral = f(1, f(1, b"dbg") + f(2, b"busybox")) + f(2, b"debugger")  # common + targetContainerName
    spec = f(1, volume) + f(1, config) + f(2, container) + f(34, ephemeral)
    obj = decode(envelope("v1", "Pod", f(1, f(1, b"p")) + f(2, spec)))
    assert obj["spec"]["volumes"] == [{"name": "host-root", "hostPath": {"path": "/"}},
                                      {"name": "cfg", "configMap": {"name": "kube-root-ca.crt"}}]
    assert obj["spec"]["containers"][0]["livenessProbe"] == {"exec": {"command": ["true"]}}
    assert obj["spec"]["ephemeralContainers"] == [{"name": "dbg", "image": "busybox", "targetContainerName": "debugger"}]
