"""Kubernetes `Status` errors and field errors, worded as kube-apiserver words them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


def _go_repr(value: Any) -> str:
    """How apimachinery's field errors print a value (strings quoted, numbers bare)."""
    if type(value).__name__ == "_Raw":  # a pre-rendered Go literal
        return str(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class FieldError:
    """field.Error: a field path, a reason (FieldValueInvalid, ...) and its detail."""

    type: str  # Required, Invalid, Duplicate, NotSupported, Forbidden, TooLong, TooMany
    field: str
    value: Any = None
    detail: str = ""

    @property
    def reason(self) -> str:
        return {
            "Required": "FieldValueRequired", "Invalid": "FieldValueInvalid",
            "Duplicate": "FieldValueDuplicate", "NotSupported": "FieldValueNotSupported",
            "Forbidden": "FieldValueForbidden", "TooLong": "FieldValueTooLong",
            "TooMany": "FieldValueTooMany", "NotFound": "FieldValueNotFound",
        }[self.type]

    @property
    def body(self) -> str:
        """The message without the field path (what a Status cause carries)."""
        t = self.type
        if t == "Required":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        if t == "Invalid":
            if type(self.value).__name__ == "_Omit":  # field.OmitValueType: no value printed
                return "Invalid value" + (f": {self.detail}" if self.detail else "")
            return f"Invalid value: {_go_repr(self.value)}" + (f": {self.detail}" if self.detail else "")
        if t == "Duplicate":
            return f"Duplicate value: {_go_repr(self.value)}"
        if t == "NotSupported":
            return f"Unsupported value: {_go_repr(self.value)}" + (f": {self.detail}" if self.detail else "")
        if t == "Forbidden":
            return "Forbidden" + (f": {self.detail}" if self.detail else "")
        if t == "TooLong":
            return f"Too long: {self.detail}"
        if t == "TooMany":
            return f"Too many: {self.detail}"
        if t == "NotFound":
            return f"Not found: {_go_repr(self.value)}"
        return self.detail

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("Required", field, None, detail)


def invalid(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("Invalid", field, value, detail)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError("NotSupported", field, value, "supported values: " + ", ".join(f'"{s}"' for s in supported))


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("Duplicate", field, value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("Forbidden", field, None, detail)


class ApiError(Exception):
    """Raised anywhere while serving a request; rendered as a metav1.Status."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        st: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": self.message, "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(resource: str, group: str, name: str) -> dict:
    d: dict = {"name": name}
    if group:
        d["group"] = group
    d["kind"] = resource
    return d


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found', _details(resource, group, name))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(resource, group, name))


def conflict(resource: str, group: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                    _details(resource, group, name))


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    if len(errors) == 1:
        text = str(errors[0])
    else:
        text = "[" + ", ".join(str(e) for e in errors) + "]"
    qkind = f"{kind}.{group}" if group else kind
    details: dict = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors]
    return ApiError(422, "Invalid", f'{qkind} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{content_type}")', {})


def not_acceptable(accept: str) -> ApiError:
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {accept})", {})


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})
