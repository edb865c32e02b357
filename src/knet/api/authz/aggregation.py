"""ClusterRole aggregation (pkg/controller/clusterroleaggregation): a ClusterRole with an
aggregationRule holds the rules of every other ClusterRole its selectors match, in the order
of the selectors and, per selector, of the matched roles' names, each rule once. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from knet.api.selectors import from_label_selector_object
from knet.selectors import SelectorError


def normalised_rule(rule: dict) -> dict:
    """A rule without empty fields: how Semantic.DeepEqual compares them (nil == empty)."""
    return {k: v for k, v in rule.items() if v not in (None, [], "")}


def rules_equal(a: list[dict] | None, b: list[dict] | None) -> bool:
    return [normalised_rule(r) for r in a or ()] == [normalised_rule(r) for r in b or ()]


def aggregate_rules(cluster_role: dict, cluster_roles: Iterable[dict]) -> list[dict] | None:
    """The rules `cluster_role` should hold, or None when it is not aggregated."""
    agg = cluster_role.get("aggregationRule")
    if agg is None:
        return None
    name = (cluster_role.get("metadata") or {}).get("name")
    roles = sorted(cluster_roles, key=lambda r: (r.get("metadata") or {}).get("name", ""))
    rules: list[dict] = []
    seen: list[dict] = []
    for sel_obj in agg.get("clusterRoleSelectors") or ():
        try:
            selector = from_label_selector_object(sel_obj)
        except SelectorError:  # as the aggregation controller: a selector it cannot read selects nothing
            continue
        if selector is None:
            continue
        for role in roles:
            meta = role.get("metadata") or {}
            if meta.get("name") == name or not selector.matches(meta.get("labels") or {}):
                continue
            for rule in role.get("rules") or ():
                norm = normalised_rule(rule)
                if norm not in seen:
                    seen.append(norm)
                    rules.append(rule)
    return rules


def aggregate_all(cluster_roles: Iterable[dict]) -> list[dict]:
    """Every ClusterRole with aggregated ones filled in, repeated until nothing changes (what
    the controller converges to: admin aggregates edit, which aggregates view)."""
    roles = [dict(r) for r in cluster_roles]
    for _ in range(len(roles) + 1):
        changed = False
        for i, role in enumerate(roles):
            rules = aggregate_rules(role, roles)
            if rules is not None and not rules_equal(rules, role.get("rules")):
                roles[i] = {**role, "rules": rules}
                changed = True
        if not changed:
            break
    return roles
