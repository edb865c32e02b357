"""RBAC's escalation check (pkg/registry/rbac/validation and the roles/bindings storages'
policybased wrappers): nobody grants, through a Role, ClusterRole or binding, permissions they
do not hold themselves, unless they may `escalate` that role or `bind` the role referred to.

`covers` is upstream's policy comparator (pure); `escalation_admission` is the validating
admission plugin that applies it to writes of the four RBAC kinds."""

from __future__ import annotations

import json

from knet.api.auth import User
from knet.api.authz.attributes import Attributes, Authorizer
from knet.api.authz.rbac import aggregate_errors
from knet.api.errors import ApiError
from knet.api.rest import AdmissionPlugin, AdmissionRequest

GROUP = "rbac.authorization.k8s.io"
PRIVILEGED_GROUP = "system:masters"
ROLE_RESOURCES = ("roles", "clusterroles")
BINDING_RESOURCES = ("rolebindings", "clusterrolebindings")


# --- the policy comparator --------------------------------------------------------------------
def breakdown_rule(rule: dict) -> list[dict]:
    """BreakdownRule: the rule as rules of one group, resource, verb and resource name each
    (non-resource URLs combine with verbs only)."""
    out: list[dict] = []
    verbs = rule.get("verbs") or ()
    names = rule.get("resourceNames") or ()
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in verbs:
                if names:
                    out.extend({"apiGroups": [group], "resources": [resource], "verbs": [verb],
                                "resourceNames": [n]} for n in names)
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in rule.get("nonResourceURLs") or ():
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _resource_covers_all(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned or set(wanted) <= set(owned):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def rule_covers(owner: dict, sub: dict) -> bool:
    """ruleCovers: whether one owner rule covers a broken-down rule."""
    o_verbs, o_groups = owner.get("verbs") or (), owner.get("apiGroups") or ()
    o_names = owner.get("resourceNames") or ()
    s_names = sub.get("resourceNames") or ()
    verbs = "*" in o_verbs or set(sub.get("verbs") or ()) <= set(o_verbs)
    groups = "*" in o_groups or set(sub.get("apiGroups") or ()) <= set(o_groups)
    resources = _resource_covers_all(list(owner.get("resources") or ()), list(sub.get("resources") or ()))
    urls = all(any(_url_covers(o, p) for o in owner.get("nonResourceURLs") or ())
               for p in sub.get("nonResourceURLs") or ())
    names = (not o_names) if not s_names else (not o_names or set(s_names) <= set(o_names))
    return verbs and groups and resources and names and urls


def covers(owner_rules: list[dict], requested_rules: list[dict]) -> tuple[bool, list[dict]]:
    """Covers: whether the owner's rules allow everything the requested rules do, and the
    broken-down requested rules they do not cover."""
    uncovered = [sub for rule in requested_rules for sub in breakdown_rule(rule)
                 if not any(rule_covers(o, sub) for o in owner_rules)]
    return not uncovered, uncovered


def compact_rules(rules: list[dict]) -> list[dict]:
    """CompactRules: rules of one group and one resource (and at most one name) merged into
    one rule with all their verbs."""
    out: list[dict] = []
    simple: dict[tuple, dict] = {}
    for rule in rules:
        names = rule.get("resourceNames") or []
        if len(names) > 1 or rule.get("nonResourceURLs") or len(rule.get("apiGroups") or ()) != 1 \
                or len(rule.get("resources") or ()) != 1:
            out.append(rule)
            continue
        key = (rule["apiGroups"][0], rule["resources"][0], bool(names), names[0] if names else "")
        if key in simple:
            simple[key]["verbs"] = list(simple[key].get("verbs") or []) + list(rule.get("verbs") or [])
        else:
            simple[key] = {k: list(v) for k, v in rule.items()}
    return out + list(simple.values())


def _go_quoted(values) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def compact_string(rule: dict) -> str:
    """rbacv1helpers.CompactString: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
    parts = []
    for field, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                         ("nonResourceURLs", "NonResourceURLs"), ("resourceNames", "ResourceNames"),
                         ("verbs", "Verbs")):
        if rule.get(field):
            parts.append(f"{label}:{_go_quoted(rule[field])}")
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: User, missing: list[dict], resolution_errors: list[str] = ()) -> str:
    """ConfirmNoEscalation's message."""
    described = sorted({compact_string(r) for r in compact_rules(missing)})
    msg = (f"user {json.dumps(user.name)} (groups={_go_quoted(user.groups)}) is attempting to grant RBAC "
           "permissions not currently held:\n" + "\n".join(described))
    if resolution_errors:
        msg += f"; resolution errors: [{aggregate_errors(resolution_errors)}]"
    return msg


def forbidden(resource: str, name: str, message: str) -> ApiError:
    """errors.NewForbidden(rbac group resource, name, err)."""
    return ApiError(403, "Forbidden", f'{resource}.{GROUP} "{name}" is forbidden: {message}',
                    {"name": name, "group": GROUP, "kind": resource})


# --- admission ----------------------------------------------------------------------------------
def _only_gc_fields_changed(obj: dict, old: dict | None) -> bool:
    """IsOnlyMutatingGCFields: an update that changes only ownerReferences or finalizers (what
    the garbage collector writes) is never an escalation."""
    if old is None:
        return False
    ignored = ("ownerReferences", "finalizers", "managedFields", "resourceVersion", "selfLink", "generation")

    def strip(o: dict) -> dict:
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k not in ignored}
        return {**o, "metadata": meta}

    return strip(obj) == strip(old)


