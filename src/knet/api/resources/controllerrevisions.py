"""apps/v1 ControllerRevision: an immutable snapshot of a StatefulSet's or DaemonSet's pod
template (ValidateControllerRevision/-Update; printControllerRevision's columns)."""

from __future__ import annotations

from knet.api.errors import FieldError, invalid, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Controller", description="Controller of the object"),
    Column("Revision", description="Revision indicates the revision of the state represented by Data."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    if obj.get("data") is None:
        errs.append(required("data", "data is mandatory"))
    revision = obj.get("revision", 0)
    if isinstance(revision, int) and revision < 0:
        errs.append(invalid("revision", revision, "must be greater than or equal to 0"))
    if old is not None and obj.get("data") != old.get("data"):
        errs.append(invalid("data", obj.get("data"), "field is immutable"))
    return errs


def controller_column(obj: dict) -> str:
    """KIND.GROUP/NAME of the controlling owner (formatResourceName with kind), or <none>."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = (ref.get("kind") or "").lower()
            return f"{kind}.{group}/{ref.get('name', '')}" if group else f"{kind}/{ref.get('name', '')}"
    return "<none>"


def row(rev: dict) -> list:
    meta = rev.get("metadata") or {}
    return [meta.get("name", ""), controller_column(rev), rev.get("revision", 0), age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="apps", version="v1", resource="controllerrevisions", kind="ControllerRevision",
    model="V1ControllerRevision", validate=validate, columns=COLUMNS, row=row,
)
