"""`knet crictl NODE ps|pods`: the node's containers in crictl's columns, from its kubelet. Pure
formatting apart from `fetch`."""

from __future__ import annotations

import time
from typing import Any

Row = dict[str, Any]


def ago(seconds: float) -> str:
    """crictl's "CREATED" column: "About a minute ago", "5 seconds ago", "3 minutes ago"..."""
    s = int(max(seconds, 0))
    if s < 1:
        return "Less than a second ago"
    if s < 60:
        return f"{s} seconds ago"
    if s < 120:
        return "About a minute ago"
    if s < 3600:
        return f"{s // 60} minutes ago"
    if s < 7200:
        return "About an hour ago"
    if s < 86400:
        return f"{s // 3600} hours ago"
    return f"{s // 86400} days ago"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines) + "\n"


STATE = {"running": "Running", "terminated": "Exited", "waiting": "Created"}


def format_ps(rows: list[Row], *, show_all: bool = False, name: str | None = None, now: float | None = None) -> str:
    now = time.time() if now is None else now
    out = []
    for r in sorted(rows, key=lambda r: -r["podCreated"]):
        if not r["id"] or (not show_all and r["state"] != "running") or (name and name not in r["name"]):
            continue
        out.append([r["id"][:13], r["image"], ago(now - r["created"]), STATE.get(r["state"], r["state"]),
                    r["name"], str(r["attempt"]), r["podId"][:13], r["pod"]])
    return _table(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"], out)


def format_pods(rows: list[Row], now: float | None = None) -> str:
    now = time.time() if now is None else now
    pods: dict[str, Row] = {}
    for r in rows:
        if r["podId"]:
            pods.setdefault(r["podId"], r)
    out = [[p["podId"][:13], ago(now - p["podCreated"]), p["podState"], p["pod"], p["namespace"], "0", "(default)"]
           for p in sorted(pods.values(), key=lambda p: -p["podCreated"])]
    return _table(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"], out)
