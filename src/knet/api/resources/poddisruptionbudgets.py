"""policy/v1 PodDisruptionBudget: how many of an application's pods voluntary disruptions
(evictions, so `kubectl drain`) may take down at once. Validation as upstream's
ValidatePodDisruptionBudget; the disruption controller writes its status, the eviction
subresource (knet.api.subresources.evict) reads and decrements it."""

from __future__ import annotations

import re

from knet.api.errors import FieldError, invalid, not_supported
from knet.api.printing import age
from knet.api.registry import Column, ResourceType
from knet.selectors import SelectorError, matches, selector_requirements

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Min Available", description="The minimum number of pods that must be available simultaneously. "
                                        "This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
    Column("Max Unavailable", description="The maximum number of pods that may be unavailable simultaneously. "
                                          "This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
    Column("Allowed Disruptions", type="integer", description="Number of pod disruptions that are currently allowed."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
_PERCENT = re.compile(r"^[0-9]+%$")
_PERCENT_HELP = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
                 "'93%', regex used for validation is '[0-9]+%')")


def int_or_percent_errors(value: object, path: str) -> list[FieldError]:
    """Upstream ValidateNonnegativeIntOrPercent plus IsNotMoreThan100Percent."""
    if isinstance(value, bool):
        return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]
    if isinstance(value, int):
        return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [invalid(path, value, _PERCENT_HELP)]
        if int(value[:-1]) > 100:
            return [invalid(path, value, "must not be greater than 100%")]
        return []
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def validate(pdb: dict, old: dict | None) -> list[FieldError]:
    spec = pdb.get("spec") or {}
    errs: list[FieldError] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if spec.get(key) is not None:
            errs += int_or_percent_errors(spec[key], f"spec.{key}")
    for i, expr in enumerate((spec.get("selector") or {}).get("matchExpressions") or []):
        if expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errs.append(not_supported(f"spec.selector.matchExpressions[{i}].operator", expr.get("operator"),
                                      ["DoesNotExist", "Exists", "In", "NotIn"]))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        errs.append(not_supported("spec.unhealthyPodEvictionPolicy", policy, list(UNHEALTHY_POD_EVICTION_POLICIES)))
    return errs


def selects(pdb: dict, pod: dict) -> bool:
    """Whether the budget covers POD (its namespace's pods its selector matches; a selector
    that does not parse covers none), for the eviction subresource and the disruption
    controller alike."""
    try:
        reqs = selector_requirements((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return False
    return matches(reqs, (pod.get("metadata") or {}).get("labels"))


def defaults(pdb: dict) -> None:
    status = pdb.setdefault("status", {})
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        status.setdefault(key, 0)


def row(pdb: dict) -> list:
    meta, spec = pdb.get("metadata") or {}, pdb.get("spec") or {}
    shown = {k: "N/A" if spec.get(k) is None else str(spec[k]) for k in ("minAvailable", "maxUnavailable")}
    return [meta.get("name", ""), shown["minAvailable"], shown["maxUnavailable"],
            int((pdb.get("status") or {}).get("disruptionsAllowed") or 0), age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="policy", version="v1", resource="poddisruptionbudgets", kind="PodDisruptionBudget",
    short_names=("pdb",), subresources=("status",), model="V1PodDisruptionBudget", defaults=defaults,
    validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
