"""The ResourceTypes a CustomResourceDefinition serves, one per served version: schema
validation, defaulting and pruning of its objects (knet.api.crd.structural), the table of its
additionalPrinterColumns, its status and scale subresources. Versions other than the storage
version are served from its storage with the apiVersion rewritten (conversion strategy None).
Pure: the controller (knet.api.crd.controller) registers what this builds."""

from __future__ import annotations

import copy
from collections.abc import Callable

import orjson

from knet.api import errors, typecheck
from knet.api.crd import jsonpath, structural
from knet.api.errors import ApiError, FieldError
from knet.api.printing import human_duration, now, parse_time
from knet.api.registry import Column, ResourceType
from knet.api.tables import DEFAULT_COLUMNS

NAME_COLUMN = DEFAULT_COLUMNS[0]
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
              "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                             "created."}


def _decoder(schema: dict) -> Callable[[dict], list[str]]:
    def decode(obj: dict) -> list[str]:
        meta = obj.get("metadata")
        unknown: list[str] = []
        if meta is not None:
            if not isinstance(meta, dict):
                raise errors.bad_request("json: cannot unmarshal into Go value of type metav1.ObjectMeta")
            try:
                unknown = ["metadata." + u for u in typecheck.check(meta, "V1ObjectMeta")]
            except typecheck.TypeMismatch as exc:
                raise errors.bad_request(str(exc)) from None
        return unknown + structural.prune_object(obj, schema)
    return decode


def _defaulter(schema: dict) -> Callable[[dict], None]:
    def defaults(obj: dict) -> None:
        structural.apply_defaults(obj, schema)
    return defaults


def _validator(schema: dict, scale: dict | None) -> Callable[[dict, dict | None], list[FieldError]]:
    def validate(obj: dict, old: dict | None) -> list[FieldError]:
        errs = structural.validate_object(obj, schema)
        if scale and not errs:
            # The scale subresource's replicas must be integers where they are set.
            for key in ("specReplicasPath", "statusReplicasPath"):
                path = scale.get(key)
                found = jsonpath.find(obj, jsonpath.parse(path)) if path else []
                if found and (not isinstance(found[0], int) or isinstance(found[0], bool) or found[0] < 0):
                    errs.append(errors.invalid(path.lstrip("."), found[0], "should be a non-negative integer"))
        return errs
    return validate


def _cell(column: dict, steps, obj: dict):
    """A printer column's cell, as the CRD table convertor's cellForJSONValue."""
    found = jsonpath.find(obj, steps)
    if not found or found[0] is None:
        return None
    value = found[0]
    kind = column.get("type")
    if kind == "string":
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if not isinstance(value, str):
            return None
        when = parse_time(value)
        if when is None:
            return "<invalid>"
        return human_duration((now() - when).total_seconds())
    return None


def _table(version: dict) -> tuple[tuple[Column, ...], Callable[[dict], list]]:
    specs = version.get("additionalPrinterColumns") or [AGE_COLUMN]
    columns = (NAME_COLUMN,) + tuple(
        Column(c["name"], type=c.get("type", "string"), format=c.get("format", ""),
               description=c.get("description", ""), priority=int(c.get("priority", 0) or 0)) for c in specs)
    parsed = [(c, jsonpath.parse(c["jsonPath"])) for c in specs]

    def row(obj: dict) -> list:
        name = (obj.get("metadata") or {}).get("name", "")
        return [name] + [_cell(c, steps, obj) for c, steps in parsed]
    return columns, row


def _refuse_create(plural: str, group: str) -> Callable[[dict], None]:
    def admit(obj: dict) -> None:
        raise ApiError(405, "MethodNotAllowed", "create not allowed while custom resource definition is terminating",
                       {"group": group, "kind": plural})
    return admit


def _with_api_version(api_version: str) -> Callable[[dict], dict]:
    def convert(obj: dict) -> dict:
        if obj.get("apiVersion") == api_version:
            return obj
        return {**obj, "apiVersion": api_version}
    return convert


def _reader(api_version: str, schema: dict) -> Callable[[dict], dict]:
    """A stored object as this version serves it: its apiVersion, and the schema's defaults (as
    apiextensions-apiserver defaults on reading from etcd, so a default added to a CRD shows on
    objects written before). The stored object is never changed."""
    def read(obj: dict) -> dict:
        out = orjson.loads(orjson.dumps(obj))
        out["apiVersion"] = api_version
        return structural.apply_defaults(out, schema)
    return read


def served_versions(crd: dict) -> list[dict]:
    return [v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]


def resource_types(crd: dict, terminating: bool = False) -> list[ResourceType]:
    """One ResourceType per served version; the first is the one its objects are stored as (the
    storage version, or the first served version when the storage version is not served)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
    served = served_versions(crd)
    if not served:
        return []
    storage = next((v for v in served if v.get("storage")), served[0])
    ordered = [storage] + [v for v in served if v is not storage]
    out: list[ResourceType] = []
    for v in ordered:
        schema = copy.deepcopy((v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"})
        subs = v.get("subresources") or {}
        scale = subs.get("scale")
        columns, row = _table(v)
        api_version = f"{group}/{v['name']}"
        aliased = v is not storage
        out.append(ResourceType(
            group=group, version=v["name"], resource=plural, kind=kind,
            namespaced=spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(s for s in ("status", "scale") if subs.get(s) is not None),
            singular_name=names.get("singular", ""), defaults=_defaulter(schema), validate=_validator(schema, scale),
            decode=_decoder(schema), columns=columns, row=row, has_generation=True, strategic_merge=False,
            scale_paths=(scale["specReplicasPath"], scale["statusReplicasPath"], scale.get("labelSelectorPath", ""))
            if scale else None,
            admit=_refuse_create(plural, group) if terminating else None,
            openapi_schema=schema,
            stored_as=(group, storage["name"], plural) if aliased else None,
            to_storage=_with_api_version(f"{group}/{storage['name']}") if aliased else None,
            from_storage=_reader(api_version, schema),
        ))
    return out

