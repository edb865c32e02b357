"""How far and how fast a HorizontalPodAutoscaler may move its target: stabilisation windows,
scaling policies and the min/max clamp, after upstream pkg/controller/podautoscaler/horizontal.go
(normalizeDesiredReplicas, normalizeDesiredReplicasWithBehaviors, stabilizeRecommendation[WithBehaviors],
convertDesiredReplicasWithRules, convertDesiredReplicasWithBehaviorRate,
calculateScale{Up,Down}Limit*, storeScaleEvent). The remembered recommendations and scale
events live in a `Recommender` per controller; the clock is injected, so tables run on a fake one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DOWNSCALE_STABILIZATION = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
INT32_MAX, INT32_MIN = 2**31 - 1, -(2**31)


@dataclass
class Recommendation:
    replicas: int
    at: float


@dataclass
class ScaleEvent:
    change: int
    at: float
    outdated: bool = False


@dataclass(frozen=True)
class Condition:
    """A condition the normalisation sets on the HPA: (type, status, reason, message)."""
    type: str
    status: str
    reason: str
    message: str


@dataclass
class Recommender:
    clock: Callable[[], float] = time.time
    downscale_stabilization: float = DOWNSCALE_STABILIZATION
    recommendations: dict[str, list[Recommendation]] = field(default_factory=dict)
    scale_up_events: dict[str, list[ScaleEvent]] = field(default_factory=dict)
    scale_down_events: dict[str, list[ScaleEvent]] = field(default_factory=dict)

    def forget(self, key: str) -> None:
        for d in (self.recommendations, self.scale_up_events, self.scale_down_events):
            d.pop(key, None)

    # -- without spec.behavior ----------------------------------------------------------
    def normalize(self, key: str, current: int, desired: int, min_replicas: int,
                  max_replicas: int) -> tuple[int, list[Condition]]:
        """normalizeDesiredReplicas: the highest recommendation of the downscale window, then
        the min/max clamp and the old scale-up limit (twice the current, at least 4)."""
        stabilized = self._stabilize(key, desired)
        conds = [Condition("AbleToScale", "True", "ScaleDownStabilized",
                           "recent recommendations were higher than current one, applying the highest recent "
                           "recommendation") if stabilized != desired else
                 Condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size")]
        final, reason, message = convert_with_rules(current, stabilized, min_replicas, max_replicas)
        conds.append(Condition("ScalingLimited", "False" if final == stabilized else "True", reason, message))
        return final, conds

    def _stabilize(self, key: str, desired: int) -> int:
        now = self.clock()
        highest, old = desired, None
        cutoff = now - self.downscale_stabilization
        recs = self.recommendations.setdefault(key, [])
        for i, rec in enumerate(recs):
            if rec.at < cutoff:
                old = i
            elif rec.replicas > highest:
                highest = rec.replicas
        if old is not None:
            recs[old] = Recommendation(desired, now)
        else:
            recs.append(Recommendation(desired, now))
        return highest

    # -- with spec.behavior (defaulted by the apiserver) ---------------------------------
    def normalize_with_behavior(self, key: str, behavior: Obj, current: int, desired: int, min_replicas: int,
                                max_replicas: int) -> tuple[int, list[Condition]]:
        up = behavior.get("scaleUp") or {}
        down = dict(behavior.get("scaleDown") or {})
        if down.get("stabilizationWindowSeconds") is None:  # maybeInitScaleDownStabilizationWindow
            down["stabilizationWindowSeconds"] = int(self.downscale_stabilization)
        stabilized, reason, message = self._stabilize_with_behavior(key, up, down, current, desired)
        conds = [Condition("AbleToScale", "True", reason, message) if stabilized != desired else
                 Condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size")]
        final, reason, message = self._rate_limited(key, up, down, current, stabilized, min_replicas, max_replicas)
        conds.append(Condition("ScalingLimited", "False" if final == stabilized else "True", reason, message))
        return final, conds

    def _stabilize_with_behavior(self, key: str, up: Obj, down: Obj, current: int,
                                 desired: int) -> tuple[int, str, str]:
        now = self.clock()
        up_rec = down_rec = desired
        up_cutoff = now - int(up.get("stabilizationWindowSeconds") or 0)
        down_cutoff = now - int(down.get("stabilizationWindowSeconds") or 0)
        old = None
        recs = self.recommendations.setdefault(key, [])
        for i, rec in enumerate(recs):
            if rec.at > up_cutoff:
                up_rec = min(rec.replicas, up_rec)
            if rec.at > down_cutoff:
                down_rec = max(rec.replicas, down_rec)
            if rec.at < up_cutoff and rec.at < down_cutoff:
                old = i
        recommendation = max(current, up_rec)
        recommendation = min(recommendation, down_rec)
        if old is not None:
            recs[old] = Recommendation(desired, now)
        else:
            recs.append(Recommendation(desired, now))
        if desired >= current:
            return (recommendation, "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation")
        return (recommendation, "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation")

    def _rate_limited(self, key: str, up: Obj, down: Obj, current: int, desired: int, min_replicas: int,
                      max_replicas: int) -> tuple[int, str, str]:
        """convertDesiredReplicasWithBehaviorRate."""
        now = self.clock()
        ups, downs = self.scale_up_events.get(key, []), self.scale_down_events.get(key, [])
        if desired > current:
            limit = max(scale_up_limit(current, ups, downs, up, now), current)
            if max_replicas > limit:
                allowed, reason, message = limit, "ScaleUpLimit", \
                    "the desired replica count is increasing faster than the maximum scale rate"
            else:
                allowed, reason, message = max_replicas, "TooManyReplicas", \
                    "the desired replica count is more than the maximum replica count"
            if desired > allowed:
                return allowed, reason, message
        elif desired < current:
            limit = min(scale_down_limit(current, ups, downs, down, now), current)
            if min_replicas < limit:
                allowed, reason, message = limit, "ScaleDownLimit", \
                    "the desired replica count is decreasing faster than the maximum scale rate"
            else:
                allowed, reason, message = min_replicas, "TooFewReplicas", \
                    "the desired replica count is less than the minimum replica count"
            if desired < allowed:
                return allowed, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def store_scale_event(self, key: str, behavior: Obj | None, previous: int, new: int) -> None:
        """storeScaleEvent: remember a rescale (only with spec.behavior), reusing an outdated slot."""
        if not behavior:
            return
        now = self.clock()
        if new > previous:
            events, rules, change = self.scale_up_events.setdefault(key, []), behavior.get("scaleUp"), new - previous
        else:
            events, rules, change = self.scale_down_events.setdefault(key, []), behavior.get("scaleDown"), previous - new
        cutoff = now - longest_policy_period(rules)
        for ev in events:
            if ev.at < cutoff:
                ev.outdated = True
        for i, ev in enumerate(events):
            if ev.outdated:
                events[i] = ScaleEvent(change, now)
                return
        events.append(ScaleEvent(change, now))


def longest_policy_period(rules: Obj | None) -> int:
    return max((int(p.get("periodSeconds") or 0) for p in (rules or {}).get("policies") or []), default=0)


def _change_in_period(period: int, events: list[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(ev.change for ev in events if ev.at > cutoff)


def scale_up_limit(current: int, ups: list[ScaleEvent], downs: list[ScaleEvent], rules: Obj, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick, result = (min, INT32_MAX) if select == "Min" else (max, INT32_MIN)
    for policy in rules.get("policies") or []:
        period = int(policy.get("periodSeconds") or 0)
        start = current - _change_in_period(period, ups, now) + _change_in_period(period, downs, now)
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start + value
        else:  # Percent, rounded up so that a small target still grows
            proposed = math.ceil(start * (1 + value / 100))
        result = pick(result, proposed)
    return result


def scale_down_limit(current: int, ups: list[ScaleEvent], downs: list[ScaleEvent], rules: Obj, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick, result = (max, INT32_MIN) if select == "Min" else (min, INT32_MAX)
    for policy in rules.get("policies") or []:
        period = int(policy.get("periodSeconds") or 0)
        start = current - _change_in_period(period, ups, now) + _change_in_period(period, downs, now)
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start - value
        else:
            proposed = int(start * (1 - value / 100))
        result = pick(result, proposed)
    return result


def scale_up_limit_without_behavior(current: int) -> int:
    """calculateScaleUpLimit."""
    return int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))


def convert_with_rules(current: int, desired: int, min_replicas: int, max_replicas: int) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules."""
    limit = scale_up_limit_without_behavior(current)
    if max_replicas > limit:
        maximum, reason, message = limit, "ScaleUpLimit", \
            "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum, reason, message = max_replicas, "TooManyReplicas", \
            "the desired replica count is more than the maximum replica count"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > maximum:
        return maximum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
