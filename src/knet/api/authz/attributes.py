"""What an authorizer decides on (k8s.io/apiserver/pkg/authorization/authorizer.Attributes) and
what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from knet.api.auth import User

# authorizer.Decision: DecisionDeny = 0, DecisionAllow = 1, DecisionNoOpinion = 2.
DENY = "Deny"
ALLOW = "Allow"
NO_OPINION = "NoOpinion"


@dataclass(frozen=True)
class Attributes:
    """One request as authorizers see it. For a resource request: verb (get, list, watch,
    create, update, patch, delete, deletecollection, or a special verb such as impersonate,
    bind, escalate, use), API group, version, resource (plural), subresource, namespace ("" for
    cluster-scoped or all namespaces) and name ("" for a collection). For a non-resource request
    (`resource_request=False`): the lower-case HTTP verb (get, post, put, ...) and the path."""

    user: User
    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Decision:
    decision: str  # ALLOW, DENY or NO_OPINION
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...
