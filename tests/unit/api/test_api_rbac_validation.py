"""Validation of the four RBAC kinds, with the tables of upstream's
pkg/apis/rbac/validation/validation_test.go (metadata.name/namespace rows are the apiserver's
generic checks, tested with every kind elsewhere), plus defaults and kubectl's columns."""

from __future__ import annotations

import pytest

from knet.api.resources.rbac import (
    binding_row,
    default_binding,
    role_row,
    validate_cluster_role,
    validate_cluster_role_binding,
    validate_role,
    validate_role_binding,
)

G = "rbac.authorization.k8s.io"


def crb(ref: dict, subjects=None) -> dict:
    return {"metadata": {"name": "master"}, "roleRef": ref, "subjects": subjects or []}


def ref(kind="ClusterRole", name="valid", group=G) -> dict:
    out = {"apiGroup": group, "kind": kind}
    if name:
        out["name"] = name
    return out


def test_valid_bindings():
    subjects = [{"name": "validsaname", "namespace": "foo", "kind": "ServiceAccount"},
                {"name": "valid@username", "kind": "User", "apiGroup": G},
                {"name": "valid@groupname", "kind": "Group", "apiGroup": G}]
    assert validate_cluster_role_binding(crb(ref(), subjects), None) == []
    ns_subjects = [{"name": "validsaname", "kind": "ServiceAccount"}] + subjects[1:]
    assert validate_role_binding(crb(ref("Role"), ns_subjects), None) == []


BINDING_ERRORS = [
    # (ClusterRoleBinding?, object, error type, field)
    pytest.param(True, crb(ref(group="rbac.GroupName")), "NotSupported", "roleRef.apiGroup", id="crb-bad-group"),
    pytest.param(True, crb(ref("Type")), "NotSupported", "roleRef.kind", id="crb-bad-kind"),
    pytest.param(True, crb(ref("Role")), "NotSupported", "roleRef.kind", id="crb-reference-role"),
    pytest.param(True, crb(ref(name="")), "Required", "roleRef.name", id="crb-bad-role"),
    pytest.param(True, crb(ref(), [{"name": "subject"}]), "NotSupported", "subjects[0].kind", id="crb-bad-subject-kind"),
    pytest.param(True, crb(ref(), [{"namespace": "foo", "name": "subject:bad", "kind": "ServiceAccount"}]),
                 "Invalid", "subjects[0].name", id="crb-bad-subject-name"),
    pytest.param(True, crb(ref(), [{"name": "good", "kind": "ServiceAccount"}]), "Required", "subjects[0].namespace",
                 id="crb-missing-sa-namespace"),
    pytest.param(True, crb(ref(), [{"namespace": "foo", "kind": "ServiceAccount"}]), "Required", "subjects[0].name",
                 id="crb-missing-subject-name"),
    pytest.param(False, crb(ref(group="rbac.GroupName")), "NotSupported", "roleRef.apiGroup", id="rb-bad-group"),
    pytest.param(False, crb(ref("Type")), "NotSupported", "roleRef.kind", id="rb-bad-kind"),
    pytest.param(False, crb(ref("Role", name="")), "Required", "roleRef.name", id="rb-bad-role"),
    pytest.param(False, crb(ref("Role"), [{"name": "subject"}]), "NotSupported", "subjects[0].kind",
                 id="rb-bad-subject-kind"),
    pytest.param(False, crb(ref("Role"), [{"name": "subject:bad", "kind": "ServiceAccount"}]), "Invalid",
                 "subjects[0].name", id="rb-bad-subject-name"),
    pytest.param(False, crb(ref("Role"), [{"kind": "ServiceAccount"}]), "Required", "subjects[0].name",
                 id="rb-missing-subject-name"),
    # knet's additions: subjects' apiGroups, as validateRoleBindingSubject checks them.
    pytest.param(False, crb(ref("Role"), [{"kind": "ServiceAccount", "name": "a", "apiGroup": G}]), "NotSupported",
                 "subjects[0].apiGroup", id="rb-sa-with-rbac-group"),
    pytest.param(False, crb(ref("Role"), [{"kind": "User", "name": "a", "apiGroup": "x"}]), "NotSupported",
                 "subjects[0].apiGroup", id="rb-user-with-other-group"),
    pytest.param(False, crb(ref("Role", name="a/b")), "Invalid", "roleRef.name", id="rb-role-name-with-slash"),
]


