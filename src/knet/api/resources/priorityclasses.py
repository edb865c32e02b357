"""scheduling.k8s.io/v1 PriorityClass: a name for a pod priority. The apiserver keeps the two
system classes (system-node-critical, system-cluster-critical); the Priority admission plugin
(knet.api.admission.priority) turns a pod's priorityClassName into its spec.priority."""

from __future__ import annotations

from knet.api.errors import FieldError, forbidden, not_supported
from knet.api.printing import age
from knet.api.registry import Column, ResourceType

SYSTEM_CLASS_PREFIX = "system-"
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
# The system classes (pkg/apis/scheduling: SystemPriorityClasses) as kube-apiserver creates them.
SYSTEM_CLASSES = {
    "system-node-critical": (2_000_001_000, "Used for system critical pods that must not be moved from their "
                                            "current node."),
    "system-cluster-critical": (2_000_000_000, "Used for system critical pods that must run in the cluster, but "
                                               "can be moved to another node if necessary."),
}
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Value", type="integer", description="value represents the integer value of this priority class."),
    Column("Global-Default", type="boolean", description="globalDefault specifies whether this PriorityClass "
                                                         "should be considered as the default priority for pods "
                                                         "that do not have any priority class."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("PreemptionPolicy", description="preemptionPolicy is the Policy for preempting pods with lower priority."),
)


def system_class(name: str) -> dict:
    value, description = SYSTEM_CLASSES[name]
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority"}


def defaults(pc: dict) -> None:
    pc.setdefault("preemptionPolicy", "PreemptLowerPriority")


def validate(pc: dict, old: dict | None) -> list[FieldError]:
    """Upstream ValidatePriorityClass and ValidatePriorityClassUpdate."""
    name = (pc.get("metadata") or {}).get("name", "")
    errs: list[FieldError] = []
    value = pc.get("value")
    if name.startswith(SYSTEM_CLASS_PREFIX):
        known = SYSTEM_CLASSES.get(name)
        if known is None:
            errs.append(forbidden("metadata.name", "priority class names with 'system-' prefix are reserved for "
                                                   "system use only"))
        elif value != known[0]:
            errs.append(forbidden("value", f"value of {name} PriorityClass must be {known[0]}"))
    elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
        errs.append(forbidden("value", f"maximum allowed value of a user defined priority is "
                                       f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
    policy = pc.get("preemptionPolicy")
    if policy is not None and policy not in PREEMPTION_POLICIES:
        errs.append(not_supported("preemptionPolicy", policy, list(PREEMPTION_POLICIES)))
    if old is not None:
        if pc.get("value") != old.get("value"):
            errs.append(forbidden("value", "may not be changed in an update."))
        if pc.get("preemptionPolicy") != old.get("preemptionPolicy"):
            errs.append(forbidden("preemptionPolicy", "may not be changed in an update."))
    return errs


def row(pc: dict) -> list:
    meta = pc.get("metadata") or {}
    return [meta.get("name", ""), pc.get("value", 0), bool(pc.get("globalDefault")),
            age(meta.get("creationTimestamp")), pc.get("preemptionPolicy") or ""]


RESOURCE = ResourceType(
    group="scheduling.k8s.io", version="v1", resource="priorityclasses", kind="PriorityClass", namespaced=False,
    short_names=("pc",), model="V1PriorityClass", defaults=defaults, validate=validate, columns=COLUMNS, row=row,
)
