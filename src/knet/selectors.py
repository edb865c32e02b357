"""Label and field selectors, one grammar for the whole of knet: the apiserver parses
`?labelSelector=`/`?fieldSelector=` with it, and the client, the fake client, the controllers,
the scheduler and the NetworkPolicy compiler match objects with it. Pure.

Label selectors follow k8s.io/apimachinery/pkg/labels: a lexer (identifiers, `!`, `=`, `==`,
`!=`, `>`, `<`, `(`, `)`, `,`, the keywords `in`/`notin`) and a parser with one token of
lookahead; the string form (`app=web,tier!=db,env in (a,b),!canary,x>1`) and a
metav1.LabelSelector (`matchLabels` + `matchExpressions`) give the same requirements. Field
selectors follow k8s.io/apimachinery/pkg/fields: `path=value`, `path==value`, `path!=value`,
joined by `,`, with `\\`, `\\,` and `\\=` escapes. Malformed input raises SelectorError with
upstream's message; the apiserver answers it as a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Labels = dict[str, str]


class SelectorError(ValueError):
    """A selector that does not parse or validate (kube-apiserver: 400 BadRequest)."""


# Operators as metav1.LabelSelectorOperator and NodeSelectorOperator name them; the string
# form's `=`/`==` are In with one value and `!=` is NotIn with one value, as upstream's
# matching treats them.
OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
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
        raise SelectorError(f"{self.operator!r} is not a valid label selector operator")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """Requirements that must all hold; no requirements select everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Labels | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __iter__(self):
        return iter(self.requirements)


# --- validation (k8s.io/apimachinery/pkg/util/validation), with NewRequirement's messages ---

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_HELP = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
              "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
              "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}": prefix part must be a '
                            "lowercase RFC 1123 subdomain")
    if not name or len(name) > 63 or not _NAME.match(name):
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}": {_NAME_HELP}')


