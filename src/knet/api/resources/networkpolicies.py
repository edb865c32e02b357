"""networking.k8s.io/v1 NetworkPolicy: policyTypes defaulted as the API does."""

from __future__ import annotations

from knet.api.errors import FieldError, not_supported, required
from knet.api.printing import age, selector_text
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Pod-Selector", description="podSelector selects the pods to which this NetworkPolicy object applies."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("podSelector", {})
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types
    for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
        for p in rule.get("ports") or []:
            p.setdefault("protocol", "TCP")


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    if spec.get("podSelector") is None:
        errs.append(required("spec.podSelector"))
    for i, t in enumerate(spec.get("policyTypes") or []):
        if t not in ("Ingress", "Egress"):
            errs.append(not_supported(f"spec.policyTypes[{i}]", t, ["Egress", "Ingress"]))
    return errs


def row(np: dict) -> list:
    meta = np.get("metadata") or {}
    sel = (np.get("spec") or {}).get("podSelector") or {}
    return [meta.get("name", ""), selector_text(sel), age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="networking.k8s.io", version="v1", resource="networkpolicies", kind="NetworkPolicy",
    short_names=("netpol",), model="V1NetworkPolicy", defaults=defaults, validate=validate, columns=COLUMNS,
    row=row, has_generation=True,
)
