"""The HorizontalPodAutoscaler's arithmetic: upstream pkg/controller/podautoscaler
replica_calculator_test.go (resource-utilisation cases, two containers per pod as upstream's
numContainersPerPod) and horizontal_test.go (TestNormalizeDesiredReplicasWithBehavior,
TestConvertDesiredReplicasWithRules, TestCalculateScale{Up,Down}Limit*), on a fake clock."""

from __future__ import annotations

import pytest

from knet.controllers import replicacalculator as rc
from knet.controllers.horizontal import milli_quantity
from knet.controllers.hpabehavior import (
    Recommendation,
    Recommender,
    ScaleEvent,
    convert_with_rules,
    scale_down_limit,
    scale_up_limit,
)

NOW = 1_800_000_000.0
CONTAINERS_PER_POD = 2
LONG_AGO = "2020-01-01T00:00:00Z"


def make_pods(requests: list[str], readiness: list[str] | None = None, phases: list[str] | None = None,
              with_requests: bool = True) -> list[dict]:
    pods = []
    for i, req in enumerate(requests):
        ready = readiness[i] if readiness and i < len(readiness) else "True"
        phase = phases[i] if phases and i < len(phases) else "Running"
        resources = {"requests": {"cpu": req}} if with_requests else {}
        pods.append({
            "metadata": {"name": f"test-pod-{i}", "namespace": "default", "labels": {"name": "test-pod"}},
            "spec": {"containers": [{"name": f"container{c}", "resources": resources}
                                    for c in range(CONTAINERS_PER_POD)]},
            "status": {"phase": phase, "startTime": LONG_AGO, "conditions": [
                {"type": "Ready", "status": ready, "lastTransitionTime": LONG_AGO}]},
        })
    return pods


def make_metrics(levels: list[int]) -> dict[str, rc.PodMetric]:
    """As upstream's fake metrics client: pod i uses levels[i] millicores in each container."""
    items = [{"metadata": {"name": f"test-pod-{i}", "namespace": "default"}, "timestamp": "2027-01-15T08:00:00Z",
              "window": "30s", "containers": [{"name": f"container{c}", "usage": {"cpu": f"{level}m"}}
                                              for c in range(CONTAINERS_PER_POD)]}
             for i, level in enumerate(levels)]
    return rc.pod_metrics_info(items, "cpu")


# (name, currentReplicas, requests, levels, target, readiness, phases, expected replicas, utilization, value/container)
UTILIZATION_CASES = [
    ("ScaleUp", 3, ["1.0"] * 3, [300, 500, 700], 30, None, None, 5, 50, 500),
    ("ScaleUpUnreadyLessScale", 3, ["1.0"] * 3, [300, 500, 700], 30, ["False", "True", "True"], None, 4, 60, 600),
    ("ScaleUpUnreadyNoScale", 3, ["1.0"] * 3, [400, 500, 700], 30, ["True", "False", "False"], None, 3, 40, 400),
    ("ScaleUpIgnoresFailedPods", 2, ["1.0"] * 4, [500, 700, 3000, 3000], 30, ["True", "True", "False", "False"],
     ["Running", "Running", "Failed", "Failed"], 4, 60, 600),
    ("ScaleDown", 5, ["1.0"] * 5, [100, 300, 500, 250, 250], 50, None, None, 3, 28, 280),
    ("ScaleDownIgnoresUnreadyPods", 5, ["1.0"] * 5, [100, 300, 500, 250, 250], 50,
     ["True", "True", "True", "False", "False"], None, 2, 30, 300),
    ("Tolerance", 3, ["0.9", "1.0", "1.1"], [1010, 1030, 1020], 100, None, None, 3, 102, 1020),
    ("MissingMetricsNoChangeGt", 2, ["1.0"] * 2, [1900], 100, None, None, 2, 190, 1900),
    ("MissingMetricsNoChangeLt", 2, ["1.0"] * 2, [600], 100, None, None, 2, 60, 600),
    ("MissingMetricsUnreadyChange", 3, ["1.0"] * 3, [100, 450], 50, ["False", "True", "True"], None, 3, 45, 450),
    ("MissingMetricsUnreadyScaleDown", 4, ["1.0"] * 4, [100, 100, 100], 50, ["False", "True", "True", "True"], None,
     3, 10, 100),
    ("MissingMetricsScaleUp", 3, ["1.0"] * 3, [1500, 1500], 50, None, None, 6, 150, 1500),
]


