"""Every field of a built-in kind checked against its OpenAPI type, as kube-apiserver's
decoding into the Go structs checks it, before defaulting and validation: a wrong type is
refused with encoding/json's words (`json: cannot unmarshal array into Go struct field
PodSpec.spec.nodeName of type string`), nulls become what Go decodes them to (a field is
left out, a list item or map value is its type's zero value), unknown fields are dropped
(and named, for fieldValidation). One walk does it all.

The types come from the `kubernetes` client's models (schema.model_fields), compiled once
per model into small tuples; what the models do not say (int32 or int64, Quantity,
IntOrString, Time) is filled in from kube's OpenAPI here."""

from __future__ import annotations

import functools
import re

from knet.api import errors, schema
from knet.api.schema import FieldType, _At, _path_text


class TypeMismatch(Exception):
    """A value of the wrong type, worded as Go's decoding error."""


# What a field holds: one code each.
STR, INT32, INT64, BOOL, FLOAT, BYTES, TIME, QUANTITY, INT_OR_STRING, FREEFORM, MODEL, LIST, MAP, ANY = range(14)

# Spec: (code, Go type as errors name it, item spec / model name / None)
Spec = tuple

# Integer fields kube's OpenAPI declares int64 (the models only say "int"); the rest are int32.
_INT64_FIELDS = {"generation", "observedGeneration", "deletionGracePeriodSeconds", "sizeBytes", "gracePeriodSeconds",
                 "gid", "uid", "supplementalGroups", "fsGroup", "runAsGroup", "runAsUser", "activeDeadlineSeconds",
                 "terminationGracePeriodSeconds", "expirationSeconds", "tolerationSeconds", "user", "defaultUser"}
_INT64_BY_MODEL = {("V1SleepAction", "seconds"), ("V1NodeSwapStatus", "capacity"), ("V1ControllerRevision", "revision")}
# resource.Quantity fields (the models call them str): a string or a bare number.
_QUANTITY_FIELDS = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"), ("V1VolumeResourceRequirements", "requests"),
    ("V1NodeStatus", "capacity"), ("V1NodeStatus", "allocatable"), ("V1PodSpec", "overhead"),
    ("V1ContainerStatus", "allocatedResources"), ("V1PodStatus", "allocatedResources"),
    ("V1EmptyDirVolumeSource", "sizeLimit"), ("V1ResourceFieldSelector", "divisor"),
    ("V1NodeAllocatableMappedResources", "quantity"), ("V1NodeAllocatableOverheadResources", "perContainer"),
    ("V1NodeAllocatableOverheadResources", "perPod"),
}
# The models' "object" fields: IntOrString, except managedFields' fieldsV1 and a
# ControllerRevision's data (runtime.RawExtension), free-form JSON.
_FREEFORM_FIELDS = {("V1ManagedFieldsEntry", "fieldsV1"), ("V1ControllerRevision", "data"),
                    ("V1CustomResourceSubresources", "status")}
# JSONSchemaProps' "object" fields hold any JSON (a default, an enum value) or a schema or a
# bool (items, additionalProperties): checked as schemas where a CRD is validated.
_ANY_FIELDS = {("V1JSONSchemaProps", name) for name in ("default", "example", "enum", "items", "additionalProperties",
                                                       "additionalItems", "dependencies")}

_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_QUANTITY_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")  # a number, then a suffix it cannot parse
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")


def go_struct(model: str) -> str:
    return schema.type_name_of(model)


def _spec(model: str, name: str, ftype: FieldType) -> Spec:
    if ftype.kind == "list":
        item = _spec(model, name, ftype.item) if ftype.item else (FREEFORM, "interface {}", None)
        return LIST, "[]" + item[1], item
    if ftype.kind == "map":
        if (model, name) in _QUANTITY_FIELDS:
            return MAP, "v1.ResourceList", (QUANTITY, "resource.Quantity", None)
        item = _spec(model, name, ftype.item) if ftype.item else (FREEFORM, "interface {}", None)
        return MAP, "map[string]" + item[1], item
    if ftype.kind == "model":
        return MODEL, "v1." + go_struct(ftype.name), ftype.name
    prim = ftype.name
    if (model, name) in _QUANTITY_FIELDS:
        return QUANTITY, "resource.Quantity", None
    if prim == "str":
        return STR, "string", None
    if prim == "int":
        wide = name in _INT64_FIELDS or (model, name) in _INT64_BY_MODEL
        return (INT64, "int64", _INT64) if wide else (INT32, "int32", _INT32)
    if prim == "bool":
        return BOOL, "bool", None
    if prim == "float":
        return FLOAT, "float64", None
    if prim == "bytes":
        return BYTES, "[]uint8", None
    if prim in ("datetime", "date"):
        return TIME, "string", None
    if (model, name) in _FREEFORM_FIELDS:
        return FREEFORM, "v1.FieldsV1", None
    if (model, name) in _ANY_FIELDS:
        return ANY, "v1.JSON", None
    return INT_OR_STRING, "int32", _INT32  # the models' other "object" fields are all IntOrString


