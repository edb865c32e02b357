"""apps/v1 DaemonSet (+ status)."""

from __future__ import annotations

from knet.api.errors import FieldError
from knet.api.printing import age, containers_images, label_map
from knet.api.registry import Column, ResourceType
from knet.api.resources import workloads

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Desired", type="integer", description="The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    Column("Current", type="integer", description="The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    Column("Ready", type="integer", description="The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
    Column("Up-to-date", type="integer", description="The total number of nodes that are running updated daemon pod"),
    Column("Available", type="integer", description="The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    Column("Node Selector", description="NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the template."),
    Column("Selector", priority=1, description="A label query over pods that are managed by the daemon set."),
)


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    workloads.template_defaults(spec)
    status = obj.setdefault("status", {})
    for k in ("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"):
        status.setdefault(k, 0)


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    return workloads.fix_template_label_error(workloads.validate_selector_and_template(obj, old), obj)


def row(ds: dict) -> list:
    spec, status, meta = ds.get("spec") or {}, ds.get("status") or {}, ds.get("metadata") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers, images = containers_images(pod_spec)
    return [meta.get("name", ""), status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0),
            status.get("numberReady", 0), status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
            label_map(pod_spec.get("nodeSelector")), age(meta.get("creationTimestamp")), containers, images,
            workloads.selector_column(ds)]


RESOURCE = ResourceType(
    group="apps", version="v1", resource="daemonsets", kind="DaemonSet", short_names=("ds",),
    categories=("all",), subresources=("status",), model="V1DaemonSet", defaults=defaults,
    validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
