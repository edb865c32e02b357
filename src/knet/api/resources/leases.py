"""coordination.k8s.io/v1 Lease: node heartbeats and leader election."""

from __future__ import annotations

from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Holder", description="holderIdentity contains the identity of the holder of a current lease."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def row(lease: dict) -> list:
    meta = lease.get("metadata") or {}
    return [meta.get("name", ""), (lease.get("spec") or {}).get("holderIdentity") or "",
            age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="coordination.k8s.io", version="v1", resource="leases", kind="Lease", model="V1Lease",
    columns=COLUMNS, row=row, allow_create_on_update=True,
)
