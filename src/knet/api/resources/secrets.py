"""core/v1 Secret: stringData folded into data (base64), type defaulted to Opaque."""

from __future__ import annotations

import base64
import binascii

from knet.api.errors import FieldError, invalid, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType
from knet.api.validation import validate_config_keys

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Type", description="Used to facilitate programmatic handling of secret data."),
    Column("Data", type="integer", description="Data contains the secret data."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def defaults(obj: dict) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_config_keys(obj.get("data"), "data")
    for k, v in (obj.get("data") or {}).items():
        try:
            base64.b64decode(v or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            errs.append(invalid(f"data[{k}]", v, "illegal base64 data"))
    data = obj.get("data") or {}
    stype = obj.get("type")
    for key in REQUIRED_KEYS.get(stype, ()):
        if key not in data:
            errs.append(required(f"data[{key}]"))
    if stype == "kubernetes.io/service-account-token" and not \
            ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/service-account.name"):
        errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    if old is not None and old.get("type") != obj.get("type"):
        errs.append(invalid("type", obj.get("type"), "field is immutable"))
    return errs


# Keys the typed Secrets must carry (ValidateSecret in pkg/apis/core/validation).
REQUIRED_KEYS = {"kubernetes.io/tls": ("tls.crt", "tls.key"),
                 "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
                 "kubernetes.io/dockercfg": (".dockercfg",),
                 "kubernetes.io/basic-auth": (), "kubernetes.io/ssh-auth": ("ssh-privatekey",)}


def row(s: dict) -> list:
    meta = s.get("metadata") or {}
    return [meta.get("name", ""), s.get("type", ""), len(s.get("data") or {}), age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="", version="v1", resource="secrets", kind="Secret", model="V1Secret", defaults=defaults,
    validate=validate, columns=COLUMNS, row=row, field_labels=("type",),
)
