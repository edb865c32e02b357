"""Kind schemas from the official `kubernetes` package's models: every kind's fields, their
types (openapi_types, attribute_map) and descriptions. Used for strict field validation,
strategic-merge-patch merge keys and the OpenAPI documents (kubectl explain/apply)."""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

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


def unknown_fields(obj, model: str, path: str = "") -> list[str]:
    """Paths of fields that the kind's schema does not know (fieldValidation=Strict)."""
    if not isinstance(obj, dict):
        return []
    fields = model_fields(model)
    if not fields:
        return []
    out: list[str] = []
    for key, value in obj.items():
        p = f"{path}.{key}" if path else key
        f = fields.get(key)
        if f is None:
            out.append(p)
            continue
        out += _unknown_in(value, f.type, p)
    return out


def _unknown_in(value, ftype: FieldType, path: str) -> list[str]:
    if ftype.kind == "model":
        return unknown_fields(value, ftype.name, path)
    if ftype.kind == "list" and isinstance(value, list) and ftype.item is not None:
        out: list[str] = []
        for i, v in enumerate(value):
            out += _unknown_in(v, ftype.item, f"{path}[{i}]")
        return out
    if ftype.kind == "map" and isinstance(value, dict) and ftype.item is not None and ftype.item.kind == "model":
        out = []
        for k, v in value.items():
            out += _unknown_in(v, ftype.item, f"{path}[{k}]")
        return out
    return []


def prune_unknown(obj, model: str) -> None:
    """Drop the fields the kind's schema does not know, in place (what decoding into the typed
    object does in kube-apiserver when fieldValidation is Warn or Ignore)."""
    if not isinstance(obj, dict):
        return
    fields = model_fields(model)
    if not fields:
        return
    for key in [k for k in obj if k not in fields]:
        del obj[key]
    for key, value in obj.items():
        _prune_in(value, fields[key].type)


def _prune_in(value, ftype: FieldType) -> None:
    if ftype.kind == "model":
        prune_unknown(value, ftype.name)
    elif ftype.kind == "list" and isinstance(value, list) and ftype.item is not None:
        for v in value:
            _prune_in(v, ftype.item)
    elif ftype.kind == "map" and isinstance(value, dict) and ftype.item is not None and ftype.item.kind == "model":
        for v in value.values():
            _prune_in(v, ftype.item)


def patch_meta(model: str, field: str) -> tuple[str, str | None]:
    return PATCH_META.get((model, field), ("", None))