@functools.cache
def specs(model: str) -> dict[str, Spec]:
    """A model's fields, compiled: json name -> Spec."""
    return {name: _spec(model, name, f.type) for name, f in schema.model_fields(model).items()}


def _value_name(value) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "value"


def _go_path(at: _At) -> str:
    names: list[str] = []
    while at:
        at, key = at
        if isinstance(key, str):
            names.append(key)
    return ".".join(reversed(names))


def _mismatch(value, gotype: str, struct: str, at: _At, number: bool = False) -> TypeMismatch:
    what = _value_name(value)
    if number:
        what = f"number {value!r}" if isinstance(value, float) else f"number {value}"
    return TypeMismatch(f"json: cannot unmarshal {what} into Go struct field {struct}.{_go_path(at)} of type {gotype}")


def _zero(spec: Spec):
    code = spec[0]
    if code == MODEL:
        return {}
    if code in (STR, BYTES, TIME):
        return ""
    if code in (INT32, INT64, INT_OR_STRING, FLOAT):
        return 0
    if code == BOOL:
        return False
    if code == QUANTITY:
        return "0"
    if code in (LIST, MAP):
        return None
    return None


def check(obj: dict, model: str) -> list[str]:
    """Type-check `obj` (a decoded `model`) in place: raises TypeMismatch at the first wrong
    type, in document order as Go reports it; drops unknown fields and null fields, and
    returns the unknown fields' paths as strict decoding names them."""
    unknown: list[str] = []
    _model(obj, model, (), unknown)
    return unknown


def _model(obj: dict, model: str, at: _At, unknown: list[str]) -> None:
    fields = specs(model)
    drop = None
    for key, value in obj.items():
        spec = fields.get(key)
        if spec is None:
            unknown.append(_path_text((at, key)))
        elif value is None:
            pass  # Go leaves the field unset
        else:
            code = spec[0]
            if code == STR:
                if type(value) is str:
                    continue
            elif code == MODEL:
                if type(value) is dict:
                    _model(value, spec[2], (at, key), unknown)
                    continue
            elif code == MAP and type(value) is dict and spec[2][0] == STR and \
                    all(type(v) is str for v in value.values()):
                continue  # labels, annotations, data: the common case, checked at C speed
            else:
                new = _value(value, spec, go_struct(model), (at, key), unknown)
                if new is not value:
                    obj[key] = new
                continue
            raise _mismatch(value, spec[1], go_struct(model), (at, key))
        drop = drop or []
        drop.append(key)
    if drop:
        for key in drop:
            del obj[key]


