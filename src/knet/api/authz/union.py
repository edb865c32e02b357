"""The authorizer chain of `--authorization-mode` (k8s.io/apiserver union authorizer), with the
privileged-group authorizer kube-apiserver puts first: members of `system:masters` may do
everything, whatever RBAC says."""

from __future__ import annotations

from collections.abc import Sequence

from knet.api.authz.attributes import ALLOW, DENY, NO_OPINION, Attributes, Authorizer, Decision

SYSTEM_MASTERS = "system:masters"


class AlwaysAllow:
    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(ALLOW)


class AlwaysDeny:
    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(NO_OPINION)


class PrivilegedGroups:
    def __init__(self, groups: Sequence[str] = (SYSTEM_MASTERS,)) -> None:
        self._groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> Decision:
        if attrs.user is not None and not self._groups.isdisjoint(attrs.user.groups):
            return Decision(ALLOW)
        return Decision(NO_OPINION)


class Union:
    """The first authorizer that allows or denies decides; reasons of the others are kept for
    the denial's message, as upstream joins them."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    def authorize(self, attrs: Attributes) -> Decision:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if decision.decision in (ALLOW, DENY):
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(NO_OPINION, "; ".join(reasons))