def _check_values(values: Iterable[str]) -> None:
    for i, value in enumerate(values):
        if len(value) > 63 or not _VALUE.match(value):
            raise SelectorError(f'unable to parse requirement: values[{i}][{value}]: Invalid value: "{value}": a '
                                "valid label must be an empty string or consist of alphanumeric characters, '-', "
                                "'_' or '.', and must start and end with an alphanumeric character")


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A validated requirement (upstream NewRequirement): In/NotIn need values, Exists and
    DoesNotExist none, Gt/Lt one integer."""
    vals = tuple(values)
    _check_key(key)
    if operator in ("In", "NotIn"):
        if not vals:
            raise SelectorError("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
    elif operator in ("Exists", "DoesNotExist"):
        if vals:
            raise SelectorError("unable to parse requirement: values set must be empty for exists and does not exist")
    elif operator in ("Gt", "Lt"):
        if len(vals) != 1 or not re.fullmatch(r"-?\d+", vals[0]):
            raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
    else:
        raise SelectorError(f'unable to parse requirement: operator "{operator}" is not recognized')
    _check_values(vals)
    return Requirement(key, operator, vals)


# --- the string form's lexer and parser (k8s.io/apimachinery/pkg/labels/selector.go) ---

IDENTIFIER, END, COMMA, OPEN, CLOSE, EXISTS_NOT, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GT, LT, IN, NOT_IN = (
    "identifier", "end", ",", "(", ")", "!", "=", "==", "!=", ">", "<", "in", "notin")
_SYMBOLS = ("!=", "==", "!", "=", ">", "<", "(", ")", ",")  # longest first: `!=` before `!`
_SPECIAL = set("!=><(),")


def lex(text: str) -> list[tuple[str, str]]:
    """Tokens (kind, literal), ending with END. Whitespace separates; a run of other
    non-special characters is one identifier (`~`, `||` included), `in`/`notin` keywords."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _SPECIAL:
            symbol = next(s for s in _SYMBOLS if text.startswith(s, i))
            tokens.append((symbol, symbol))
            i += len(symbol)
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        tokens.append((word if word in (IN, NOT_IN) else IDENTIFIER, word))
    tokens.append((END, ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = lex(text)
        self.pos = 0

    def peek(self, values_mode: bool = False) -> tuple[str, str]:
        kind, lit = self.tokens[self.pos]
        if values_mode and kind in (IN, NOT_IN):  # inside (…) the keywords are plain values
            return IDENTIFIER, lit
        return kind, lit

    def take(self, values_mode: bool = False) -> tuple[str, str]:
        token = self.peek(values_mode)
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return token

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            kind, lit = self.peek(values_mode=True)  # a key may be spelled `in` or `notin`
            if kind in (IDENTIFIER, EXISTS_NOT):
                reqs.append(self.requirement())
                kind, lit = self.take()
                if kind == END:
                    return reqs
                if kind != COMMA:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
                if self.peek(values_mode=True)[0] not in (IDENTIFIER, EXISTS_NOT):
                    raise SelectorError(f"found '{self.peek()[1]}', expected: identifier after ','")
            elif kind == END:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        kind, lit = self.take(values_mode=True)
        if kind == EXISTS_NOT:
            kind, key = self.take(values_mode=True)
            if kind != IDENTIFIER:
                raise SelectorError(f"found '{key}', expected: identifier")
            return new_requirement(key, "DoesNotExist")
        key = lit
        op_kind, op_lit = self.peek()
        if op_kind in (END, COMMA):
            return new_requirement(key, "Exists")
        self.take()
        if op_kind in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            kind, value = self.peek(values_mode=True)
            if kind == IDENTIFIER:
                self.take(values_mode=True)
            elif kind in (END, COMMA):
                value = ""
            else:
                raise SelectorError(f"found '{value}', expected: identifier")
            return new_requirement(key, "NotIn" if op_kind == NOT_EQUALS else "In", (value,))
        if op_kind in (GT, LT):
            kind, value = self.take(values_mode=True)
            if kind != IDENTIFIER:
                raise SelectorError(f"found '{value}', expected: identifier")
            return new_requirement(key, "Gt" if op_kind == GT else "Lt", (value,))
        if op_kind in (IN, NOT_IN):
            return new_requirement(key, "In" if op_kind == IN else "NotIn", self.value_set())
        raise SelectorError(f"found '{op_lit}', expected: {', '.join(('in', 'notin', '=', '==', '!=', 'gt', 'lt'))}")

    def value_set(self) -> tuple[str, ...]:
        kind, lit = self.take()
        if kind != OPEN:
            raise SelectorError(f"found '{lit}', expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, lit = self.take(values_mode=True)
            if kind == IDENTIFIER and expect_value:
                values.append(lit)
                expect_value = False
            elif kind == COMMA:
                if expect_value:  # `(a,,b)` and `(,a)`: an empty value
                    values.append("")
                expect_value = True
            elif kind == CLOSE:
                if expect_value:  # `()` and `(a,)`
                    values.append("")
                return tuple(values)
            else:
                raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")


def parse_label_selector(text: str | None) -> LabelSelector:
    """The string form as kube-apiserver parses `?labelSelector=`; SelectorError when malformed."""
    if not text or not text.strip():
        return LabelSelector()
    try:
        reqs = _Parser(text).parse()
    except SelectorError as exc:
        message = str(exc)
        if not message.startswith("unable to parse requirement"):
            message = f"unable to parse requirement: {message}"
        raise SelectorError(message) from None
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


def selector_requirements(selector: dict[str, Any] | None) -> LabelSelector | None:
    """A metav1.LabelSelector as upstream's LabelSelectorAsSelector: None selects nothing, an
    empty one everything; an unknown operator is a SelectorError."""
    if selector is None:
        return None
    reqs = [Requirement(str(k), "In", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        operator = str(expr.get("operator", ""))
        if operator not in OPERATORS - {"Gt", "Lt"}:
            raise SelectorError(f'"{operator}" is not a valid label selector operator')
        reqs.append(Requirement(str(expr.get("key", "")), operator, tuple(str(v) for v in expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def matches(selector: LabelSelector | Iterable[Requirement] | None, labels: Labels | None) -> bool:
    """Whether LABELS satisfy every requirement; a None selector selects nothing."""
    if selector is None:
        return False
    labels = labels or {}
    return all(r.matches(labels) for r in selector)


def labels_match_selector(selector: dict[str, Any] | None, labels: Labels | None) -> bool:
    return matches(selector_requirements(selector), labels)


def format_match_labels(labels: Labels) -> str:
    """The query-string form of an equality selector (for `labelSelector=`)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# --- field selectors (k8s.io/apimachinery/pkg/fields/selector.go) ---

@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Callable[[str], str | None]) -> bool:
        """FIELDS gives an object's value of a field path (see field_value)."""
        for r in self.requirements:
            value = fields(r.field)
            if ((value or "") == r.value) != (r.op == "="):
                return False
        return True

    def matches_object(self, obj: dict[str, Any]) -> bool:
        return self.matches(lambda path: field_value(obj, path))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def value_of(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        cur.append("\\")
    parts.append("".join(cur))
    return parts


def unescape_value(value: str) -> str:
    """Upstream UnescapeValue: only `\\\\`, `\\,` and `\\=` are escapes."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: {value}")
            out.append(value[i + 1])
            i += 2
            continue
        if ch in ",=":  # unescaped: the value ran into another operator
            raise SelectorError(f"invalid field selector: unescaped {ch} in value: {value}")
        out.append(ch)
        i += 1
    return "".join(out)


def parse_field_selector(text: str | None, supported: frozenset[str] | None = None) -> FieldSelector:
    """`spec.nodeName=node01,status.phase!=Running`. Fields outside SUPPORTED (when given) are a
    SelectorError `field label not supported: X`, as kube-apiserver answers."""
    if not text or not text.strip():
        return FieldSelector()
    reqs = []
    for part in _split_unescaped(text, ","):
        if not part.strip():
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = split
        field = field.strip()
        if supported is not None and field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", unescape_value(value.strip())))
    return FieldSelector(tuple(reqs))


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Upstream splitTerm: the first unescaped operator from the left (`!=`, `==`, `=`)."""
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
        i += 1
    return None


def field_value(obj: dict[str, Any], path: str) -> str:
    """The value a field selector compares: booleans as `true`/`false`, absent as "", and the
    per-kind conversions upstream registers (an Event's `source`, a Pod's `status.podIPs`)."""
    if path == "source" and obj.get("kind") == "Event":
        return (obj.get("source") or {}).get("component") or obj.get("reportingComponent") or ""
    if path == "status.podIPs":
        ips = (obj.get("status") or {}).get("podIPs") or []
        return ips[0].get("ip", "") if ips else ""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)
