"""The bootstrap policy (upstream's testdata, shipped as package data) judged through the RBAC
authorizer, as a cluster with the clusterrole-aggregation controller and kubeadm's add-ons
holds it; ClusterRole aggregation; and bootstrap reconciliation (upstream's
pkg/registry/rbac/reconciliation semantics: union, autoupdate=false protects)."""

from __future__ import annotations

import pytest

from knet.api.auth import User
from knet.api.authz import Attributes
from knet.api.authz.aggregation import aggregate_all, aggregate_rules
from knet.api.authz.bootstrappolicy import bootstrap_policy, needs_recreate, reconcile
from knet.api.authz.escalation import covers
from knet.api.authz.rbac import RBACAuthorizer, StaticRbacSource
from knet.api.resources import rbac as rbac_resources
from knet.cluster import addons

G = "rbac.authorization.k8s.io"
AUTHENTICATED = "system:authenticated"


def _cluster_policy() -> list[dict]:
    objects = bootstrap_policy() + [o for _, _, o in addons.kubeadm_rbac_objects() + addons.kube_proxy_rbac_objects()
                                    + addons.coredns_rbac_objects()]
    roles = aggregate_all([o for o in objects if o["kind"] == "ClusterRole"])
    return roles + [o for o in objects if o["kind"] != "ClusterRole"]


POLICY = _cluster_policy()
BY_NAME = {o["metadata"]["name"]: o for o in POLICY if o["kind"] == "ClusterRole"}


def _authorizer(*extra: dict) -> RBACAuthorizer:
    return RBACAuthorizer(StaticRbacSource(POLICY + list(extra)))


