"""Output negotiation. The first table ports the rows of upstream's
staging/src/k8s.io/apiserver/pkg/endpoints/handlers/negotiation/negotiate_test.go (TestNegotiate)
that apply to a server of JSON and YAML (its protobuf row: knet does not encode protobuf, so that
type is refused); the second is knet's own for the `as=` conversions kube-apiserver's
RequestScope allows (Table, PartialObjectMetadata, PartialObjectMetadataList) and watches."""

from __future__ import annotations

import orjson
import pytest
import yaml

from knet.api import negotiation
from knet.api.errors import ApiError
from knet.api.negotiation import JSON, YAML, Output, negotiate, parse_accept
from knet.api.registry import ResourceType

REFUSED = "only the following media types are accepted: application/json, application/yaml"


@pytest.mark.parametrize(("accept", "want"), [
    ("", Output(JSON)),
    ("*/*", Output(JSON)),
    ("application/*", Output(JSON)),
    ("application/json", Output(JSON)),
    ("application/json; pretty=1", Output(JSON)),
    ("unrecognized/stuff,application/json; pretty=1", Output(JSON)),
    ("application/json;as=BOGUS;v=v1beta1;g=meta.k8s.io, application/json", Output(JSON)),
    ("application/BOGUS, application/json", Output(JSON)),
    ("application/protobuf", REFUSED),
    ("application", REFUSED),
])
def test_upstream_negotiate_table(accept, want):
    if isinstance(want, str):
        with pytest.raises(ApiError) as err:
            negotiate(accept)
        assert (err.value.code, err.value.reason, err.value.message) == (406, "NotAcceptable", want)
    else:
        assert negotiate(accept) == want


TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
# What client-go's metadata client sends for a list (protobuf first, knet falls through to JSON).
METADATA_LIST = ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
                 "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")


@pytest.mark.parametrize(("accept", "watch", "want"), [
    ("application/vnd.kubernetes.protobuf", False, REFUSED),
    ("application/vnd.kubernetes.protobuf, application/json", False, Output(JSON)),
    ("application/vnd.kubernetes.protobuf, */*", False, Output(JSON)),
    ("application/yaml", False, Output(YAML)),
    ("application/yaml;q=0.5, application/json", False, Output(JSON)),
    ("text/html, application/yaml;q=0.9", False, Output(YAML)),
    ("text/html", False, REFUSED),
    (f"{TABLE_V1},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", False,
     Output(JSON, "Table", "meta.k8s.io/v1")),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False, Output(JSON, "Table", "meta.k8s.io/v1beta1")),
    ("application/yaml;as=Table;v=v1;g=meta.k8s.io", False, Output(YAML, "Table", "meta.k8s.io/v1")),
    ("application/json;as=Table", False, REFUSED),  # no group/version: not a conversion it allows
    ("application/json;as=Table;v=v2;g=meta.k8s.io", False, REFUSED),
    ("application/json;as=Pod;v=v1;g=", False, REFUSED),
    (METADATA_LIST, False, Output(JSON, "PartialObjectMetadataList", "meta.k8s.io/v1")),
    ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", False,
     Output(JSON, "PartialObjectMetadata", "meta.k8s.io/v1")),
    ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1", False,
     Output(JSON, "PartialObjectMetadata", "meta.k8s.io/v1beta1")),
    ("application/json;stream=watch", True, Output(JSON)),
    ("application/json;stream=bogus, application/json", False, Output(JSON)),
    ("application/yaml;stream=watch, application/json", True, Output(JSON)),
    ("application/yaml", True, "only the following media types are accepted: application/json;stream=watch"),
    ("application/vnd.kubernetes.protobuf;stream=watch", True, REFUSED),
])
def test_knet_negotiation(accept, watch, want):
    if isinstance(want, str):
        with pytest.raises(ApiError) as err:
            negotiate(accept, watch=watch)
        assert (err.value.code, err.value.message) == (406, want)
    else:
        assert negotiate(accept, watch=watch) == want


def test_accept_clauses_sort_best_first():
    clauses = parse_accept("*/*;q=0.8, text/*, application/json;q=0.9, bad, application/yaml")
    assert [(c.type, c.subtype, c.q) for c in clauses] == [
        ("application", "yaml", 1.0), ("text", "*", 1.0), ("application", "json", 0.9), ("*", "*", 0.8)]


PODS = ResourceType("", "v1", "pods", "Pod")
DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment")


def test_partial_object_metadata_and_its_refusals():
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"c": 1}}
    assert negotiation.partial(pod, "meta.k8s.io/v1") == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]}
    listed = negotiation.partial_list([pod], {"resourceVersion": "7", "continue": "c", "remainingItemCount": 2},
                                      "meta.k8s.io/v1")
    assert listed["kind"] == "PartialObjectMetadataList" and listed["metadata"] == {
        "resourceVersion": "7", "continue": "c", "remainingItemCount": 2}
    assert listed["items"][0]["kind"] == "PartialObjectMetadata" and "spec" not in listed["items"][0]
    assert negotiation.list_refused(DEPLOYMENTS).message == (
        "you requested PartialObjectMetadata, but the requested object is a list (*apps.DeploymentList)")
    assert negotiation.object_refused(PODS).message == (
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Pod)")


def test_yaml_is_the_json_with_sorted_keys():
    obj = {"metadata": {"name": "a", "labels": {"b": "2", "a": "1"}}, "kind": "Pod", "items": [1, "x"]}
    text = negotiation.encode(YAML, orjson.dumps(obj)).decode()
    assert yaml.safe_load(text) == obj
    assert text.splitlines()[:3] == ["items:", "- 1", "- x"]
    assert negotiation.encode(JSON, obj) == orjson.dumps(obj)
