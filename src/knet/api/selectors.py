"""Label and field selectors as kube-apiserver parses them from `?labelSelector=` and
`?fieldSelector=` (k8s.io/apimachinery/pkg/labels and pkg/fields), plus metav1.LabelSelector."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from knet.api.errors import bad_request

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op in ("gt", "lt"):
            try:
                v = int(value) if present else None
            except ValueError:
                return False
            return v is not None and (v > int(self.values[0]) if self.op == "gt" else v < int(self.values[0]))
        return False


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _check_key(key: str) -> None:
    name = key.rsplit("/", 1)[-1]
    if not _KEY.match(key) or len(name) > 63:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}": name part must consist of '
                          "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                          "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                          "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f'unable to parse requirement: values[0][{value}]: Invalid value: "{value}": a valid label '
                          "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
                          "start and end with an alphanumeric character")


def parse_label_selector(text: str | None) -> LabelSelector:
    """`a=b,c!=d,e in (f,g),!h,i` -> LabelSelector; raises a 400 ApiError when malformed."""
    if not text or not text.strip():
        return LabelSelector()
    tokens = _TOKEN.findall(text)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", text):
        raise bad_request(f"unable to parse requirement: found '{text}', expected: identifier")
    reqs: list[Requirement] = []
    i = 0

    def expect_values() -> tuple[str, ...]:
        nonlocal i
        if i >= len(tokens) or tokens[i] != "(":
            raise bad_request(f"unable to parse requirement: found '{tokens[i] if i < len(tokens) else ''}', expected: '('")
        i += 1
        vals: list[str] = []
        while i < len(tokens) and tokens[i] != ")":
            if tokens[i] != ",":
                _check_value(tokens[i])
                vals.append(tokens[i])
            i += 1
        if i >= len(tokens):
            raise bad_request("unable to parse requirement: found '', expected: ')'")
        i += 1
        return tuple(vals)

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            i += 1
            if i >= len(tokens):
                raise bad_request("unable to parse requirement: found '', expected: identifier")
            _check_key(tokens[i])
            reqs.append(Requirement(tokens[i], "!"))
            i += 1
        else:
            if tok in ("=", "==", "!=", "(", ")", ","):
                raise bad_request(f"unable to parse requirement: found '{tok}', expected: identifier")
            key = tok
            _check_key(key)
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                op = tokens[i]
                i += 1
                if op in ("=", "=="):
                    val = tokens[i] if i < len(tokens) and tokens[i] != "," else ""
                    if val:
                        i += 1
                    _check_value(val)
                    reqs.append(Requirement(key, "=", (val,)))
                elif op == "!=":
                    val = tokens[i] if i < len(tokens) and tokens[i] != "," else ""
                    if val:
                        i += 1
                    _check_value(val)
                    reqs.append(Requirement(key, "!=", (val,)))
                elif op in ("in", "notin"):
                    reqs.append(Requirement(key, op, expect_values()))
                elif op in ("gt", "lt"):
                    val = tokens[i] if i < len(tokens) else ""
                    i += 1
                    if not val.isdigit():
                        raise bad_request("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
                    reqs.append(Requirement(key, op, (val,)))
                else:
                    raise bad_request(f"unable to parse requirement: found '{op}', expected: "
                                      "in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):
            if tokens[i] != ",":
                raise bad_request(f"unable to parse requirement: found '{tokens[i]}', expected: ','")
            i += 1
            if i >= len(tokens):
                raise bad_request("unable to parse requirement: found '', expected: identifier")
    return LabelSelector(tuple(reqs))


def from_label_selector_object(sel: dict | None) -> LabelSelector | None:
    """metav1.LabelSelector (matchLabels + matchExpressions); None selects nothing,
    an empty one selects everything (as LabelSelectorAsSelector)."""
    if sel is None:
        return None
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append(Requirement(expr.get("key", ""), ops.get(expr.get("operator", ""), "in"),
                                tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Callable[[str], str | None]) -> bool:
        for r in self.requirements:
            v = fields(r.field)
            v = "" if v is None else v
            if (v == r.value) != (r.op == "="):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    def value_of(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None


def parse_field_selector(text: str | None, supported: frozenset[str]) -> FieldSelector:
    """`spec.nodeName=node01,status.phase!=Running`; fields outside `supported` are a 400
    (`field label not supported: X`), as kube-apiserver answers."""
    if not text or not text.strip():
        return FieldSelector()
    reqs = []
    for part in _split_unescaped(text):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                field, value = part.split(op, 1)
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field = field.strip()
        if field not in supported:
            raise bad_request(f'field label not supported: {field}')
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape(value.strip())))
    return FieldSelector(tuple(reqs))


def _split_unescaped(text: str) -> list[str]:
    parts, cur, esc = [], [], False
    for ch in text:
        if esc:
            cur.append("\\" + ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
