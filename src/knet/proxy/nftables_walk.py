"""Walk a packet through nftables rules (kube-proxy's table `ip kube-proxy`, the policy
controller's `ip knet-netpol`), as the kernel would. Pure.

Input: an `nft -f` script of `add ...` lines (what the renderers write: the simulated dataplane and
the unit tests) or `nft list ruleset` output (a live node); both become the same Ruleset. Each hook
runs the base chains of every table registered on it in priority order (filter -110 before nat
-100 in prerouting, ...); an accept ends one base chain, not the hook. `numgen random mod N vmap`
forks the walk N ways; `ip saddr @affinity-X` matches when the source is in that set (`dynamic`:
set name -> addresses, read from the live set).

Expressions understood: ip saddr/daddr, meta l4proto, th/tcp/udp/sctp dport, ct state, ct status
(dnat), fib saddr/daddr type, (meta) mark with & / and, `.` concatenations, anonymous and named sets
and verdict maps, numgen; statements: mark set, dnat to (an address, or `ip addr . port to numgen
random mod N map {...}`, which forks N ways as the vmap does: kube-proxy v1.36+), masquerade, update,
counter, comment, and the verdicts. Anything else is taken as matching and named in the step's note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from knet.proxy.walk import Flow, Packet, Step, Trace, in_net, is_local, through_node

MAX_DEPTH = 64
HOOK_PRIORITY = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_TOKEN = re.compile(r'"[^"]*"|[{},;]|[^\s{},;]+')
_VERDICTS = {"accept", "drop", "reject", "return", "jump", "goto", "continue"}


@dataclass
class Chain:
    name: str
    hook: str = ""      # "" for a regular chain
    priority: int = 0
    policy: str = "accept"
    rules: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Element:
    key: str            # "10.96.0.10 . tcp . 80"
    verdict: str = ""   # maps: "goto service-...", "drop"
    comment: str = ""

    def text(self) -> str:
        return self.key + (f' comment "{self.comment}"' if self.comment else "") + \
            (f" : {self.verdict}" if self.verdict else "")


@dataclass
class Table:
    name: str           # "ip kube-proxy"
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, list[Element]] = field(default_factory=dict)


Ruleset = dict[str, Table]


def _tokens(text: str) -> list[str]:
    return [t[1:-1] if t.startswith('"') and t.endswith('"') and len(t) > 1 else t for t in _TOKEN.findall(text)]


def _priority(words: list[str]) -> int:
    """`priority filter - 5`, `priority -110`, `priority dstnat`."""
    expr = " ".join(words)
    total = 0
    for sign, term in re.findall(r"([+-]?)\s*(\w+)", expr):
        v = HOOK_PRIORITY.get(term, None)
        v = int(term) if v is None and term.lstrip("-").isdigit() else (v or 0)
        total += -v if sign == "-" else v
    return total


def _chain_spec(chain: Chain, spec: str) -> None:
    for part in spec.split(";"):
        ws = part.split()
        if ws[:1] == ["type"] and "hook" in ws:
            chain.hook = ws[ws.index("hook") + 1]
            if "priority" in ws:
                chain.priority = _priority(ws[ws.index("priority") + 1:])
        elif ws[:1] == ["policy"] and len(ws) > 1:
            chain.policy = ws[1]


def _elements(body: str) -> list[Element]:
    """`a . tcp . 80 comment "x" : goto c , b : drop` -> [Element("a . tcp . 80", "goto c", "x"), ...]."""
    out = []
    depth, start, parts = 0, 0, []
    for i, ch in enumerate(body):  # split on top-level commas
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    for part in parts:
        m = re.search(r'\s*comment\s+"([^"]*)"', part)
        part = re.sub(r'\s*comment\s+"[^"]*"', "", part).strip()
        part = re.sub(r"\s*(timeout|expires)\s+\S+", "", part).strip()
        if not part:
            continue
        key, _, verdict = part.partition(" : ")
        out.append(Element(key.strip(), verdict.strip(), m.group(1) if m else ""))
    return out


def parse_script(text: str, ruleset: Ruleset | None = None) -> Ruleset:
    """`add table/chain/set/map/rule/element` lines (also flush/delete of tables) -> Ruleset."""
    rs: Ruleset = ruleset if ruleset is not None else {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ws = line.split()
        if len(ws) < 4:
            continue
        verb, kind, tname = ws[0], ws[1], f"{ws[2]} {ws[3]}"
        if kind == "table":
            if verb == "delete":
                rs.pop(tname, None)
            elif verb == "add":
                rs.setdefault(tname, Table(tname))
            continue
        t = rs.setdefault(tname, Table(tname))
        name = ws[4].strip('"') if len(ws) > 4 else ""
        if kind == "chain" and verb == "add":
            c = t.chains.setdefault(name, Chain(name))
            if "{" in line:
                _chain_spec(c, line[line.index("{") + 1: line.rindex("}")])
        elif kind == "chain" and verb == "flush":
            t.chains[name].rules = []
        elif kind == "chain" and verb == "delete":
            t.chains.pop(name, None)
        elif kind in ("set", "map") and verb == "add":
            t.sets.setdefault(name, [])
        elif kind in ("set", "map") and verb == "delete":
            t.sets.pop(name, None)
        elif kind == "rule" and verb == "add":
            t.chains.setdefault(name, Chain(name)).rules.append(line.split(None, 5)[5])
        elif kind == "element":
            body = line[line.index("{") + 1: line.rindex("}")]
            els = _elements(body)
            if verb == "add":
                t.sets.setdefault(name, []).extend(els)
            elif verb == "delete":
                keys = {e.key for e in els}
                t.sets[name] = [e for e in t.sets.get(name, []) if e.key not in keys]
    return rs


def parse_listing(text: str) -> Ruleset:
    """`nft list ruleset` / `nft list table ...` output -> Ruleset (by turning it into `add` lines)."""
    lines: list[str] = []
    table = chain = ""
    set_name = ""
    in_elements: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if in_elements is not None:
            in_elements.append(line)
            if line.endswith("}"):
                body = " ".join(in_elements)
                lines.append(f"add element {table} {set_name} {{ {body[:body.rindex('}')]} }}")
                in_elements = None
            continue
        m = re.match(r"table (\S+) (\S+) \{", line)
        if m:
            table = f"{m.group(1)} {m.group(2)}"
            lines.append(f"add table {table}")
            continue
        m = re.match(r"(set|map) (\S+) \{", line)
        if m:
            set_name, chain = m.group(2), ""
            lines.append(f"add {m.group(1)} {table} {set_name}")
            continue
        m = re.match(r"chain (\S+) \{", line)
        if m:
            chain, set_name = m.group(1).strip('"'), ""
            lines.append(f"add chain {table} {chain}")
            continue
        if set_name and line.startswith("elements = {"):
            rest = line[len("elements = {"):]
            if rest.rstrip().endswith("}"):
                lines.append(f"add element {table} {set_name} {{ {rest[:rest.rindex('}')]} }}")
            else:
                in_elements = [rest]
            continue
        if line == "}" or set_name:
            if line == "}" and (set_name or chain):
                set_name = chain = ""
            continue
        if chain:
            if line.startswith("type ") and " hook " in line:
                lines[-1] = f"add chain {table} {chain} {{ {line} }}" if lines[-1] == f"add chain {table} {chain}" \
                    else lines[-1]
                continue
            if line.startswith(("policy ", "comment ")):  # the chain's own policy and comment: no rules
                continue
            lines.append(f"add rule {table} {chain} {line}")
    return parse_script("\n".join(lines))


# -- matching ----------------------------------------------------------------------------------

def _selector(ws: list[str], i: int) -> tuple[str, int] | None:
    """The selector at ws[i] ("ip saddr", "th dport", ...) and the index after it."""
    two = " ".join(ws[i:i + 2])
    if two in ("ip saddr", "ip daddr", "meta l4proto", "th dport", "tcp dport", "udp dport", "sctp dport",
               "ct state", "ct status", "meta mark", "th sport", "tcp sport", "udp sport"):
        return two, i + 2
    if two in ("fib saddr", "fib daddr") and ws[i + 2:i + 3] == ["type"]:
        return two + " type", i + 3
    if ws[i] in ("mark", "ct") and ws[i] == "mark":
        return "meta mark", i + 1
    return None


@dataclass
class _Ctx:
    flow: Flow
    local_ips: set[str]

    def value(self, sel: str) -> str | int:
        p = self.flow.packet
        if sel.split()[0] in ("tcp", "udp", "sctp") and sel.split()[0] != p.proto:
            return -1  # `tcp dport` matches tcp packets only
        return {
            "ip saddr": p.src, "ip daddr": p.dst, "meta l4proto": p.proto, "th dport": p.dport,
            "tcp dport": p.dport, "udp dport": p.dport, "sctp dport": p.dport, "ct state": "new",
            "ct status": "dnat" if self.flow.dnat else "",
            "meta mark": self.flow.mark,
            "fib saddr type": "local" if is_local(p.src, self.local_ips) else "unicast",
            "fib daddr type": "local" if is_local(p.dst, self.local_ips) else "unicast",
        }.get(sel, "")


def _atom_eq(sel: str, actual: str | int, want: str) -> bool:
    want = want.strip()
    if sel in ("ip saddr", "ip daddr"):
        return in_net(str(actual), want)
    if sel.endswith("dport") or sel.endswith("sport"):
        if sel.endswith("sport"):
            return True
        lo, _, hi = want.partition("-")
        try:
            return (int(lo) <= int(actual) <= int(hi)) if hi else int(actual) == int(lo)
        except ValueError:
            return False
    if sel in ("ct state", "ct status"):
        return str(actual) in want.split(",")
    if sel == "meta mark":
        return int(actual) == int(want, 0)
    return str(actual) == want


def _key_match(sels: list[str], ctx: _Ctx, key: str) -> bool:
    parts = [k.strip() for k in key.split(" . ")]
    if len(parts) != len(sels):
        return False
    return all(_atom_eq(s, ctx.value(s), k) for s, k in zip(sels, parts, strict=True))


class NftWalker:
    def __init__(self, ruleset: Ruleset, local_ips: set[str], dynamic: dict[str, set[str]] | None = None) -> None:
        self.rs = ruleset
        self.local_ips = local_ips
        self.dynamic = dynamic or {}

    def base_chains(self, hook: str) -> list[tuple[Table, Chain]]:
        out = [(t, c) for t in self.rs.values() for c in t.chains.values() if c.hook == hook]
        return sorted(out, key=lambda tc: tc[1].priority)

    def hook(self, flow: Flow, hook: str) -> list[Flow]:
        flows = [flow]
        for table, chain in self.base_chains(hook):
            nxt: list[Flow] = []
            for f in flows:
                if f.verdict:
                    nxt.append(f)
                    continue
                for g, how in self._chain(table, chain.name, f, 0):
                    if how == "fall" and chain.policy == "drop":
                        g.verdict = "DROP"
                    nxt.append(g)
            flows = nxt
        return flows

    def _chain(self, table: Table, chain: str, flow: Flow, depth: int) -> list[tuple[Flow, str]]:
        if depth > MAX_DEPTH:
            raise RecursionError(f"jump depth over {MAX_DEPTH} at {table.name}/{chain}")
        return self._from(table, chain, 0, flow, depth)

    def _from(self, table: Table, chain: str, start: int, flow: Flow, depth: int) -> list[tuple[Flow, str]]:
        c = table.chains.get(chain)
        rules = c.rules if c else []
        for i in range(start, len(rules)):
            out = self._rule(table, chain, i, rules[i], flow, depth)
            if out is None:
                continue
            return out
        return [(flow, "fall")]

    def _verdict(self, table: Table, chain: str, i: int, verdict: str, flow: Flow, depth: int,
                 step: Step) -> list[tuple[Flow, str]]:
        ws = verdict.split()
        v = ws[0] if ws else ""
        if v in ("jump", "goto"):
            target = ws[1].strip('"')
            if target == "mark-for-masquerade" and not flow.masquerade_why:
                flow.masquerade_why = f"{table.name} {chain}: {step.rule}"
            out: list[tuple[Flow, str]] = []
            for f, how in self._chain(table, target, flow, depth + 1):
                if how == "stop" or f.verdict:
                    out.append((f, "stop"))
                elif v == "goto":
                    out.append((f, "fall"))
                else:
                    out += self._from(table, chain, i + 1, f, depth)
            return out
        if v == "return":
            return [(flow, "fall")]
        if v in ("drop", "reject"):
            flow.verdict = v.upper()
            flow.verdict_step = step
            return [(flow, "stop")]
        if v == "accept":
            return [(flow, "stop")]
        return self._from(table, chain, i + 1, flow, depth)

    def _rule(self, table: Table, chain: str, i: int, rule: str, flow: Flow,
              depth: int) -> list[tuple[Flow, str]] | None:
        """None when the rule does not match; else the flows out of the chain."""
        ws = _tokens(rule)
        ctx = _Ctx(flow, self.local_ips)
        notes: list[str] = []
        j = 0
        while j < len(ws):
            w = ws[j]
            if w == "comment":
                j += 2
                continue
            if w == "counter":
                j += 1
                while j < len(ws) and ws[j] in ("packets", "bytes"):
                    j += 2
                continue
            if w == "numgen":  # numgen random mod N vmap { 0 : goto a , 1 : goto b }
                n = int(ws[j + 3])
                close = ws.index("}", j)
                body = " ".join(ws[ws.index("{", j) + 1:close])
                out: list[tuple[Flow, str]] = []
                for e in _elements(body):
                    f = flow.fork(1 / n)
                    s = Step(table.name, chain, rule, f"numgen {e.key}: p={1 / n:.4g}, {e.verdict}")
                    f.steps.append(s)
                    out += self._verdict(table, chain, i, e.verdict, f, depth, s)
                return out
            if w == "mark" and ws[j + 1:j + 2] == ["set"] or ws[j:j + 3] == ["meta", "mark", "set"]:
                j = j + 2 if w == "mark" else j + 3
                expr = ws[j:j + 4]  # [meta] mark or|xor|and|& VALUE
                if expr[0] == "meta":
                    expr = expr[1:]
                op, val = expr[1], int(expr[2], 0)
                flow.mark = {"or": flow.mark | val, "|": flow.mark | val, "xor": flow.mark ^ val,
                             "^": flow.mark ^ val, "and": flow.mark & val, "&": flow.mark & val}[op]
                if op in ("or", "|") and table.name == "ip kube-proxy" and not flow.masquerade_why:  # v1.36+: inline
                    flow.masquerade_why = f"{table.name} {chain}: {rule}"
                notes.append(f"mark {flow.mark:#x}")
                j += 3 if ws[j] != "meta" else 4
                continue
            if w == "dnat" and "to" in ws[j + 1:j + 6] and ws[ws.index("to", j) + 1] == "numgen":
                # dnat ip addr . port to numgen random mod N map { 0 : IP . PORT , ... } (v1.36+)
                t = ws.index("to", j)
                n = int(ws[t + 4])
                body = " ".join(ws[ws.index("{", t) + 1:ws.index("}", t)])
                forks: list[tuple[Flow, str]] = []
                for e in _elements(body):
                    f = flow.fork(1 / n)
                    f.do_dnat(e.verdict.replace(" . ", ":"))
                    f.steps.append(Step(table.name, chain, rule,
                                        "; ".join([*notes, f"numgen {e.key}: p={1 / n:.4g}, DNAT to {f.dnat}"])))
                    forks.append((f, "stop"))
                return forks
            if w == "dnat" and "to" in ws[j + 1:j + 3]:
                flow.do_dnat(ws[ws.index("to", j) + 1])
                notes.append(f"DNAT to {flow.dnat}")
                step = Step(table.name, chain, rule, "; ".join(notes))
                flow.steps.append(step)
                return [(flow, "stop")]
            if w == "masquerade":
                flow.masquerade = True
                flow.masquerade_why = flow.masquerade_why or f"{table.name} {chain}: {rule}"  # v1.36+ hairpin
                notes.append("masquerade: source becomes the node's address")
                flow.steps.append(Step(table.name, chain, rule, "; ".join(notes)))
                return [(flow, "stop")]
            if w == "update":
                j += 2
                if ws[j:j + 1] == ["{"]:
                    j = ws.index("}", j) + 1
                continue
            if w in _VERDICTS:
                verdict = " ".join(ws[j:j + 2]) if w in ("jump", "goto") else w
                step = Step(table.name, chain, rule, "; ".join(notes))
                flow.steps.append(step)
                return self._verdict(table, chain, i, verdict, flow, depth, step)
            # a match: SELECTOR [. SELECTOR]* [op] (VALUE | @set | { ... } | vmap ...)
            sels = []
            k = j
            sel = _selector(ws, k)
            if sel is None:
                notes.append(f"assumed to match: {w}")
                j += 1
                continue
            while sel is not None:
                sels.append(sel[0])
                k = sel[1]
                if ws[k:k + 1] == ["."]:
                    sel = _selector(ws, k + 1)
                    continue
                sel = None
            mask = None
            if ws[k:k + 1] in (["&"], ["and"]):
                mask, k = int(ws[k + 1], 0), k + 2
            negate = False
            if ws[k:k + 1] in (["!="], ["=="]):
                negate, k = ws[k] == "!=", k + 1
            if ws[k:k + 1] == ["vmap"]:
                if ws[k + 1].startswith("@"):
                    name = ws[k + 1][1:]
                    elements = table.sets.get(name, [])
                    shown = f"@{name}"
                    k += 2
                else:
                    close = ws.index("}", k)
                    elements = _elements(" ".join(ws[k + 2:close]))
                    shown = "{...}"
                    k = close + 1
                hit = next((e for e in elements if _key_match(sels, ctx, e.key)), None)
                if hit is None:
                    return None
                step = Step(table.name, chain, rule, "; ".join([*notes, f"{shown} element {hit.text()}"]))
                flow.steps.append(step)
                return self._verdict(table, chain, i, hit.verdict, flow, depth, step)
            value = ws[k] if k < len(ws) else ""
            if value.startswith("@"):
                name = value[1:]
                keys = [e.key for e in table.sets.get(name, [])] + sorted(self.dynamic.get(name, ()))
                ok = any(_key_match(sels, ctx, key) for key in keys)
                if name.startswith("affinity-") and ok:
                    flow.affinity = rule
                    notes.append(f"session affinity: {flow.packet.src} is in set {name}")
                k += 1
            elif value == "{":
                close = ws.index("}", k)
                items = [x for x in ws[k + 1:close] if x != ","]
                ok = any(_key_match(sels, ctx, x) for x in items)
                k = close + 1
            elif mask is not None:
                ok = (int(ctx.value(sels[0])) & mask) == int(value, 0)
                k += 1
            else:
                ok = _key_match(sels, ctx, value)
                k += 1
            if ok == negate:
                return None
            j = k
        step = Step(table.name, chain, rule, "; ".join(notes))
        flow.steps.append(step)
        return self._from(table, chain, i + 1, flow, depth)


def trace(script: str, packet: Packet, node_ips: list[str], dynamic: dict[str, set[str]] | None = None) -> Trace:
    """A new connection through one node holding kube-proxy's nftables rules `script`; `dynamic`:
    the affinity sets' contents."""
    local = set(node_ips)
    return through_node(NftWalker(parse_script(script), local, dynamic), packet, local)
