"""core/v1 ConfigMap: DATA column counts data + binaryData keys."""

from __future__ import annotations

from knet.api.errors import FieldError, duplicate
from knet.api.printing import age
from knet.api.registry import Column, ResourceType
from knet.api.validation import validate_config_keys

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Data", type="integer", description="Data contains the configuration data."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_config_keys(obj.get("data"), "data") + validate_config_keys(obj.get("binaryData"), "binaryData")
    for k in set(obj.get("data") or {}) & set(obj.get("binaryData") or {}):
        errs.append(duplicate("data", k))
    if old is not None and old.get("immutable") and (obj.get("data") != old.get("data") or obj.get("binaryData") != old.get("binaryData")):
        errs.append(FieldError("Forbidden", "data", None, "field is immutable when `immutable` is set"))
    return errs


def row(cm: dict) -> list:
    meta = cm.get("metadata") or {}
    return [meta.get("name", ""), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="", version="v1", resource="configmaps", kind="ConfigMap", short_names=("cm",), model="V1ConfigMap",
    validate=validate, columns=COLUMNS, row=row,
)
