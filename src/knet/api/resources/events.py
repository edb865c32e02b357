"""core/v1 Event: columns as printEvent (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, ...)."""

from __future__ import annotations

from knet.api.errors import FieldError, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Last Seen", description="The time at which the most recent occurrence of this event was recorded."),
    Column("Type", description="Type of this event (Normal, Warning), new types could be added in the future."),
    Column("Reason", description="This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", priority=1, description="The field of the object that this event is about."),
    Column("Source", priority=1, description="The component reporting this event. Should be a short machine understandable string."),
    Column("Message", description="A human-readable description of the status of this operation."),
    Column("First Seen", priority=1, description="The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", priority=1, format="name", description="Name must be unique within a namespace."),
)

FIELD_LABELS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                "reason", "reportingComponent", "source", "type")


def defaults(obj: dict) -> None:
    obj.setdefault("involvedObject", {})
    obj.setdefault("source", {})
    obj.setdefault("reportingComponent", "")
    obj.setdefault("reportingInstance", "")
    obj.setdefault("firstTimestamp", None)
    obj.setdefault("lastTimestamp", None)
    obj.setdefault("eventTime", None)


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    inv = obj.get("involvedObject") or {}
    ns = (obj.get("metadata") or {}).get("namespace")
    if inv.get("namespace") and ns and inv["namespace"] != ns and ns != "default":
        errs.append(FieldError("Invalid", "involvedObject.namespace", inv["namespace"],
                               "does not match event.namespace"))
    if obj.get("eventTime") and not obj.get("reportingController") and not obj.get("reportingComponent"):
        errs.append(required("reportingController"))
    return errs


def row(ev: dict) -> list:
    first = age(ev.get("firstTimestamp")) if ev.get("firstTimestamp") else age(ev.get("eventTime"))
    last = age(ev.get("lastTimestamp")) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    series = ev.get("series")
    if series:
        last = age(series.get("lastObservedTime"))
        count = series.get("count", 0)
    elif count == 0:
        count = 1
    inv = ev.get("involvedObject") or {}
    kind = (inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    src = ev.get("source") or {}
    component = src.get("component") or ev.get("reportingComponent") or ev.get("reportingController") or ""
    instance = src.get("host") or ev.get("reportingInstance") or ""
    source = f"{component}, {instance}" if instance else component
    return [last, ev.get("type", ""), ev.get("reason", ""), target, inv.get("fieldPath", ""), source,
            (ev.get("message") or "").strip(), first, count, (ev.get("metadata") or {}).get("name", "")]


RESOURCE = ResourceType(
    group="", version="v1", resource="events", kind="Event", short_names=("ev",), model="CoreV1Event",
    defaults=defaults, validate=validate, columns=COLUMNS, row=row, field_labels=FIELD_LABELS,
    allow_create_on_update=True,
)
