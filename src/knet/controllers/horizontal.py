"""The horizontal-pod-autoscaler controller (upstream pkg/controller/podautoscaler/horizontal.go,
reconcileAutoscaler): every sync period each HorizontalPodAutoscaler reads its target's scale
subresource, the target's pods (by the scale's selector) and their PodMetrics
(metrics.k8s.io/v1beta1), proposes a replica count per metric (knet.controllers.replicacalculator),
normalises the highest through stabilisation windows and scaling policies
(knet.controllers.hpabehavior), rescales, and writes status, conditions and events with
upstream's reasons and messages.

knet serves no custom.metrics.k8s.io or external.metrics.k8s.io: Pods, Object and External
metrics are reported as unavailable (FailedGet*Metric), as upstream does without an adapter.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers import replicacalculator as rc
from knet.controllers.base import Controller, InformerFactory, split_key
from knet.controllers.conditions import semantically_equal, set_condition
from knet.controllers.hpabehavior import DOWNSCALE_STABILIZATION, Condition, Recommender
from knet.selectors import SelectorError, matches, parse_label_selector

log = logging.getLogger(__name__)
Obj = dict[str, Any]

SYNC_PERIOD = 15.0  # --horizontal-pod-autoscaler-sync-period
API_VERSION = "autoscaling/v2"
# kinds whose scale subresource knet serves (upstream asks the RESTMapper)
SCALE_RESOURCES = {("apps", "Deployment"): "deployments", ("apps", "ReplicaSet"): "replicasets",
                   ("apps", "StatefulSet"): "statefulsets", ("", "ReplicationController"): "replicationcontrollers"}
CONDITION_ORDER = ("AbleToScale", "ScalingActive", "ScalingLimited")


class MetricError(Exception):
    def __init__(self, message: str, condition: Condition | None = None) -> None:
        super().__init__(message)
        self.condition = condition


def milli_quantity(milli: int) -> str:
    """resource.NewMilliQuantity(v, DecimalSI).String()."""
    if milli == 0:
        return "0"
    exp = -3
    while milli % 1000 == 0 and exp < 18:
        milli //= 1000
        exp += 3
    return f"{milli}{ {-3: 'm', 0: '', 3: 'k', 6: 'M', 9: 'G', 12: 'T', 15: 'P', 18: 'E'}[exp]}"


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HorizontalController(Controller):
    name = "horizontal-pod-autoscaler"

    def __init__(self, api: Api, informers: InformerFactory, *, sync_period: float = SYNC_PERIOD,
                 downscale_stabilization: float = DOWNSCALE_STABILIZATION, tolerance: float = rc.TOLERANCE,
                 cpu_initialization_period: float = rc.CPU_INITIALIZATION_PERIOD,
                 initial_readiness_delay: float = rc.INITIAL_READINESS_DELAY,
                 clock: Callable[[], float] = time.time, recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.clock = clock
        self.sync_period = sync_period
        self.tolerance = tolerance
        self.cpu_initialization_period = cpu_initialization_period
        self.initial_readiness_delay = initial_readiness_delay
        self.recommender = Recommender(clock=clock, downscale_stabilization=downscale_stabilization)
        # each HPA's target selector as last seen (upstream's hpaSelectors), to find pods two HPAs fight over
        self._selectors: dict[str, Any] = {}
        self.recorder = recorder or EventRecorder(api, "horizontal-pod-autoscaler")
        self.hpas = informers.get(API_VERSION, "horizontalpodautoscalers")
        self.pods = informers.get("v1", "pods")
        self.hpas.add_handler(self.enqueue_obj, self._updated, self._deleted)

    def initial_keys(self) -> list[str]:
        return self.hpas.keys()

    def _updated(self, old: Obj, new: Obj) -> None:
        # A spec change is acted on now; status writes (ours) wait for the next period.
        if (old.get("metadata") or {}).get("generation") != (new.get("metadata") or {}).get("generation"):
            self.enqueue_obj(new)

    def _deleted(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        self.recommender.forget(key)
        self._selectors.pop(key, None)

    async def sync_key(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self.recommender.forget(key)
            self._selectors.pop(key, None)
            return
        try:
            await self.reconcile(copy.deepcopy(hpa), key)
        finally:
            self.queue.add_after(key, self.sync_period)

    # -- one reconciliation ---------------------------------------------------------------------
    async def reconcile(self, hpa: Obj, key: str) -> None:
        ns, _ = split_key(key)
        spec = hpa.get("spec") or {}
        original = copy.deepcopy(hpa.get("status") or {})
        status = hpa.setdefault("status", {})
        involved = {**hpa, "apiVersion": API_VERSION, "kind": "HorizontalPodAutoscaler"}
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ns}/{ref.get('name')}"

        def condition(kind: str, state: str, reason: str, message: str) -> None:
            status["conditions"] = set_condition(status.get("conditions"), {
                "type": kind, "status": state, "reason": reason, "message": message}, _rfc3339(self.clock()))

        def warn(reason: str, message: str) -> None:
            self.recorder.record(involved, "Warning", reason, message)

        group = ref.get("apiVersion", "").rpartition("/")[0]
        resource = SCALE_RESOURCES.get((group, ref.get("kind", "")), f"{ref.get('kind', '').lower()}s")
        try:
            scale = await self.api.get(ref.get("apiVersion") or "v1", resource, ref.get("name", ""), namespace=ns,
                                       subresource="scale")
        except ApiError as exc:
            warn("FailedGetScale", exc.message)
            condition("AbleToScale", "False", "FailedGetScale",
                      f"the HPA controller was unable to get the target's current scale: {exc.message}")
            await self._update_status(ns, hpa, original)
            log.info("failed to query scale subresource for %s: %s", reference, exc.message)
            return
        condition("AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        min_replicas = int(spec.get("minReplicas") or 1)
        max_replicas = int(spec.get("maxReplicas") or 0)
        desired, reason, statuses, rescale = 0, "", None, True
        if current == 0 and min_replicas != 0:
            rescale = False
            condition("ScalingActive", "False", "ScalingDisabled",
                      "scaling is disabled since the replica count of the target is zero")
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposal, metric_name, statuses, err = await self._replicas_for_metrics(hpa, scale, involved, condition, warn)
            if err is not None and proposal == -1:
                self._set_status(status, current, int(status.get("desiredReplicas") or 0), statuses, False)
                await self._update_status(ns, hpa, original)
                warn("FailedComputeMetricsReplicas", err)
                return
            if proposal > desired:
                desired = proposal
            if desired > current:
                reason = f"{metric_name} above target"
            if desired < current:
                reason = "All metrics below target"
            behavior = spec.get("behavior")
            if behavior:
                desired, conds = self.recommender.normalize_with_behavior(key, behavior, current, desired,
                                                                          min_replicas, max_replicas)
            else:
                desired, conds = self.recommender.normalize(key, current, desired, min_replicas, max_replicas)
            for c in conds:
                condition(c.type, c.status, c.reason, c.message)
            rescale = desired != current

        if rescale:
            new_scale = {**scale, "spec": {**(scale.get("spec") or {}), "replicas": desired}}
            try:
                await self.api.update(ref.get("apiVersion") or "v1", resource, new_scale, namespace=ns,
                                      subresource="scale")
            except ApiError as exc:
                warn("FailedRescale", f"New size: {desired}; reason: {reason}; error: {exc.message}")
                condition("AbleToScale", "False", "FailedUpdateScale",
                          f"the HPA controller was unable to update the target scale: {exc.message}")
                self._set_status(status, current, int(status.get("desiredReplicas") or 0), statuses, False)
                await self._update_status(ns, hpa, original)
                return
            condition("AbleToScale", "True", "SucceededRescale",
                      f"the HPA controller was able to update the target scale to {desired}")
            self.recorder.record(involved, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            self.recommender.store_scale_event(key, spec.get("behavior"), current, desired)
            log.info("successful rescale of %s, old size: %d, new size: %d, reason: %s", key, current, desired, reason)
        else:
            desired = current
        self._set_status(status, current, desired, statuses, rescale)
        await self._update_status(ns, hpa, original)

    def _set_status(self, status: Obj, current: int, desired: int, metrics: list[Obj] | None, rescale: bool) -> None:
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if metrics:
            status["currentMetrics"] = metrics
        else:
            status.pop("currentMetrics", None)
        if rescale:
            status["lastScaleTime"] = _rfc3339(self.clock())

    async def _update_status(self, ns: str | None, hpa: Obj, original: Obj) -> None:
        status = hpa.get("status") or {}
        status["conditions"] = sorted(status.get("conditions") or [],
                                      key=lambda c: CONDITION_ORDER.index(c["type"]) if c["type"] in CONDITION_ORDER else 9)
        if semantically_equal(status, original):
            return
        try:
            await self.api.update(API_VERSION, "horizontalpodautoscalers", hpa, namespace=ns, subresource="status")
        except ApiError as exc:
            if not (exc.conflict or exc.not_found):
                raise
            log.info("failed to update status for %s: %s", hpa["metadata"].get("name"), exc.message)

    # -- metrics ------------------------------------------------------------------------------
    async def _replicas_for_metrics(self, hpa: Obj, scale: Obj, involved: Obj, condition, warn
                                    ) -> tuple[int, str, list[Obj] | None, str | None]:
        """computeReplicasForMetrics: (replicas or -1, the metric that asked for them, the metric
        statuses, the error)."""
        ns = hpa["metadata"].get("namespace")
        selector_text = (scale.get("status") or {}).get("selector") or ""
        if not selector_text:
            warn("SelectorRequired", "selector is required")
            condition("ScalingActive", "False", "InvalidSelector", "the HPA target's scale is missing a selector")
            return -1, "", None, "selector is required"
        try:
            selector = parse_label_selector(selector_text)
        except SelectorError as exc:
            message = f"couldn't convert selector into a corresponding internal selector object: {exc}"
            warn("InvalidSelector", message)
            condition("ScalingActive", "False", "InvalidSelector", message)
            return -1, "", None, message
        pods = [p for p in self.pods.list() if p["metadata"].get("namespace") == ns
                and matches(selector, p["metadata"].get("labels"))]
        self._selectors[f"{ns}/{hpa['metadata']['name']}"] = selector
        selecting = sorted(k for k, sel in self._selectors.items() if k.split("/", 1)[0] == ns
                           and any(matches(sel, p["metadata"].get("labels")) for p in pods))
        if len(selecting) > 1:
            message = f"pods by selector {selector_text} are controlled by multiple HPAs: [{' '.join(selecting)}]"
            warn("AmbiguousSelector", message)
            condition("ScalingActive", "False", "AmbiguousSelector", message)
            return -1, "", None, message
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        specs = (hpa.get("spec") or {}).get("metrics") or []
        statuses: list[Obj] = [{"type": ""} for _ in specs]
        replicas, metric, invalid, first_error, first_condition = 0, "", 0, None, None
        for i, metric_spec in enumerate(specs):
            try:
                proposal, name, status = await self._replicas_for_metric(metric_spec, spec_replicas, ns, selector_text,
                                                                         pods, warn)
            except MetricError as exc:
                if invalid == 0:
                    first_error, first_condition = str(exc), exc.condition
                invalid += 1
                continue
            statuses[i] = status
            if replicas == 0 or proposal > replicas:
                replicas, metric = proposal, name
        error = f"invalid metrics ({invalid} invalid out of {len(specs)}), first error is: {first_error}" \
            if first_error is not None else None
        if invalid >= len(specs) or (invalid > 0 and replicas < spec_replicas):
            if first_condition is not None:
                condition(first_condition.type, first_condition.status, first_condition.reason, first_condition.message)
            return -1, "", statuses, error
        condition("ScalingActive", "True", "ValidMetricFound",
                  f"the HPA was able to successfully calculate a replica count from {metric}")
        return replicas, metric, statuses, error

    async def _replicas_for_metric(self, spec: Obj, current: int, ns: str, selector: str, pods: list[Obj],
                                   warn) -> tuple[int, str, Obj]:
        kind = spec.get("type")

        def unable(reason: str, message: str) -> Condition:
            warn(reason, message)
            return Condition("ScalingActive", "False", reason, f"the HPA was unable to compute the replica count: {message}")

        if kind in ("Resource", "ContainerResource"):
            field = "resource" if kind == "Resource" else "containerResource"
            src = spec.get(field) or {}
            name, container = src.get("name", ""), src.get("container", "") if kind == "ContainerResource" else ""
            reason = "FailedGetResourceMetric" if kind == "Resource" else "FailedGetContainerResourceMetric"
            try:
                proposal, value, metric_name = await self._resource(src, name, container, current, ns, selector, pods)
            except rc.ReplicaCalculationError as exc:
                cond = unable(reason, str(exc))
                raise MetricError(f"failed to get {name} {'container ' if container else ''}resource metric value: "
                                  f"{exc}", cond) from None
            status = {"type": kind, field: {"name": name, "current": value}}
            if container:
                status[field]["container"] = container
            return proposal, metric_name, status
        if kind in ("Pods", "Object", "External"):
            src = spec.get(kind.lower()) or {}
            metric = (src.get("metric") or {}).get("name", "")
            api = "external metrics API" if kind == "External" else "custom metrics API"
            group = "external.metrics.k8s.io" if kind == "External" else "custom.metrics.k8s.io"
            message = (f"unable to get {'external ' if kind == 'External' else ''}metric {metric}: "
                       f"unable to fetch metrics from {api}: no {api} ({group}) is served by this cluster")
            cond = unable(f"FailedGet{kind}Metric", message)
            raise MetricError(f"failed to get {kind.lower()} metric value: {message}", cond)
        message = f"unknown metric source type {kind!r}"
        raise MetricError(message, unable("InvalidMetricSourceType", message))

    async def _resource(self, src: Obj, name: str, container: str, current: int, ns: str, selector: str,
                        pods: list[Obj]) -> tuple[int, Obj, str]:
        """computeStatusForResourceMetricGeneric."""
        target = src.get("target") or {}
        usage_kind = "usage" if target.get("averageValue") is not None else "utilization"
        try:
            metrics = await self._pod_metrics(name, container, ns, selector)
        except rc.ReplicaCalculationError as exc:
            raise rc.ReplicaCalculationError(f"failed to get {name} {usage_kind}: unable to get metrics for resource "
                                             f"{name}: {exc}") from None
        now = self.clock()
        try:
            if target.get("averageValue") is not None:
                proposal = rc.raw_resource_replicas(current, rc.milli_value(target["averageValue"]), name, pods, metrics,
                                                    now, self.tolerance, self.cpu_initialization_period,
                                                    self.initial_readiness_delay)
                return proposal.replicas, {"averageValue": milli_quantity(proposal.raw_average)}, f"{name} resource"
            if target.get("averageUtilization") is None:
                raise rc.ReplicaCalculationError("invalid resource metric source: neither an average utilization "
                                                 "target nor an average value (usage) target was set")
            proposal = rc.resource_replicas(current, int(target["averageUtilization"]), name, pods, metrics, now,
                                            self.tolerance, container, self.cpu_initialization_period,
                                            self.initial_readiness_delay)
        except rc.ReplicaCalculationError as exc:
            raise rc.ReplicaCalculationError(f"failed to get {name} {usage_kind}: {exc}") from None
        what = "container resource" if container else "resource"
        return (proposal.replicas, {"averageUtilization": proposal.utilization,
                                    "averageValue": milli_quantity(proposal.raw_average)},
                f"{name} {what} utilization (percentage of request)")

    async def _pod_metrics(self, resource: str, container: str, ns: str, selector: str) -> dict[str, rc.PodMetric]:
        """metricsclient.GetResourceMetric."""
        try:
            listed = await self.api.list("metrics.k8s.io/v1beta1", "pods", namespace=ns, label_selector=selector)
        except ApiError as exc:
            raise rc.ReplicaCalculationError(f"unable to fetch metrics from resource metrics API: {exc.message}") from None
        items = listed.get("items") or []
        if not items:
            raise rc.ReplicaCalculationError("no metrics returned from resource metrics API")
        return rc.pod_metrics_info(items, resource, container)
