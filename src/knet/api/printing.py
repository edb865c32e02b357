"""Helpers for server-side table cells, as k8s.io/kubernetes/pkg/printers/internalversion
formats them (ages, label maps, lists cut at three entries)."""

from __future__ import annotations

import datetime as dt
import time


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_now_text: tuple[int, str] = (0, "")  # (whole second, its timestamp): formatted once a second


def timestamp(when: dt.datetime | None = None) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time marshals."""
    global _now_text
    if when is not None:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    second = int(time.time())
    if _now_text[0] != second:
        _now_text = (second, dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _now_text[1]


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds_f: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(seconds_f)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def age(ts: str | None) -> str:
    """translateTimestampSince: "<unknown>" for a missing time."""
    when = parse_time(ts)
    if when is None:
        return "<unknown>"
    return human_duration((now() - when).total_seconds())


def label_map(labels: dict | None) -> str:
    """labels.FormatLabels / SelectorFromSet: sorted `k=v,...` or `<none>`."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_text(sel: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(); `<none>` when it selects nothing."""
    if sel is None:
        return "<none>"
    parts = []
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in sel.get("matchExpressions") or []:
        key, op, vals = e.get("key", ""), e.get("operator", ""), sorted(e.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(vals)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(vals)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    for _, text in sorted(reqs, key=lambda r: r[0]):
        parts.append(text)
    if not parts:
        return "<none>"
    return ",".join(parts)


def first_three(items: list[str], empty: str = "<none>") -> str:
    if not items:
        return empty
    text = ",".join(items[:3])
    if len(items) > 3:
        text += f" + {len(items) - 3} more..."
    return text


def containers_images(pod_spec: dict | None) -> tuple[str, str]:
    containers = (pod_spec or {}).get("containers") or []
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))
