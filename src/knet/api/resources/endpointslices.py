"""discovery.k8s.io/v1 EndpointSlice: columns as printEndpointSlice."""

from __future__ import annotations

from knet.api.errors import FieldError, not_supported, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("AddressType", description="addressType specifies the type of address carried by this EndpointSlice."),
    Column("Ports", description="ports specifies the list of network ports exposed by each endpoint in this slice."),
    Column("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def _more(items: list[str], total: int) -> str:
    text = ",".join(items)
    if total > 3:
        return f"{text} + {total - 3} more..."
    return text or "<unset>"


def row(es: dict) -> list:
    meta = es.get("metadata") or {}
    ports = es.get("ports") or []
    port_names = []
    for p in ports[:3]:
        if p.get("port") is not None:
            port_names.append(str(p["port"]))
        elif p.get("name") is not None:
            port_names.append(p["name"])
        else:
            port_names.append("*")
    addrs = [a for ep in es.get("endpoints") or [] for a in ep.get("addresses") or []]
    return [meta.get("name", ""), es.get("addressType", ""), _more(port_names, len(ports)),
            _more(addrs[:3], len(addrs)), age(meta.get("creationTimestamp"))]


def defaults(obj: dict) -> None:
    for p in obj.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("name", "")


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    at = obj.get("addressType")
    if not at:
        return [required("addressType")]
    if at not in ("IPv4", "IPv6", "FQDN"):
        return [not_supported("addressType", at, ["FQDN", "IPv4", "IPv6"])]
    errs = []
    for i, ep in enumerate(obj.get("endpoints") or []):
        if not ep.get("addresses"):
            errs.append(required(f"endpoints[{i}].addresses", "must contain at least 1 address"))
    return errs


RESOURCE = ResourceType(
    group="discovery.k8s.io", version="v1", resource="endpointslices", kind="EndpointSlice",
    model="V1EndpointSlice", defaults=defaults, validate=validate, columns=COLUMNS, row=row,
    field_labels=("addressType",),
)
