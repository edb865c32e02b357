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
