"""networking.k8s.io/v1 IngressClass: defaults and validation ported from upstream's
pkg/apis/networking (SetDefaults_IngressClass, ValidateIngressClass/Update), and `kubectl get
ingressclass`'s columns (NAME CONTROLLER PARAMETERS AGE)."""

from __future__ import annotations

import re

from knet.api.errors import FieldError, forbidden, invalid, not_supported, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType
from knet.api.validation import DNS1123_SUBDOMAIN, SUBDOMAIN_MSG

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
MAX_CONTROLLER_LEN = 250
SCOPES = ("Cluster", "Namespace")
# IsDomainPrefixedPath: a DNS-1123 subdomain, a slash, then a path of http path characters.
_PATH_CHARS = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Controller", description="controller refers to the name of the controller that should handle this class."),
    Column("Parameters", description="parameters is a link to a custom resource containing additional configuration "
                                     "for the controller."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def is_default(ic: dict) -> bool:
    return ((ic.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"


def defaults(ic: dict) -> None:
    params = (ic.get("spec") or {}).get("parameters")
    if params is not None and not params.get("scope"):
        params["scope"] = "Cluster"


def _domain_prefixed_path_errors(value: str, path: str) -> list[FieldError]:
    if not value:
        return [required(path)]
    host, slash, rest = value.partition("/")
    if not slash:
        return [invalid(path, value, "must be a domain-prefixed path (such as \"acme.io/foo\")")]
    errs = []
    if not DNS1123_SUBDOMAIN.match(host):
        errs.append(invalid(path, host, SUBDOMAIN_MSG))
    if not _PATH_CHARS.match(rest):
        errs.append(invalid(path, rest, "Invalid path"))
    return errs


def validate(ic: dict, old: dict | None) -> list[FieldError]:
    spec = ic.get("spec") or {}
    controller = spec.get("controller") or ""
    errs = _domain_prefixed_path_errors(controller, "spec.controller")
    if len(controller) > MAX_CONTROLLER_LEN:
        errs.append(FieldError("TooLong", "spec.controller", None, f"may not be more than {MAX_CONTROLLER_LEN} bytes"))
    params = spec.get("parameters")
    if params is not None:
        p = "spec.parameters"
        if not params.get("kind"):
            errs.append(required(f"{p}.kind"))
        if not params.get("name"):
            errs.append(required(f"{p}.name"))
        group = params.get("apiGroup")
        if group and not DNS1123_SUBDOMAIN.match(group):
            errs.append(invalid(f"{p}.apiGroup", group, SUBDOMAIN_MSG))
        scope = params.get("scope")
        if scope not in SCOPES:
            errs.append(not_supported(f"{p}.scope", scope, list(SCOPES)))
        elif scope == "Namespace" and not params.get("namespace"):
            errs.append(required(f"{p}.namespace", "`parameters.scope` is set to 'Namespace'"))
        elif scope == "Cluster" and params.get("namespace"):
            errs.append(forbidden(f"{p}.namespace", "`parameters.scope` is set to 'Cluster'"))
    if old is not None and controller != ((old.get("spec") or {}).get("controller") or ""):
        errs.append(invalid("spec.controller", controller, "field is immutable"))
    return errs


def row(ic: dict) -> list:
    meta, spec = ic.get("metadata") or {}, ic.get("spec") or {}
    params = spec.get("parameters")
    text = "<none>"
    if params:
        text = f"{params.get('kind', '')}.{params['apiGroup']}/{params.get('name', '')}" if params.get(
            "apiGroup") else f"{params.get('kind', '')}/{params.get('name', '')}"
    return [meta.get("name", ""), spec.get("controller", ""), text, age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="networking.k8s.io", version="v1", resource="ingressclasses", kind="IngressClass", namespaced=False,
    model="V1IngressClass", defaults=defaults, validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