def _value(value, spec: Spec, struct: str, at: _At, unknown: list[str]):
    """Check a non-null value of any type; the value to keep (a number Quantity becomes its
    string, a null list item or map value its zero value)."""
    code = spec[0]
    kind = type(value)
    if code == STR:
        if kind is str:
            return value
    elif code == MODEL:
        if kind is dict:
            _model(value, spec[2], at, unknown)
            return value
    elif code == LIST:
        if kind is list:
            item = spec[2]
            for i, v in enumerate(value):
                if v is None:
                    value[i] = _zero(item)
                elif item[0] == STR:
                    if type(v) is not str:
                        raise _mismatch(v, item[1], struct, at)
                else:
                    new = _value(v, item, struct, (at, i), unknown)
                    if new is not v:
                        value[i] = new
            return value
    elif code == MAP:
        if kind is dict:
            item = spec[2]
            for k, v in value.items():
                if v is None:
                    value[k] = _zero(item)
                elif item[0] == STR:
                    if type(v) is not str:
                        raise _mismatch(v, item[1], struct, at)
                else:
                    new = _value(v, item, struct, (at, (k,)), unknown)
                    if new is not v:
                        value[k] = new
            return value
    elif code in (INT32, INT64):
        if kind is int:
            low, high = spec[2]
            if low <= value <= high:
                return value
            raise _mismatch(value, spec[1], struct, at, number=True)
        if kind is float:
            raise _mismatch(value, spec[1], struct, at, number=True)
    elif code == BOOL:
        if kind is bool:
            return value
    elif code == INT_OR_STRING:
        if kind is str:
            return value
        if kind is int or kind is float:
            if kind is int and _INT32[0] <= value <= _INT32[1]:
                return value
            raise _mismatch(value, "int32", struct, at, number=True)
    elif code == QUANTITY:
        if kind is str:
            if _QUANTITY.fullmatch(value.strip()):
                return value
            if _QUANTITY_NUMBER.match(value.strip()):
                raise TypeMismatch("unable to parse quantity's suffix")
            raise TypeMismatch(QUANTITY_FORMAT)
        if kind is int:
            return str(value)
        if kind is float:
            text = repr(value)
            if _QUANTITY.fullmatch(text):
                return text
        raise TypeMismatch(QUANTITY_FORMAT)
    elif code == TIME:
        if kind is str:
            if not value or _RFC3339.fullmatch(value):
                return value
            raise TypeMismatch(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse "{value}" as "2006"')
    elif code == BYTES:
        if kind is str:
            bad = _base64_error_at(value)
            if bad is None:
                return value
            raise TypeMismatch(f"illegal base64 data at input byte {bad}")
    elif code == FLOAT:
        if (kind is int or kind is float) and kind is not bool:
            return value
    elif code == FREEFORM:
        if kind is dict:
            return value
    elif code == ANY:
        return value
    raise _mismatch(value, spec[1], struct, at)


_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error_at(text: str) -> int | None:
    """Where Go's base64.StdEncoding (padded; CR and LF skipped) fails on `text`, or None."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        data = text.encode()
    pos = 0
    count = 0  # significant characters
    pad = 0
    for i, c in enumerate(data):
        if c in (10, 13):
            continue
        if pad:
            if c != 61:  # data after padding
                return i
            pad += 1
        elif c == 61:
            if count % 4 < 2:
                return i
            pad = 1
        elif c not in _B64:
            return i
        count += 1
        pos = i
    if pad and (count % 4 != 0):
        return pos + 1 if pos + 1 < len(data) else len(data)
    if not pad and count % 4:
        return len(data) - len(data) % 4 if count % 4 == 1 else len(data)
    return None


# --- patches -------------------------------------------------------------------------------
def check_patched(new: dict, patch: dict, model: str) -> None:
    """Type-check `new`, a merge or strategic merge `patch` applied to a stored (already
    checked) object, along the parts the patch wrote: the result of checking the whole object,
    at the cost of the patch. Unknown fields are left to schema.prune_patched."""
    _patched(new, patch, model, ())


def _patched(new, patch: dict, model: str, at: _At) -> None:
    if not isinstance(new, dict):
        return
    fields = specs(model)
    struct = go_struct(model)
    for key, value in patch.items():
        if value is None or key.startswith("$"):
            continue
        spec = fields.get(key)
        if spec is None:
            continue
        written = new.get(key)
        if written is None:
            new.pop(key, None)
            continue
        if spec[0] == MODEL and type(value) is dict and type(written) is dict:
            _patched(written, value, spec[2], (at, key))
            continue
        ignored: list[str] = []
        kept = _value(written, spec, struct, (at, key), ignored)
        if kept is not written:
            new[key] = kept


# --- subresource bodies --------------------------------------------------------------------
def decode_as(body, model: str, kind: str, version: str) -> dict:
    """A subresource's body (Binding, Eviction, Scale, TokenRequest) decoded as kube-apiserver
    decodes it into its Go type: an object (400 otherwise), types checked, unknown fields dropped."""
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    if not isinstance(body, dict):
        raise errors.bad_request(prefix + f"json: cannot unmarshal {_value_name(body)} into Go value of type "
                                          f"v1.{kind}")
    try:
        check(body, model)
    except TypeMismatch as exc:
        raise errors.bad_request(prefix + str(exc)) from None
    return body


# --- DeleteOptions -------------------------------------------------------------------------
def check_delete_options(options: dict):
    """A DeleteOptions body decoded as kube-apiserver decodes it (400 for a wrong type)."""
    try:
        check(options, "V1DeleteOptions")
    except TypeMismatch as exc:
        raise errors.bad_request(str(exc)) from None
