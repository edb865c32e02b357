"""PodDisruptionBudget arithmetic (upstream pkg/controller/disruption: getExpectedPodCount,
countHealthyPods, updatePdbStatus) and the eviction's decrement (registry/core/pod/storage
eviction.go checkAndDecrement), as tables."""

from __future__ import annotations

import datetime as dt

import pytest

from knet.api.errors import ApiError
from knet.api.subresources import _decremented
from knet.controllers.disruption import budget_status, expected_and_desired, needs_scale

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def pod(name: str, ready: bool = True, deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "ns", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T11:59:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize(("spec", "pods", "scales", "want"), [
    ({"minAvailable": 2}, 3, {}, (3, 2)),  # an integer counts the selected pods
    ({"minAvailable": "50%"}, 3, {"rs": 3}, (3, 2)),  # a percentage of the controller's scale, rounded up
    ({"minAvailable": "100%"}, 2, {"rs": 4}, (4, 4)),
    ({"maxUnavailable": 1}, 3, {"rs": 3}, (3, 2)),
    ({"maxUnavailable": "34%"}, 3, {"rs": 3}, (3, 1)),  # ceil(1.02) = 2 may go
    ({"maxUnavailable": 5}, 3, {"rs": 3}, (3, 0)),
    ({"maxUnavailable": 0}, 2, {"a": 1, "b": 2}, (3, 3)),  # two controllers' scales add up
])
def test_expected_and_desired(spec, pods, scales, want):
    assert expected_and_desired(spec, [pod(f"p{i}") for i in range(pods)], scales) == want


def test_only_an_integer_min_available_does_without_the_controllers_scale():
    assert not needs_scale({"minAvailable": 1})
    assert needs_scale({"minAvailable": "10%"}) and needs_scale({"maxUnavailable": 1}) and needs_scale({})


@pytest.mark.parametrize(("pods", "disrupted", "desired", "healthy", "allowed"), [
    ([pod("a"), pod("b"), pod("c")], {}, 2, 3, 1),
    ([pod("a"), pod("b", ready=False), pod("c")], {}, 2, 2, 0),  # not Ready: not healthy
    ([pod("a"), pod("b", deleting=True), pod("c")], {}, 2, 2, 0),  # being deleted: not healthy
    # evicted and not yet deleted: not counted, until the deletion comes or the record times out
    ([pod("a"), pod("b"), pod("c")], {"b": "2026-12-05T11:59:30Z"}, 1, 2, 1),
    ([pod("a"), pod("b"), pod("c")], {"b": "2026-12-05T11:50:00Z"}, 1, 3, 2),
    ([pod("a"), pod("c")], {"b": "2026-12-05T11:59:30Z"}, 1, 2, 1),
])
def test_budget_status(pods, disrupted, desired, healthy, allowed):
    pdb = {"metadata": {"name": "web", "generation": 3}, "status": {"disruptedPods": disrupted}}
    status = budget_status(pdb, pods, expected=3, desired=desired, now=NOW)
    assert (status["currentHealthy"], status["disruptionsAllowed"], status["observedGeneration"]) == (healthy, allowed, 3)
    assert set(status.get("disruptedPods") or {}) == {n for n, t in disrupted.items()
                                                     if t > "2026-12-05T11:58" and any(p["metadata"]["name"] == n
                                                                                        for p in pods)}
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "DisruptionAllowed", *(("True", "SufficientPods") if allowed else ("False", "InsufficientPods")))


def budget(allowed: int, generation: int = 1, observed: int = 1, disrupted: dict | None = None) -> dict:
    return {"metadata": {"name": "web", "generation": generation},
            "status": {"disruptionsAllowed": allowed, "observedGeneration": observed, "currentHealthy": 2,
                       "desiredHealthy": 2, "disruptedPods": disrupted or {}}}


def test_an_eviction_uses_one_disruption_and_records_the_pod():
    granted = _decremented(budget(2), "web-1")
    assert granted["status"]["disruptionsAllowed"] == 1 and set(granted["status"]["disruptedPods"]) == {"web-1"}


@pytest.mark.parametrize(("pdb", "code", "cause"), [
    (budget(0), 429, "The disruption budget web needs 2 healthy pods and has 2 currently"),
    (budget(1, generation=2, observed=1), 429, "The disruption budget web is still being processed by the server."),
    (budget(-1), 403, None),
    (budget(1, disrupted={f"p{i}": "t" for i in range(2001)}), 403, None),
])
def test_an_eviction_the_budget_refuses(pdb, code, cause):
    with pytest.raises(ApiError) as err:
        _decremented(pdb, "web-1")
    assert err.value.code == code
    if cause is not None:
        assert err.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
        assert err.value.details["causes"] == [{"reason": "DisruptionBudget", "message": cause}]


@pytest.mark.parametrize(("spec", "errors"), [
    ({"minAvailable": 1, "selector": {}}, []),
    ({"maxUnavailable": "25%"}, []),
    ({"minAvailable": 1, "maxUnavailable": 1}, [("Invalid", "spec")]),
    ({"minAvailable": -1}, [("Invalid", "spec.minAvailable")]),
    ({"maxUnavailable": "150%"}, [("Invalid", "spec.maxUnavailable")]),
    ({"maxUnavailable": "half"}, [("Invalid", "spec.maxUnavailable")]),
    ({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Sometimes"}, [("NotSupported", "spec.unhealthyPodEvictionPolicy")]),
    ({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}},
     [("NotSupported", "spec.selector.matchExpressions[0].operator")]),
])
def test_budget_validation(spec, errors):
    """Upstream ValidatePodDisruptionBudgetSpec's cases."""
    from knet.api.resources.poddisruptionbudgets import validate
    assert [(e.type, e.field) for e in validate({"spec": spec}, None)] == errors
