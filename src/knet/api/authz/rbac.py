"""The RBAC authorizer (plugin/pkg/auth/authorizer/rbac): a request is allowed when a rule of a
role bound to its user allows it — ClusterRoleBindings first, then the RoleBindings of the
request's namespace — and otherwise has no opinion (the next authorizer, or a denial, decides).

The apiserver asks on every request, so nothing here walks bindings per request: the rules
that apply to one (user, groups, namespace) are gathered once and compiled, and decisions are
remembered; both caches are dropped whenever any Role, ClusterRole, RoleBinding or
ClusterRoleBinding changes (the source's `generation`, bumped by a store listener)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from knet.api.auth import User
from knet.api.authz.attributes import ALLOW, NO_OPINION, Attributes, Decision
from knet.api.authz.rules import CompiledRule, applies_to, describe_binding

GROUP = "rbac.authorization.k8s.io"
ROLES = f"{GROUP}/roles"
CLUSTER_ROLES = f"{GROUP}/clusterroles"
ROLE_BINDINGS = f"{GROUP}/rolebindings"
CLUSTER_ROLE_BINDINGS = f"{GROUP}/clusterrolebindings"
BUCKETS = frozenset({ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS})


class RbacSource(Protocol):
    """Where the authorizer reads RBAC objects (upstream's Role/ClusterRole getters and binding
    listers). `generation` changes whenever any of them changes."""

    @property
    def generation(self) -> int: ...

    def cluster_role_bindings(self) -> Iterable[dict]: ...

    def role_bindings(self, namespace: str) -> Iterable[dict]: ...

    def cluster_role(self, name: str) -> dict | None: ...

    def role(self, namespace: str, name: str) -> dict | None: ...


class StoreRbacSource:
    """RBAC objects as the apiserver's Store holds them; a store listener bumps `generation` on
    every event of an RBAC bucket (synchronously, in revision order), so the authorizer's caches
    are dropped before the next request after a write."""

    def __init__(self, store) -> None:
        self.store = store
        self.generation = 0
        store.add_listener(self._on_event)

    def _on_event(self, event) -> None:
        if event.bucket in BUCKETS:
            self.generation += 1

    def cluster_role_bindings(self) -> list[dict]:
        return [e.obj for e in self.store.list(CLUSTER_ROLE_BINDINGS)[0]]

    def role_bindings(self, namespace: str) -> list[dict]:
        return [e.obj for e in self.store.list(ROLE_BINDINGS, namespace)[0]]

    def cluster_role(self, name: str) -> dict | None:
        entry = self.store.get(CLUSTER_ROLES, "", name)
        return entry.obj if entry else None

    def role(self, namespace: str, name: str) -> dict | None:
        entry = self.store.get(ROLES, namespace, name)
        return entry.obj if entry else None


class StaticRbacSource:
    """A fixed set of RBAC objects (upstream's StaticRoles): for tests, benchmarks and the
    bootstrap policy's own checks. `replace` swaps the set and bumps `generation`."""

    def __init__(self, objects: Iterable[dict] = ()) -> None:
        self.generation = 0
        self.replace(objects)

    def replace(self, objects: Iterable[dict]) -> None:
        self._roles: dict[tuple[str, str], dict] = {}
        self._cluster_roles: dict[str, dict] = {}
        self._bindings: dict[str, list[dict]] = {}
        self._cluster_bindings: list[dict] = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            kind, ns, name = obj.get("kind"), meta.get("namespace") or "", meta.get("name", "")
            if kind == "Role":
                self._roles[(ns, name)] = obj
            elif kind == "ClusterRole":
                self._cluster_roles[name] = obj
            elif kind == "RoleBinding":
                self._bindings.setdefault(ns, []).append(obj)
            elif kind == "ClusterRoleBinding":
                self._cluster_bindings.append(obj)
        self.generation += 1

    def cluster_role_bindings(self) -> list[dict]:
        return self._cluster_bindings

    def role_bindings(self, namespace: str) -> list[dict]:
        return self._bindings.get(namespace, [])

    def cluster_role(self, name: str) -> dict | None:
        return self._cluster_roles.get(name)

    def role(self, namespace: str, name: str) -> dict | None:
        return self._roles.get((namespace, name))


def _not_found(kind: str, name: str) -> str:
    # The listers' NotFound errors name the singular resource.
    return f'{kind.lower()}.{GROUP} "{name}" not found'


def role_reference_rules(source: RbacSource, role_ref: dict, namespace: str) -> tuple[list[dict], str]:
    """GetRoleReferenceRules: the rules of the role a binding refers to, or an error text."""
    kind, name = role_ref.get("kind"), role_ref.get("name", "")
    if kind == "Role":
        role = source.role(namespace, name)
    elif kind == "ClusterRole":
        role = source.cluster_role(name)
    else:
        return [], f'unsupported role reference kind: "{kind}"'
    if role is None:
        return [], _not_found(kind, name)
    return list(role.get("rules") or ()), ""


@dataclass(frozen=True, slots=True)
class ResolvedRules:
    """Every rule that applies to one (user, groups, namespace), in upstream's visiting order,
    each with the Allow reason it would give, and the errors met resolving role references."""

    rules: tuple[tuple[CompiledRule, str], ...]
    errors: tuple[str, ...]


def resolve_rules(source: RbacSource, user: User, namespace: str) -> ResolvedRules:
    """VisitRulesFor: ClusterRoleBindings, then (for a namespaced request) the RoleBindings of
    that namespace, each binding whose subjects include the user."""
    rules: list[tuple[CompiledRule, str]] = []
    errors: list[str] = []

    def visit(binding: dict, binding_ns: str) -> None:
        subject = applies_to(user, binding.get("subjects"), binding_ns)
        if subject is None:
            return
        role_rules, err = role_reference_rules(source, binding.get("roleRef") or {}, binding_ns)
        if err:
            errors.append(err)
        reason = "RBAC: allowed by " + describe_binding(binding, subject)
        rules.extend((CompiledRule.of(r), reason) for r in role_rules)

    for crb in source.cluster_role_bindings():
        visit(crb, "")
    if namespace:
        for rb in source.role_bindings(namespace):
            visit(rb, namespace)
    return ResolvedRules(tuple(rules), tuple(errors))


def aggregate_errors(errors: Iterable[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one error as itself, several as `[a, b]`."""
    errs = list(dict.fromkeys(errors))
    if len(errs) == 1:
        return errs[0]
    return "[" + ", ".join(errs) + "]" if errs else ""


class RBACAuthorizer:
    """`authorize(attrs) -> Decision` (Allow, or NoOpinion) and `rules_for(user, namespace)`
    for SelfSubjectRulesReview."""

    def __init__(self, source: RbacSource, cache_size: int = 65536) -> None:
        self.source = source
        self.cache_size = cache_size
        self._generation = -1
        self._resolved: dict[tuple, ResolvedRules] = {}
        self._decisions: dict[tuple, Decision] = {}

    def _fresh(self) -> None:
        gen = self.source.generation
        if gen != self._generation:
            self._resolved.clear()
            self._decisions.clear()
            self._generation = gen

    def resolved(self, user: User, namespace: str) -> ResolvedRules:
        self._fresh()
        key = (user.name, tuple(user.groups), namespace)
        got = self._resolved.get(key)
        if got is None:
            if len(self._resolved) >= self.cache_size:
                self._resolved.clear()
            got = self._resolved[key] = resolve_rules(self.source, user, namespace)
        return got

    def authorize(self, attrs: Attributes) -> Decision:
        self._fresh()
        user = attrs.user
        key = (user.name, tuple(user.groups), attrs.namespace, attrs.verb, attrs.resource_request,
               attrs.api_group, attrs.resource, attrs.subresource, attrs.name, attrs.path)
        decision = self._decisions.get(key)
        if decision is not None:
            return decision
        decision = self._decide(attrs)
        if len(self._decisions) >= self.cache_size:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

    def _decide(self, attrs: Attributes) -> Decision:
        resolved = self.resolved(attrs.user, attrs.namespace)
        verb, rr, group, resource = attrs.verb, attrs.resource_request, attrs.api_group, attrs.resource
        sub, name, path = attrs.subresource, attrs.name, attrs.path
        for rule, reason in resolved.rules:
            if rule.allows(verb, rr, group, resource, sub, name, path):
                return Decision(ALLOW, reason)
        if resolved.errors:
            return Decision(NO_OPINION, "RBAC: " + aggregate_errors(resolved.errors))
        return Decision(NO_OPINION, "")

    def owner_rules(self, user: User, namespace: str) -> tuple[list[dict], list[str]]:
        """RulesFor: every rule the user holds in the namespace (cluster-wide ones included) as
        wire dicts, and the errors met resolving role references."""
        resolved = self.resolved(user, namespace)
        return [rule.source for rule, _ in resolved.rules], list(resolved.errors)

    def role_reference_rules(self, role_ref: dict, namespace: str) -> tuple[list[dict], str]:
        """The rules of the role a binding refers to, or an error text (GetRoleReferenceRules)."""
        return role_reference_rules(self.source, role_ref, namespace)

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool, str]:
        """(resourceRules, nonResourceRules, incomplete, evaluationError) as a
        SelfSubjectRulesReview's status carries them."""
        resolved = self.resolved(user, namespace)
        resource_rules: list[dict] = []
        non_resource_rules: list[dict] = []
        for rule, _ in resolved.rules:
            src = rule.source
            if src.get("resources"):
                r: dict = {"verbs": list(src.get("verbs") or ())}
                for field in ("apiGroups", "resources", "resourceNames"):
                    if src.get(field):
                        r[field] = list(src[field])
                resource_rules.append(r)
            if src.get("nonResourceURLs"):
                non_resource_rules.append({"verbs": list(src.get("verbs") or ()),
                                           "nonResourceURLs": list(src["nonResourceURLs"])})
        err = aggregate_errors(resolved.errors)
        return resource_rules, non_resource_rules, bool(err), err
