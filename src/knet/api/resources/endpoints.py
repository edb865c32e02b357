"""core/v1 Endpoints: columns as printEndpoints (formatEndpoints, three then "+ N more...")."""

from __future__ import annotations

from knet.api.printing import age
from knet.api.registry import Column, ResourceType

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Endpoints", description="Endpoints of the service"),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def format_endpoints(ep: dict) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            count += len(addrs)
            for a in addrs:
                if len(shown) == 3:
                    more = True
                    break
                shown.append(a.get("ip", ""))
            continue
        for p in ports:
            count += len(addrs)
            for a in addrs:
                if len(shown) == 3:
                    more = True
                    break
                ip = a.get("ip", "")
                host = f"[{ip}]" if ":" in ip else ip
                shown.append(f"{host}:{p.get('port')}")
    text = ",".join(shown)
    if more:
        return f"{text} + {count - 3} more..."
    return text or "<none>"


def defaults(obj: dict) -> None:
    for ss in obj.get("subsets") or []:
        for p in ss.get("ports") or []:
            p.setdefault("protocol", "TCP")


def row(ep: dict) -> list:
    meta = ep.get("metadata") or {}
    return [meta.get("name", ""), format_endpoints(ep), age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="", version="v1", resource="endpoints", kind="Endpoints", short_names=("ep",), model="V1Endpoints",
    defaults=defaults, columns=COLUMNS, row=row, allow_create_on_update=True,
)
