"""events.k8s.io/v1 Event: the same objects as core/v1 Events, stored once in core/v1 form
and converted on the way in and out (as kube-apiserver's shared storage does): an event
written through either API is listed, watched and described through both."""

from __future__ import annotations

from knet.api.errors import FieldError, required
from knet.api.registry import ResourceType
from knet.api.resources import events as core_events

# (events.k8s.io/v1 field, core/v1 field)
_RENAMES = (("regarding", "involvedObject"), ("note", "message"), ("deprecatedSource", "source"),
            ("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"))
_SAME = ("metadata", "eventTime", "series", "reportingController", "reportingInstance", "action",
         "reason", "related", "type")


def to_core(ev: dict) -> dict:
    out = {"apiVersion": "v1", "kind": "Event"}
    for k in _SAME:
        if k in ev:
            out[k] = ev[k]
    for new, old in _RENAMES:
        if new in ev:
            out[old] = ev[new]
    if "reportingController" in ev:
        out["reportingComponent"] = ev["reportingController"]
        out.pop("reportingController", None)
    return out


def from_core(ev: dict) -> dict:
    out = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for k in _SAME:
        if k in ev and k != "reportingController":
            out[k] = ev[k]
    for new, old in _RENAMES:
        if ev.get(old) not in (None, "", {}, 0):
            out[new] = ev[old]
    if ev.get("reportingComponent"):
        out["reportingController"] = ev["reportingComponent"]
    if not out.get("eventTime"):
        # Legacy events have no eventTime, which events.k8s.io/v1 requires: use when it was
        # first seen (MicroTime form).
        first = ev.get("firstTimestamp") or (ev.get("metadata") or {}).get("creationTimestamp")
        out["eventTime"] = first.replace("Z", ".000000Z") if first and "." not in first else first
    return out


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    if not obj.get("eventTime"):
        errs.append(required("eventTime"))
    if not obj.get("reportingController"):
        errs.append(required("reportingController"))
    if not obj.get("reportingInstance"):
        errs.append(required("reportingInstance"))
    return errs


def row(ev: dict) -> list:
    return core_events.row(to_core(ev))


RESOURCE = ResourceType(
    group="events.k8s.io", version="v1", resource="events", kind="Event", short_names=("ev",),
    model="EventsV1Event", validate=validate, columns=core_events.COLUMNS, row=row,
    field_labels=core_events.FIELD_LABELS, stored_as=("", "v1", "events"), to_storage=to_core, from_storage=from_core,
)
