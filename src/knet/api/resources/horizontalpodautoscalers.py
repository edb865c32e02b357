"""autoscaling/v2 HorizontalPodAutoscaler (stored) and autoscaling/v1 (a view of the same
objects, converted as upstream's pkg/apis/autoscaling/v1/conversion.go does: the CPU
utilisation target is `targetCPUUtilizationPercentage`, what v1 cannot say travels in
`autoscaling.alpha.kubernetes.io/*` annotations, metrics in v1's MetricSpec/MetricStatus shape). Defaults as SetDefaults_HorizontalPodAutoscaler,
validation as ValidateHorizontalPodAutoscaler, table as kube-apiserver 1.32's printers.go
(printHorizontalPodAutoscaler, formatHPAMetrics). The controller is
knet.controllers.horizontal."""

from __future__ import annotations

import copy
import json
from typing import Any

from knet.api.errors import FieldError, forbidden, invalid, not_supported, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType

Obj = dict[str, Any]

DEFAULT_CPU_UTILIZATION = 80
MAX_STABILIZATION_WINDOW_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800
METRIC_SOURCE_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
# metric source type -> its field
SOURCE_FIELDS = {"Object": "object", "Pods": "pods", "Resource": "resource", "External": "external",
                 "ContainerResource": "containerResource"}
SELECT_POLICIES = ["Disabled", "Max", "Min"]
POLICY_TYPES = ["Percent", "Pods"]

# v1 <-> v2: what v1 has no field for (upstream's annotation names)
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Reference", description="reference to scaled resource; horizontal pod autoscaler will learn the current "
                                    "resource consumption and will set the desired number of pods by using its "
                                    "Scale subresource."),
    Column("Targets", description="metrics contains the specifications for which to use to calculate the desired "
                                  "replica count (the maximum replica count across all metrics will be used)."),
    Column("MinPods", description="minReplicas is the lower limit for the number of replicas to which the "
                                  "autoscaler can scale down."),
    Column("MaxPods", type="integer", description="maxReplicas is the upper limit for the number of replicas to "
                                                  "which the autoscaler can scale up."),
    Column("Replicas", type="integer", description="currentReplicas is current number of replicas of pods managed "
                                                   "by this autoscaler, as last seen by the autoscaler."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


# -- defaults (pkg/apis/autoscaling/v2/defaults.go) ------------------------------------------
def default_scale_up_rules() -> Obj:
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                         {"type": "Percent", "value": 100, "periodSeconds": 15}]}


