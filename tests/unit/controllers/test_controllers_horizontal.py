"""The horizontal-pod-autoscaler controller's reconciliation on a fake clock, over FakeApi plus
the two things FakeApi does not serve (a Deployment's scale subresource, metrics.k8s.io
PodMetrics): cases after upstream horizontal_test.go (TestScaleUp: 300/500/700m of 1-core
requests at a 30% target -> 5; the downscale stabilisation window; min/max clamps)."""

from __future__ import annotations

import copy

import pytest

from knet.client.events import EventRecorder
from knet.client.fake import FakeApi
from knet.controllers.horizontal import HorizontalController

NOW = 1_800_000_000.0
LONG_AGO = "2020-01-01T00:00:00Z"


class ScaleAndMetricsApi:
    """FakeApi, plus Deployments' `scale` (as api/subresources.scale_of) and PodMetrics lists."""

    def __init__(self, fake: FakeApi) -> None:
        self.fake = fake
        self.pod_metrics: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.fake, name)

    async def get(self, api_version, resource, name, *, namespace=None, subresource=None, **kw):
        obj = await self.fake.get(api_version, resource, name, namespace=namespace)
        if subresource != "scale":
            return obj
        labels = obj["spec"]["selector"]["matchLabels"]
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": obj["spec"]["replicas"]},
                "status": {"replicas": obj["spec"]["replicas"],
                           "selector": ",".join(f"{k}={v}" for k, v in labels.items())}}

    async def update(self, api_version, resource, obj, *, namespace=None, subresource=None, **kw):
        if subresource != "scale":
            return await self.fake.update(api_version, resource, obj, namespace=namespace, subresource=subresource)
        current = await self.fake.get(api_version, resource, obj["metadata"]["name"], namespace=namespace)
        current["spec"]["replicas"] = obj["spec"]["replicas"]
        return await self.fake.update(api_version, resource, current, namespace=namespace)

    async def list(self, api_version, resource, **kw):
        if api_version == "metrics.k8s.io/v1beta1":
            return {"items": copy.deepcopy(self.pod_metrics)}
        return await self.fake.list(api_version, resource, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-{i}", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": "Running", "startTime": LONG_AGO,
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": LONG_AGO}]}}


def pod_metrics(levels: list[int]) -> list[dict]:
    return [{"metadata": {"name": f"web-{i}", "namespace": "ns"}, "timestamp": "2027-01-15T08:00:00Z",
             "window": "15s", "containers": [{"name": "c", "usage": {"cpu": f"{level}m", "memory": "10Mi"}}]}
            for i, level in enumerate(levels)]


HPA = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
       "metadata": {"name": "web", "namespace": "ns", "generation": 1},
       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 6,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": 30}}}]}}


@pytest.fixture
async def world(harness):
    api = ScaleAndMetricsApi(harness.api)
    clock = Clock()
    recorder = EventRecorder(harness.api, "horizontal-pod-autoscaler")
    ctrl = HorizontalController(api, harness.informers, clock=clock, recorder=recorder)
    harness.api.seed("apps/v1", "deployments", {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}})
    for i in range(3):
        harness.api.seed("v1", "pods", pod(i))
    harness.api.seed("autoscaling/v2", "horizontalpodautoscalers", HPA)
    harness.informers.start()
    await harness.informers.wait_synced(5)
    return harness, api, clock, ctrl, recorder


async def reconcile(harness, ctrl) -> dict:
    hpa = (await harness.api.get("autoscaling/v2", "horizontalpodautoscalers", "web", namespace="ns"))
    await ctrl.reconcile(hpa, "ns/web")
    return await harness.api.get("autoscaling/v2", "horizontalpodautoscalers", "web", namespace="ns")


async def replicas(harness) -> int:
    return (await harness.api.get("apps/v1", "deployments", "web", namespace="ns"))["spec"]["replicas"]


def conditions(hpa: dict) -> dict:
    return {c["type"]: (c["status"], c["reason"]) for c in hpa["status"]["conditions"]}


async def events(harness, recorder) -> list[tuple[str, str]]:
    await recorder.flush()
    return [(e["reason"], e["message"]) for e in harness.api.objects("v1", "events")]


