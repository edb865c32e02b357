"""The RBAC authorizer. Tables ported from upstream plugin/pkg/auth/authorizer/rbac/rbac_test.go
(TestAuthorizer, TestRuleMatches) and subject_locator_test.go (TestSubjectLocator), plus the
reasons, rules_for (SelfSubjectRulesReview), and cache invalidation on store writes."""

from __future__ import annotations

import pytest

from knet.api.auth import User
from knet.api.authz import ALLOW, NO_OPINION, Attributes
from knet.api.authz.rbac import RBACAuthorizer, StaticRbacSource, StoreRbacSource, allowed_subjects
from knet.api.authz.rules import rule_allows

G = "rbac.authorization.k8s.io"


# --- builders as upstream's test helpers --------------------------------------------------------
def new_rule(verbs: str, groups: str, resources: str, urls: str) -> dict:
    """newRule: comma-separated lists, as upstream's (an empty string gives [""])."""
    return {"verbs": verbs.split(","), "apiGroups": groups.split(","), "resources": resources.split(","),
            "nonResourceURLs": urls.split(",")}


def role(name: str, ns: str, *rules: dict) -> dict:
    return {"kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": list(rules)}


def cluster_role(name: str, *rules: dict) -> dict:
    return {"kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules)}


def _subjects(subjects) -> list[dict]:
    out = []
    for s in subjects:
        kind, name = s.split(":", 1)
        sub = {"kind": kind, "name": name}
        if kind != "ServiceAccount":
            sub["apiGroup"] = G
        out.append(sub)
    return out


def cluster_binding(role_name: str, *subjects: str, name: str = "") -> dict:
    return {"kind": "ClusterRoleBinding", "metadata": {"name": name or role_name},
            "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": role_name}, "subjects": _subjects(subjects)}


def binding(ns: str, role_name: str, ref_kind: str, *subjects: str, name: str = "") -> dict:
    return {"kind": "RoleBinding", "metadata": {"name": name or role_name, "namespace": ns},
            "roleRef": {"apiGroup": G, "kind": ref_kind, "name": role_name}, "subjects": _subjects(subjects)}


def attrs(user: str, groups: str, verb: str, resource: str, sub: str, ns: str, group: str) -> Attributes:
    """defaultAttributes{user, groups, verb, resource, subresource, namespace, apiGroup}."""
    return Attributes(user=User(user, groups=tuple(groups.split(","))), verb=verb, namespace=ns, api_group=group,
                      resource=resource, subresource=sub)


def url(user: str = "", groups: tuple[str, ...] = (), verb: str = "get", path: str = "") -> Attributes:
    return Attributes(user=User(user, groups=groups), verb=verb, resource_request=False, path=path)


