"""kube-apiserver's bootstrap RBAC policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy) and
its reconciliation at start-up (pkg/registry/rbac/reconciliation, the `rbac/bootstrap-roles`
post-start hook). The policy is package data: policy/*.yaml, written from upstream's testdata.

`reconcile(desired, existing)` is pure: it answers the object to write (create or update), or
None when the stored object already holds the policy or is protected by
`rbac.authorization.kubernetes.io/autoupdate: "false"`. Reconciliation only adds: missing rules,
aggregation selectors, labels, annotations and binding subjects; what users added is kept."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources

import yaml

from knet.api.authz.escalation import covers

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
CONTROLLER_PREFIX = "system:controller:"


def _read(name: str) -> list[dict]:
    return yaml.safe_load(resources.files("knet.api.authz").joinpath("policy", name).read_text()) or []


def _meta(item: dict) -> dict:
    meta = {"name": item["name"], "labels": {**BOOTSTRAPPING_LABEL, **(item.get("labels") or {})},
            "annotations": {AUTOUPDATE: "true"}}
    if item.get("namespace"):
        meta = {"name": item["name"], "namespace": item["namespace"], **{k: meta[k] for k in ("labels", "annotations")}}
    return meta


def _role(kind: str, item: dict) -> dict:
    obj: dict = {"apiVersion": API_VERSION, "kind": kind, "metadata": _meta(item)}
    if item.get("aggregationRule") is not None:
        obj["aggregationRule"] = item["aggregationRule"]
    obj["rules"] = item.get("rules")
    return obj


def _binding(kind: str, role_kind: str, item: dict) -> dict:
    obj: dict = {"apiVersion": API_VERSION, "kind": kind, "metadata": _meta(item),
                 "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": item["role"]}}
    if item.get("subjects"):
        obj["subjects"] = item["subjects"]
    return obj


@cache
def _policy() -> tuple[dict, ...]:
    # Aggregated roles (admin, edit, view, ...) are written with their rules already gathered,
    # so the policy holds from the apiserver's first answer, with or without a controller-manager
    # (upstream writes them empty and waits for the clusterrole-aggregation controller).
    from knet.api.authz.aggregation import aggregate_all

    cluster_roles = aggregate_all([_role("ClusterRole", i) for i in _read("cluster-roles.yaml")])
    controller_roles = [_role("ClusterRole", i) for i in _read("controller-roles.yaml")]
    # ClusterRoleBindingsForControllers: each controller's role bound to its service account.
    controller_bindings = [
        _binding("ClusterRoleBinding", "ClusterRole", {
            "name": r["metadata"]["name"], "role": r["metadata"]["name"],
            "subjects": [{"kind": "ServiceAccount", "name": r["metadata"]["name"][len(CONTROLLER_PREFIX):],
                          "namespace": "kube-system"}]})
        for r in controller_roles]
    cluster_bindings = [_binding("ClusterRoleBinding", "ClusterRole", i) for i in _read("cluster-role-bindings.yaml")]
    roles = [_role("Role", i) for i in _read("namespace-roles.yaml")]
    bindings = [_binding("RoleBinding", "Role", i) for i in _read("namespace-role-bindings.yaml")]
    return tuple(cluster_roles + controller_roles + cluster_bindings + controller_bindings + roles + bindings)


def bootstrap_policy() -> list[dict]:
    """Every default object, in the order the apiserver ensures them: ClusterRoles (the
    controllers' too), ClusterRoleBindings, then Roles and RoleBindings of system namespaces."""
    return copy.deepcopy(list(_policy()))


def cluster_roles() -> list[dict]:
    return [o for o in bootstrap_policy() if o["kind"] == "ClusterRole"]


# --- reconciliation -----------------------------------------------------------------------------
def _protected(existing: dict) -> bool:
    return ((existing.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false"


def _merge_meta(result: dict, desired: dict) -> bool:
    """Desired labels and annotations, with the existing ones winning (upstream's merge)."""
    changed = False
    meta = result.setdefault("metadata", {})
    for field in ("labels", "annotations"):
        want = (desired.get("metadata") or {}).get(field) or {}
        have = meta.get(field) or {}
        merged = {**want, **have}
        if merged != have:
            meta[field] = merged
            changed = True
    return changed


def reconcile_role(desired: dict, existing: dict | None) -> dict | None:
    """computeReconciledRole in its union mode (RemoveExtraPermissions false)."""
    if existing is None:
        return copy.deepcopy(desired)
    if _protected(existing):
        return None
    result = copy.deepcopy(existing)
    changed = _merge_meta(result, desired)
    _, missing = covers(list(existing.get("rules") or ()), list(desired.get("rules") or ()))
    if missing:
        result["rules"] = list(result.get("rules") or ()) + missing
        changed = True
    want_agg, have_agg = desired.get("aggregationRule"), existing.get("aggregationRule")
    if want_agg is None and have_agg is not None:
        result.pop("aggregationRule", None)  # not meant to be aggregated at all
        changed = True
    elif want_agg is not None:
        have_sels = (have_agg or {}).get("clusterRoleSelectors") or []
        missing_sels = [s for s in want_agg.get("clusterRoleSelectors") or () if s not in have_sels]
        if missing_sels:
            result["aggregationRule"] = {**(have_agg or {}), "clusterRoleSelectors": have_sels + missing_sels}
            changed = True
    return result if changed else None


def _ref(obj: dict) -> tuple:
    ref = obj.get("roleRef") or {}
    return ref.get("apiGroup", ""), ref.get("kind", ""), ref.get("name", "")


def _subject_key(s: dict) -> tuple:
    return s.get("kind", ""), s.get("apiGroup", ""), s.get("name", ""), s.get("namespace", "")


def reconcile_binding(desired: dict, existing: dict | None) -> dict | None:
    """computeReconciledRoleBinding in its union mode. A binding whose roleRef differs is
    answered with the desired binding itself (roleRef is immutable: the caller recreates it)."""
    if existing is None:
        return copy.deepcopy(desired)
    if _protected(existing):
        return None
    if _ref(desired) != _ref(existing):
        return copy.deepcopy(desired)
    result = copy.deepcopy(existing)
    changed = _merge_meta(result, desired)
    have = {_subject_key(s) for s in existing.get("subjects") or ()}
    missing = [s for s in desired.get("subjects") or () if _subject_key(s) not in have]
    if missing:
        result["subjects"] = list(result.get("subjects") or ()) + missing
        changed = True
    return result if changed else None


def needs_recreate(desired: dict, existing: dict | None) -> bool:
    """A binding reconciled onto another role is deleted and created again."""
    return existing is not None and "roleRef" in desired and _ref(desired) != _ref(existing)


def reconcile(desired: dict, existing: dict | None) -> dict | None:
    """The object to write for one bootstrap object (Role, ClusterRole, RoleBinding or
    ClusterRoleBinding), or None."""
    if desired.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
        return reconcile_binding(desired, existing)
    return reconcile_role(desired, existing)
