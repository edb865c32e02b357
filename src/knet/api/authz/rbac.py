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


class RuleIndex:
    """One subject's rules as dict lookups, so a decision costs a dozen hash probes whatever
    the number of rules: resource rules without resourceNames keyed by (verb, group, resource)
    (each possibly `*`, resources also `*/sub`), non-resource rules by (verb, url) plus the
    trailing-`*` prefixes; rules naming objects are few and checked in turn. Each key keeps the
    first rule (in upstream's visiting order) that has it, so the reason is upstream's."""

    __slots__ = ("resources", "named", "urls", "url_prefixes", "has_names")

    def __init__(self, rules: tuple[tuple[CompiledRule, str], ...]) -> None:
        self.resources: dict[tuple[str, str, str], tuple[int, str]] = {}
        self.named: list[tuple[int, CompiledRule, str]] = []
        self.urls: dict[tuple[str, str], tuple[int, str]] = {}
        self.url_prefixes: list[tuple[int, str, frozenset[str], str]] = []
        for i, (rule, reason) in enumerate(rules):
            if rule.names:
                self.named.append((i, rule, reason))
                continue
            for verb in rule.verbs:
                for group in rule.groups:
                    for resource in rule.resources:
                        self.resources.setdefault((verb, group, resource), (i, reason))
                for u in rule.urls:
                    if u.endswith("*") and u != "*":
                        self.url_prefixes.append((i, u.rstrip("*"), rule.verbs, reason))
                    else:
                        self.urls.setdefault((verb, u), (i, reason))
        self.has_names = bool(self.named)

    def find(self, verb: str, resource_request: bool, api_group: str, resource: str, subresource: str,
             name: str, path: str) -> str | None:
        """The reason of the first rule allowing the request, or None."""
        best: tuple[int, str] | None = None
        if resource_request:
            combined = f"{resource}/{subresource}" if subresource else resource
            table = self.resources
            if table:
                res_keys = (combined, "*", f"*/{subresource}") if subresource else (combined, "*")
                for v in (verb, "*"):
                    for g in (api_group, "*"):
                        for r in res_keys:
                            hit = table.get((v, g, r))
                            if hit is not None and (best is None or hit[0] < best[0]):
                                best = hit
            for i, rule, reason in self.named:
                if best is not None and i > best[0]:
                    break
                if rule.allows(verb, True, api_group, resource, subresource, name, path):
                    best = (i, reason)
                    break
        else:
            for v in (verb, "*"):
                for u in (path, "*"):
                    hit = self.urls.get((v, u))
                    if hit is not None and (best is None or hit[0] < best[0]):
                        best = hit
            for i, prefix, verbs, reason in self.url_prefixes:
                if best is not None and i > best[0]:
                    break
                if (verb in verbs or "*" in verbs) and path.startswith(prefix):
                    best = (i, reason)
                    break
        return best[1] if best is not None else None


@dataclass(frozen=True, slots=True)
class ResolvedRules:
    """Every rule that applies to one (user, groups, namespace), in upstream's visiting order,
    each with the Allow reason it would give, the errors met resolving role references, and
    the rules indexed for decisions."""

    rules: tuple[tuple[CompiledRule, str], ...]
    errors: tuple[str, ...]
    index: RuleIndex


def resolve_rules(source: RbacSource, user: User, namespace: str,
                  compiled: dict | None = None) -> ResolvedRules:
    """VisitRulesFor: ClusterRoleBindings, then (for a namespaced request) the RoleBindings of
    that namespace, each binding whose subjects include the user. `compiled` (role reference ->
    its compiled rules) is shared between subjects while nothing changes."""
    rules: list[tuple[CompiledRule, str]] = []
    errors: list[str] = []
    cache = compiled if compiled is not None else {}

    def visit(binding: dict, binding_ns: str) -> None:
        subject = applies_to(user, binding.get("subjects"), binding_ns)
        if subject is None:
            return
        ref = binding.get("roleRef") or {}
        key = (ref.get("kind"), binding_ns if ref.get("kind") == "Role" else "", ref.get("name"))
        got = cache.get(key)
        if got is None:
            role_rules, err = role_reference_rules(source, ref, binding_ns)
            got = cache[key] = (tuple(CompiledRule.of(r) for r in role_rules), err)
        if got[1]:
            errors.append(got[1])
        reason = "RBAC: allowed by " + describe_binding(binding, subject)
        rules.extend((r, reason) for r in got[0])

    for crb in source.cluster_role_bindings():
        visit(crb, "")
    if namespace:
        for rb in source.role_bindings(namespace):
            visit(rb, namespace)
    frozen = tuple(rules)
    return ResolvedRules(frozen, tuple(errors), RuleIndex(frozen))