# --- TestAuthorizer -------------------------------------------------------------------------------
AUTHORIZER_CASES = [
    pytest.param(
        [cluster_role("admin", new_rule("*", "*", "*", "*")),
         binding("ns1", "admin", "ClusterRole", "User:admin", "Group:admins")],
        [attrs("admin", "", "get", "Pods", "", "ns1", ""), attrs("admin", "", "watch", "Pods", "", "ns1", ""),
         attrs("admin", "group1", "watch", "Foobar", "", "ns1", ""),
         attrs("joe", "admins", "watch", "Foobar", "", "ns1", ""),
         attrs("joe", "group1,admins", "watch", "Foobar", "", "ns1", "")],
        [attrs("admin", "", "GET", "Pods", "", "ns2", ""), attrs("admin", "", "GET", "Nodes", "", "", ""),
         attrs("admin", "admins", "GET", "Pods", "", "ns2", ""), attrs("admin", "admins", "GET", "Nodes", "", "", "")],
        id="rolebinding-to-clusterrole"),
    pytest.param(
        [cluster_role("non-resource-url-getter", new_rule("get", "", "", "/apis")),
         cluster_role("non-resource-url", new_rule("*", "", "", "/apis")),
         cluster_role("non-resource-url-prefix", new_rule("get", "", "", "/apis/*")),
         cluster_binding("non-resource-url-getter", "User:foo", "Group:bar"),
         cluster_binding("non-resource-url", "User:admin", "Group:admin"),
         cluster_binding("non-resource-url-prefix", "User:prefixed", "Group:prefixed")],
        [url("foo", path="/apis"), url(groups=("bar",), path="/apis"), url("admin", path="/apis"),
         url(groups=("admin",), path="/apis"), url("admin", verb="watch", path="/apis"),
         url(groups=("admin",), verb="watch", path="/apis"),
         url("prefixed", path="/apis/v1"), url(groups=("prefixed",), path="/apis/v1"),
         url("prefixed", path="/apis/v1/foobar"), url(groups=("prefixed",), path="/apis/v1/foorbar")],
        [url("foo", verb="watch", path="/apis"), url(groups=("bar",), verb="watch", path="/apis"),
         url("foo", path="/api/v1"), url(groups=("bar",), path="/api/v1"), url("admin", path="/api/v1"),
         url(groups=("admin",), path="/api/v1"),
         url("prefixed", path="/api/v1"), url(groups=("prefixed",), path="/api/v1")],
        id="non-resource-urls"),
    pytest.param(
        [cluster_role("admin", new_rule("*", "*", "pods", "*")),
         binding("ns1", "admin", "ClusterRole", "User:admin", "Group:admins")],
        [attrs("admin", "", "get", "pods", "", "ns1", "")],
        [attrs("admin", "", "get", "pods", "status", "ns1", "")],
        id="resource-does-not-cover-its-subresources"),
    pytest.param(
        [cluster_role("admin", new_rule("*", "*", "pods/status", "*")),
         binding("ns1", "admin", "ClusterRole", "User:admin", "Group:admins")],
        [attrs("admin", "", "get", "pods", "status", "ns1", "")],
        [attrs("admin", "", "get", "pods", "", "ns1", "")],
        id="subresource-does-not-cover-its-resource"),
]


@pytest.mark.parametrize(("objects", "should_pass", "should_fail"), AUTHORIZER_CASES)
def test_authorizer(objects, should_pass, should_fail):
    authz = RBACAuthorizer(StaticRbacSource(objects))
    for a in should_pass:
        assert authz.authorize(a).decision == ALLOW, f"incorrectly restricted {a}"
    for a in should_fail:
        assert authz.authorize(a).decision == NO_OPINION, f"incorrectly passed {a}"


# --- TestRuleMatches ------------------------------------------------------------------------------
def rr(verb: str, group: str, resource: str, sub: str = "", name: str = "") -> dict:
    return {"verb": verb, "resource_request": True, "api_group": group, "resource": resource, "subresource": sub,
            "name": name}


def nr(verb: str, path: str) -> dict:
    return {"verb": verb, "resource_request": False, "path": path}


def _rule(verbs=(), groups=(), resources=(), urls=(), names=()) -> dict:
    r = {"verbs": list(verbs)}
    if groups:
        r["apiGroups"] = list(groups)
    if resources:
        r["resources"] = list(resources)
    if urls:
        r["nonResourceURLs"] = list(urls)
    if names:
        r["resourceNames"] = list(names)
    return r


