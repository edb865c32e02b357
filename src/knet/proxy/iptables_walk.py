"""Walk a packet through iptables rules (iptables-save text: kube-proxy's, the kubelet's, the
policy controller's, whatever the node holds), as the kernel would. Pure.

Hooks: prerouting = nat PREROUTING; output = nat OUTPUT then filter OUTPUT; forward = filter
FORWARD; input = filter INPUT; postrouting = nat POSTROUTING (a new connection's first packet, the
only one the nat table sees). `-m statistic --mode random` forks the walk; `-m recent --rcheck`
matches when the source is in that recent list (`recent`: list name -> source addresses, as
/proc/net/xt_recent holds them); `-g` returns to the chain that jumped to the current one when the
goto'd chain ends. Matches this walker does not know are taken as matching and named in the step's
note, so a surprise shows instead of hiding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from knet.proxy import restore
from knet.proxy.iptables import quote
from knet.proxy.walk import Flow, Packet, Step, Trace, in_net, is_local, parse_mark, through_node

MAX_DEPTH = 64
HOOK_CHAINS = {
    "prerouting": (("nat", "PREROUTING"),),
    "input": (("filter", "INPUT"),),
    "forward": (("filter", "FORWARD"),),
    "output": (("nat", "OUTPUT"), ("filter", "OUTPUT")),
    "postrouting": (("nat", "POSTROUTING"),),
}
MARK_MASQ_CHAIN = "KUBE-MARK-MASQ"
# options that take one value and never decide a match here
_INERT = {"--comment", "--mode", "--name", "--seconds", "--nfacct-name", "--reject-with", "--mask", "--hitcount",
          "--to-destination", "--to-source", "--set-xmark", "--set-mark", "--or-mark", "--xor-mark",
          "--and-mark", "--log-prefix", "--log-level", "--limit-iface-in", "--limit-iface-out"}
_FLAGS = {"--reap", "--rsource", "--set", "--random", "--random-fully", "--persistent", "--physdev-is-bridged",
          "--physdev-is-in", "--physdev-is-out"}


@dataclass(frozen=True)
class Rule:
    text: str                          # "-A CHAIN ..." as iptables -S prints it
    matches: tuple[tuple[bool, str, str], ...]  # (negated, option, value)
    target: str
    goto: bool
    target_args: dict[str, str] = field(default_factory=dict)
    probability: float | None = None
    comment: str = ""
    recent_check: str = ""             # --rcheck on this list name
    unknown: tuple[str, ...] = ()


@lru_cache(maxsize=65536)
def parse_rule(chain: str, rest: str) -> Rule:
    ws = restore.words(rest)
    matches: list[tuple[bool, str, str]] = []
    args: dict[str, str] = {}
    unknown: list[str] = []
    target, goto, prob, comment, rcheck, recent_name = "", False, None, "", False, ""
    i, negate = 0, False
    while i < len(ws):
        w = ws[i]
        if w == "!":
            negate = True
            i += 1
            continue
        if w in ("-j", "-g"):
            target, goto = ws[i + 1], w == "-g"
            i += 2
            while i < len(ws):  # target options
                if i + 1 < len(ws) and not ws[i + 1].startswith("--"):
                    args[ws[i]] = ws[i + 1]
                    i += 2
                else:
                    args[ws[i]] = ""
                    i += 1
            break
        if w == "-m":
            i += 2
            continue
        if w in ("-s", "-d", "-p", "-i", "-o", "--dport", "--sport", "--dst-type", "--src-type", "--mark",
                 "--ctstate", "--state", "--dports", "--sports"):
            matches.append((negate, w, ws[i + 1]))
            i += 2
        elif w == "--probability":
            prob = float(ws[i + 1])
            i += 2
        elif w == "--rcheck":
            rcheck = True
            i += 1
        elif w == "--comment":
            comment = ws[i + 1]
            i += 2
        elif w == "--name":
            recent_name = ws[i + 1]
            i += 2
        elif w in _INERT:
            i += 2
        elif w in _FLAGS:
            i += 1
        else:
            unknown.append(w)
            i += 1
        negate = False
    text = " ".join(["-A", chain, *(quote(w) for w in ws)])
    return Rule(text, tuple(matches), target, goto, args, prob, comment, recent_name if rcheck else "",
                tuple(unknown))


def _port_in(port: int, spec: str) -> bool:
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        if (int(lo) <= port <= int(hi)) if hi else port == int(lo):
            return True
    return False


class IptablesWalker:
    def __init__(self, tables: dict[str, dict[str, list[str]]], local_ips: set[str],
                 recent: dict[str, set[str]] | None = None, policies: dict[str, dict[str, str]] | None = None,
                 interfaces: dict[str, str] | None = None) -> None:
        self.tables = tables
        self.local_ips = local_ips
        self.recent = recent or {}
        self.policies = policies or {}
        self.interfaces = interfaces or {}  # "in"/"out" -> interface name, when known

    @classmethod
    def from_save(cls, text: str, local_ips: set[str], **kw) -> IptablesWalker:
        policies = {t.name: t.chains() for t in restore.parse(text, strict=False)}
        return cls(restore.rules_by_table(text), local_ips, policies=policies, **kw)

    # -- matching ------------------------------------------------------------------------------

    def _match(self, opt: str, value: str, p: Packet, mark: int, dnat: bool = False) -> bool:
        if opt == "-s":
            return in_net(p.src, value)
        if opt == "-d":
            return in_net(p.dst, value)
        if opt == "-p":
            return value in (p.proto, "all")
        if opt in ("--dport", "--dports"):
            return _port_in(p.dport, value)
        if opt in ("--sport", "--sports"):
            return True  # source ports are the client's choice: any
        if opt == "--dst-type":
            return ("LOCAL" if is_local(p.dst, self.local_ips) else "UNICAST") == value
        if opt == "--src-type":
            return ("LOCAL" if is_local(p.src, self.local_ips) else "UNICAST") == value
        if opt == "--mark":
            v, m = parse_mark(value)
            return mark & m == v
        if opt in ("--ctstate", "--state"):  # a new connection's first packet; DNAT once DNATed
            return bool({"NEW", *(("DNAT",) if dnat else ())} & set(value.split(",")))
        if opt in ("-i", "-o"):
            known = self.interfaces.get("in" if opt == "-i" else "out")
            if known is None:
                return True
            return known == value or (value.endswith("+") and known.startswith(value[:-1]))
        return True

    def _matches(self, rule: Rule, flow: Flow) -> bool:
        p = flow.packet
        for negate, opt, value in rule.matches:
            if self._match(opt, value, p, flow.mark, bool(flow.dnat)) == negate:
                return False
        if rule.recent_check and p.src not in self.recent.get(rule.recent_check, ()):
            return False
        return True

    # -- walking -------------------------------------------------------------------------------

    def hook(self, flow: Flow, hook: str) -> list[Flow]:
        flows = [flow]
        for table, chain in HOOK_CHAINS[hook]:
            nxt: list[Flow] = []
            for f in flows:
                if f.verdict:
                    nxt.append(f)
                    continue
                for g, how in self._chain(table, chain, f, 0):
                    if how == "fall" and self.policies.get(table, {}).get(chain, "ACCEPT") == "DROP":
                        g.verdict = "DROP"
                    nxt.append(g)
            flows = nxt
        return flows

    def _chain(self, table: str, chain: str, flow: Flow, depth: int) -> list[tuple[Flow, str]]:
        if depth > MAX_DEPTH:
            raise RecursionError(f"jump depth over {MAX_DEPTH} at {table}/{chain}")
        return self._from(table, chain, 0, flow, depth)

    def _from(self, table: str, chain: str, start: int, flow: Flow, depth: int) -> list[tuple[Flow, str]]:
        """The flows out of `chain` from rule `start`: (flow, "fall") when it falls off the end or
        RETURNs, (flow, "stop") when a terminating target decided (verdict, DNAT, ACCEPT)."""
        rules = self.tables.get(table, {}).get(chain, [])
        for i in range(start, len(rules)):
            rule = parse_rule(chain, rules[i])
            if not self._matches(rule, flow):
                continue
            if rule.probability is not None and rule.probability < 1.0:
                p = rule.probability
                taken = flow.fork(p)
                out = self._apply(table, chain, i, rule, taken, depth, note=f"p={p:.4g}")
                out += self._from(table, chain, i + 1, flow.fork(1 - p), depth)
                return out
            return self._apply(table, chain, i, rule, flow, depth)
        return [(flow, "fall")]

    def _apply(self, table: str, chain: str, i: int, rule: Rule, flow: Flow, depth: int,
               note: str = "") -> list[tuple[Flow, str]]:
        notes = [note] if note else []
        if rule.unknown:
            notes.append(f"assumed to match: {' '.join(rule.unknown)}")
        if rule.recent_check:
            flow.affinity = rule.text
            notes.append(f"session affinity: {flow.packet.src} is in recent list {rule.recent_check}")
        t = rule.target
        cont = True
        if t == "DNAT":
            flow.do_dnat(rule.target_args.get("--to-destination", ""))
            notes.append(f"DNAT to {flow.dnat}")
            cont = False
        elif t == "MARK":
            flow.mark = _mark(flow.mark, rule.target_args)
            notes.append(f"mark {flow.mark:#x}")
        elif t == "MASQUERADE":
            flow.masquerade = True
            notes.append("masquerade: source becomes the node's address")
            cont = False
        elif t in ("SNAT", "ACCEPT"):
            cont = False
        elif t in ("DROP", "REJECT"):
            flow.verdict, cont = t, False
        elif t == "RETURN":
            flow.steps.append(Step(table, chain, rule.text, "; ".join(notes)))
            return [(flow, "fall")]
        elif t in ("LOG", "CONNMARK", "NFLOG", "CT", "TRACE", ""):
            pass
        else:  # a user chain
            if t == MARK_MASQ_CHAIN and not flow.masquerade_why:
                flow.masquerade_why = rule.text
            step = Step(table, chain, rule.text, "; ".join(notes))
            flow.steps.append(step)
            out: list[tuple[Flow, str]] = []
            for f, how in self._chain(table, t, flow, depth + 1):
                if how == "stop" or f.verdict:
                    out.append((f, "stop"))
                elif rule.goto:
                    out.append((f, "fall"))
                else:
                    out += self._from(table, chain, i + 1, f, depth)
            return out
        step = Step(table, chain, rule.text, "; ".join(notes))
        flow.steps.append(step)
        if flow.verdict:
            flow.verdict_step = step
        if not cont:
            return [(flow, "stop")]
        return self._from(table, chain, i + 1, flow, depth)


def _mark(mark: int, args: dict[str, str]) -> int:
    if "--set-xmark" in args:
        v, m = parse_mark(args["--set-xmark"])
        return (mark & ~m & 0xFFFFFFFF) ^ v
    if "--set-mark" in args:
        v, m = parse_mark(args["--set-mark"])
        return (mark & ~m & 0xFFFFFFFF) | v
    if "--or-mark" in args:
        return mark | int(args["--or-mark"], 0)
    if "--xor-mark" in args:
        return mark ^ int(args["--xor-mark"], 0)
    if "--and-mark" in args:
        return mark & int(args["--and-mark"], 0)
    return mark


# -- the packet-flow tests' entry point -------------------------------------------------------

def trace(text: str, packet: Packet, node_ips: list[str], recent: dict[str, set[str]] | None = None) -> Trace:
    """A new connection through one node holding kube-proxy's rules `text` (its iptables-restore
    input; the jumps from the built-in chains added as kube-proxy adds them); `recent`: the
    affinity lists' contents."""
    from knet.proxy.iptables import merge_with_foreign

    local = set(node_ips)
    walker = IptablesWalker.from_save(merge_with_foreign({}, text), local, recent=recent)
    return through_node(walker, packet, local)