@pytest.mark.parametrize(("cluster", "obj", "err_type", "field"), BINDING_ERRORS)
def test_binding_errors(cluster, obj, err_type, field):
    errs = (validate_cluster_role_binding if cluster else validate_role_binding)(obj, None)
    assert errs, "expected a failure"
    for e in errs:
        assert (e.type, e.field) == (err_type, field), e


def test_role_ref_cannot_change():
    old = crb(ref("Role"))
    assert validate_role_binding(crb(ref("Role")), old) == []
    errs = validate_role_binding(crb(ref("Role", "changed")), old)
    assert [(e.type, e.field) for e in errs] == [("Invalid", "roleRef")]
    assert str(errs[0]) == ('roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", '
                            'Name:"changed"}: cannot change roleRef')
    errs = validate_cluster_role_binding(crb(ref(name="other")), crb(ref()))
    assert [(e.type, e.field) for e in errs] == [("Invalid", "roleRef")]


RULE_CASES = [
    pytest.param(True, [], None, id="valid-empty-role"),
    pytest.param(False, [], None, id="valid-empty-clusterrole"),
    pytest.param(False, [{"verbs": ["get"], "nonResourceURLs": ["/*"]}], None, id="nonresource-url"),
    pytest.param(True, [{"verbs": ["get"], "nonResourceURLs": ["/*"]}], ("Invalid", "rules[0].nonResourceURLs"),
                 id="namespaced-nonresource-url"),
    pytest.param(False, [{"verbs": [], "nonResourceURLs": ["/*"]}], ("Required", "rules[0].verbs"),
                 id="nonresource-url-no-verbs"),
    pytest.param(True, [{"verbs": ["get"], "nonResourceURLs": ["/*"], "apiGroups": ["v1"], "resources": ["pods"]}],
                 ("Invalid", "rules[0].nonResourceURLs"), id="mixed-nonresource-and-resource"),
    pytest.param(True, [{"verbs": ["get"], "apiGroups": ["v1"], "resources": ["pods"]}], None, id="valid-resource"),
    pytest.param(True, [{"verbs": ["get"], "resources": ["pods"]}], ("Required", "rules[0].apiGroups"),
                 id="no-api-group"),
    pytest.param(True, [{"verbs": ["get"], "apiGroups": ["v1"]}], ("Required", "rules[0].resources"),
                 id="no-resources"),
    pytest.param(True, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "secrets"], "resourceNames": ["a"]}],
                 ("Required", "rules[0].resourceNames"), id="resource-names-of-several-resources"),
]


@pytest.mark.parametrize(("namespaced", "rules", "want"), RULE_CASES)
def test_policy_rules(namespaced, rules, want):
    obj = {"metadata": {"name": "default"}, "rules": rules}
    errs = (validate_role if namespaced else validate_cluster_role)(obj, None)
    if want is None:
        assert errs == []
    else:
        assert errs and all((e.type, e.field) == want for e in errs), errs


def test_aggregation_rule_needs_a_selector():
    obj = {"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": []}}
    assert [(e.type, e.field) for e in validate_cluster_role(obj, None)] == [
        ("Required", "aggregationRule.clusterRoleSelectors")]
    obj["aggregationRule"]["clusterRoleSelectors"] = [{"matchExpressions": [{"key": "a", "operator": "Nope"}]}]
    assert [e.field for e in validate_cluster_role(obj, None)] == [
        "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator"]
    obj["aggregationRule"]["clusterRoleSelectors"] = [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]
    assert validate_cluster_role(obj, None) == []


def test_defaults_fill_the_rbac_group():
    obj = {"roleRef": {"kind": "Role", "name": "r"},
           "subjects": [{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"},
                        {"kind": "ServiceAccount", "name": "s"}]}
    default_binding(obj)
    assert obj["roleRef"]["apiGroup"] == G
    assert [s.get("apiGroup") for s in obj["subjects"]] == [G, G, None]


def test_columns():
    meta = {"name": "x", "creationTimestamp": "2026-01-02T03:04:05Z"}
    assert role_row({"metadata": meta}) == ["x", "2026-01-02T03:04:05Z"]
    row = binding_row({"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": "view"},
                       "subjects": [{"kind": "User", "name": "a"}, {"kind": "User", "name": "b"},
                                    {"kind": "Group", "name": "g"},
                                    {"kind": "ServiceAccount", "name": "s", "namespace": "ns"}]})
    assert row[:2] == ["x", "ClusterRole/view"] and row[3:] == ["a, b", "g", "ns/s"]