RULE_CASES = [
    pytest.param(_rule(["*"], ["group1"], ["resource1"]), [
        (rr("verb1", "group1", "resource1"), True), (rr("verb1", "group2", "resource1"), False),
        (rr("verb1", "group1", "resource2"), False), (rr("verb1", "group2", "resource2"), False),
        (rr("verb2", "group1", "resource1"), True), (rr("verb2", "group2", "resource1"), False),
        (rr("verb2", "group1", "resource2"), False), (rr("verb2", "group2", "resource2"), False)],
        id="star verb, exact match other"),
    pytest.param(_rule(["verb1"], ["*"], ["resource1"]), [
        (rr("verb1", "group1", "resource1"), True), (rr("verb1", "group2", "resource1"), True),
        (rr("verb1", "group1", "resource2"), False), (rr("verb1", "group2", "resource2"), False),
        (rr("verb2", "group1", "resource1"), False), (rr("verb2", "group2", "resource1"), False),
        (rr("verb2", "group1", "resource2"), False), (rr("verb2", "group2", "resource2"), False)],
        id="star group, exact match other"),
    pytest.param(_rule(["verb1"], ["group1"], ["*"]), [
        (rr("verb1", "group1", "resource1"), True), (rr("verb1", "group2", "resource1"), False),
        (rr("verb1", "group1", "resource2"), True), (rr("verb1", "group2", "resource2"), False),
        (rr("verb2", "group1", "resource1"), False), (rr("verb2", "group2", "resource1"), False),
        (rr("verb2", "group1", "resource2"), False), (rr("verb2", "group2", "resource2"), False)],
        id="star resource, exact match other"),
    pytest.param(_rule(["verb1", "verb2"], ["group1", "group2"], ["resource1", "resource2"]), [
        (rr(v, g, r), True) for v in ("verb1", "verb2") for g in ("group1", "group2")
        for r in ("resource1", "resource2")], id="tuple expansion"),
    pytest.param(_rule(["*"], ["*"], ["resource1/subresource1"]), [
        (rr("verb1", "group1", "resource1", "subresource1"), True),
        (rr("verb1", "group2", "resource1", "subresource2"), False),
        (rr("verb1", "group1", "resource2", "subresource1"), False),
        (rr("verb1", "group2", "resource2", "subresource1"), False),
        (rr("verb2", "group1", "resource1", "subresource1"), True),
        (rr("verb2", "group2", "resource1", "subresource2"), False),
        (rr("verb2", "group1", "resource2", "subresource1"), False),
        (rr("verb2", "group2", "resource2", "subresource1"), False)], id="subresource expansion"),
    pytest.param(_rule(["verb1"], urls=["*"]), [
        (nr("verb1", p), True) for p in ("/foo", "/foo/bar", "/foo/baz", "/foo/bar/one", "/foo/baz/one")] + [
        (nr("verb2", p), False) for p in ("/foo", "/foo/bar", "/foo/baz", "/foo/bar/one", "/foo/baz/one")],
        id="star nonresource, exact match other"),
    pytest.param(_rule(["verb1"], urls=["/foo/*"]), [
        (nr("verb1", "/foo"), False), (nr("verb1", "/foo/bar"), True), (nr("verb1", "/foo/baz"), True),
        (nr("verb1", "/foo/bar/one"), True), (nr("verb1", "/foo/baz/one"), True),
        (nr("verb1", "/notfoo"), False), (nr("verb1", "/notfoo/bar"), False), (nr("verb1", "/notfoo/baz"), False),
        (nr("verb1", "/notfoo/bar/one"), False), (nr("verb1", "/notfoo/baz/one"), False)],
        id="star nonresource subpath"),
    pytest.param(_rule(["*"], urls=["/foo", "/foo/bar/one"]), [
        (nr(v, "/foo"), True) for v in ("verb1", "verb2")] + [
        (nr(v, "/foo/bar/one"), True) for v in ("verb1", "verb2")] + [
        (nr(v, p), False) for v in ("verb1", "verb2") for p in ("/foo/bar", "/foo/baz", "/foo/baz/one")],
        id="star verb, exact nonresource"),
    # knet's additions: `*/sub` (as the disruption controller's `*/scale`) and resourceNames.
    pytest.param(_rule(["get"], ["*"], ["*/scale"]), [
        (rr("get", "apps", "deployments", "scale"), True), (rr("get", "apps", "deployments"), False),
        (rr("get", "apps", "deployments", "status"), False)], id="star-slash-subresource"),
    pytest.param(_rule(["get"], [""], ["configmaps"], names=["cluster-info"]), [
        (rr("get", "", "configmaps", name="cluster-info"), True), (rr("get", "", "configmaps", name="other"), False),
        (rr("get", "", "configmaps"), False)], id="resource names"),
]


