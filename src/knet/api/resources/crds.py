"""apiextensions.k8s.io/v1 CustomResourceDefinition (cluster-scoped, + status): defaults and
validation as apiextensions-apiserver's (SetDefaults_*, ValidateCustomResourceDefinition for
names, scope, versions, structural schemas, subresources, printer columns). Serving what a CRD
defines is knet.api.crd."""

from __future__ import annotations

import re

from knet.api.crd import jsonpath, structural
from knet.api.errors import FieldError, duplicate, invalid, not_supported, required
from knet.api.printing import timestamp
from knet.api.registry import ResourceType
from knet.api.validation import DNS1123_SUBDOMAIN, SUBDOMAIN_MSG, name_errors

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"
_KIND = re.compile(r"^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$")
COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")


def _protected(group: str) -> bool:
    """Groups under k8s.io and kubernetes.io need the API approval annotation (KEP 1111)."""
    return any(group == d or group.endswith("." + d) for d in ("k8s.io", "kubernetes.io"))


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    names = spec.get("names")
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {}).setdefault("strategy", "None")
    obj.setdefault("status", {})


def storage_version(crd: dict) -> str | None:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("storage"):
            return v.get("name")
    return None


def _names_errors(names, path: str) -> list[FieldError]:
    if not isinstance(names, dict):
        return [required(path)]
    errs: list[FieldError] = []
    for key in ("plural", "singular"):
        value = names.get(key) or ""
        if key == "plural" and not value:
            errs.append(required(f"{path}.plural"))
        elif value:
            errs += [invalid(f"{path}.{key}", value, m) for m in name_errors(value, "dns1035")]
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if key == "kind" and not value:
            errs.append(required(f"{path}.kind"))
        elif value and not _KIND.match(value):
            errs.append(invalid(f"{path}.{key}", value,
                                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    for i, short in enumerate(names.get("shortNames") or []):
        errs += [invalid(f"{path}.shortNames[{i}]", short, m) for m in name_errors(str(short), "dns1035")]
    return errs


def _column_errors(columns, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, col in enumerate(columns or []):
        at = f"{path}[{i}]"
        if not col.get("name"):
            errs.append(required(f"{at}.name"))
        elif col["name"] in seen:
            errs.append(duplicate(f"{at}.name", col["name"]))
        seen.add(col.get("name", ""))
        if col.get("type") not in COLUMN_TYPES:
            errs.append(not_supported(f"{at}.type", col.get("type", ""), list(COLUMN_TYPES)))
        if col.get("format") and col["format"] not in COLUMN_FORMATS:
            errs.append(not_supported(f"{at}.format", col["format"], list(COLUMN_FORMATS)))
        if not col.get("jsonPath"):
            errs.append(required(f"{at}.jsonPath"))
        else:
            try:
                jsonpath.parse(col["jsonPath"])
            except jsonpath.JSONPathError:
                errs.append(invalid(f"{at}.jsonPath", col["jsonPath"], "must be a simple json path"))
    return errs


def _scale_errors(scale, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    spec_path = scale.get("specReplicasPath") or ""
    if not spec_path:
        errs.append(required(f"{path}.specReplicasPath"))
    elif not spec_path.startswith(".spec."):
        errs.append(invalid(f"{path}.specReplicasPath", spec_path, "should be a json path under .spec"))
    status_path = scale.get("statusReplicasPath") or ""
    if not status_path:
        errs.append(required(f"{path}.statusReplicasPath"))
    elif not status_path.startswith(".status."):
        errs.append(invalid(f"{path}.statusReplicasPath", status_path, "should be a json path under .status"))
    selector = scale.get("labelSelectorPath")
    if selector and not selector.startswith((".spec.", ".status.")):
        errs.append(invalid(f"{path}.labelSelectorPath", selector, "should be a json path under either .spec or .status"))
    return errs


def _version_errors(versions, spec: dict) -> list[FieldError]:
    path = "spec.versions"
    if not versions:
        return [required(path, "must have exactly one version marked as storage version")]
    errs: list[FieldError] = []
    names: set[str] = set()
    storage = 0
    for i, v in enumerate(versions):
        at = f"{path}[{i}]"
        name = v.get("name") or ""
        if not name:
            errs.append(required(f"{at}.name"))
        else:
            errs += [invalid(f"{at}.name", name, m) for m in name_errors(name, "dns1035")]
            if name in names:
                errs.append(duplicate(f"{at}.name", name))
            names.add(name)
        storage += bool(v.get("storage"))
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            errs.append(required(f"{at}.schema.openAPIV3Schema", "schemas are required"))
        else:
            errs += structural.structural_errors(schema, f"{at}.schema.openAPIV3Schema")
        subs = v.get("subresources") or {}
        if subs.get("scale") is not None:
            errs += _scale_errors(subs["scale"], f"{at}.subresources.scale")
        errs += _column_errors(v.get("additionalPrinterColumns"), f"{at}.additionalPrinterColumns")
    if storage != 1:
        errs.append(invalid(path, [v.get("name") for v in versions], "must have exactly one version marked as storage version"))
    if not any(v.get("served") for v in versions):
        errs.append(invalid(path, [v.get("name") for v in versions], "must have at least one version marked as served"))
    return errs


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    group = spec.get("group") or ""
    if not group:
        errs.append(required("spec.group"))
    elif not DNS1123_SUBDOMAIN.match(group):
        errs.append(invalid("spec.group", group, SUBDOMAIN_MSG))
    elif "." not in group:
        errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if _protected(group) and not ((obj.get("metadata") or {}).get("annotations") or {}).get(APPROVAL_ANNOTATION):
        errs.append(required(f"metadata.annotations[{APPROVAL_ANNOTATION}]",
                             f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", see '
                             "https://github.com/kubernetes/enhancements/pull/1111"))
    scope = spec.get("scope")
    if not scope:
        errs.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    names = spec.get("names")
    errs += _names_errors(names, "spec.names")
    plural = (names or {}).get("plural") if isinstance(names, dict) else None
    name = (obj.get("metadata") or {}).get("name", "")
    if plural and group and name != f"{plural}.{group}":
        errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    errs += _version_errors(spec.get("versions"), spec)
    strategy = (spec.get("conversion") or {}).get("strategy")
    if strategy != "None":
        errs.append(not_supported("spec.conversion.strategy", strategy, ["None"]))
    if spec.get("preserveUnknownFields") is True:
        errs.append(invalid("spec.preserveUnknownFields", True,
                            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                            "spec.versions[*].schema instead"))
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("scope") and scope != old_spec.get("scope"):
            errs.append(invalid("spec.scope", scope, "field is immutable"))
        stored = (obj.get("status") or {}).get("storedVersions") or []
        served_names = {v.get("name") for v in spec.get("versions") or []}
        for i, v in enumerate(stored):
            if v not in served_names:
                errs.append(invalid(f"status.storedVersions[{i}]", v, "must appear in spec.versions"))
    return errs


def condition(crd: dict, ctype: str) -> dict | None:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def set_condition(crd: dict, ctype: str, status: str, reason: str, message: str) -> None:
    conds = crd.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == ctype:
            if (c.get("status"), c.get("reason"), c.get("message")) != (status, reason, message):
                if c.get("status") != status:
                    c["lastTransitionTime"] = timestamp()
                c.update(status=status, reason=reason, message=message)
            return
    conds.append({"type": ctype, "status": status, "lastTransitionTime": timestamp(), "reason": reason,
                  "message": message})


def begin_deletion(crd: dict) -> None:
    """A deleted CRD stays (Terminating) until its custom objects are deleted (the finalizer
    apiextensions-apiserver's CRD storage adds on delete; the CRD controller removes it)."""
    finalizers = crd["metadata"].setdefault("finalizers", [])
    if CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CLEANUP_FINALIZER)
    set_condition(crd, "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress")


RESOURCE = ResourceType(
    group=GROUP, version="v1", resource="customresourcedefinitions", kind="CustomResourceDefinition",
    namespaced=False, short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",),
    model="V1CustomResourceDefinition", defaults=defaults, validate=validate, has_generation=True,
    begin_deletion=begin_deletion,
)
