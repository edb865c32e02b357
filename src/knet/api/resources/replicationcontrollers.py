"""v1 ReplicationController (+ status, scale): the ReplicaSet's predecessor, which upstream's
e2e framework and older tutorials still create. Its selector is a plain label map, defaulted
from the template's labels (SetDefaults_ReplicationController)."""

from __future__ import annotations

from knet.api.errors import FieldError, invalid, required
from knet.api.printing import age, containers_images, label_map
from knet.api.registry import ResourceType
from knet.api.resources import replicasets, workloads


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if template_labels:
        if not spec.get("selector"):
            spec["selector"] = dict(template_labels)
        meta = obj.setdefault("metadata", {})
        if not meta.get("labels"):
            meta["labels"] = dict(template_labels)
    if spec.get("template") is not None:
        workloads.template_defaults(spec)
    obj.setdefault("status", {}).setdefault("replicas", 0)


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    """Upstream ValidateReplicationControllerSpec (the selector may change, unlike a ReplicaSet's)."""
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    selector = spec.get("selector") or {}
    template = spec.get("template")
    if not selector:
        errs.append(required("spec.selector"))
    if template is None:
        errs.append(required("spec.template"))
    else:
        labels = (template.get("metadata") or {}).get("labels") or {}
        if selector and any(labels.get(k) != v for k, v in selector.items()):
            errs.append(FieldError("Invalid", "spec.template.metadata.labels", None,
                                   "`selector` does not match template `labels`"))
        if not (template.get("spec") or {}).get("containers"):
            errs.append(required("spec.template.spec.containers"))
        policy = (template.get("spec") or {}).get("restartPolicy", "Always")
        if policy != "Always":
            errs.append(FieldError("NotSupported", "spec.template.spec.restartPolicy", policy,
                                   'supported values: "Always"'))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errs.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    return workloads.fix_template_label_error(errs, obj)


def row(rc: dict) -> list:
    spec, status, meta = rc.get("spec") or {}, rc.get("status") or {}, rc.get("metadata") or {}
    containers, images = containers_images((spec.get("template") or {}).get("spec"))
    return [meta.get("name", ""), spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0),
            age(meta.get("creationTimestamp")), containers, images, label_map(spec.get("selector")) or "<none>"]


RESOURCE = ResourceType(
    group="", version="v1", resource="replicationcontrollers", kind="ReplicationController", short_names=("rc",),
    categories=("all",), subresources=("status", "scale"), model="V1ReplicationController", defaults=defaults,
    validate=validate, columns=replicasets.COLUMNS, row=row, has_generation=True, field_labels=("status.replicas",),
)
