"""Kind schemas from the official `kubernetes` package's models: every kind's fields, their
types (openapi_types, attribute_map) and descriptions. Used for strict field validation,
strategic-merge-patch merge keys and the OpenAPI documents (kubectl explain/apply)."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kubernetes.client.models as models

PRIMITIVES = {"str": "string", "int": "integer", "bool": "boolean", "float": "number", "datetime": "string",
              "date": "string", "bytes": "string", "object": "object"}

# Strategic-merge metadata of the built-in types (x-kubernetes-patch-strategy / -merge-key in
# kube's OpenAPI; the Python models do not carry it): (model, json field) -> (strategy, key).
PATCH_META: dict[tuple[str, str], tuple[str, str | None]] = {
    ("V1ObjectMeta", "finalizers"): ("merge", None),
    ("V1ObjectMeta", "ownerReferences"): ("merge", "uid"),
    ("V1PodSpec", "containers"): ("merge", "name"),
    ("V1PodSpec", "initContainers"): ("merge", "name"),
    ("V1PodSpec", "ephemeralContainers"): ("merge", "name"),
    ("V1PodSpec", "volumes"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "imagePullSecrets"): ("merge", "name"),
    ("V1PodSpec", "hostAliases"): ("merge", "ip"),
    ("V1PodSpec", "topologySpreadConstraints"): ("merge", "topologyKey"),
    ("V1PodSpec", "schedulingGates"): ("merge", "name"),
    ("V1PodSpec", "resourceClaims"): ("merge,retainKeys", "name"),
    ("V1Container", "env"): ("merge", "name"),
    ("V1Container", "ports"): ("merge", "containerPort"),
    ("V1Container", "volumeMounts"): ("merge", "mountPath"),
    ("V1Container", "volumeDevices"): ("merge", "devicePath"),
    ("V1EphemeralContainer", "env"): ("merge", "name"),
    ("V1EphemeralContainer", "volumeMounts"): ("merge", "mountPath"),
    ("V1PodStatus", "conditions"): ("merge", "type"),
    ("V1PodStatus", "podIPs"): ("merge", "ip"),
    ("V1PodStatus", "hostIPs"): ("merge", "ip"),
    ("V1ServiceSpec", "ports"): ("merge", "port"),
    ("V1ServiceStatus", "conditions"): ("merge", "type"),
    ("V1NodeSpec", "podCIDRs"): ("merge", None),
    ("V1NodeStatus", "conditions"): ("merge", "type"),
    ("V1NodeStatus", "addresses"): ("merge", "type"),
    ("V1NamespaceStatus", "conditions"): ("merge", "type"),
    ("V1DeploymentSpec", "strategy"): ("retainKeys", None),
    ("V1DeploymentStatus", "conditions"): ("merge", "type"),
    ("V1ReplicaSetStatus", "conditions"): ("merge", "type"),
    ("V1DaemonSetStatus", "conditions"): ("merge", "type"),
    ("V1DaemonSetSpec", "updateStrategy"): ("retainKeys", None),
}


@dataclass(frozen=True)
class FieldType:
    kind: str  # "primitive", "model", "list", "map"
    name: str  # primitive type name or model name
    item: FieldType | None = None


def parse_type(text: str) -> FieldType:
    text = text.strip()
    m = re.fullmatch(r"(?:List|list)\[(.*)\]", text)
    if m:
        return FieldType("list", "", parse_type(m.group(1)))
    m = re.fullmatch(r"(?:Dict|dict)[\[(]str, (.*)[\])]", text)
    if m:
        return FieldType("map", "", parse_type(m.group(1)))
    if text in PRIMITIVES:
        return FieldType("primitive", text)
    if hasattr(models, text):
        return FieldType("model", text)
    return FieldType("primitive", "object")


@dataclass(frozen=True)
class Field:
    json_name: str
    type: FieldType
    description: str
    required: bool


@functools.cache
def model_fields(model: str) -> dict[str, Field]:
    cls = getattr(models, model, None)
    if cls is None:
        return {}
    out: dict[str, Field] = {}
    pyd = getattr(cls, "model_fields", {})
    for attr, type_text in cls.openapi_types.items():
        json_name = cls.attribute_map.get(attr, attr)
        info = pyd.get(attr)
        desc = (getattr(info, "description", None) or "") if info is not None else ""
        required = bool(info is not None and info.is_required())
        ftype = parse_type(type_text)
        if not desc:
            desc = _REF_FIELD_DESCRIPTIONS.get(json_name, "").format(kind=type_name_of(model))
        out[json_name] = Field(json_name, ftype, desc, required)
    return out


CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
# The descriptions the models lose on fields that reference another type (kube's OpenAPI has them).
_REF_FIELD_DESCRIPTIONS = {
    "metadata": f"Standard object's metadata. More info: {CONVENTIONS}#metadata",
    "spec": f"Specification of the desired behavior of the {{kind}}. More info: {CONVENTIONS}#spec-and-status",
    "status": f"Most recently observed status of the {{kind}}. This data may not be up to date. Populated by the "
              f"system. Read-only. More info: {CONVENTIONS}#spec-and-status",
}


def type_name_of(model: str) -> str:
    for prefix in ("CoreV1", "EventsV1", "DiscoveryV1", "AuthenticationV1", "V1"):
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


@functools.cache
def model_description(model: str) -> str:
    cls = getattr(models, model, None)
    if cls is None:
        return ""
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n")[0].split("Attributes:")[0].strip().replace("\n", " ")


# A field's place in an object, built only when an unknown field has to be named: (parent, key)
# links where key is a field name (str), a list index (int) or a map key (1-tuple).
_At = tuple


def _path_text(at: _At) -> str:
    parts: list[str] = []
    while at:
        at, key = at
        if isinstance(key, str):
            parts.append("." + key)
        else:
            parts.append(f"[{key if isinstance(key, int) else key[0]}]")
    text = "".join(reversed(parts))
    return text[1:] if text.startswith(".") else text


def prune_unknown(obj, model: str) -> list[str]:
    """Drop the fields the kind's schema does not know, in place (what decoding into the typed
    object does in kube-apiserver when fieldValidation is Warn or Ignore); the paths of the
    dropped fields, as strict decoding names them (`spec.containers[0].bogus`, `x[key].y`): one
    walk for the check and the pruning."""
    removed: list[str] = []
    _prune_model(obj, model, (), removed)
    return removed


def _prune_model(obj, model: str, at: _At, removed: list[str]) -> None:
    if not isinstance(obj, dict):
        return
    fields = model_fields(model)
    if not fields:
        return
    unknown = None
    for key, value in obj.items():
        f = fields.get(key)
        if f is None:
            unknown = unknown or []
            unknown.append(key)
            removed.append(_path_text((at, key)))
        elif f.type.kind != "primitive" and value is not None:
            _prune_value(value, f.type, (at, key), removed)
    if unknown:
        for key in unknown:
            del obj[key]


def _prune_value(value, ftype: FieldType, at: _At, removed: list[str]) -> None:
    if ftype.kind == "model":
        _prune_model(value, ftype.name, at, removed)
    else:
        for item, item_type, item_at in _structured_items(value, ftype, at):
            _prune_value(item, item_type, item_at, removed)


def _structured_items(value, ftype: FieldType, at: _At) -> Iterable[tuple[Any, FieldType, _At]]:
    """A list's items or a map's model values, with their type and place; nothing for primitives."""
    item_type = ftype.item
    if item_type is None or item_type.kind == "primitive":
        return ()
    if ftype.kind == "list" and isinstance(value, list):
        return ((v, item_type, (at, i)) for i, v in enumerate(value))
    if ftype.kind == "map" and isinstance(value, dict) and item_type.kind == "model":
        return ((v, item_type, (at, (k,))) for k, v in value.items())
    return ()


def prune_patched(new: dict, patch: dict, model: str) -> list[str]:
    """Prune `new`, the result of a merge or strategic merge `patch` on a stored (already pruned)
    object, walking only the parts the patch wrote: the same result as pruning the whole object,
    at the cost of the patch. The unknown fields the patch names (without its $-directives and
    deletions), named as prune_unknown names them."""
    removed: list[str] = []
    _prune_patched(new, patch, model, (), removed)
    return removed


def _prune_patched(new, patch: dict, model: str, at: _At, removed: list[str]) -> None:
    if not isinstance(new, dict):
        return
    fields = model_fields(model)
    if not fields:
        return
    for key, value in patch.items():
        if key.startswith("$"):
            new.pop(key, None)  # a directive, never a field
            continue
        if value is None:
            continue  # a deletion: nothing written
        f = fields.get(key)
        if f is None:
            removed.append(_path_text((at, key)))
            new.pop(key, None)
        elif f.type.kind == "model":
            if isinstance(value, dict):
                _prune_patched(new.get(key), value, f.type.name, (at, key), removed)
        elif f.type.kind != "primitive":
            # A list may be merged with the stored one by key: name the unknown fields by their
            # place in the patch, then prune all of it (named first: it may be the patch's list).
            _named_unknown(value, f.type, (at, key), removed)
            _prune_value(new.get(key), f.type, (at, key), [])


def _named_unknown(value, ftype: FieldType, at: _At, found: list[str]) -> None:
    """The unknown fields a patch value names, skipping its $-directives and deletions (nulls)."""
    if ftype.kind == "model":
        fields = model_fields(ftype.name) if isinstance(value, dict) else None
        if not fields:
            return
        for k, v in value.items():
            if v is None or k.startswith("$"):
                continue
            f = fields.get(k)
            if f is None:
                found.append(_path_text((at, k)))
            elif f.type.kind != "primitive":
                _named_unknown(v, f.type, (at, k), found)
    else:
        for item, item_type, item_at in _structured_items(value, ftype, at):
            _named_unknown(item, item_type, item_at, found)


def patch_meta(model: str, field: str) -> tuple[str, str | None]:
    return PATCH_META.get((model, field), ("", None))