@pytest.mark.parametrize(("current", "requests", "levels", "target", "readiness", "phases", "want", "util", "value"),
                         [c[1:] for c in UTILIZATION_CASES], ids=[c[0] for c in UTILIZATION_CASES])
def test_resource_replicas(current, requests, levels, target, readiness, phases, want, util, value):
    proposal = rc.resource_replicas(current, target, "cpu", make_pods(requests, readiness, phases),
                                    make_metrics(levels), NOW)
    assert (proposal.replicas, proposal.utilization, proposal.raw_average) == (want, util, CONTAINERS_PER_POD * value)


def test_a_container_without_a_request_is_an_error():
    with pytest.raises(rc.ReplicaCalculationError, match="missing request for cpu in container container0 of Pod "
                                                         "test-pod-0"):
        rc.resource_replicas(1, 50, "cpu", make_pods(["1"], with_requests=False), make_metrics([100]), NOW)


def test_no_pods_and_no_ready_metrics_are_errors():
    with pytest.raises(rc.ReplicaCalculationError, match="no pods returned by selector"):
        rc.resource_replicas(1, 50, "cpu", [], make_metrics([100]), NOW)
    with pytest.raises(rc.ReplicaCalculationError, match=r"did not receive metrics for targeted pods \(pods might be unready\)"):
        rc.resource_replicas(2, 50, "cpu", make_pods(["1", "1"], phases=["Pending", "Pending"]), make_metrics([100, 100]), NOW)


def test_a_pod_starting_up_counts_only_after_a_whole_window_of_readiness():
    # within the CPU initialisation period, a pod whose metric predates readiness + window is unready
    pods = make_pods(["1.0", "1.0"])
    pods[1]["status"]["startTime"] = "2027-01-15T07:59:00Z"
    pods[1]["status"]["conditions"][0]["lastTransitionTime"] = "2027-01-15T07:59:50Z"
    now = rc.parse_time("2027-01-15T08:00:05Z")
    # pod 0 at 50%, pod 1 (hot, unready) at 100%: scaling up treats the unready one as idle
    proposal = rc.resource_replicas(2, 40, "cpu", pods, make_metrics([500, 1000]), now)
    assert (proposal.replicas, proposal.utilization) == (2, 50)  # 0.5+0 over 2 = 25% of 40%: direction flips
    proposal = rc.resource_replicas(2, 40, "cpu", pods, make_metrics([500, 1000]), now + 600)
    assert (proposal.replicas, proposal.utilization) == (4, 75)


def test_raw_average_value_target():
    proposal = rc.raw_resource_replicas(3, 500, "cpu", make_pods(["1"] * 3), make_metrics([300, 500, 700]), NOW)
    assert (proposal.replicas, proposal.raw_average) == (6, 1000)


@pytest.mark.parametrize(("milli", "text"), [(0, "0"), (500, "500m"), (1500, "1500m"), (2000, "2"),
                                             (12_000_000_000, "12M"), (10_485_760_000, "10485760")])
def test_milli_quantity_is_canonical(milli, text):
    assert milli_quantity(milli) == text


# -- horizontal_test.go ------------------------------------------------------------------------
def _recs(pairs: list[tuple[int, float]]) -> list[Recommendation]:
    return [Recommendation(r, NOW + offset) for r, offset in pairs]