@pytest.mark.parametrize(("rule", "requests"), RULE_CASES)
def test_rule_matches(rule, requests):
    from knet.api.authz.rules import CompiledRule

    compiled = CompiledRule.of(rule)
    for request, expected in requests:
        assert rule_allows(rule, **request) is expected, request
        full = {"api_group": "", "resource": "", "subresource": "", "name": "", "path": "", **request}
        assert compiled.allows(full["verb"], full["resource_request"], full["api_group"], full["resource"],
                               full["subresource"], full["name"], full["path"]) is expected, request


# --- TestSubjectLocator ---------------------------------------------------------------------------
def _subj(kind: str, name: str) -> dict:
    return {"kind": kind, "apiGroup": G, "name": name}


MASTERS = _subj("Group", "system:masters")


@pytest.mark.parametrize(("objects", "super_user", "cases"), [
    pytest.param(
        [cluster_role("admin", new_rule("*", "*", "*", "*")),
         cluster_binding("admin", "User:super-admin", "Group:super-admins"),
         binding("ns1", "admin", "ClusterRole", "User:admin", "Group:admins")],
        "",
        [(attrs("", "", "get", "Pods", "", "ns1", ""),
          [MASTERS, _subj("User", "super-admin"), _subj("Group", "super-admins"), _subj("User", "admin"),
           _subj("Group", "admins")]),
         (attrs("", "", "*", "Pods", "", "*", ""),
          [MASTERS, _subj("User", "super-admin"), _subj("Group", "super-admins")]),
         (attrs("", "", "*", "Pods", "", "", ""),
          [MASTERS, _subj("User", "super-admin"), _subj("Group", "super-admins")])],
        id="no super user, star matches star"),
    pytest.param(
        [cluster_role("admin", new_rule("*", "*", "*", "*")),
         cluster_binding("admin", "User:super-admin", "Group:super-admins"),
         role("admin", "ns1", new_rule("get", "*", "Pods", "*")),
         binding("ns1", "admin", "Role", "User:admin", "Group:admins")],
        "foo",
        [(attrs("", "", "get", "Pods", "", "ns1", ""),
          [MASTERS, _subj("User", "foo"), _subj("User", "super-admin"), _subj("Group", "super-admins"),
           _subj("User", "admin"), _subj("Group", "admins")]),
         (attrs("", "", "create", "Pods", "", "ns1", ""),
          [MASTERS, _subj("User", "foo"), _subj("User", "super-admin"), _subj("Group", "super-admins")]),
         (attrs("", "", "get", "Pods", "", "ns2", ""),
          [MASTERS, _subj("User", "foo"), _subj("User", "super-admin"), _subj("Group", "super-admins")])],
        id="super user, local roles work"),
])
def test_subject_locator(objects, super_user, cases):
    source = StaticRbacSource(objects)
    for a, subjects in cases:
        got, err = allowed_subjects(source, a, super_user)
        assert got == subjects and err == ""


# --- reasons, errors, service accounts ------------------------------------------------------------
def test_allow_reasons_are_worded_as_upstream():
    authz = RBACAuthorizer(StaticRbacSource([
        cluster_role("view", new_rule("get", "", "pods", "")),
        {"kind": "ClusterRoleBinding", "metadata": {"name": "viewers"},
         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "view"}, "subjects": _subjects(["Group:devs"])},
        role("edit", "ns1", new_rule("create", "", "pods", "")),
        {"kind": "RoleBinding", "metadata": {"name": "robots", "namespace": "ns1"},
         "roleRef": {"apiGroup": G, "kind": "Role", "name": "edit"},
         "subjects": [{"kind": "ServiceAccount", "name": "robot"}]},
    ]))
    d = authz.authorize(attrs("jane", "devs", "get", "pods", "", "ns1", ""))
    assert d.reason == 'RBAC: allowed by ClusterRoleBinding "viewers" of ClusterRole "view" to Group "devs"'
    # A ServiceAccount subject without a namespace is one of the binding's namespace.
    sa = Attributes(user=User("system:serviceaccount:ns1:robot", groups=("system:serviceaccounts",)),
                    verb="create", namespace="ns1", resource="pods")
    assert authz.authorize(sa).reason == ('RBAC: allowed by RoleBinding "robots/ns1" of Role "edit" to '
                                          'ServiceAccount "robot/ns1"')
    other_ns = Attributes(user=User("system:serviceaccount:ns2:robot"), verb="create", namespace="ns1",
                          resource="pods")
    assert not authz.authorize(other_ns).allowed
    # No opinion, no reason.
    assert authz.authorize(attrs("jane", "devs", "delete", "pods", "", "ns1", "")) == authz.authorize(
        attrs("jane", "devs", "delete", "pods", "", "ns1", ""))


