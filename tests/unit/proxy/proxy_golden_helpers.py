"""Golden comparison helpers: the same normalisation upstream's proxier tests use.

iptables (upstream sortIPTablesRules): tables sorted by name; chains ordered KUBE-NODEPORTS,
KUBE-SERVICES, then other KUBE-* alphabetically, then the rest; each chain's rules follow its chain
lines, keeping their relative order; KUBE-SERVICES/KUBE-NODEPORTS rules sorted by the service in
their comment, the nodeports jump last. nftables (upstream assertNFTablesTransactionEqual): blank
and comment lines dropped, the rest compared as a sorted set.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from knet.proxy import restore

GOLDEN = Path(__file__).parent / "golden"
NODEPORTS_TAIL = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"


def _chain_key(name: str) -> tuple[int, str]:
    if name == "KUBE-NODEPORTS":
        return (0, "")
    if name == "KUBE-SERVICES":
        return (1, "")
    return (2 if name.startswith("KUBE-") else 3, name)


def _service_of(rule: str) -> str:
    if NODEPORTS_TAIL in rule:
        return "\uffff"  # last
    m = re.search(r'--comment "?([^" ]+)', rule)
    return m.group(1) if m else ""


def normalize_iptables(text: str) -> list[str]:
    tables: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    for t in restore.parse(text, strict=False):
        chains, rules = tables.setdefault(t.name, ([], {}))
        for e in t.entries:
            if e.op == ":":
                chains.append(e.chain)
                rules.setdefault(e.chain, [])
            elif e.op in ("-A", "-X"):
                rules.setdefault(e.chain, []).append(e.line)
            else:
                raise ValueError(f"cannot parse {e.line!r}")
    out: list[str] = []
    for tname in sorted(tables):
        chains, rules = tables[tname]
        ordered = sorted(dict.fromkeys(chains), key=_chain_key)
        out.append(f"*{tname}")
        out += [f":{c} - [0:0]" for c in ordered]
        for c in ordered:
            lines = rules.get(c, [])
            if c in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
                lines = sorted(lines, key=_service_of)
            out += lines
        for c, lines in rules.items():  # rules of chains never declared (an error the diff will show)
            if c not in chains:
                out += lines
        out.append("COMMIT")
    return out


def normalize_nftables(text: str) -> list[str]:
    return sorted({line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")})


def load_objects(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((GOLDEN / name).read_text()) if d]
