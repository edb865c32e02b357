"""Server-side printing: metav1.Table responses for `kubectl get` (Accept
application/json;as=Table;v=v1;g=meta.k8s.io). Cells come from each kind's `row()`, always
with every column (kube-apiserver prints wide; kubectl hides priority-1 columns)."""

from __future__ import annotations

from knet.api.printing import timestamp
from knet.api.registry import Column, ResourceType

DEFAULT_COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Created At", type="date", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def wants_table(accept: str | None) -> bool:
    if not accept:
        return False
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
        if part.strip().split(";")[0] in ("application/json", "*/*") and "as" not in params:
            return False
    return False


def table_version(accept: str | None) -> str:
    return "meta.k8s.io/v1beta1" if accept and "v=v1beta1" in accept and "v=v1;" not in accept else "meta.k8s.io/v1"


def column_definitions(rt: ResourceType) -> list[dict]:
    cols = rt.columns or DEFAULT_COLUMNS
    return [{"name": c.name, "type": c.type, "format": c.format, "description": c.description, "priority": c.priority}
            for c in cols]


def _partial(obj: dict, include: str, api_version: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version.replace("meta.k8s.io/", "meta.k8s.io/"),
            "metadata": obj.get("metadata", {})}


def cells(rt: ResourceType, obj: dict) -> list:
    if rt.row is not None:
        return rt.row(obj)
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), meta.get("creationTimestamp") or timestamp()]


def table(rt: ResourceType, objects: list[dict], *, list_meta: dict, include: str = "Metadata",
          api_version: str = "meta.k8s.io/v1", headers: bool = True) -> dict:
    rows = []
    for obj in objects:
        r: dict = {"cells": cells(rt, obj)}
        part = _partial(obj, include, api_version)
        if part is not None:
            r["object"] = part
        rows.append(r)
    return {"kind": "Table", "apiVersion": api_version, "metadata": list_meta,
            "columnDefinitions": column_definitions(rt) if headers else [], "rows": rows}
