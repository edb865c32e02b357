"""apps/v1 Deployment (+ status, scale)."""

from __future__ import annotations

from knet.api.errors import FieldError
from knet.api.printing import age, containers_images
from knet.api.registry import Column, ResourceType
from knet.api.resources import workloads

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", type="integer", description="Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    Column("Available", type="integer", description="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the template."),
    Column("Selector", priority=1, description="Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
)


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    workloads.template_defaults(spec)
    obj.setdefault("status", {})


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    return workloads.fix_template_label_error(workloads.validate_selector_and_template(obj, old), obj)


def row(d: dict) -> list:
    spec, status, meta = d.get("spec") or {}, d.get("status") or {}, d.get("metadata") or {}
    containers, images = containers_images((spec.get("template") or {}).get("spec"))
    return [meta.get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), age(meta.get("creationTimestamp")),
            containers, images, workloads.selector_column(d)]


RESOURCE = ResourceType(
    group="apps", version="v1", resource="deployments", kind="Deployment", short_names=("deploy",),
    categories=("all",), subresources=("status", "scale"), model="V1Deployment", defaults=defaults,
    validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
