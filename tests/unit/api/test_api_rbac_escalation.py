"""Escalation prevention. `covers` with the table of upstream's
pkg/registry/rbac/validation/policy_comparator_test.go (and TestNonResourceURLCovers); the
admission plugin as the roles/bindings storages' policybased wrappers behave: a user may write a
role or binding only with `escalate`/`bind`, or when already holding every rule it grants."""

from __future__ import annotations

import json

import pytest

from knet.api.auth import User
from knet.api.authz.escalation import _url_covers, compact_string, covers, escalation_admission
from knet.api.authz.rbac import RBACAuthorizer, StaticRbacSource
from knet.api.errors import ApiError
from knet.api.resources.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING
from knet.api.rest import AdmissionRequest

G = "rbac.authorization.k8s.io"


def r(groups=None, verbs=None, resources=None, urls=None, names=None) -> dict:
    out: dict = {}
    for key, value in (("apiGroups", groups), ("verbs", verbs), ("resources", resources),
                       ("nonResourceURLs", urls), ("resourceNames", names)):
        if value is not None:
            out[key] = value
    return out


COVERS = [
    pytest.param([r(["v1"], ["get"], ["builds"])], [r(["v1"], ["get"], ["builds"])], True, [], id="ExactMatch"),
    pytest.param([r(["v1"], ["delete"], ["deployments"]), r(["v1"], ["delete"], ["builds"]),
                  r(["v1"], ["update"], ["builds", "deployments"])],
                 [r(["v1"], ["delete", "update"], ["builds", "deployments"])], True, [],
                 id="MultipleRulesCoveringSingleRule"),
    pytest.param([r([g], ["delete"], ["deployments"]) for g in ("group1", "group2")]
                 + [r([g], ["delete"], ["builds"]) for g in ("group1", "group2")]
                 + [r([g], ["update"], ["builds", "deployments"]) for g in ("group1", "group2")],
                 [r(["group1", "group2"], ["delete", "update"], ["builds", "deployments"])], True, [],
                 id="MultipleAPIGroupsCoveringSingleRule"),
    pytest.param([r(["group1", "group2"], ["delete", "update"], ["builds", "deployments"])],
                 [r([g], ["delete"], ["deployments"]) for g in ("group1", "group2")]
                 + [r([g], ["update"], ["builds", "deployments"]) for g in ("group1", "group2")], True, [],
                 id="SingleAPIGroupsCoveringMultiple"),
    pytest.param([r(["v1"], ["delete", "update"], ["builds", "deployments"]), r(["v1"], ["delete"], ["pods"])],
                 [r(["v1"], ["delete", "update"], ["builds", "deployments", "pods"])], False,
                 [r(["v1"], ["update"], ["pods"])], id="MultipleRulesMissingSingleVerbResourceCombination"),
    pytest.param([r(["*"], ["get"], ["roles"])], [r(["group1", "group2"], ["get"], ["roles"])], True, [],
                 id="APIGroupStarCoveringMultiple"),
    pytest.param([r(["dummy-group"], ["get"], ["roles"])], [r(["*"], ["get"], ["roles"])], False,
                 [r(["*"], ["get"], ["roles"])], id="EnumerationNotCoveringAPIGroupStar"),
    pytest.param([r(["*"], ["get"], ["roles"])], [r(["*"], ["get"], ["roles"])], True, [], id="APIGroupStarCoveringStar"),
    pytest.param([r(["v1"], ["*"], ["roles"])], [r(["v1"], ["watch", "list"], ["roles"])], True, [],
                 id="VerbStarCoveringMultiple"),
    pytest.param([r(["v1"], ["get", "list", "watch", "create", "update", "delete", "exec"], ["roles"])],
                 [r(["v1"], ["*"], ["roles"])], False, [r(["v1"], ["*"], ["roles"])], id="EnumerationNotCoveringVerbStar"),
    pytest.param([r(["v1"], ["*"], ["roles"])], [r(["v1"], ["*"], ["roles"])], True, [], id="VerbStarCoveringStar"),
    pytest.param([r(["v1"], ["get"], ["*"])], [r(["v1"], ["get"], ["resourcegroup:deployments"])], True, [],
                 id="ResourceStarCoveringMultiple"),
    pytest.param([r(["v1"], ["get"], ["roles", "resourcegroup:deployments"])], [r(["v1"], ["get"], ["*"])], False,
                 [r(["v1"], ["get"], ["*"])], id="EnumerationNotCoveringResourceStar"),
    pytest.param([r(["v1"], ["get"], ["*"])], [r(["v1"], ["get"], ["*"])], True, [], id="ResourceStarCoveringStar"),
    pytest.param([r(["v1"], ["get"], ["pods"], names=[])], [r(["v1"], ["get"], ["pods"], names=["foo", "bar"])], True, [],
                 id="ResourceNameEmptyCoveringMultiple"),
    pytest.param([r(["v1"], ["get"], ["pods"], names=["foo", "bar"])], [r(["v1"], ["get"], ["pods"], names=[])], False,
                 [r(["v1"], ["get"], ["pods"])], id="EnumerationNotCoveringResourceNameEmpty"),
    pytest.param([r(verbs=["*"], urls=["/apis"])], [r(verbs=["*"], urls=["/apis"])], True, [], id="NonResourceURLs"),
    pytest.param([r(verbs=["*"], urls=["*"])], [r(verbs=["*"], urls=["/apis", "/apis/v1", "/"])], True, [],
                 id="NonResourceURLsStar"),
    pytest.param([r(verbs=["*"], urls=["/apis/*"])], [r(verbs=["get"], urls=["/apis", "/apis/v1"])], False,
                 [r(verbs=["get"], urls=["/apis"])], id="NonResourceURLsStarAfterPrefixDoesntCover"),
    pytest.param([r(verbs=["*"], urls=["/apis/*"])], [r(verbs=["get"], urls=["/apis/v1/foo", "/apis/v1"])], True, [],
                 id="NonResourceURLsStarAfterPrefix"),
    pytest.param([r(["v1"], ["get"], ["builds"], urls=["/apis"])], [r(["v1"], ["get"], ["builds"], urls=["/apis"])],
                 True, [], id="NonResourceURLsWithOtherFields"),
    pytest.param([r(["v1"], ["get"], ["builds"])], [r(["v1"], ["get"], ["builds"], urls=["/apis"])], False,
                 [r(verbs=["get"], urls=["/apis"])], id="NonResourceURLsWithOtherFieldsFailure"),
    # Subresources: `*/scale` covers every resource's scale, not the resources themselves.
    pytest.param([r(["apps"], ["get"], ["*/scale"])], [r(["apps"], ["get"], ["deployments/scale", "deployments"])],
                 False, [r(["apps"], ["get"], ["deployments"])], id="StarSubresource"),
]


