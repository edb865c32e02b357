"""The JSONPath subset of additionalPrinterColumns (k8s.io/client-go/util/jsonpath as the CRD
table convertor uses it): `.a.b`, `.a[0]`, `.a[*].b`, `.a['key.with.dots']`, and filters
`.a[?(@.type=="Ready")].status`. Pure."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"""
    \.(?P<field>[A-Za-z0-9_\-$/]+)
  | \[(?P<index>-?\d+)\]
  | \[(?P<star>\*)\]
  | \.(?P<dotstar>\*)
  | \[['"](?P<quoted>[^'"]+)['"]\]
  | \[\?\(@\.(?P<fpath>[A-Za-z0-9_.\-]+)\s*(?P<op>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[^)\s]+)\s*\)\]
""", re.VERBOSE)


class JSONPathError(ValueError):
    pass


def parse(path: str) -> list[tuple[str, Any]]:
    """Steps of a column's jsonPath (with or without the `{}` template braces)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    if not text.startswith((".", "[")):
        raise JSONPathError(f"unrecognized character in action: {text[:1]!r}")
    steps: list[tuple[str, Any]] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            raise JSONPathError(f"invalid JSONPath at {text[at:]!r}")
        if m.group("field") is not None:
            steps.append(("field", m.group("field")))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        elif m.group("star") or m.group("dotstar"):
            steps.append(("all", None))
        elif m.group("quoted") is not None:
            steps.append(("field", m.group("quoted")))
        else:
            value = m.group("fval")
            if value[:1] in "\"'":
                value = value[1:-1]
            steps.append(("filter", (m.group("fpath").split("."), m.group("op"), value)))
        at = m.end()
    return steps


def _lookup(obj: Any, names: list[str]) -> Any:
    for n in names:
        if not isinstance(obj, dict) or n not in obj:
            return None
        obj = obj[n]
    return obj


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def find(obj: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    """Every value the path reaches (none when a step finds nothing)."""
    current = [obj]
    for kind, arg in steps:
        out = []
        for v in current:
            if kind == "field":
                if isinstance(v, dict) and arg in v:
                    out.append(v[arg])
            elif kind == "index":
                if isinstance(v, list) and -len(v) <= arg < len(v):
                    out.append(v[arg])
            elif kind == "all":
                if isinstance(v, list):
                    out += v
                elif isinstance(v, dict):
                    out += list(v.values())
            else:
                names, op, want = arg
                items = v if isinstance(v, list) else []
                for item in items:
                    got = _lookup(item, names)
                    matched = got is not None and _text(got) == want
                    if matched == (op == "=="):
                        out.append(item)
        current = out
    return current
