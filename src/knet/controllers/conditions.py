"""Setting status conditions the way upstream does: lastTransitionTime only moves when status does. Pure."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def set_condition(conditions: list[Obj] | None, new: Obj, now: str, *, heartbeat: bool = False) -> list[Obj]:
    """Return conditions with `new` merged in by type (a new list; input untouched)."""
    out: list[Obj] = []
    found = False
    for cond in conditions or []:
        if cond.get("type") != new["type"]:
            out.append(cond)
            continue
        found = True
        merged = {**cond, **new}
        if cond.get("status") == new.get("status"):
            merged["lastTransitionTime"] = cond.get("lastTransitionTime") or now
        else:
            merged["lastTransitionTime"] = now
        if heartbeat:
            merged["lastHeartbeatTime"] = now
        out.append(merged)
    if not found:
        cond = {**new, "lastTransitionTime": now}
        if heartbeat:
            cond["lastHeartbeatTime"] = now
        out.append(cond)
    return out


def conditions_equal_ignoring_times(a: list[Obj] | None, b: list[Obj] | None) -> bool:
    def strip(conds: list[Obj] | None) -> list[Obj]:
        return sorted(({k: v for k, v in c.items() if not k.endswith("Time")} for c in conds or []),
                      key=lambda c: c.get("type", ""))
    return strip(a) == strip(b)


def _prune(value: Any) -> Any:
    """Drop what Go's omitempty drops on status counters (None, 0, "", [], {}), recursively.
    False is kept: endpoint conditions are *bool, where missing means "unknown", not false."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is False or v not in (None, 0, "", [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def semantically_equal(a: Any, b: Any) -> bool:
    """Equal up to empty/zero fields, so a server that omits `readyReplicas: 0` does not make a
    controller write the same status forever."""
    return _prune(a) == _prune(b)
