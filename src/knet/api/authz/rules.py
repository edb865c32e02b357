"""RBAC policy rules: whether a rule allows a request (k8s.io/component-helpers/auth/rbac and
pkg/apis/rbac/v1/evaluation_helpers.go), and whose bindings apply to a user
(plugin/pkg/auth/authorizer/rbac's appliesTo). Pure functions over wire dicts; no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from knet.api.auth import User

API_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"


def verb_matches(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or ()
    return "*" in verbs or verb in verbs


def api_group_matches(rule: dict, group: str) -> bool:
    groups = rule.get("apiGroups") or ()
    return "*" in groups or group in groups


def resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    """`combined` is `resource` or `resource/subresource`; `*` matches every resource and
    subresource, `*/sub` matches that subresource of every resource."""
    for r in rule.get("resources") or ():
        if r == "*" or r == combined:
            return True
        if subresource and len(r) == len(subresource) + 2 and r.startswith("*/") and r.endswith(subresource):
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(rule: dict, *, verb: str, resource_request: bool, api_group: str = "", resource: str = "",
                subresource: str = "", name: str = "", path: str = "") -> bool:
    """RuleAllows: a resource request needs verb, group, resource and name to match; a
    non-resource request needs verb and URL."""
    if resource_request:
        combined = f"{resource}/{subresource}" if subresource else resource
        return (verb_matches(rule, verb) and api_group_matches(rule, api_group)
                and resource_matches(rule, combined, subresource) and resource_name_matches(rule, name))
    return verb_matches(rule, verb) and non_resource_url_matches(rule, path)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule as frozensets, with its wildcards found once: what the authorizer's hot path
    checks. `resources` holds `res` and `res/sub` entries; `any_sub` the subresources of
    `*/sub` entries."""

    verbs: frozenset[str]
    any_verb: bool
    groups: frozenset[str]
    any_group: bool
    resources: frozenset[str]
    any_resource: bool
    any_sub: frozenset[str]
    names: frozenset[str]
    urls: frozenset[str]
    url_prefixes: tuple[str, ...]
    any_url: bool
    source: dict

    @staticmethod
    def of(rule: dict) -> CompiledRule:
        verbs = frozenset(rule.get("verbs") or ())
        groups = frozenset(rule.get("apiGroups") or ())
        resources = frozenset(rule.get("resources") or ())
        urls = frozenset(rule.get("nonResourceURLs") or ())
        return CompiledRule(
            verbs=verbs, any_verb="*" in verbs, groups=groups, any_group="*" in groups,
            resources=resources, any_resource="*" in resources,
            any_sub=frozenset(r[2:] for r in resources if r.startswith("*/")),
            names=frozenset(rule.get("resourceNames") or ()),
            urls=urls, url_prefixes=tuple(u.rstrip("*") for u in urls if u.endswith("*") and u != "*"),
            any_url="*" in urls, source=rule)

    def allows(self, verb: str, resource_request: bool, api_group: str, resource: str, subresource: str,
               name: str, path: str) -> bool:
        if not (self.any_verb or verb in self.verbs):
            return False
        if resource_request:
            if not (self.any_group or api_group in self.groups):
                return False
            if not self.any_resource:
                combined = f"{resource}/{subresource}" if subresource else resource
                if combined not in self.resources and not (subresource and subresource in self.any_sub):
                    return False
            return not self.names or name in self.names
        if self.any_url or path in self.urls:
            return True
        return any(path.startswith(p) for p in self.url_prefixes)


def service_account_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def applies_to_user(user: User, subject: dict, namespace: str) -> bool:
    """Whether a binding's subject is this user. A ServiceAccount subject without a namespace
    means one in the binding's namespace (none for a ClusterRoleBinding: no match)."""
    kind = subject.get("kind")
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        if not ns:
            return False
        return user.name == service_account_username(ns, subject.get("name", ""))
    return False


def applies_to(user: User, subjects: list[dict] | None, namespace: str) -> dict | None:
    """The first subject of a binding that is this user, or None."""
    for s in subjects or ():
        if applies_to_user(user, s, namespace):
            return s
    return None


def describe_subject(subject: dict, binding_namespace: str) -> str:
    """How upstream's reasons name a subject: `Group "x"`, `ServiceAccount "name/namespace"`."""
    kind = subject.get("kind", "")
    name = subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


def describe_binding(binding: dict, subject: dict) -> str:
    """The `allowed by ...` part of an Allow reason (clusterRoleBindingDescriber /
    roleBindingDescriber)."""
    meta = binding.get("metadata") or {}
    ref = binding.get("roleRef") or {}
    ns = meta.get("namespace") or ""
    if ns:
        return (f'RoleBinding "{meta.get("name", "")}/{ns}" of {ref.get("kind", "")} "{ref.get("name", "")}" '
                f"to {describe_subject(subject, ns)}")
    return (f'ClusterRoleBinding "{meta.get("name", "")}" of {ref.get("kind", "")} "{ref.get("name", "")}" '
            f"to {describe_subject(subject, '')}")
