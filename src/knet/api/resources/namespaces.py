"""core/v1 Namespace (cluster-scoped): phase Active/Terminating, the `kubernetes` finalizer."""

from __future__ import annotations

from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Status", description="The status of the namespace"),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def defaults(obj: dict) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    # The NamespaceDefaultLabelName feature: every namespace carries its own name as a label.
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")


def row(ns: dict) -> list:
    meta = ns.get("metadata") or {}
    return [meta.get("name", ""), (ns.get("status") or {}).get("phase", ""), age(meta.get("creationTimestamp"))]


def begin_deletion(ns: dict) -> None:
    """A deleted Namespace is Terminating until the namespace controller has emptied it."""
    ns.setdefault("status", {})["phase"] = "Terminating"


def deletion_held(ns: dict) -> bool:
    """It stays while spec.finalizers (kubernetes) lists what still has to be removed."""
    return bool((ns.get("spec") or {}).get("finalizers"))


RESOURCE = ResourceType(
    group="", version="v1", resource="namespaces", kind="Namespace", namespaced=False, short_names=("ns",),
    subresources=("status", "finalize"), model="V1Namespace", name_rule="label", defaults=defaults,
    columns=COLUMNS, row=row, field_labels=("status.phase",), begin_deletion=begin_deletion,
    deletion_held=deletion_held,
)