def escalation_admission(authorizer: Authorizer, resolver=None) -> AdmissionPlugin:
    """The check of roles/clusterroles/rolebindings/clusterrolebindings writes. `authorizer`
    answers the `escalate` and `bind` questions (the apiserver's whole chain); `resolver` gives
    the rules a user holds (`RBACAuthorizer.owner_rules` / `role_reference_rules`), by default
    the authorizer itself when it is an RBACAuthorizer. Requests by the apiserver itself (no
    user) and by system:masters always pass."""
    rules_source = resolver if resolver is not None else authorizer

    def allowed(user: User, verb: str, resource: str, namespace: str, name: str) -> bool:
        return authorizer.authorize(Attributes(user=user, verb=verb, api_group=GROUP, api_version="*",
                                               resource=resource, namespace=namespace, name=name)).allowed

    def confirm_no_escalation(user: User, namespace: str, rules: list[dict], resource: str, name: str) -> None:
        owner, errs = rules_source.owner_rules(user, namespace)
        ok, missing = covers(owner, rules)
        if not ok:
            raise forbidden(resource, name, escalation_message(user, missing, errs))

    def plugin(req: AdmissionRequest) -> None:
        resource = req.rt.resource
        if req.rt.group != GROUP or req.operation not in ("CREATE", "UPDATE") or req.obj is None:
            return
        user = req.user
        if user is None or PRIVILEGED_GROUP in user.groups:
            return
        if _only_gc_fields_changed(req.obj, req.old):
            return
        if resource in ROLE_RESOURCES:
            if allowed(user, "escalate", resource, req.namespace, req.name):
                return
            confirm_no_escalation(user, req.namespace, list(req.obj.get("rules") or ()), resource, req.name)
        elif resource in BINDING_RESOURCES:
            ref = req.obj.get("roleRef") or {}
            kind = ref.get("kind")
            if kind in ("Role", "ClusterRole") and allowed(
                    user, "bind", "roles" if kind == "Role" else "clusterroles", req.namespace, ref.get("name", "")):
                return
            rules, err = rules_source.role_reference_rules(ref, req.namespace)
            if err:
                raise forbidden(resource, req.name, err)
            confirm_no_escalation(user, req.namespace, rules, resource, req.name)

    return plugin
