"""pods/ephemeralcontainers: the subresource through which `kubectl debug` adds a container to
a running pod, with kube-apiserver's rules (pkg/registry/core/pod/strategy.go
podEphemeralContainersStrategy, pkg/apis/core/validation validateEphemeralContainers and
ValidatePodEphemeralContainersUpdate). Pure.

A write through it changes spec.ephemeralContainers and nothing else (the rest of the pod is
the stored one's: dropNonEphemeralContainerUpdates); containers may only be added, never
changed or removed; an ephemeral container has no ports, probes, lifecycle hooks, resources or
restart policy (it is never relied on to serve), a name unique among all the pod's containers,
and a targetContainerName (whose processes it sees) naming a regular or init container.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from knet.api.errors import FieldError, duplicate, forbidden, not_supported, required
from knet.api.validation import DNS1123_LABEL, LABEL_MSG

Obj = dict[str, Any]
PATH = "spec.ephemeralContainers"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FORBIDDEN_DETAIL = "cannot be set for an Ephemeral Container"

# EphemeralContainerCommon's fields that upstream's allowedEphemeralContainerFields leaves out,
# in the struct's order (the order its reflection reports them in). Any other field of a
# Container may be set.
DISALLOWED_FIELDS = ("ports", "resources", "resizePolicy", "restartPolicy", "livenessProbe", "readinessProbe",
                     "startupProbe", "lifecycle")
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["FallbackToLogsOnError", "File"]


def not_found(field: str, value: Any) -> FieldError:
    return FieldError("NotFound", field, value)


def _is_set(value: Any) -> bool:
    """Whether a field differs from its Go zero value (nil, empty list/map, "", 0, false)."""
    if isinstance(value, dict):
        return any(_is_set(v) for v in value.values())
    return bool(value)


def validate_containers(spec: Obj) -> list[FieldError]:
    """validateEphemeralContainers (with validateContainerCommon's checks of name, image, pull
    policy, termination message policy and volume mounts)."""
    ephemeral = spec.get("ephemeralContainers") or []
    if not isinstance(ephemeral, list):
        return []
    others = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []
              if isinstance(c, dict)}
    all_names = set(others)
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    errs: list[FieldError] = []
    for i, ec in enumerate(ephemeral):
        p = f"{PATH}[{i}]"
        if not isinstance(ec, dict):
            continue
        name = ec.get("name") or ""
        if not name:
            errs.append(required(f"{p}.name"))
        elif not DNS1123_LABEL.match(name) or len(name) > 63:
            errs.append(FieldError("Invalid", f"{p}.name", name, LABEL_MSG))
        if not ec.get("image"):
            errs.append(required(f"{p}.image"))
        policy = ec.get("imagePullPolicy")
        if policy not in PULL_POLICIES:
            errs.append(required(f"{p}.imagePullPolicy") if not policy else
                        not_supported(f"{p}.imagePullPolicy", policy, PULL_POLICIES))
        tmp = ec.get("terminationMessagePolicy")
        if tmp not in TERMINATION_MESSAGE_POLICIES:
            errs.append(required(f"{p}.terminationMessagePolicy") if not tmp else
                        not_supported(f"{p}.terminationMessagePolicy", tmp, TERMINATION_MESSAGE_POLICIES))
        for j, vm in enumerate(ec.get("volumeMounts") or []):
            vp = f"{p}.volumeMounts[{j}]"
            if not vm.get("name"):
                errs.append(required(f"{vp}.name"))
            elif vm["name"] not in volumes:
                errs.append(not_found(f"{vp}.name", vm["name"]))
            if not vm.get("mountPath"):
                errs.append(required(f"{vp}.mountPath"))
        # Names are unique across every kind of container.
        if name in all_names:
            errs.append(duplicate(f"{p}.name", name))
        else:
            all_names.add(name)
        target = ec.get("targetContainerName")
        if target and target not in others:  # an existing regular or init container, never ephemeral
            errs.append(not_found(f"{p}.targetContainerName", target))
        for key in DISALLOWED_FIELDS:
            if _is_set(ec.get(key)):
                errs.append(forbidden(f"{p}.{key}", FORBIDDEN_DETAIL))
        # Subpaths are bind mounts that would outlive the container: never for an ephemeral one.
        for j, vm in enumerate(ec.get("volumeMounts") or []):
            for key in ("subPath", "subPathExpr"):
                if vm.get(key):
                    errs.append(forbidden(f"{p}.volumeMounts[{j}].{key}", FORBIDDEN_DETAIL))
    return errs


def validate_create(spec: Obj) -> list[FieldError]:
    """ValidatePodCreate: ephemeral containers come only through the subresource."""
    if spec.get("ephemeralContainers"):
        return [forbidden(PATH, "cannot be set on create")]
    return []


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate's own part: static pods have none; existing ephemeral
    containers stay as they are (matched by name: a patch need not keep their order)."""
    if MIRROR_ANNOTATION in ((old.get("metadata") or {}).get("annotations") or {}):
        return [forbidden("", "static pods do not support ephemeral containers")]
    errs: list[FieldError] = []
    by_name = {c.get("name"): c for c in (new.get("spec") or {}).get("ephemeralContainers") or []
               if isinstance(c, dict)}
    for was in (old.get("spec") or {}).get("ephemeralContainers") or []:
        now = by_name.get(was.get("name"))
        if now is None:
            errs.append(forbidden(PATH, f'existing ephemeral containers "{was.get("name")}" may not be removed\n'))
        elif now != was:
            changed = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
            errs.append(forbidden(PATH, f'existing ephemeral containers "{was.get("name")}" may not be changed\n'
                                  f"changed fields: {', '.join(changed)}"))
    return errs


def merge(new: Obj, old: Obj, container_defaults: Callable[[Obj], None]) -> Obj:
    """dropNonEphemeralContainerUpdates: the stored pod with the request's ephemeral containers
    (defaulted as containers are). The stored object is shared, never mutated: only what the
    write changes is copied."""
    spec = dict(old.get("spec") or {})
    wanted = (new.get("spec") or {}).get("ephemeralContainers") if isinstance(new.get("spec"), dict) else None
    if wanted:
        wanted = [dict(c) if isinstance(c, dict) else c for c in wanted]
        for c in wanted:
            if isinstance(c, dict):
                container_defaults(c)
        spec["ephemeralContainers"] = wanted
    else:
        spec.pop("ephemeralContainers", None)
    return {**old, "metadata": dict(old["metadata"]), "spec": spec}
