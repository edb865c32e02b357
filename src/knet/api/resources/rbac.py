"""rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding and ClusterRoleBinding: defaults
(pkg/apis/rbac/v1/defaults.go), validation (pkg/apis/rbac/validation) and kubectl's columns
(pkg/printers/internalversion: roles `NAME CREATED AT`, bindings `NAME ROLE AGE` and wide
`USERS GROUPS SERVICEACCOUNTS`)."""

from __future__ import annotations

from knet.api.errors import FieldError, invalid, not_supported, required
from knet.api.printing import age, parse_time
from knet.api.registry import Column, ResourceType
from knet.api.validation import name_errors, qualified_name_errors, validate_labels

GROUP = "rbac.authorization.k8s.io"


class _Raw(str):
    """A value printed verbatim in a field error (a Go literal, as kube-apiserver prints it)."""


def _go_strings(values: list) -> _Raw:
    return _Raw("[]string{" + ", ".join(f'"{v}"' for v in values) + "}")


def _go_role_ref(ref: dict) -> _Raw:
    return _Raw(f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
                f'Name:"{ref.get("name", "")}"}}')


# --- defaults ---------------------------------------------------------------------------------
def default_binding(obj: dict) -> None:
    """SetDefaults_RoleBinding / SetDefaults_Subject: roleRef.apiGroup, and the apiGroup of User
    and Group subjects, default to rbac.authorization.k8s.io."""
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for s in obj.get("subjects") or ():
        if isinstance(s, dict) and not s.get("apiGroup") and s.get("kind") in ("User", "Group"):
            s["apiGroup"] = GROUP


# --- validation -------------------------------------------------------------------------------
def validate_policy_rule(rule: dict, namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not rule.get("verbs"):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", _go_strings(urls),
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(invalid(f"{path}.nonResourceURLs", _go_strings(urls),
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    if rule.get("resourceNames") and len(rule.get("resources") or ()) > 1:
        errs.append(required(f"{path}.resourceNames", "resource names cannot apply to multiple resources"))
    return errs


def _validate_rules(obj: dict, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or ()):
        errs += validate_policy_rule(rule if isinstance(rule, dict) else {}, namespaced, f"rules[{i}]")
    return errs


def validate_role(obj: dict, old: dict | None) -> list[FieldError]:
    return _validate_rules(obj, True)


def _validate_selector(sel: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    errs += validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for j, expr in enumerate(sel.get("matchExpressions") or ()):
        op, values = expr.get("operator"), expr.get("values") or []
        p = f"{path}.matchExpressions[{j}]"
        if op in ("In", "NotIn") and not values:
            errs.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errs.append(FieldError("Forbidden", f"{p}.values", None,
                                   "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errs.append(not_supported(f"{p}.operator", op, ["In", "NotIn", "Exists", "DoesNotExist"]))
        for msg in qualified_name_errors(expr.get("key", "")):
            errs.append(invalid(f"{p}.key", expr.get("key", ""), msg))
    return errs


def validate_cluster_role(obj: dict, old: dict | None) -> list[FieldError]:
    errs = _validate_rules(obj, False)
    agg = obj.get("aggregationRule")
    if agg is not None:
        selectors = (agg or {}).get("clusterRoleSelectors") or []
        if not selectors:
            errs.append(required("aggregationRule.clusterRoleSelectors",
                                 "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        for i, sel in enumerate(selectors):
            errs += _validate_selector(sel or {}, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errs


def validate_subject(s: dict, namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name, kind, group = s.get("name") or "", s.get("kind") or "", s.get("apiGroup") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            for msg in name_errors(name, "subdomain"):
                errs.append(invalid(f"{path}.name", name, msg))
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not s.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if not name:
            errs.append(invalid(f"{path}.name", name, f"{kind.lower()} name cannot be empty"))
        if group != GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _validate_binding(obj: dict, old: dict | None, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    if ref.get("apiGroup", "") != GROUP:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind", "") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    name = ref.get("name") or ""
    if not name:
        errs.append(required("roleRef.name"))
    else:
        for msg in name_errors(name, "path"):
            errs.append(invalid("roleRef.name", name, msg))
    for i, s in enumerate(obj.get("subjects") or ()):
        errs += validate_subject(s if isinstance(s, dict) else {}, namespaced, f"subjects[{i}]")
    if old is not None:
        old_ref = old.get("roleRef") or {}
        if tuple(ref.get(k, "") for k in ("apiGroup", "kind", "name")) != \
                tuple(old_ref.get(k, "") for k in ("apiGroup", "kind", "name")):
            errs.append(invalid("roleRef", _go_role_ref(ref), "cannot change roleRef"))
    return errs


def validate_role_binding(obj: dict, old: dict | None) -> list[FieldError]:
    return _validate_binding(obj, old, True)


def validate_cluster_role_binding(obj: dict, old: dict | None) -> list[FieldError]:
    return _validate_binding(obj, old, False)


# --- tables -----------------------------------------------------------------------------------
_NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
_CREATED = Column("Created At", type="date", description="CreationTimestamp is a timestamp representing the server time when this object was created.")
ROLE_COLUMNS = (_NAME, _CREATED)
BINDING_COLUMNS = (
    _NAME,
    Column("Role", description="RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Users", priority=1, description="Users in the binding"),
    Column("Groups", priority=1, description="Groups in the binding"),
    Column("ServiceAccounts", priority=1, description="ServiceAccounts in the binding"),
)


def role_row(obj: dict) -> list:
    meta = obj.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return [meta.get("name", ""), created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else ""]


def subjects_strings(subjects: list[dict] | None) -> tuple[list[str], list[str], list[str]]:
    """rbac.SubjectsStrings: users, groups and `namespace/name` service accounts."""
    users, groups, sas = [], [], []
    for s in subjects or ():
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
        elif kind == "ServiceAccount":
            sas.append(f'{s.get("namespace", "")}/{s.get("name", "")}')
    return users, groups, sas


def binding_row(obj: dict) -> list:
    meta = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    users, groups, sas = subjects_strings(obj.get("subjects"))
    return [meta.get("name", ""), f'{ref.get("kind", "")}/{ref.get("name", "")}', age(meta.get("creationTimestamp")),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


ROLE = ResourceType(
    group=GROUP, version="v1", resource="roles", kind="Role", model="V1Role", name_rule="path",
    validate=validate_role, columns=ROLE_COLUMNS, row=role_row,
)
CLUSTER_ROLE = ResourceType(
    group=GROUP, version="v1", resource="clusterroles", kind="ClusterRole", namespaced=False,
    model="V1ClusterRole", name_rule="path", validate=validate_cluster_role, columns=ROLE_COLUMNS, row=role_row,
)
ROLE_BINDING = ResourceType(
    group=GROUP, version="v1", resource="rolebindings", kind="RoleBinding", model="V1RoleBinding",
    name_rule="path", defaults=default_binding, validate=validate_role_binding, columns=BINDING_COLUMNS,
    row=binding_row,
)
CLUSTER_ROLE_BINDING = ResourceType(
    group=GROUP, version="v1", resource="clusterrolebindings", kind="ClusterRoleBinding", namespaced=False,
    model="V1ClusterRoleBinding", name_rule="path", defaults=default_binding,
    validate=validate_cluster_role_binding, columns=BINDING_COLUMNS, row=binding_row,
)
RESOURCES = (CLUSTER_ROLE_BINDING, CLUSTER_ROLE, ROLE_BINDING, ROLE)