async def test_scale_up_then_stabilised_scale_down(world):
    harness, api, clock, ctrl, recorder = world
    api.pod_metrics = pod_metrics([300, 500, 700])
    hpa = await reconcile(harness, ctrl)
    assert await replicas(harness) == 5
    status = hpa["status"]
    assert (status["currentReplicas"], status["desiredReplicas"], status["lastScaleTime"]) == (3, 5, "2027-01-15T08:00:00Z")
    assert status["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 50, "averageValue": "500m"}}}]
    assert conditions(hpa) == {"AbleToScale": ("True", "SucceededRescale"), "ScalingActive": ("True", "ValidMetricFound"),
                               "ScalingLimited": ("False", "DesiredWithinRange")}
    assert ("SuccessfulRescale", "New size: 5; reason: cpu resource utilization (percentage of request) above target") \
        in await events(harness, recorder)

    # idle now: the 5-minute downscale window keeps the recent recommendation of 5
    api.pod_metrics = pod_metrics([10, 10, 10])
    clock.now += 15
    hpa = await reconcile(harness, ctrl)
    assert await replicas(harness) == 5
    assert conditions(hpa)["AbleToScale"] == ("True", "ScaleDownStabilized")
    assert hpa["status"]["desiredReplicas"] == 5
    clock.now += 301
    hpa = await reconcile(harness, ctrl)
    # 1% of the 3 measured pods' requests: ceil(0.033 * 3) = 1
    assert await replicas(harness) == 1
    assert ("SuccessfulRescale", "New size: 1; reason: All metrics below target") in await events(harness, recorder)


async def test_clamped_to_max_replicas(world):
    harness, api, clock, ctrl, recorder = world
    api.pod_metrics = pod_metrics([3000, 3000, 3000])
    hpa = await reconcile(harness, ctrl)
    assert await replicas(harness) == 6
    assert conditions(hpa)["ScalingLimited"] == ("True", "TooManyReplicas")


async def test_within_tolerance_nothing_changes(world):
    harness, api, clock, ctrl, recorder = world
    api.pod_metrics = pod_metrics([310, 300, 290])
    hpa = await reconcile(harness, ctrl)
    assert await replicas(harness) == 3
    assert hpa["status"]["desiredReplicas"] == 3 and "lastScaleTime" not in hpa["status"]
    assert conditions(hpa)["AbleToScale"] == ("True", "ReadyForNewScale")


async def test_no_metrics_is_reported_and_nothing_scales(world):
    harness, api, clock, ctrl, recorder = world
    hpa = await reconcile(harness, ctrl)
    assert await replicas(harness) == 3
    assert conditions(hpa)["ScalingActive"] == ("False", "FailedGetResourceMetric")
    assert hpa["status"]["currentMetrics"] == [{"type": ""}]
    got = await events(harness, recorder)
    assert ("FailedGetResourceMetric", "failed to get cpu utilization: unable to get metrics for resource cpu: no "
                                       "metrics returned from resource metrics API") in got
    assert ("FailedComputeMetricsReplicas", "invalid metrics (1 invalid out of 1), first error is: failed to get cpu "
            "resource metric value: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics "
            "returned from resource metrics API") in got


async def test_missing_request_is_reported(world):
    harness, api, clock, ctrl, recorder = world
    bare = pod(0)
    bare["spec"]["containers"][0]["resources"] = {}
    await harness.api.update("v1", "pods", {**bare, "metadata": {**bare["metadata"], "resourceVersion": None}})
    await harness.until(lambda: not ctrl.pods.get("ns/web-0")["spec"]["containers"][0]["resources"])
    api.pod_metrics = pod_metrics([300, 500, 700])
    hpa = await reconcile(harness, ctrl)
    assert conditions(hpa)["ScalingActive"] == ("False", "FailedGetResourceMetric")
    messages = {c["type"]: c["message"] for c in hpa["status"]["conditions"]}
    assert messages["ScalingActive"] == ("the HPA was unable to compute the replica count: failed to get cpu "
                                         "utilization: missing request for cpu in container c of Pod web-0")


async def test_two_hpas_on_the_same_pods_are_ambiguous(world):
    harness, api, clock, ctrl, recorder = world
    api.pod_metrics = pod_metrics([300, 500, 700])
    harness.api.seed("autoscaling/v2", "horizontalpodautoscalers", {**HPA, "metadata": {**HPA["metadata"], "name": "twin"}})
    await reconcile(harness, ctrl)
    assert await replicas(harness) == 5
    twin = await harness.api.get("autoscaling/v2", "horizontalpodautoscalers", "twin", namespace="ns")
    await ctrl.reconcile(twin, "ns/twin")
    twin = await harness.api.get("autoscaling/v2", "horizontalpodautoscalers", "twin", namespace="ns")
    assert conditions(twin)["ScalingActive"] == ("False", "AmbiguousSelector")
    assert ("AmbiguousSelector", "pods by selector app=web are controlled by multiple HPAs: [ns/twin ns/web]") \
        in await events(harness, recorder)
    assert await replicas(harness) == 5
