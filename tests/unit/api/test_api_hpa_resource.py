"""autoscaling HorizontalPodAutoscaler resource logic: the TARGETS column as kube-apiserver
1.32's formatHPAMetrics prints it, and the autoscaling/v1 <-> v2 conversion round trip."""

from __future__ import annotations

import json

import pytest

from knet.api.resources.horizontalpodautoscalers import (
    defaults,
    format_metrics,
    metric_from_v1,
    metric_to_v1,
    status_from_v1,
    status_to_v1,
    v1_to_v2,
    v2_to_v1,
)

CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
MEM = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
PODS = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}
EXT = {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}
CONTAINER = {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {
    "type": "Utilization", "averageUtilization": 60}}}


def test_targets_column():
    assert format_metrics([], []) == "<none>"
    assert format_metrics([CPU50], []) == "cpu: <unknown>/50%"
    assert format_metrics([CPU50], [{"type": ""}]) == "cpu: <unknown>/50%"
    cur = {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 23, "averageValue": "4m"}}}
    assert format_metrics([CPU50], [cur]) == "cpu: 23%/50%"
    mem = {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "12Mi"}}}
    assert format_metrics([CPU50, MEM], [cur, mem]) == "cpu: 23%/50%, memory: 12Mi/100Mi"
    assert format_metrics([PODS, EXT], []) == "<unknown>/1k, <unknown>/30"
    assert format_metrics([CONTAINER], []) == "cpu: <unknown>/60%"
    assert format_metrics([CPU50, MEM, PODS, EXT], []) == "cpu: <unknown>/50%, memory: <unknown>/100Mi + 2 more..."


def test_v1_round_trip_keeps_what_v1_cannot_say():
    v2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web", "namespace": "ns", "annotations": {"team": "a"}},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "maxReplicas": 4, "metrics": [MEM, CPU50], "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
          "status": {"currentReplicas": 2, "desiredReplicas": 3, "conditions": [
              {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"}],
              "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]}}
    defaults(v2)
    v1 = v2_to_v1(v2)
    assert v1["spec"] == {"scaleTargetRef": v2["spec"]["scaleTargetRef"], "minReplicas": 1, "maxReplicas": 4,
                          "targetCPUUtilizationPercentage": 50}
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 40}
    assert set(v1["metadata"]["annotations"]) == {"team", "autoscaling.alpha.kubernetes.io/metrics",
                                                  "autoscaling.alpha.kubernetes.io/behavior",
                                                  "autoscaling.alpha.kubernetes.io/conditions"}
    # in autoscaling/v1's own MetricSpec shape
    assert json.loads(v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}]
    back = v1_to_v2(v1)
    defaults(back)
    assert back["metadata"]["annotations"] == {"team": "a"}
    assert back["spec"]["metrics"] == [MEM, CPU50]  # the others first, then the CPU target, as upstream
    assert back["spec"]["behavior"] == v2["spec"]["behavior"]
    assert back["status"]["conditions"] == v2["status"]["conditions"]


OBJ = {"type": "Object", "object": {"describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                                       "name": "main"},
                                   "metric": {"name": "rps"}, "target": {"type": "Value", "value": "10k"}}}


@pytest.mark.parametrize("metric", [CPU50, MEM, PODS, EXT, CONTAINER, OBJ], ids=lambda m: m["type"])
def test_metric_specs_survive_v1(metric):
    assert metric_from_v1(metric_to_v1(metric)) == metric


def test_metric_status_in_v1_shape():
    pods = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "12"}}}
    assert status_to_v1(pods) == {"type": "Pods", "pods": {"metricName": "qps", "currentAverageValue": "12"}}
    assert status_from_v1(status_to_v1(pods)) == pods
    assert status_to_v1({"type": ""}) == {"type": ""}
