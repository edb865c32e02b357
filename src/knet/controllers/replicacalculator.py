"""The HorizontalPodAutoscaler's replica arithmetic for resource metrics, after upstream
pkg/controller/podautoscaler/replica_calculator.go (GetResourceReplicas, GetRawResourceReplicas,
groupPods, calculatePodRequests) and metrics/utilization.go. Pure: pods are API dicts, metrics
are per-pod usage in milli-units (millicores, millibytes) as upstream's PodMetricsInfo, and the
current time is passed in.

The controller (knet.controllers.horizontal) reads the pods and the PodMetrics and calls these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from knet.api.metrics import parse_time
from knet.scheduler.quantity import parse_quantity

Obj = dict[str, Any]

TOLERANCE = 0.1                      # --horizontal-pod-autoscaler-tolerance
CPU_INITIALIZATION_PERIOD = 300.0    # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY = 30.0       # --horizontal-pod-autoscaler-initial-readiness-delay


class ReplicaCalculationError(ValueError):
    """No replica count can be computed (the message is upstream's)."""


@dataclass(frozen=True)
class PodMetric:
    value: int            # milli-units
    timestamp: float = 0.0
    window: float = 0.0


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None   # percent of requests (None for an averageValue target)
    raw_average: int          # average usage per pod, milli-units


def milli_value(quantity: Any) -> int:
    """resource.Quantity.MilliValue(): rounded up, as Go's."""
    return math.ceil(parse_quantity(quantity) * 1000)


def pod_metrics_info(items: list[Obj], resource: str, container: str = "") -> dict[str, PodMetric]:
    """metricsclient.getPodMetrics: a pod's usage is the sum of its containers'; a pod whose
    metrics miss the resource for some container (or have no containers) is left out."""
    out: dict[str, PodMetric] = {}
    for m in items:
        containers = m.get("containers") or []
        total, missing = 0, not containers
        for c in containers:
            if container and c.get("name") != container:
                continue
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                missing = True
                break
            total += milli_value(usage)
        if missing:
            continue
        window = _seconds(m.get("window"))
        ts = parse_time(m["timestamp"]) if m.get("timestamp") else 0.0
        out[m["metadata"]["name"]] = PodMetric(total, ts, window)
    return out


def _seconds(duration: Any) -> float:
    """A Go duration ("15s", "1m0.5s", "150ms") as seconds."""
    if not duration:
        return 0.0
    text, total, num = str(duration), 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = text[i:i + 2] if text[i:i + 2] in units else ch
        total += float(num or 0) * units.get(unit, 0.0)
        num, i = "", i + len(unit)
    return total


def _condition(pod: Obj, kind: str) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def group_pods(pods: list[Obj], metrics: dict[str, PodMetric], resource: str, now: float,
               cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
               initial_readiness_delay: float = INITIAL_READINESS_DELAY,
               ) -> tuple[int, set[str], set[str], set[str]]:
    """(readyPodCount, unreadyPods, missingPods, ignoredPods) as upstream groupPods."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") == "Failed":
            ignored.add(name)
            continue
        if status.get("phase") == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = _condition(pod, "Ready")
            start = status.get("startTime")
            if cond is None or not start:
                is_unready = True
            else:
                started = parse_time(start)
                transition = parse_time(cond["lastTransitionTime"]) if cond.get("lastTransitionTime") else 0.0
                if started + cpu_initialization_period > now:
                    # still initialising: count it only once ready for a whole metric window
                    is_unready = cond.get("status") == "False" or metric.timestamp < transition + metric.window
                else:
                    # unready and never been ready
                    is_unready = cond.get("status") == "False" and started + initial_readiness_delay > transition
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def pod_requests(pods: list[Obj], resource: str, container: str = "") -> dict[str, int]:
    """calculatePodRequests: each pod's summed requests (milli-units) over its containers and
    restartable init containers; a container without one is an error."""
    out: dict[str, int] = {}
    for pod in pods:
        spec = pod.get("spec") or {}
        containers = list(spec.get("containers") or [])
        containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        total = 0
        for c in containers:
            if container and c.get("name") != container:
                continue
            request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if request is None:
                raise ReplicaCalculationError(
                    f"missing request for {resource} in container {c.get('name')} of Pod {pod['metadata']['name']}")
            total += milli_value(request)
        out[pod["metadata"]["name"]] = total
    return out


def utilization_ratio(metrics: dict[str, PodMetric], requests: dict[str, int],
                      target_utilization: int) -> tuple[float, int, int]:
    """GetResourceUtilizationRatio: (usage ratio, utilisation percent, average raw usage)."""
    metrics_total = requests_total = entries = 0
    for name, metric in metrics.items():
        if name not in requests:
            continue  # extraneous metrics
        metrics_total += metric.value
        requests_total += requests[name]
        entries += 1
    if requests_total == 0:
        raise ReplicaCalculationError("no metrics returned matched known pods")
    utilization = (metrics_total * 100) // requests_total
    return utilization / target_utilization, utilization, metrics_total // entries


def usage_ratio(metrics: dict[str, PodMetric], target_usage: int) -> tuple[float, int]:
    """GetMetricUsageRatio: (usage ratio, average usage)."""
    average = sum(m.value for m in metrics.values()) // len(metrics)
    return average / target_usage, average


def _ceil(x: float) -> int:
    return int(math.ceil(x))


def resource_replicas(current_replicas: int, target_utilization: int, resource: str, pods: list[Obj],
                      metrics: dict[str, PodMetric], now: float, tolerance: float = TOLERANCE,
                      container: str = "", cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
                      initial_readiness_delay: float = INITIAL_READINESS_DELAY) -> Proposal:
    """GetResourceReplicas (after the metrics were fetched): replicas for a utilisation target."""
    if not pods:
        raise ReplicaCalculationError("no pods returned by selector while calculating replica count")
    metrics = dict(metrics)
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, now, cpu_initialization_period,
                                                  initial_readiness_delay)
    for name in ignored | unready:
        metrics.pop(name, None)
    if not metrics:
        raise ReplicaCalculationError("did not receive metrics for targeted pods (pods might be unready)")
    requests = pod_requests(pods, resource, container)
    ratio, utilization, raw = utilization_ratio(metrics, requests, target_utilization)

    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current_replicas, utilization, raw)
        return Proposal(_ceil(ratio * ready), utilization, raw)

    if missing:
        if ratio < 1.0:
            # scaling down: a pod without metrics counts as using its whole request (or the target)
            fallback = max(100, target_utilization)
            for name in missing:
                metrics[name] = PodMetric(requests[name] * fallback // 100)
        elif ratio > 1.0:
            for name in missing:  # scaling up: as using nothing
                metrics[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = PodMetric(0)

    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        # too small a change, or the assumed pods would turn the direction around
        return Proposal(current_replicas, utilization, raw)
    new_replicas = _ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return Proposal(current_replicas, utilization, raw)
    return Proposal(new_replicas, utilization, raw)


def raw_resource_replicas(current_replicas: int, target_usage: int, resource: str, pods: list[Obj],
                          metrics: dict[str, PodMetric], now: float, tolerance: float = TOLERANCE,
                          cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
                          initial_readiness_delay: float = INITIAL_READINESS_DELAY) -> Proposal:
    """GetRawResourceReplicas / calcPlainMetricReplicas: replicas for an averageValue target
    (TARGET_USAGE in milli-units per pod)."""
    if not pods:
        raise ReplicaCalculationError("no pods returned by selector while calculating replica count")
    metrics = dict(metrics)
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, now, cpu_initialization_period,
                                                  initial_readiness_delay)
    for name in ignored | unready:
        metrics.pop(name, None)
    if not metrics:
        raise ReplicaCalculationError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = usage_ratio(metrics, target_usage)

    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current_replicas, None, usage)
        return Proposal(_ceil(ratio * ready), None, usage)

    if missing:
        for name in missing:  # scaling down: exactly the target; up: nothing
            metrics[name] = PodMetric(target_usage if ratio < 1.0 else 0)
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = PodMetric(0)

    new_ratio, _ = usage_ratio(metrics, target_usage)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Proposal(current_replicas, None, usage)
    new_replicas = _ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return Proposal(current_replicas, None, usage)
    return Proposal(new_replicas, None, usage)