def test_service_account_in_cluster_role_binding_needs_its_namespace():
    authz = RBACAuthorizer(StaticRbacSource([
        cluster_role("r", new_rule("get", "", "pods", "")),
        {"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "r"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"},
                      {"kind": "ServiceAccount", "name": "nons"}]},
    ]))
    ok = Attributes(user=User("system:serviceaccount:kube-system:default"), verb="get", resource="pods", namespace="x")
    assert authz.authorize(ok).allowed
    assert not authz.authorize(Attributes(user=User("system:serviceaccount::nons"), verb="get", resource="pods")).allowed


def test_missing_role_is_no_opinion_with_the_error_and_an_incomplete_rules_review():
    authz = RBACAuthorizer(StaticRbacSource([
        cluster_role("r", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
        cluster_binding("r", "User:u", name="good"),
        cluster_binding("gone", "User:u", name="dangling"),
    ]))
    d = authz.authorize(attrs("u", "", "list", "pods", "", "", ""))
    assert d.decision == NO_OPINION
    assert d.reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'
    assert authz.authorize(attrs("u", "", "get", "pods", "", "", "")).allowed
    resource_rules, non_resource_rules, incomplete, err = authz.rules_for(User("u"), "default")
    assert resource_rules == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
    assert non_resource_rules == [] and incomplete and err == 'clusterrole.rbac.authorization.k8s.io "gone" not found'


def test_rules_for_has_the_shape_of_a_self_subject_rules_review():
    authz = RBACAuthorizer(StaticRbacSource([
        cluster_role("basic", {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                               "resources": ["selfsubjectaccessreviews"]},
                     {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/version"]}),
        cluster_binding("basic", "Group:system:authenticated"),
        role("cm", "ns1", {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["x"]}),
        binding("ns1", "cm", "Role", "User:u"),
    ]))
    res, nonres, incomplete, err = authz.rules_for(User("u", groups=("system:authenticated",)), "ns1")
    assert res == [{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]},
                   {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["x"]}]
    assert nonres == [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/version"]}]
    assert (incomplete, err) == (False, "")
    # Other namespaces see only the cluster-wide rules.
    assert len(authz.rules_for(User("u", groups=("system:authenticated",)), "ns2")[0]) == 1


async def test_store_writes_invalidate_the_cache(tmp_path):
    from knet.api.storage.sqlite import SqliteStore

    store = SqliteStore(str(tmp_path / "db"))
    try:
        authz = RBACAuthorizer(StoreRbacSource(store))
        a = attrs("jane", "", "get", "pods", "", "ns1", "")
        assert not authz.authorize(a).allowed  # cached now
        await store.create("rbac.authorization.k8s.io/roles", "ns1", "r", {
            "apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "ns1"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
        await store.create("rbac.authorization.k8s.io/rolebindings", "ns1", "rb", {
            "apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "ns1"},
            "roleRef": {"apiGroup": G, "kind": "Role", "name": "r"}, "subjects": _subjects(["User:jane"])})
        assert authz.authorize(a).allowed
        # Unrelated writes keep the cache.
        gen = authz.source.generation
        await store.create("configmaps", "ns1", "c", {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "c", "namespace": "ns1"}})
        assert authz.source.generation == gen
        await store.delete("rbac.authorization.k8s.io/rolebindings", "ns1", "rb")
        assert not authz.authorize(a).allowed
    finally:
        await store.close()
