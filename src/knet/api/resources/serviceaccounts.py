"""core/v1 ServiceAccount (+ token: TokenRequest, served by knet.api.tokens)."""

from __future__ import annotations

from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Secrets", type="integer", description="Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def row(sa: dict) -> list:
    meta = sa.get("metadata") or {}
    return [meta.get("name", ""), len(sa.get("secrets") or []), age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="", version="v1", resource="serviceaccounts", kind="ServiceAccount", short_names=("sa",),
    subresources=("token",), model="V1ServiceAccount", columns=COLUMNS, row=row,
)