@pytest.mark.parametrize(("owner", "servant", "covered", "uncovered"), COVERS)
def test_covers(owner, servant, covered, uncovered):
    got_covered, got_uncovered = covers(owner, servant)
    assert got_covered is covered
    def key(rule):
        return json.dumps(rule, sort_keys=True)

    assert sorted(map(key, got_uncovered)) == sorted(map(key, uncovered))


@pytest.mark.parametrize(("owner", "requested", "want"), [
    ("*", "/api", True), ("/api", "/api", True), ("/apis", "/api", False), ("/api/v1", "/api", False),
    ("/api/v1", "/api/v1", True), ("/api/*", "/api/v1", True), ("/api/*", "/api", False),
    ("/api/*/*", "/api/v1", False), ("/*/v1/*", "/api/v1", False),
])
def test_non_resource_url_covers(owner, requested, want):
    assert _url_covers(owner, requested) is want


def test_compact_string_as_upstream():
    assert compact_string(r([""], ["get"], ["pods"])) == '{APIGroups:[""], Resources:["pods"], Verbs:["get"]}'
    assert compact_string(r(verbs=["get", "list"], urls=["/healthz"])) == '{NonResourceURLs:["/healthz"], Verbs:["get" "list"]}'


# --- the admission plugin ---------------------------------------------------------------------------
def _authorizer() -> RBACAuthorizer:
    return RBACAuthorizer(StaticRbacSource([
        {"kind": "ClusterRole", "metadata": {"name": "pod-reader"},
         "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "secret-reader"},
         "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "rbac-manager"},
         # Not `*`: that would include escalate and bind.
         "rules": [{"verbs": ["get", "list", "watch", "create", "update", "patch", "delete"], "apiGroups": [G],
                    "resources": ["roles", "rolebindings"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "binder"},
         "rules": [{"verbs": ["bind"], "apiGroups": [G], "resources": ["clusterroles"], "resourceNames": ["secret-reader"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "escalator"},
         "rules": [{"verbs": ["escalate"], "apiGroups": [G], "resources": ["roles"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "a", "namespace": "ns1"},
         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "pod-reader"},
         "subjects": [{"kind": "User", "apiGroup": G, "name": "alice"}, {"kind": "User", "apiGroup": G, "name": "bob"}]},
        {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "ns1"},
         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "rbac-manager"},
         "subjects": [{"kind": "User", "apiGroup": G, "name": "alice"}, {"kind": "User", "apiGroup": G, "name": "bob"},
                      {"kind": "User", "apiGroup": G, "name": "eve"}]},
        {"kind": "RoleBinding", "metadata": {"name": "c", "namespace": "ns1"},
         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "binder"},
         "subjects": [{"kind": "User", "apiGroup": G, "name": "bob"}]},
        {"kind": "RoleBinding", "metadata": {"name": "d", "namespace": "ns1"},
         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "escalator"},
         "subjects": [{"kind": "User", "apiGroup": G, "name": "eve"}]},
    ]))


def _role(rules, name="r") -> dict:
    return {"apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": name, "namespace": "ns1"}, "rules": rules}


