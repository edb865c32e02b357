"""The type checker against encoding/json's answers for the built-in kinds: wrong types named
as Go names them (innermost struct, JSON field path, Go type), nulls decoded as Go decodes
them, IntOrString / Quantity / Time / []byte fields, and the patch walk."""

from __future__ import annotations

import pytest

from knet.api import typecheck
from knet.api.typecheck import TypeMismatch

CASES = [
    ("V1Pod", {"spec": {"nodeName": ["x"]}},
     "json: cannot unmarshal array into Go struct field PodSpec.spec.nodeName of type string"),
    ("V1Service", {"spec": {"selector": "app=web"}},
     "json: cannot unmarshal string into Go struct field ServiceSpec.spec.selector of type map[string]string"),
    ("V1Service", {"spec": {"ports": "80"}},
     "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort"),
    ("V1ConfigMap", {"metadata": {"labels": ["a"]}},
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    ("V1Pod", {"spec": {"containers": [{"name": "c", "env": [{"name": 1}]}]}},
     "json: cannot unmarshal number into Go struct field EnvVar.spec.containers.env.name of type string"),
    ("V1Pod", {"spec": {"containers": [{"ports": [{"containerPort": 1.5}]}]}},
     "json: cannot unmarshal number 1.5 into Go struct field ContainerPort.spec.containers.ports.containerPort "
     "of type int32"),
    ("V1Pod", {"spec": {"activeDeadlineSeconds": 2**40}}, None),
    ("V1Pod", {"spec": {"priority": 2**40}},
     f"json: cannot unmarshal number {2**40} into Go struct field PodSpec.spec.priority of type int32"),
    ("V1Pod", {"spec": {"hostNetwork": 1}},
     "json: cannot unmarshal number into Go struct field PodSpec.spec.hostNetwork of type bool"),
    ("V1Service", {"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}}, None),
    ("V1Service", {"spec": {"ports": [{"port": 80, "targetPort": True}]}},
     "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    ("V1Pod", {"spec": {"containers": [{"resources": {"limits": {"cpu": "1.5", "memory": "1Gi", "x": 2}}}]}}, None),
    ("V1Pod", {"spec": {"containers": [{"resources": {"limits": {"cpu": "1Qi"}}}]}},
     "unable to parse quantity's suffix"),
    ("V1Pod", {"spec": {"containers": [{"resources": {"limits": {"cpu": []}}}]}}, typecheck.QUANTITY_FORMAT),
    ("V1Pod", {"metadata": {"creationTimestamp": "yesterday"}},
     'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"'),
    ("V1Secret", {"data": {"k": "dmFs"}}, None),
    ("V1Secret", {"data": {"k": "v!"}}, "illegal base64 data at input byte 1"),
    ("V1ObjectMeta", {"managedFields": [{"fieldsV1": {"f:data": {}}}]}, None),
    ("V1ObjectMeta", {"managedFields": [{"fieldsV1": "x"}]},
     "json: cannot unmarshal string into Go struct field ManagedFieldsEntry.managedFields.fieldsV1 of type v1.FieldsV1"),
]


@pytest.mark.parametrize("model,obj,error", CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_types(model, obj, error):
    if error is None:
        typecheck.check(obj, model)
    else:
        with pytest.raises(TypeMismatch) as exc:
            typecheck.check(obj, model)
        assert str(exc.value) == error


def test_nulls_unknown_fields_and_number_quantities():
    obj = {"metadata": {"name": "p", "labels": None, "bogus": 1},
           "spec": {"containers": [None, {"name": "c", "args": ["a", None],
                                          "resources": {"requests": {"cpu": 1, "memory": None}}}]}}
    unknown = typecheck.check(obj, "V1Pod")
    assert unknown == ["metadata.bogus"]
    assert obj == {"metadata": {"name": "p"},
                   "spec": {"containers": [{}, {"name": "c", "args": ["a", ""],
                                                "resources": {"requests": {"cpu": "1", "memory": "0"}}}]}}


def test_the_first_wrong_type_in_document_order_is_named():
    with pytest.raises(TypeMismatch, match="PodSpec.spec.nodeName"):
        typecheck.check({"spec": {"nodeName": 1, "hostNetwork": "x"}}, "V1Pod")


def test_patched_parts_are_checked_and_the_rest_is_not_walked():
    stored_labels = {"a": "b"}
    new = {"metadata": {"name": "c", "labels": stored_labels}, "data": "str"}
    with pytest.raises(TypeMismatch, match="ConfigMap.data of type map"):
        typecheck.check_patched(new, {"data": "str"}, "V1ConfigMap")
    new = {"metadata": {"name": "c", "labels": {"a": 1}}, "data": {"k": "v"}}
    typecheck.check_patched(new, {"data": {"k": "v"}}, "V1ConfigMap")  # labels untouched by the patch
    with pytest.raises(TypeMismatch, match="ObjectMeta.metadata.labels of type string"):
        typecheck.check_patched(new, {"metadata": {"labels": {"a": 1}}}, "V1ConfigMap")


def test_every_built_in_kind_compiles():
    from knet.api.resources import build_registry

    for rt in build_registry().types:
        if rt.group == "metrics.k8s.io":
            continue  # read-only kinds, never written (the Python client has no model of them)
        assert typecheck.specs(rt.model)