def aggregate_errors(errors: Iterable[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one error as itself, several as `[a, b]`."""
    errs = list(dict.fromkeys(errors))
    if len(errs) == 1:
        return errs[0]
    return "[" + ", ".join(errs) + "]" if errs else ""


_NO_OPINION = Decision(NO_OPINION, "")


class RBACAuthorizer:
    """`authorize(attrs) -> Decision` (Allow, or NoOpinion) and `rules_for(user, namespace)`
    for SelfSubjectRulesReview."""

    def __init__(self, source: RbacSource, cache_size: int = 65536) -> None:
        self.source = source
        self.cache_size = cache_size
        self._generation = -1
        self._resolved: dict[tuple, ResolvedRules] = {}
        self._decisions: dict[tuple, Decision] = {}
        self._compiled: dict[tuple, tuple] = {}

    def _fresh(self) -> None:
        gen = self.source.generation
        if gen != self._generation:
            self._resolved.clear()
            self._decisions.clear()
            self._compiled.clear()
            self._generation = gen

    def resolved(self, user: User, namespace: str) -> ResolvedRules:
        self._fresh()
        key = (user.name, tuple(user.groups), namespace)
        got = self._resolved.get(key)
        if got is None:
            if len(self._resolved) >= self.cache_size:
                self._resolved.clear()
            got = self._resolved[key] = resolve_rules(self.source, user, namespace, self._compiled)
        return got

    def authorize(self, attrs: Attributes) -> Decision:
        if self.source.generation != self._generation:
            self._fresh()
        user = attrs.user
        subject = (user.name, tuple(user.groups), attrs.namespace)
        resolved = self._resolved.get(subject)
        if resolved is None:
            resolved = self.resolved(user, attrs.namespace)
        # The object's name matters only to rules naming objects: without them, GETs of
        # different objects share one decision.
        key = (subject, attrs.verb, attrs.resource_request, attrs.api_group, attrs.resource, attrs.subresource,
               attrs.name if resolved.index.has_names else "", attrs.path)
        decision = self._decisions.get(key)
        if decision is not None:
            return decision
        reason = resolved.index.find(attrs.verb, attrs.resource_request, attrs.api_group, attrs.resource,
                                     attrs.subresource, attrs.name, attrs.path)
        if reason is not None:
            decision = Decision(ALLOW, reason)
        elif resolved.errors:
            decision = Decision(NO_OPINION, "RBAC: " + aggregate_errors(resolved.errors))
        else:
            decision = _NO_OPINION
        if len(self._decisions) >= self.cache_size:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

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


def allowed_subjects(source: RbacSource, attrs: Attributes, super_user: str = "") -> tuple[list[dict], str]:
    """SubjectAccessEvaluator.AllowedSubjects (who may do this): system:masters, the super
    user if any, then the subjects of every binding whose role allows the request; and the
    errors met resolving role references."""
    subjects: list[dict] = [{"kind": "Group", "apiGroup": GROUP, "name": "system:masters"}]
    if super_user:
        subjects.append({"kind": "User", "apiGroup": GROUP, "name": super_user})
    errors: list[str] = []

    def visit(binding: dict, namespace: str) -> None:
        rules, err = role_reference_rules(source, binding.get("roleRef") or {}, namespace)
        if err:
            errors.append(err)
        if any(CompiledRule.of(r).allows(attrs.verb, attrs.resource_request, attrs.api_group, attrs.resource,
                                          attrs.subresource, attrs.name, attrs.path) for r in rules):
            subjects.extend(binding.get("subjects") or ())

    for crb in source.cluster_role_bindings():
        visit(crb, "")
    if attrs.namespace:
        for rb in source.role_bindings(attrs.namespace):
            visit(rb, attrs.namespace)
    deduped: list[dict] = []
    for s in subjects:
        if s not in deduped:
            deduped.append(s)
    return deduped, aggregate_errors(errors)