M = 60.0
STABILIZE_CASES = [
    ("empty recommendations for scaling down", [], 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", [(4, -2 * M), (5, -1 * M)], 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", [(4, -2 * M), (5, -1 * M)], 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", [(1, -2 * M), (2, -1 * M)], 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", [(4, -2 * M), (5, -1 * M)], 1, 3, 3, [4, 5, 3], 0, 300),
    ("no scale down stabilization, reuse recommendation element", [(10, -10 * M), (9, -9 * M)], 100, 3, 3, [10, 3],
     0, 0),
    ("no scale up stabilization, reuse recommendation element", [(10, -10 * M), (9, -9 * M)], 1, 100, 100, [10, 100],
     0, 0),
    ("scale down stabilization, reuse one of obsolete recommendation element",
     [(10, -10 * M), (4, -1 * M), (5, -2 * M), (9, -9 * M)], 100, 3, 5, [10, 4, 5, 3], 0, 180),
    ("scale up stabilization, reuse one of obsolete recommendation element",
     [(10, -100 * M), (6, -1 * M), (5, -2 * M), (9, -3 * M)], 1, 100, 5, [100, 6, 5, 9], 300, 0),
]


@pytest.mark.parametrize(("recs", "current", "desired", "want", "stored", "up", "down"),
                         [c[1:] for c in STABILIZE_CASES], ids=[c[0] for c in STABILIZE_CASES])
def test_stabilize_recommendation_with_behaviors(recs, current, desired, want, stored, up, down):
    r = Recommender(clock=lambda: NOW)
    r.recommendations["k"] = _recs(recs)
    got, _, _ = r._stabilize_with_behavior("k", {"stabilizationWindowSeconds": up},
                                          {"stabilizationWindowSeconds": down}, current, desired)
    assert got == want
    assert [x.replicas for x in r.recommendations["k"]] == stored


@pytest.mark.parametrize(("current", "desired", "lo", "hi", "want", "reason"), [
    (5, 7, 3, 8, 7, "DesiredWithinRange"),
    (3, 1, 2, 8, 2, "TooFewReplicas"),
    (1, 8, 1, 10, 4, "ScaleUpLimit"),
    (20, 1000, 1, 10, 10, "TooManyReplicas"),
])
def test_convert_desired_replicas_with_rules(current, desired, lo, hi, want, reason):
    assert convert_with_rules(current, desired, lo, hi)[:2] == (want, reason)


def test_scale_limits_with_min_policy():
    rules = {"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "policies": [
        {"type": "Pods", "value": 2, "periodSeconds": 60}, {"type": "Percent", "value": 50, "periodSeconds": 60}]}
    assert scale_up_limit(1, [], [], rules, NOW) == 2
    assert scale_down_limit(5, [], [], rules, NOW) == 3
    assert scale_up_limit(5, [], [], {**rules, "selectPolicy": "Disabled"}, NOW) == 5


def test_scale_events_in_the_period_count_against_the_limit():
    # 4 pods were added 10s ago under a "+4 pods per 60s" policy: no room to add more now
    rules = {"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]}
    assert scale_up_limit(5, [ScaleEvent(4, NOW - 10)], [], rules, NOW) == 5
    assert scale_up_limit(5, [ScaleEvent(4, NOW - 70)], [], rules, NOW) == 9


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_default_behavior_scales_down_only_after_the_stabilization_window():
    """A busy spell then idleness: up at once, down only once the window has passed."""
    from knet.api.resources.horizontalpodautoscalers import defaults
    hpa = {"spec": {"maxReplicas": 10, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}
    defaults(hpa)
    behavior = hpa["spec"]["behavior"]
    clock = FakeClock()
    r = Recommender(clock=clock)
    got, conds = r.normalize_with_behavior("k", behavior, 1, 12, 1, 10)
    assert got == 5 and ("ScalingLimited", "True", "ScaleUpLimit") == (conds[1].type, conds[1].status, conds[1].reason)
    r.store_scale_event("k", behavior, 1, 5)
    clock.now += 15
    got, conds = r.normalize_with_behavior("k", behavior, 5, 1, 1, 10)
    assert got == 5 and conds[0].reason == "ScaleDownStabilized"  # the recent 12 holds it up
    clock.now += 61
    got, conds = r.normalize_with_behavior("k", behavior, 5, 1, 1, 10)
    assert got == 1 and conds[0].reason == "ReadyForNewScale"
