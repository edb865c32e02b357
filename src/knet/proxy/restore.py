"""The one parser of iptables-restore / iptables-save text. Pure.

Used by the fake netfilter (which applies it as iptables-restore would), kube-proxy's whole-table
merge (which reads iptables-save output), the golden tests' normaliser and the packet walker
(knet.proxy.iptables_walk). The text is a sequence of tables:

    *nat                          a table starts
    :KUBE-SERVICES - [0:0]        a chain is declared (built-in chains carry a policy, ours `-`)
    -A KUBE-SERVICES ... -j X     a rule is appended (also -I CHAIN [N], -D, -X, -F, -N)
    COMMIT                        the table ends; restore applies it atomically

Rule arguments are kept as the text iptables-save prints (`rest`); `words()` splits them as the
shell would (comments with spaces are double-quoted).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

OPS = ("-A", "-I", "-D", "-X", "-F", "-N")


class RestoreError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    lineno: int
    op: str       # ":" (chain declaration) or one of OPS
    chain: str
    rest: str     # the rule's arguments after the chain; for ":" the policy (`-`, `ACCEPT`, ...)

    @property
    def line(self) -> str:
        """The line as written (stripped)."""
        if self.op == ":":
            return f":{self.chain} {self.rest} [0:0]"
        return f"{self.op} {self.chain} {self.rest}".rstrip()

    def words(self) -> list[str]:
        return words(self.rest)


@dataclass
class Table:
    name: str
    entries: list[Entry] = field(default_factory=list)
    committed: bool = False

    def chains(self) -> dict[str, str]:
        """Declared chains -> policy (`-` for user chains), in declaration order."""
        return {e.chain: e.rest for e in self.entries if e.op == ":"}

    def rules(self) -> dict[str, list[str]]:
        """Declared chains and the rules appended to each (`-A` only: what iptables-save prints)."""
        out: dict[str, list[str]] = {c: [] for c in self.chains()}
        for e in self.entries:
            if e.op == "-A":
                out.setdefault(e.chain, []).append(e.rest)
        return out


def words(rest: str) -> list[str]:
    return shlex.split(rest)


def parse(text: str, *, strict: bool = True) -> list[Table]:
    """The tables in order. strict: a line outside a table, an unknown line or a missing COMMIT is
    a RestoreError (what iptables-restore refuses); otherwise such lines are skipped."""
    tables: list[Table] = []
    current: Table | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = Table(line[1:])
            tables.append(current)
            continue
        if current is None or current.committed:
            if strict:
                raise RestoreError(f"line {lineno}: rule outside a table")
            continue
        if line == "COMMIT":
            current.committed = True
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            current.entries.append(Entry(lineno, ":", parts[0], parts[1] if len(parts) > 1 else "-"))
            continue
        op, _, after = line.partition(" ")
        if op in OPS and after.strip():
            chain, _, rest = after.strip().partition(" ")
            current.entries.append(Entry(lineno, op, chain, rest.strip()))
        elif strict:
            raise RestoreError(f"line {lineno}: cannot parse {line!r}")
    if strict and current is not None and not current.committed:
        raise RestoreError("missing COMMIT")
    return tables


def rules_by_table(text: str) -> dict[str, dict[str, list[str]]]:
    """iptables-save text -> table -> chain -> rule arguments (a table saved twice is merged)."""
    out: dict[str, dict[str, list[str]]] = {}
    for t in parse(text, strict=False):
        merged = out.setdefault(t.name, {})
        for chain, rules in t.rules().items():
            merged.setdefault(chain, []).extend(rules)
    return out
