"""Facts about pods that several controllers need (pkg/api/v1/pod in upstream). Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(obj: Obj, ctype: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def is_pod_ready(pod: Obj) -> bool:
    cond = get_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return not is_terminal(pod) and not is_terminating(pod)


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    ready = get_condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True" and ready_for_long_enough(ready, min_ready_seconds, now)


def ready_for_long_enough(ready_condition: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """A pod whose Ready condition is True counts as available after minReadySeconds."""
    if min_ready_seconds <= 0:
        return True
    since = parse_time(ready_condition.get("lastTransitionTime"))
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def find_port(pod: Obj, target_port: int | str | None, protocol: str, default: int) -> int | None:
    """Resolve a Service targetPort against a pod: numbers as they are, names via the pod's container
    ports of the same protocol (podutil.FindPort). None when the pod has no such named port."""
    if target_port is None or target_port == "":
        return default
    if isinstance(target_port, int):
        return target_port
    if target_port.isdigit():
        return int(target_port)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target_port and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None
