"""apps/v1 ReplicaSet (+ status, scale)."""

from __future__ import annotations

from knet.api.errors import FieldError
from knet.api.printing import age, containers_images
from knet.api.registry import Column, ResourceType
from knet.api.resources import workloads

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Desired", type="integer", description="Replicas is the number of desired pods."),
    Column("Current", type="integer", description="Replicas is the most recently observed number of replicas."),
    Column("Ready", type="integer", description="The number of ready replicas for this replica set."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the template."),
    Column("Selector", priority=1, description="Selector is a label query over pods that should match the replica count."),
)


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    workloads.template_defaults(spec)
    obj.setdefault("status", {}).setdefault("replicas", 0)


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    return workloads.fix_template_label_error(workloads.validate_selector_and_template(obj, old), obj)


def row(rs: dict) -> list:
    spec, status, meta = rs.get("spec") or {}, rs.get("status") or {}, rs.get("metadata") or {}
    containers, images = containers_images((spec.get("template") or {}).get("spec"))
    return [meta.get("name", ""), spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0),
            age(meta.get("creationTimestamp")), containers, images, workloads.selector_column(rs)]


RESOURCE = ResourceType(
    group="apps", version="v1", resource="replicasets", kind="ReplicaSet", short_names=("rs",),
    categories=("all",), subresources=("status", "scale"), model="V1ReplicaSet", defaults=defaults,
    validate=validate, columns=COLUMNS, row=row, has_generation=True, field_labels=("status.replicas",),
)
