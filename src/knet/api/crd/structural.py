"""Structural OpenAPI v3 schemas of CustomResourceDefinitions, as apiextensions-apiserver
treats them: is a schema structural (pkg/apiserver/schema ValidateStructural), does a value
validate against it (kube-openapi's validator, its errors converted to field errors as
pkg/apiserver/validation does), its defaults (pkg/apiserver/schema/defaulting) and the pruning
of fields it does not specify (pkg/apiserver/schema/pruning). Schemas are the CRD's JSON
(JSONSchemaProps) as dicts; everything here is pure."""

from __future__ import annotations

import base64
import copy
import math
import re
from typing import Any

from knet.api.errors import FieldError, forbidden, invalid, not_supported, required

# JSONSchemaProps fields a structural schema may not use anywhere (ValidateStructural).
FORBIDDEN_FIELDS = (("$ref", "$ref"), ("$schema", "$schema"), ("id", "id"), ("definitions", "definitions"),
                    ("dependencies", "dependencies"), ("patternProperties", "patternProperties"),
                    ("additionalItems", "additionalItems"))
# Inside allOf/anyOf/oneOf/not only value validations may appear (no types, no defaults, ...).
_NOT_IN_JUNCTORS = ("type", "default", "nullable", "description", "title", "x-kubernetes-preserve-unknown-fields",
                    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- is it structural? -------------------------------------------------------------------------
def structural_errors(schema: Any, path: str) -> list[FieldError]:
    """Why `schema` (an openAPIV3Schema at `path`) is not structural: every specified field has
    a type (or x-kubernetes-int-or-string / x-kubernetes-preserve-unknown-fields), the root is an
    object, nothing forbidden, junctors only restrict values, metadata only name/generateName."""
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        return [invalid(path, schema, "must be a schema object")]
    if schema.get("type", "object") != "object":
        errs.append(invalid(f"{path}.type", schema.get("type"), "must be object at the root"))
    elif not schema.get("type") and not schema.get("x-kubernetes-preserve-unknown-fields"):
        errs.append(required(f"{path}.type", "must not be empty at the root"))
    errs += _node_errors(schema, path, root=True)
    meta = (schema.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        mpath = f"{path}.properties[metadata]"
        if meta.get("type") not in (None, "object"):
            errs.append(invalid(f"{mpath}.type", meta.get("type"), "must be object"))
        for key in (meta.get("properties") or {}):
            if key not in ("name", "generateName"):
                errs.append(forbidden(f"{mpath}.properties[{key}]", "must not be specified"))
        if "additionalProperties" in meta:
            errs.append(forbidden(f"{mpath}.additionalProperties", "must not be specified"))
    return errs


def _node_errors(s: dict, path: str, root: bool = False) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, name in FORBIDDEN_FIELDS:
        if key in s:
            errs.append(forbidden(f"{path}.{name}", f"{name} is not supported"))
    if "x-kubernetes-preserve-unknown-fields" in s and s["x-kubernetes-preserve-unknown-fields"] is not True:
        errs.append(invalid(f"{path}.x-kubernetes-preserve-unknown-fields", s["x-kubernetes-preserve-unknown-fields"],
                            "must be true or undefined"))
    t = s.get("type")
    if t not in (None, "object", "array", "string", "integer", "number", "boolean"):
        errs.append(not_supported(f"{path}.type", t, ["array", "boolean", "integer", "number", "object", "string"]))
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    if int_or_string and t:
        errs.append(invalid(f"{path}.type", t, "must be empty if x-kubernetes-int-or-string is true"))
    if not t and not int_or_string and not s.get("x-kubernetes-preserve-unknown-fields") and not root:
        errs.append(required(f"{path}.type", "must not be empty for specified object fields"))
    if s.get("x-kubernetes-embedded-resource") and t != "object":
        errs.append(invalid(f"{path}.type", t, "must be object if x-kubernetes-embedded-resource is true"))
    if "properties" in s and "additionalProperties" in s and s.get("additionalProperties") is not False:
        errs.append(forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"))
    if ("properties" in s or "additionalProperties" in s) and t not in (None, "object"):
        errs.append(invalid(f"{path}.type", t, "must be object if properties or additionalProperties are specified"))
    items = s.get("items")
    if items is not None:
        if not isinstance(items, dict):
            errs.append(forbidden(f"{path}.items", "items must be a schema object and not an array"))
        else:
            errs += _node_errors(items, f"{path}.items")
    elif t == "array":
        errs.append(required(f"{path}.items", "must be specified"))
    for key, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            errs += _node_errors(sub, f"{path}.properties[{key}]")
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        errs += _node_errors(ap, f"{path}.additionalProperties")
    elif ap is False:
        errs.append(forbidden(f"{path}.additionalProperties", "must not be false"))
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(junctor) or []):
            errs += _junctor_errors(sub, f"{path}.{junctor}[{i}]")
    if isinstance(s.get("not"), dict):
        errs += _junctor_errors(s["not"], f"{path}.not")
    if "default" in s and not errs:
        errs += _default_errors(s, path)
    return errs


def _junctor_errors(s: Any, path: str) -> list[FieldError]:
    if not isinstance(s, dict):
        return [invalid(path, s, "must be a schema object")]
    errs = []
    for key in _NOT_IN_JUNCTORS:
        # int-or-string's usual anyOf [{type: integer}, {type: string}] is allowed
        if key in s and not (key == "type" and set(s) == {"type"}):
            errs.append(forbidden(f"{path}.{key}", "must be empty to be structural"))
    for key, sub in (s.get("properties") or {}).items():
        errs += _junctor_errors(sub, f"{path}.properties[{key}]")
    if isinstance(s.get("items"), dict):
        errs += _junctor_errors(s["items"], f"{path}.items")
    return errs


def _default_errors(s: dict, path: str) -> list[FieldError]:
    """A default must itself validate against (and survive pruning by) its schema."""
    value = copy.deepcopy(s["default"])
    if value is None and not s.get("nullable"):
        return [invalid(f"{path}.default", None, "must not be null for a non-nullable schema")]
    pruned = prune_value(value, s, "")
    if pruned:
        return [invalid(f"{path}.default", s["default"], f"must not have unknown fields: {', '.join(pruned)}")]
    return validate_value(value, s, f"{path}.default")


# --- validation ----------------------------------------------------------------------------------
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, t: str) -> bool:
    actual = _json_type(value)
    return actual == t or (t == "number" and actual == "integer")


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def validate_value(value: Any, s: dict, path: str) -> list[FieldError]:
    """The field errors of `value` at `path` against schema `s` (kube-openapi's checks, worded
    as kube-apiserver answers a custom object: `spec.replicas: Invalid value: "x": spec.replicas
    in body must be of type integer: "string"`)."""
    name = path or "body"
    if value is None:
        if s.get("nullable") or (not s.get("type") and not s.get("x-kubernetes-int-or-string")):
            return []
        want = s.get("type") or "integer"
        return [FieldError("Invalid", path, None, f'{name} in body must be of type {want}: "null"')]
    t = s.get("type")
    if s.get("x-kubernetes-int-or-string"):
        if _json_type(value) not in ("integer", "string"):
            return [invalid(path, value, f'{name} in body must be of type integer,string: "{_json_type(value)}"')]
    elif t and not _type_ok(value, t):
        return [invalid(path, value, f'{name} in body must be of type {t}: "{_json_type(value)}"')]
    errs: list[FieldError] = []
    enum = s.get("enum")
    if enum is not None and value not in enum:
        errs.append(not_supported(path, value, [e if isinstance(e, str) else _num(e) for e in enum]))
    if isinstance(value, str):
        errs += _string_errors(value, s, path, name)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        errs += _number_errors(value, s, path, name)
    elif isinstance(value, list):
        errs += _array_errors(value, s, path, name)
    elif isinstance(value, dict):
        errs += _object_errors(value, s, path, name)
    for sub in s.get("allOf") or []:
        errs += validate_value(value, sub, path)
    if s.get("anyOf") and not any(not validate_value(value, sub, path) for sub in s["anyOf"]):
        if not s.get("x-kubernetes-int-or-string"):
            errs.append(invalid(path, value, f"{name} in body must validate at least one schema (anyOf)"))
    if s.get("oneOf") and sum(1 for sub in s["oneOf"] if not validate_value(value, sub, path)) != 1:
        errs.append(invalid(path, value, f"{name} in body must validate one and only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not validate_value(value, s["not"], path):
        errs.append(invalid(path, value, f"{name} in body must not validate the schema (not)"))
    return errs


def _string_errors(value: str, s: dict, path: str, name: str) -> list[FieldError]:
    errs = []
    if "maxLength" in s and len(value) > s["maxLength"]:
        errs.append(FieldError("TooLong", path, value, f"may not be more than {s['maxLength']} bytes"))
    if "minLength" in s and len(value) < s["minLength"]:
        errs.append(invalid(path, value, f"{name} in body should be at least {s['minLength']} chars long"))
    if "pattern" in s:
        try:
            if re.search(s["pattern"], value) is None:
                errs.append(invalid(path, value, f"{name} in body should match '{s['pattern']}'"))
        except re.error:
            pass  # refused when the CRD was written; Go's RE2 syntax may differ
    fmt = s.get("format")
    bad = (fmt == "date-time" and not _RFC3339.match(value)) or (fmt == "date" and not _DATE.match(value)) or \
          (fmt == "uuid" and not _UUID.match(value)) or (fmt == "byte" and not _is_base64(value))
    if bad:
        errs.append(invalid(path, value, f'{name} in body must be of type {fmt}: "{value}"'))
    return errs


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except ValueError:
        return False


def _number_errors(value: float, s: dict, path: str, name: str) -> list[FieldError]:
    errs = []
    if "maximum" in s:
        m = s["maximum"]
        if s.get("exclusiveMaximum") and value >= m:
            errs.append(invalid(path, value, f"{name} in body should be less than {_num(m)}"))
        elif value > m:
            errs.append(invalid(path, value, f"{name} in body should be less than or equal to {_num(m)}"))
    if "minimum" in s:
        m = s["minimum"]
        if s.get("exclusiveMinimum") and value <= m:
            errs.append(invalid(path, value, f"{name} in body should be greater than {_num(m)}"))
        elif value < m:
            errs.append(invalid(path, value, f"{name} in body should be greater than or equal to {_num(m)}"))
    if s.get("multipleOf"):
        q = value / s["multipleOf"]
        if not math.isclose(q, round(q)):
            errs.append(invalid(path, value, f"{name} in body should be a multiple of {_num(s['multipleOf'])}"))
    rng = _INT_RANGES.get(s.get("format", ""))
    if rng and s.get("type") == "integer" and not rng[0] <= value <= rng[1]:
        errs.append(invalid(path, value, f"{name} in body must be of type {s['format']}: \"{_num(value)}\""))
    return errs


def _array_errors(value: list, s: dict, path: str, name: str) -> list[FieldError]:
    errs = []
    if "maxItems" in s and len(value) > s["maxItems"]:
        errs.append(FieldError("TooMany", path, len(value), f"{len(value)}: must have at most {s['maxItems']} items"))
    if "minItems" in s and len(value) < s["minItems"]:
        errs.append(invalid(path, value, f"{name} in body should have at least {s['minItems']} items"))
    list_type = s.get("x-kubernetes-list-type")
    if s.get("uniqueItems") or list_type == "set":
        seen: list = []
        for i, v in enumerate(value):
            if v in seen:
                errs.append(FieldError("Duplicate", f"{path}[{i}]", v))
            else:
                seen.append(v)
    if list_type == "map":
        keys = s.get("x-kubernetes-list-map-keys") or []
        seen_keys: list = []
        for i, v in enumerate(value):
            if isinstance(v, dict):
                k = tuple(v.get(key) for key in keys)
                if k in seen_keys:
                    errs.append(FieldError("Duplicate", f"{path}[{i}]", dict(zip(keys, k, strict=True))))
                seen_keys.append(k)
    items = s.get("items")
    if isinstance(items, dict):
        for i, v in enumerate(value):
            errs += validate_value(v, items, f"{path}[{i}]")
    return errs


def _object_errors(value: dict, s: dict, path: str, name: str) -> list[FieldError]:
    errs = []
    for key in s.get("required") or []:
        if key not in value:
            errs.append(required(_join(path, key)))
    if "maxProperties" in s and len(value) > s["maxProperties"]:
        errs.append(FieldError("TooMany", path, len(value), f"{len(value)}: must have at most {s['maxProperties']} items"))
    if "minProperties" in s and len(value) < s["minProperties"]:
        errs.append(invalid(path, value, f"{name} in body should have at least {s['minProperties']} properties"))
    props = s.get("properties") or {}
    ap = s.get("additionalProperties")
    for key, v in value.items():
        sub = props.get(key)
        if sub is None and isinstance(ap, dict):
            sub = ap
        if isinstance(sub, dict):
            errs += validate_value(v, sub, _join(path, key))
    if s.get("x-kubernetes-embedded-resource"):
        for key in ("apiVersion", "kind"):
            if not value.get(key):
                errs.append(required(_join(path, key), "must not be empty"))
    return errs


def validate_object(obj: dict, s: dict) -> list[FieldError]:
    """A custom object against its version's schema: everything but metadata, which is
    validated as any object's (only its name may be restricted further)."""
    body = {k: v for k, v in obj.items() if k != "metadata"}
    root = dict(s)
    props = dict(root.get("properties") or {})
    meta_schema = props.pop("metadata", None)
    root["properties"] = props
    root["required"] = [r for r in root.get("required") or [] if r != "metadata"]
    errs = validate_value(body, root, "")
    if isinstance(meta_schema, dict):
        meta = obj.get("metadata") or {}
        for key in ("name", "generateName"):
            sub = (meta_schema.get("properties") or {}).get(key)
            if isinstance(sub, dict) and key in meta:
                errs += validate_value(meta[key], sub, f"metadata.{key}")
    return errs


# --- defaulting ----------------------------------------------------------------------------------
def apply_defaults(value: Any, s: dict) -> Any:
    """Set the schema's defaults in `value` (in place where it is a dict or list): for every
    property the object does not have (or has as null, for a non-nullable one), a copy of its
    default, then its defaults in turn. Returns the value (a defaulted root)."""
    if not isinstance(s, dict):
        return value
    if isinstance(value, dict):
        props = s.get("properties") or {}
        for key, sub in props.items():
            if not isinstance(sub, dict) or "default" not in sub:
                continue
            if key not in value or (value[key] is None and not sub.get("nullable")):
                value[key] = copy.deepcopy(sub["default"])
        ap = s.get("additionalProperties")
        for key in list(value):
            sub = props.get(key)
            if sub is None and isinstance(ap, dict):
                sub = ap
                if value[key] is None and "default" in sub and not sub.get("nullable"):
                    value[key] = copy.deepcopy(sub["default"])
            if isinstance(sub, dict):
                apply_defaults(value[key], sub)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        items = s["items"]
        for i, v in enumerate(value):
            if v is None and "default" in items and not items.get("nullable"):
                value[i] = copy.deepcopy(items["default"])
            apply_defaults(value[i], items)
    return value


# --- pruning -------------------------------------------------------------------------------------
_OBJECT_META_FIELDS = ("apiVersion", "kind", "metadata")


def prune_object(obj: dict, s: dict) -> list[str]:
    """Drop, in place, the fields of a custom object its schema does not specify (apiVersion,
    kind and metadata always stay); the dropped fields' paths (`spec.bogus`)."""
    removed: list[str] = []
    _prune(obj, s, "", removed, root=True)
    return removed


def prune_value(value: Any, s: dict, path: str) -> list[str]:
    removed: list[str] = []
    _prune(value, s, path, removed)
    return removed


def _prune(value: Any, s: dict, path: str, removed: list[str], root: bool = False) -> None:
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    if isinstance(value, dict):
        # an object's (and an embedded object's) apiVersion, kind and metadata are never pruned
        skip = _OBJECT_META_FIELDS if root or s.get("x-kubernetes-embedded-resource") else ()
        props = s.get("properties") or {}
        if not preserve and "additionalProperties" not in s:
            for key in list(value):
                if key not in props and key not in skip:
                    del value[key]
                    removed.append(_join(path, key))
        _prune_children(value, s, path, removed, skip=skip)
    elif isinstance(value, list):
        items = s.get("items")
        if not isinstance(items, dict):
            if preserve:
                return
            items = {}  # no schema for the items: nothing of their objects is specified
        for i, v in enumerate(value):
            _prune(v, items, f"{path}[{i}]", removed)


def _prune_children(value: dict, s: dict, path: str, removed: list[str], skip: tuple[str, ...] = ()) -> None:
    """Prune the values of the specified fields (properties; with additionalProperties every
    key is specified, its values pruned by that schema, or by none when it is a bool)."""
    props = s.get("properties") or {}
    has_additional = "additionalProperties" in s
    ap = s.get("additionalProperties")
    for key, v in value.items():
        if key in skip:
            continue
        sub = props.get(key)
        if sub is None and has_additional:
            sub = ap if isinstance(ap, dict) else {}
        if isinstance(sub, dict):
            _prune(v, sub, _join(path, key), removed)