def default_scale_down_rules() -> Obj:
    # no stabilizationWindowSeconds: the controller's --horizontal-pod-autoscaler-downscale-stabilization
    return {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _rules(given: Any, default: Obj) -> Obj:
    if not isinstance(given, dict):
        return default
    out = dict(default)
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
        if given.get(key) is not None:
            out[key] = given[key]
    return {**given, **out}


def defaults(hpa: Obj) -> None:
    spec = hpa.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _rules(behavior.get("scaleUp"), default_scale_up_rules())
        behavior["scaleDown"] = _rules(behavior.get("scaleDown"), default_scale_down_rules())


# -- validation (pkg/apis/autoscaling/validation/validation.go) -------------------------------
def _path_segment_errors(value: str) -> list[str]:
    """IsValidPathSegmentName."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positive_quantity(value: Any) -> bool:
    from knet.scheduler.quantity import parse_quantity
    try:
        return parse_quantity(value) > 0
    except (ValueError, TypeError):
        return False


def _target_errors(target: Any, path: str) -> list[FieldError]:
    """validateMetricTarget."""
    target = target if isinstance(target, dict) else {}
    errs: list[FieldError] = []
    kind = target.get("type")
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        errs.append(invalid(f"{path}.type", kind or "", "must be either Utilization, Value, or AverageValue"))
    for key in ("value", "averageValue"):
        if target.get(key) is not None and not _positive_quantity(target[key]):
            errs.append(invalid(f"{path}.{key}", target[key], "must be positive"))
    util = target.get("averageUtilization")
    if util is not None and (_int(util) is None or util < 1):
        errs.append(invalid(f"{path}.averageUtilization", util, "must be greater than 0"))
    return errs


def _resource_source_errors(src: Obj, path: str, container: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    if not src.get("name"):
        errs.append(required(f"{path}.name", "must specify a resource name"))
    if container and not src.get("container"):
        errs.append(required(f"{path}.container", "must specify a container"))
    target = src.get("target") if isinstance(src.get("target"), dict) else {}
    errs += _target_errors(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageUtilization", "must set either a target raw value or a target utilization"))
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        errs.append(forbidden(f"{path}.target.averageValue", "may not set both a target raw value and a target utilization"))
    return errs


def _metric_source_errors(src: Obj, path: str, kind: str) -> list[FieldError]:
    """validateObjectSource/PodsSource/ExternalSource, the parts knet checks: the metric's
    name, the described object, and a target of the right type with its value."""
    errs: list[FieldError] = []
    metric = src.get("metric") if isinstance(src.get("metric"), dict) else {}
    if not metric.get("name"):
        errs.append(required(f"{path}.metric.name", "must specify a metric name"))
    if kind == "Object":
        ref = src.get("describedObject") if isinstance(src.get("describedObject"), dict) else {}
        errs += _ref_errors(ref, f"{path}.describedObject")
    target = src.get("target") if isinstance(src.get("target"), dict) else {}
    errs += _target_errors(target, f"{path}.target")
    if kind == "Pods":
        if target.get("averageValue") is None:
            errs.append(required(f"{path}.target.averageValue", "must specify a positive target averageValue"))
    elif target.get("value") is None and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageValue", "must set either a target value or averageValue"))
    return errs


def _metric_errors(spec: Any, path: str) -> list[FieldError]:
    """validateMetricSpec."""
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    kind = spec.get("type")
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    if kind not in SOURCE_FIELDS:
        errs.append(not_supported(f"{path}.type", kind or "", METRIC_SOURCE_TYPES))
    present = [(k, f) for k, f in SOURCE_FIELDS.items() if spec.get(f) is not None]
    if present:
        first_kind, first_field = present[0]
        src = spec[first_field] if isinstance(spec[first_field], dict) else {}
        if first_kind in ("Resource", "ContainerResource"):
            errs += _resource_source_errors(src, f"{path}.{first_field}", first_kind == "ContainerResource")
        else:
            errs += _metric_source_errors(src, f"{path}.{first_field}", first_kind)
    expected = SOURCE_FIELDS.get(kind or "")
    if expected is not None and spec.get(expected) is None:
        errs.append(required(f"{path}.{expected}", "must populate information for the given metric source"))
    elif expected is None and kind:
        errs.append(not_supported(f"{path}.type", kind, METRIC_SOURCE_TYPES))
    if len(present) != 1:
        for _, fld in present:
            if fld != expected:
                errs.append(forbidden(f"{path}.{fld}", "must populate the given metric source only"))
    return errs


def _rules_errors(rules: Any, path: str) -> list[FieldError]:
    """validateScalingRules / validateScalingPolicy."""
    if not isinstance(rules, dict):
        return []
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None:
        if _int(window) is None or window < 0:
            errs.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be greater than or equal to zero"))
        elif window > MAX_STABILIZATION_WINDOW_SECONDS:
            errs.append(invalid(f"{path}.stabilizationWindowSeconds", window,
                                f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        errs.append(not_supported(f"{path}.selectPolicy", select, SELECT_POLICIES))
    policies = rules.get("policies") or []
    if not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        p = f"{path}.policies[{i}]"
        policy = policy if isinstance(policy, dict) else {}
        if policy.get("type") not in POLICY_TYPES:
            errs.append(not_supported(f"{p}.type", policy.get("type") or "", POLICY_TYPES))
        value, period = _int(policy.get("value")) or 0, _int(policy.get("periodSeconds")) or 0
        if value <= 0:
            errs.append(invalid(f"{p}.value", policy.get("value", 0), "must be greater than zero"))
        if period <= 0:
            errs.append(invalid(f"{p}.periodSeconds", policy.get("periodSeconds", 0), "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            errs.append(invalid(f"{p}.periodSeconds", period, f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


def _ref_errors(ref: Obj, path: str) -> list[FieldError]:
    """ValidateCrossVersionObjectReference."""
    errs: list[FieldError] = []
    for key in ("kind", "name"):
        value = ref.get(key)
        if not value:
            errs.append(required(f"{path}.{key}"))
        else:
            errs += [invalid(f"{path}.{key}", value, msg) for msg in _path_segment_errors(str(value))]
    return errs


def validate(hpa: Obj, old: Obj | None) -> list[FieldError]:
    spec = hpa.get("spec") if isinstance(hpa.get("spec"), dict) else {}
    errs: list[FieldError] = []
    min_replicas, max_replicas = spec.get("minReplicas"), _int(spec.get("maxReplicas")) or 0
    if min_replicas is not None and (_int(min_replicas) is None or min_replicas < 1):
        errs.append(invalid("spec.minReplicas", min_replicas, "must be greater than or equal to 1"))
    if max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    if _int(min_replicas) is not None and max_replicas < min_replicas:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"))
    ref = spec.get("scaleTargetRef") if isinstance(spec.get("scaleTargetRef"), dict) else {}
    ref_errs = _ref_errors(ref, "spec.scaleTargetRef")
    if ref_errs:
        return errs + ref_errs
    metric_errs = [e for i, m in enumerate(spec.get("metrics") or []) for e in _metric_errors(m, f"spec.metrics[{i}]")]
    if metric_errs:
        return errs + metric_errs
    behavior = spec.get("behavior") if isinstance(spec.get("behavior"), dict) else {}
    return errs + _rules_errors(behavior.get("scaleUp"), "spec.behavior.scaleUp") + \
        _rules_errors(behavior.get("scaleDown"), "spec.behavior.scaleDown")


# -- table (pkg/printers/internalversion/printers.go) ------------------------------------------
def format_metrics(specs: list[Obj], statuses: list[Obj]) -> str:
    """formatHPAMetrics: `cpu: 23%/50%`, `<unknown>` until measured, at most two then `+ N more...`."""
    if not specs:
        return "<none>"
    shown: list[str] = []

    def status_of(i: int, fld: str) -> Obj | None:
        return (statuses[i] or {}).get(fld) if len(statuses) > i and isinstance(statuses[i], dict) else None

    for i, spec in enumerate(specs):
        kind = spec.get("type")
        fld = SOURCE_FIELDS.get(kind or "")
        src = spec.get(fld) or {} if fld else {}
        target = src.get("target") or {}
        cur = status_of(i, fld) if fld else None
        current_values = (cur or {}).get("current") or {}
        if kind in ("External", "Object"):
            if target.get("averageValue") is not None:
                current = current_values.get("averageValue") or "<unknown>"
                shown.append(f"{current}/{target['averageValue']} (avg)")
            else:
                current = current_values.get("value") if cur is not None else "<unknown>"
                shown.append(f"{current}/{target.get('value')}")
        elif kind == "Pods":
            current = current_values.get("averageValue") if cur is not None else "<unknown>"
            shown.append(f"{current}/{target.get('averageValue')}")
        elif kind in ("Resource", "ContainerResource"):
            name = src.get("name", "")
            if target.get("averageValue") is not None:
                current = current_values.get("averageValue") if cur is not None else "<unknown>"
                shown.append(f"{name}: {current}/{target['averageValue']}")
            else:
                util = current_values.get("averageUtilization")
                current = f"{util}%" if cur is not None and util is not None else "<unknown>"
                goal = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
                shown.append(f"{name}: {current}/{goal}")
        else:
            shown.append("<unknown type>")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def row(hpa: Obj) -> list:
    meta, spec, status = hpa.get("metadata") or {}, hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = "<unset>" if spec.get("minReplicas") is None else str(spec["minReplicas"])
    return [meta.get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            format_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []), min_pods,
            int(spec.get("maxReplicas") or 0), int(status.get("currentReplicas") or 0),
            age(meta.get("creationTimestamp"))]


# -- autoscaling/v1 (pkg/apis/autoscaling/v1/conversion.go) ---------------------------------------
def _is_cpu_utilization(metric: Obj) -> bool:
    res = metric.get("resource") or {}
    return (metric.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("averageUtilization") is not None)


def _drop_none(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v is not None}


def metric_to_v1(m: Obj) -> Obj:
    """A v2 MetricSpec in autoscaling/v1's shape (what the metrics annotation holds upstream)."""
    kind = m.get("type")
    fld = SOURCE_FIELDS.get(kind or "")
    src = (m.get(fld) or {}) if fld else {}
    target, metric = src.get("target") or {}, src.get("metric") or {}
    if kind in ("Resource", "ContainerResource"):
        out = _drop_none({"name": src.get("name"), "container": src.get("container"),
                          "targetAverageUtilization": target.get("averageUtilization"),
                          "targetAverageValue": target.get("averageValue")})
    elif kind == "Pods":
        out = _drop_none({"metricName": metric.get("name"), "selector": metric.get("selector"),
                          "targetAverageValue": target.get("averageValue")})
    elif kind == "Object":
        out = _drop_none({"target": src.get("describedObject"), "metricName": metric.get("name"),
                          "selector": metric.get("selector"), "targetValue": target.get("value"),
                          "averageValue": target.get("averageValue")})
    elif kind == "External":
        out = _drop_none({"metricName": metric.get("name"), "metricSelector": metric.get("selector"),
                          "targetValue": target.get("value"), "targetAverageValue": target.get("averageValue")})
    else:
        return dict(m)
    return {"type": kind, fld: out}


def metric_from_v1(m: Obj) -> Obj:
    kind = m.get("type")
    fld = SOURCE_FIELDS.get(kind or "")
    src = (m.get(fld) or {}) if fld else {}
    if kind in ("Resource", "ContainerResource"):
        util = src.get("targetAverageUtilization")
        target = {"type": "Utilization", "averageUtilization": util} if util is not None else \
            {"type": "AverageValue", "averageValue": src.get("targetAverageValue")}
        out = _drop_none({"name": src.get("name"), "container": src.get("container"), "target": target})
    elif kind == "Pods":
        out = {"metric": _drop_none({"name": src.get("metricName"), "selector": src.get("selector")}),
               "target": {"type": "AverageValue", "averageValue": src.get("targetAverageValue")}}
    elif kind == "Object":
        avg = src.get("averageValue")
        out = _drop_none({"describedObject": src.get("target"),
                          "metric": _drop_none({"name": src.get("metricName"), "selector": src.get("selector")}),
                          "target": {"type": "AverageValue", "averageValue": avg} if avg is not None else
                          {"type": "Value", "value": src.get("targetValue")}})
    elif kind == "External":
        value = src.get("targetValue")
        out = {"metric": _drop_none({"name": src.get("metricName"), "selector": src.get("metricSelector")}),
               "target": {"type": "Value", "value": value} if value is not None else
               {"type": "AverageValue", "averageValue": src.get("targetAverageValue")}}
    else:
        return dict(m)
    return {"type": kind, fld: out}


def status_to_v1(m: Obj) -> Obj:
    kind = m.get("type")
    fld = SOURCE_FIELDS.get(kind or "")
    src = (m.get(fld) or {}) if fld else {}
    current, metric = src.get("current") or {}, src.get("metric") or {}
    if kind in ("Resource", "ContainerResource"):
        out = _drop_none({"name": src.get("name"), "container": src.get("container"),
                          "currentAverageUtilization": current.get("averageUtilization"),
                          "currentAverageValue": current.get("averageValue")})
    elif kind == "Pods":
        out = _drop_none({"metricName": metric.get("name"), "selector": metric.get("selector"),
                          "currentAverageValue": current.get("averageValue")})
    elif kind == "Object":
        out = _drop_none({"target": src.get("describedObject"), "metricName": metric.get("name"),
                          "selector": metric.get("selector"), "currentValue": current.get("value"),
                          "averageValue": current.get("averageValue")})
    elif kind == "External":
        out = _drop_none({"metricName": metric.get("name"), "metricSelector": metric.get("selector"),
                          "currentValue": current.get("value"), "currentAverageValue": current.get("averageValue")})
    else:
        return dict(m)
    return {"type": kind, fld: out}


def status_from_v1(m: Obj) -> Obj:
    kind = m.get("type")
    fld = SOURCE_FIELDS.get(kind or "")
    src = (m.get(fld) or {}) if fld else {}
    if kind in ("Resource", "ContainerResource"):
        out = _drop_none({"name": src.get("name"), "container": src.get("container"), "current": _drop_none({
            "averageUtilization": src.get("currentAverageUtilization"), "averageValue": src.get("currentAverageValue")})})
    elif kind == "Pods":
        out = {"metric": _drop_none({"name": src.get("metricName"), "selector": src.get("selector")}),
               "current": _drop_none({"averageValue": src.get("currentAverageValue")})}
    elif kind == "Object":
        out = _drop_none({"describedObject": src.get("target"),
                          "metric": _drop_none({"name": src.get("metricName"), "selector": src.get("selector")}),
                          "current": _drop_none({"value": src.get("currentValue"), "averageValue": src.get("averageValue")})})
    elif kind == "External":
        out = {"metric": _drop_none({"name": src.get("metricName"), "selector": src.get("metricSelector")}),
               "current": _drop_none({"value": src.get("currentValue"), "averageValue": src.get("currentAverageValue")})}
    else:
        return dict(m)
    return {"type": kind, fld: out}


def v2_to_v1(hpa: Obj) -> Obj:
    """The stored (v2) object as autoscaling/v1 shows it."""
    hpa = copy.deepcopy(hpa)
    meta, spec, status = hpa.get("metadata") or {}, hpa.get("spec") or {}, hpa.get("status") or {}
    annotations = dict(meta.get("annotations") or {})
    metrics = spec.get("metrics") or []
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    others = [m for m in metrics if m is not cpu]
    if others:
        annotations[METRICS_ANNOTATION] = json.dumps([metric_to_v1(m) for m in others], separators=(",", ":"))
    if spec.get("behavior"):
        annotations[BEHAVIOR_ANNOTATION] = json.dumps(spec["behavior"], separators=(",", ":"))
    current = status.get("currentMetrics") or []
    cpu_status = next((m for m in current if m.get("type") == "Resource"
                       and (m.get("resource") or {}).get("name") == "cpu"
                       and ((m.get("resource") or {}).get("current") or {}).get("averageUtilization") is not None), None)
    other_status = [m for m in current if m is not cpu_status]
    if other_status:
        annotations[CURRENT_METRICS_ANNOTATION] = json.dumps([status_to_v1(m) for m in other_status],
                                                              separators=(",", ":"))
    if status.get("conditions"):
        annotations[CONDITIONS_ANNOTATION] = json.dumps(status["conditions"], separators=(",", ":"))
    if annotations:
        meta["annotations"] = annotations
    v1_spec = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    if cpu is not None:
        v1_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"]["averageUtilization"]
    v1_status = {"currentReplicas": int(status.get("currentReplicas") or 0),
                 "desiredReplicas": int(status.get("desiredReplicas") or 0)}
    for key in ("observedGeneration", "lastScaleTime"):
        if status.get(key) is not None:
            v1_status[key] = status[key]
    if cpu_status is not None:
        v1_status["currentCPUUtilizationPercentage"] = cpu_status["resource"]["current"]["averageUtilization"]
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": v1_spec, "status": v1_status}


def _annotation_list(annotations: Obj, key: str) -> Any:
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def v1_to_v2(hpa: Obj) -> Obj:
    """An autoscaling/v1 object in the stored (v2) form."""
    hpa = copy.deepcopy(hpa)
    meta = hpa.get("metadata") if isinstance(hpa.get("metadata"), dict) else {}
    spec = hpa.get("spec") if isinstance(hpa.get("spec"), dict) else {}
    status = hpa.get("status") if isinstance(hpa.get("status"), dict) else {}
    annotations = dict(meta.get("annotations") or {})
    others = _annotation_list(annotations, METRICS_ANNOTATION)
    behavior = _annotation_list(annotations, BEHAVIOR_ANNOTATION)
    other_status = _annotation_list(annotations, CURRENT_METRICS_ANNOTATION)
    conditions = _annotation_list(annotations, CONDITIONS_ANNOTATION)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    metrics = [metric_from_v1(m) for m in others if isinstance(m, dict)] if isinstance(others, list) else []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    v2_spec = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    if metrics:
        v2_spec["metrics"] = metrics
    if isinstance(behavior, dict):
        v2_spec["behavior"] = behavior
    current = [status_from_v1(m) for m in other_status if isinstance(m, dict)] \
        if isinstance(other_status, list) else []
    if status.get("currentCPUUtilizationPercentage") is not None:
        current.append({"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": status["currentCPUUtilizationPercentage"]}}})
    v2_status = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")
                 if k in status}
    if current:
        v2_status["currentMetrics"] = current
    if isinstance(conditions, list):
        v2_status["conditions"] = conditions
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": v2_spec, "status": v2_status}