def _binding(role_name: str, name="rb", kind="ClusterRole") -> dict:
    return {"apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": "ns1"},
            "roleRef": {"apiGroup": G, "kind": kind, "name": role_name},
            "subjects": [{"kind": "User", "apiGroup": G, "name": "mallory"}]}


def _req(rt, obj, user, op="CREATE", old=None, ns="ns1"):
    return AdmissionRequest(op, rt, ns, obj["metadata"]["name"], obj, old, None, user, False)


ALICE = User("alice", groups=("devs", "system:authenticated"))
SECRETS = [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]


def test_a_role_may_grant_only_what_its_author_holds():
    admit = escalation_admission(_authorizer())
    admit(_req(ROLE, _role([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]), ALICE))
    with pytest.raises(ApiError) as exc:
        admit(_req(ROLE, _role(SECRETS + [{"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"]}]), ALICE))
    assert exc.value.code == 403 and exc.value.reason == "Forbidden"
    assert exc.value.message == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["devs" "system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}')
    # Updates too, unless only garbage-collection fields change.
    old = _role(SECRETS)
    with pytest.raises(ApiError):
        admit(_req(ROLE, {**old, "metadata": {**old["metadata"], "labels": {"a": "b"}}}, ALICE, "UPDATE", old))
    admit(_req(ROLE, {**old, "metadata": {**old["metadata"], "finalizers": ["x"]}}, ALICE, "UPDATE", old))
    # Elsewhere alice holds nothing: even pods cannot be granted in ns2.
    with pytest.raises(ApiError):
        admit(_req(ROLE, {**_role([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
                          "metadata": {"name": "r", "namespace": "ns2"}}, ALICE, ns="ns2"))


def test_escalate_verb_allows_any_role():
    admit = escalation_admission(_authorizer())
    admit(_req(ROLE, _role(SECRETS), User("eve")))
    with pytest.raises(ApiError) as exc:  # escalate is on roles only, not clusterroles
        admit(_req(CLUSTER_ROLE, {"apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": "cr"},
                                  "rules": SECRETS}, User("eve"), ns=""))
    assert exc.value.message.startswith('clusterroles.rbac.authorization.k8s.io "cr" is forbidden: user "eve" (groups=[])')


def test_bindings_need_bind_or_the_roles_rules():
    admit = escalation_admission(_authorizer())
    admit(_req(ROLE_BINDING, _binding("pod-reader"), ALICE))  # holds every rule of pod-reader in ns1
    with pytest.raises(ApiError) as exc:
        admit(_req(ROLE_BINDING, _binding("secret-reader"), ALICE))
    assert exc.value.code == 403 and 'rolebindings.rbac.authorization.k8s.io "rb" is forbidden' in exc.value.message
    admit(_req(ROLE_BINDING, _binding("secret-reader"), User("bob")))  # bob may bind secret-reader
    with pytest.raises(ApiError) as exc:  # a missing role: its not-found error, as upstream
        admit(_req(ROLE_BINDING, _binding("nope", kind="Role"), ALICE))
    assert exc.value.message == ('rolebindings.rbac.authorization.k8s.io "rb" is forbidden: '
                                 'role.rbac.authorization.k8s.io "nope" not found')
    crb = {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
           "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "pod-reader"}, "subjects": []}
    with pytest.raises(ApiError):  # alice holds pod-reader in ns1 only, not cluster-wide
        admit(_req(CLUSTER_ROLE_BINDING, crb, ALICE, ns=""))


def test_apiserver_and_system_masters_always_pass():
    admit = escalation_admission(_authorizer())
    admit(_req(ROLE, _role([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]), None))
    admit(_req(CLUSTER_ROLE_BINDING, {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"},
                                      "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "cluster-admin"}},
               User("root", groups=("system:masters",)), ns=""))
    # Deletes are not checked.
    admit(AdmissionRequest("DELETE", ROLE, "ns1", "r", None, _role(SECRETS), None, ALICE, False))
