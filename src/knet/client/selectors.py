"""Label and field selectors: parsing the query-string form and matching objects. Pure.

Both the string form (`app=web,tier!=db,env in (a,b),!canary`) and the LabelSelector dict
(`matchLabels` + `matchExpressions`) evaluate to the same list of requirements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt (= and == are In, != is NotIn)
    values: tuple[str, ...] = ()

    def matches(self, labels: Labels) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "In":
                return has and value in self.values
            case "NotIn":
                return not has or value not in self.values
            case "Exists":
                return has
            case "DoesNotExist":
                return not has
            case "Gt" | "Lt":
                try:
                    left, right = int(value or ""), int(self.values[0])
                except (ValueError, IndexError):
                    return False
                return left > right if self.operator == "Gt" else left < right
        raise ValueError(f"unknown selector operator {self.operator!r}")


_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>,()]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=<>,()]+)\s*(==|=|!=|>|<)\s*([^\s,()]*)\s*$")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    reqs: list[Requirement] = []
    for part in _split_top(text or ""):
        if m := _EQ_RE.match(part):
            key, op, value = m.groups()
            operator = {"=": "In", "==": "In", "!=": "NotIn", ">": "Gt", "<": "Lt"}[op]
            reqs.append(Requirement(key, operator, (value,)))
        elif m := _SET_RE.match(part):
            neg, key, setop, values = m.groups()
            if setop:
                vals = tuple(v.strip() for v in values.split(",") if v.strip())
                reqs.append(Requirement(key, "In" if setop == "in" else "NotIn", vals))
            else:
                reqs.append(Requirement(key, "DoesNotExist" if neg else "Exists"))
        else:
            raise ValueError(f"unable to parse requirement: {part!r}")
    return reqs


def selector_requirements(selector: dict[str, Any] | None) -> list[Requirement] | None:
    """A metav1.LabelSelector dict as requirements; None selects nothing, {} selects everything."""
    if selector is None:
        return None
    reqs = [Requirement(k, "In", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], expr["operator"], tuple(expr.get("values") or ())))
    return reqs


def matches(reqs: list[Requirement] | None, labels: Labels | None) -> bool:
    if reqs is None:
        return False
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def labels_match_selector(selector: dict[str, Any] | None, labels: Labels | None) -> bool:
    return matches(selector_requirements(selector), labels)


def format_match_labels(labels: Labels) -> str:
    """The query-string form of an equality selector (for `labelSelector=`)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


def parse_field_selector(text: str | None) -> list[tuple[str, bool, str]]:
    """`spec.nodeName=node01,status.phase!=Failed` -> [(path, equal, value)]."""
    out = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "!=" in part:
            path, value = part.split("!=", 1)
            out.append((path.strip(), False, value.strip()))
        else:
            path, value = part.replace("==", "=").split("=", 1)
            out.append((path.strip(), True, value.strip()))
    return out


def matches_fields(reqs: list[tuple[str, bool, str]], obj: dict[str, Any]) -> bool:
    return all((field_value(obj, path) == value) == equal for path, equal, value in reqs)