def validate_v1(hpa: Obj, old: Obj | None) -> list[FieldError]:
    spec = hpa.get("spec") if isinstance(hpa.get("spec"), dict) else {}
    errs: list[FieldError] = []
    cpu = spec.get("targetCPUUtilizationPercentage")
    if cpu is not None and (_int(cpu) is None or cpu < 1):
        errs.append(invalid("spec.targetCPUUtilizationPercentage", cpu, "must be greater than 0"))
    stored = v1_to_v2(hpa)
    if errs:  # reported once, at its v1 path
        stored["spec"].pop("metrics", None)
    return errs + validate(stored, None)


def row_v1(hpa: Obj) -> list:
    return row(_defaulted(v1_to_v2(hpa)))


def _defaulted(hpa: Obj) -> Obj:
    defaults(hpa)
    return hpa


RESOURCE = ResourceType(
    group="autoscaling", version="v2", resource="horizontalpodautoscalers", kind="HorizontalPodAutoscaler",
    short_names=("hpa",), categories=("all",), subresources=("status",), model="V2HorizontalPodAutoscaler",
    defaults=defaults, validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
RESOURCE_V1 = ResourceType(
    group="autoscaling", version="v1", resource="horizontalpodautoscalers", kind="HorizontalPodAutoscaler",
    short_names=("hpa",), categories=("all",), model="V1HorizontalPodAutoscaler", validate=validate_v1,
    columns=COLUMNS, row=row_v1, stored_as=("autoscaling", "v2", "horizontalpodautoscalers"),
    to_storage=v1_to_v2, from_storage=v2_to_v1,
)
RESOURCES = (RESOURCE, RESOURCE_V1)
