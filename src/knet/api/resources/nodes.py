"""core/v1 Node (cluster-scoped): columns as printNode (status, roles, node info)."""

from __future__ import annotations

from knet.api.errors import FieldError, invalid
from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Version", description="Kubelet Version reported by the node."),
    Column("Internal-IP", priority=1, description="List of addresses reachable to the node. Queried from cloud provider, if available."),
    Column("External-IP", priority=1, description="List of addresses reachable to the node. Queried from cloud provider, if available."),
    Column("OS-Image", priority=1, description="OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    Column("Kernel-Version", priority=1, description="Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
)


def roles(node: dict) -> list[str]:
    found = set()
    for k, v in ((node.get("metadata") or {}).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/"):]
            if role:
                found.add(role)
        elif k == "kubernetes.io/role" and v:
            found.add(v)
    return sorted(found)


def _address(node: dict, kind: str) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == kind:
            return a.get("address", "")
    return "<none>"


def row(node: dict) -> list:
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    states = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            states.append("Ready" if cond.get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [meta.get("name", ""), ",".join(states), ",".join(roles(node)) or "<none>",
            age(meta.get("creationTimestamp")), info.get("kubeletVersion", ""),
            _address(node, "InternalIP"), _address(node, "ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = obj.get("spec") or {}
    if old is not None:
        old_cidr = (old.get("spec") or {}).get("podCIDR")
        if old_cidr and spec.get("podCIDR") != old_cidr:
            errs.append(invalid("spec.podCIDR", spec.get("podCIDR"), "field is immutable"))
    for i, t in enumerate(spec.get("taints") or []):
        if t.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            from knet.api.errors import not_supported
            errs.append(not_supported(f"spec.taints[{i}].effect", t.get("effect"),
                                      ["NoExecute", "NoSchedule", "PreferNoSchedule"]))
    return errs


RESOURCE = ResourceType(
    group="", version="v1", resource="nodes", kind="Node", namespaced=False, short_names=("no",),
    subresources=("status", "proxy"), model="V1Node", validate=validate, columns=COLUMNS, row=row,
    field_labels=("spec.unschedulable",), status_on_create=True,
)