def _bind(user: str, cluster_role: str, ns: str = "team") -> dict:
    return {"kind": "RoleBinding", "metadata": {"name": f"{user}-{cluster_role}", "namespace": ns},
            "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "User", "apiGroup": G, "name": user}]}


def can(authz: RBACAuthorizer, user: User, verb: str, resource: str, ns: str = "team", group: str = "",
        sub: str = "", name: str = "") -> bool:
    return authz.authorize(Attributes(user=user, verb=verb, namespace=ns, api_group=group, resource=resource,
                                      subresource=sub, name=name)).allowed


def can_url(authz: RBACAuthorizer, user: User, path: str, verb: str = "get") -> bool:
    return authz.authorize(Attributes(user=user, verb=verb, resource_request=False, path=path)).allowed


def test_every_default_object_is_valid():
    validators = {"ClusterRole": rbac_resources.validate_cluster_role, "Role": rbac_resources.validate_role,
                  "RoleBinding": rbac_resources.validate_role_binding,
                  "ClusterRoleBinding": rbac_resources.validate_cluster_role_binding}
    for obj in POLICY:
        assert validators[obj["kind"]](obj, None) == [], obj["metadata"]["name"]
        assert obj["metadata"]["name"]
    # Every binding refers to a role of the policy.
    for b in (o for o in POLICY if "roleRef" in o):
        ref = b["roleRef"]
        if ref["kind"] == "ClusterRole":
            assert ref["name"] in BY_NAME, b["metadata"]["name"]


def test_default_objects_are_marked_for_reconciliation():
    for obj in bootstrap_policy():
        assert obj["metadata"]["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    names = {o["metadata"]["name"] for o in bootstrap_policy()}
    for want in ("cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
                 "system:public-info-viewer", "system:node", "system:node-proxier", "system:kube-scheduler",
                 "system:kube-controller-manager", "system:controller:clusterrole-aggregation-controller",
                 "system:controller:namespace-controller", "system::leader-locking-kube-scheduler"):
        assert want in names


def test_view_edit_admin():
    authz = _authorizer(_bind("viewer", "view"), _bind("editor", "edit"), _bind("boss", "admin"))
    viewer, editor, boss = User("viewer"), User("editor"), User("boss")
    assert can(authz, viewer, "list", "pods") and can(authz, viewer, "get", "pods", sub="log")
    assert not can(authz, viewer, "get", "secrets")  # view cannot read secrets
    assert not can(authz, viewer, "create", "pods")
    assert not can(authz, viewer, "list", "pods", ns="other")  # only where bound
    assert can(authz, editor, "create", "deployments", group="apps")
    assert can(authz, editor, "get", "secrets") and can(authz, editor, "create", "pods", sub="exec")
    assert not can(authz, editor, "create", "rolebindings", group=G)
    assert can(authz, boss, "create", "rolebindings", group=G) and can(authz, boss, "create", "roles", group=G)
    assert can(authz, boss, "create", "localsubjectaccessreviews", group="authorization.k8s.io")
    assert not can(authz, boss, "delete", "namespaces", ns="")  # admin is namespaced power only


def test_admin_covers_edit_covers_view():
    admin, edit, view = (BY_NAME[n]["rules"] for n in ("admin", "edit", "view"))
    assert view and len(edit) > len(view) and len(admin) > len(edit)
    assert covers(admin, edit)[0] and covers(edit, view)[0]
    assert not covers(view, edit)[0] and not covers(edit, admin)[0]


def test_node_proxier_and_coredns():
    authz = _authorizer()
    for user in (User("system:kube-proxy"), User("system:serviceaccount:kube-system:kube-proxy")):
        for res, group in (("endpointslices", "discovery.k8s.io"), ("services", "")):
            assert can(authz, user, "list", res, ns="", group=group) and can(authz, user, "watch", res, ns="", group=group)
        assert can(authz, user, "get", "nodes", ns="")
        assert not can(authz, user, "get", "secrets", ns="kube-system")
    coredns = User("system:serviceaccount:kube-system:coredns")
    for res in ("endpoints", "services", "pods", "namespaces"):
        assert can(authz, coredns, "watch", res, ns="")
    assert can(authz, coredns, "list", "endpointslices", ns="", group="discovery.k8s.io")
    assert not can(authz, coredns, "create", "services", ns="default")


def test_anonymous_and_authenticated():
    authz = _authorizer()
    anonymous = User("system:anonymous", groups=("system:unauthenticated",))
    for path in ("/healthz", "/version", "/livez", "/readyz"):
        assert can_url(authz, anonymous, path)
    assert not can_url(authz, anonymous, "/api") and not can_url(authz, anonymous, "/metrics")
    assert not can(authz, anonymous, "list", "pods", ns="default")
    assert not can(authz, anonymous, "create", "selfsubjectaccessreviews", ns="", group="authorization.k8s.io")
    # kubeadm lets anyone read kube-public/cluster-info (and nothing else there).
    assert can(authz, anonymous, "get", "configmaps", ns="kube-public", name="cluster-info")
    assert not can(authz, anonymous, "get", "configmaps", ns="kube-public", name="other")
    someone = User("jane", groups=(AUTHENTICATED,))
    assert can(authz, someone, "create", "selfsubjectaccessreviews", ns="", group="authorization.k8s.io")
    assert can(authz, someone, "create", "selfsubjectrulesreviews", ns="", group="authorization.k8s.io")
    assert can_url(authz, someone, "/api") and can_url(authz, someone, "/apis/apps/v1")
    assert not can(authz, someone, "list", "pods", ns="default")
    assert not can_url(authz, someone, "/healthz", verb="post")


def test_control_plane_identities():
    authz = _authorizer()
    scheduler = User("system:kube-scheduler", groups=(AUTHENTICATED,))
    assert can(authz, scheduler, "create", "pods", ns="default", sub="binding")
    assert can(authz, scheduler, "update", "leases", ns="kube-system", group="coordination.k8s.io", name="kube-scheduler")
    assert not can(authz, scheduler, "get", "secrets", ns="default")
    kcm = User("system:kube-controller-manager", groups=(AUTHENTICATED,))
    assert can(authz, kcm, "list", "secrets", ns="", group="") and can(authz, kcm, "create", "serviceaccounts", sub="token")
    assert not can(authz, kcm, "delete", "pods", ns="default")
    # --use-service-account-credentials: each controller holds only its own role.
    deploy = User("system:serviceaccount:kube-system:deployment-controller")
    assert can(authz, deploy, "create", "replicasets", ns="team", group="apps")
    assert can(authz, deploy, "update", "deployments", ns="team", group="apps", sub="status")
    assert not can(authz, deploy, "create", "pods", ns="team") and not can(authz, deploy, "get", "secrets", ns="team")
    aggregator = User("system:serviceaccount:kube-system:clusterrole-aggregation-controller")
    assert can(authz, aggregator, "escalate", "clusterroles", ns="", group=G)
    assert can(authz, User("root", groups=("system:masters",)), "delete", "nodes", ns="")
    node = User("system:node:node01", groups=("system:nodes", AUTHENTICATED))
    assert not can(authz, node, "get", "secrets", ns="default")  # system:node is bound to nobody: the Node authorizer decides
    assert can(authz, node, "get", "configmaps", ns="kube-system", name="kubelet-config")


# --- aggregation ---------------------------------------------------------------------------------
def _cr(name: str, labels: dict | None = None, rules=None, selectors=None) -> dict:
    obj = {"kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def R(verb: str, res: str) -> dict:  # noqa: N802 - a rule literal
    return {"verbs": [verb], "apiGroups": [""], "resources": [res]}


def test_aggregate_rules_by_selector_then_name_each_rule_once():
    # Ported from pkg/controller/clusterroleaggregation's TestSyncClusterRole cases.
    agg = _cr("agg", selectors=[{"matchLabels": {"foo": "bar"}}, {"matchLabels": {"baz": "qux"}}])
    roles = [agg, _cr("b", {"foo": "bar"}, [R("get", "pods"), R("list", "pods")]),
             _cr("a", {"foo": "bar"}, [R("get", "secrets")]),
             _cr("c", {"baz": "qux"}, [R("get", "pods"), R("get", "nodes")]),
             _cr("d", {"other": "x"}, [R("delete", "pods")])]
    assert aggregate_rules(agg, roles) == [R("get", "secrets"), R("get", "pods"), R("list", "pods"), R("get", "nodes")]
    assert aggregate_rules(_cr("plain", rules=[R("get", "pods")]), roles) is None
    # A role matching its own selector does not aggregate itself.
    me = _cr("me", {"foo": "bar"}, [R("x", "y")], selectors=[{"matchLabels": {"foo": "bar"}}])
    assert R("x", "y") not in aggregate_rules(me, [me, *roles[1:]])
    assert aggregate_rules(_cr("none", selectors=[{"matchLabels": {"nope": "1"}}]), roles) == []


# --- reconciliation --------------------------------------------------------------------------------
def _desired(kind: str, name: str) -> dict:
    return next(o for o in bootstrap_policy() if o["kind"] == kind and o["metadata"]["name"] == name)


def test_reconcile_creates_missing_and_leaves_equal_alone():
    want = _desired("ClusterRole", "system:node-proxier")
    assert reconcile(want, None) == want
    stored = {**want, "metadata": {**want["metadata"], "resourceVersion": "5", "uid": "u"}}
    assert reconcile(want, stored) is None


def test_reconcile_adds_missing_rules_and_keeps_extra():
    want = _desired("ClusterRole", "system:basic-user")
    stored = {**want, "metadata": {**want["metadata"], "labels": {"mine": "1"}},
              "rules": [want["rules"][0], R("get", "pods")]}
    out = reconcile(want, stored)
    assert out["rules"][:2] == stored["rules"]  # extra kept
    assert out["rules"][2:] == [{"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                                 "verbs": ["create"]}]
    assert out["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults", "mine": "1"}
    assert reconcile(want, out) is None  # converged


def test_autoupdate_false_protects():
    want = _desired("ClusterRole", "system:basic-user")
    stored = {**want, "metadata": {**want["metadata"],
                                   "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "false"}},
              "rules": []}
    assert reconcile(want, stored) is None
    binding = _desired("ClusterRoleBinding", "system:basic-user")
    assert reconcile(binding, {**binding, "metadata": stored["metadata"], "subjects": []}) is None


def test_aggregated_roles_keep_their_aggregated_rules():
    want = _desired("ClusterRole", "admin")
    stored = {**want, "rules": BY_NAME["admin"]["rules"]}
    assert reconcile(want, stored) is None
    # A lost selector comes back.
    lost = {**stored, "aggregationRule": {"clusterRoleSelectors": []}}
    assert reconcile(want, lost)["aggregationRule"] == want["aggregationRule"]


def test_reconcile_bindings_adds_subjects_and_recreates_on_other_role():
    want = _desired("ClusterRoleBinding", "system:public-info-viewer")
    stored = {**want, "subjects": [want["subjects"][0], {"kind": "User", "apiGroup": G, "name": "extra"}]}
    out = reconcile(want, stored)
    assert out["subjects"] == stored["subjects"] + [want["subjects"][1]]
    assert not needs_recreate(want, stored)
    moved = {**want, "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "view"}}
    assert reconcile(want, moved) == want and needs_recreate(want, moved)


@pytest.mark.parametrize("name", ["cluster-admin", "system:discovery", "system:node"])
def test_reconciled_policy_is_stable(name):
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        want = _desired(kind, name)
        assert reconcile(want, reconcile(want, None)) is None
