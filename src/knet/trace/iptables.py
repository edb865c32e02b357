"""Walk a packet through rendered kube-proxy iptables rules, in Python (the simulated dataplane and
the packet-flow tests, like upstream's runPacketFlowTests).

Pure: the input is iptables-restore text. A packet enters nat KUBE-SERVICES (PREROUTING, or OUTPUT
for node-originated packets); `-m statistic` rules are followed both ways, so every endpoint the
packet could reach is reported; `-m recent --rcheck` never matches (no affinity state yet). A packet
that is not DNATed then meets the filter chains kube-proxy writes (REJECT/DROP).
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

MAX_DEPTH = 50


@dataclass
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"


@dataclass
class Trace:
    endpoints: list[str] = field(default_factory=list)  # every "ip:port" the packet may be DNATed to
    verdict: str = ""  # "" (accepted, DNATed or not), "REJECT" or "DROP"
    masquerade: bool = False

    @property
    def output(self) -> str:
        return self.verdict or ", ".join(self.endpoints)


def parse(text: str) -> dict[str, dict[str, list[list[str]]]]:
    tables: dict[str, dict[str, list[list[str]]]] = {}
    table: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {})
        elif line.startswith(":"):
            table.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            words = shlex.split(line)
            table.setdefault(words[1], []).append(words[2:])
    return tables


def _in(addr: str, spec: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(spec, strict=False)


class _Walker:
    def __init__(self, tables: dict[str, dict[str, list[list[str]]]], node_ips: set[str]) -> None:
        self.tables = tables
        self.node_ips = node_ips

    def local(self, addr: str) -> bool:
        return addr in self.node_ips or addr.startswith("127.")

    def matches(self, rule: list[str], p: Packet, mark: bool) -> bool | None:
        """True/False; None for a random (statistic) match, which is followed both ways."""
        i, negate, random = 0, False, False
        while i < len(rule):
            w = rule[i]
            if w == "!":
                negate = True
                i += 1
                continue
            ok = True
            if w in ("-s", "-d"):
                ok = _in(p.src if w == "-s" else p.dst, rule[i + 1])
                i += 2
            elif w == "-p":
                ok = rule[i + 1] == p.proto
                i += 2
            elif w == "--dport":
                ok = int(rule[i + 1]) == p.dport
                i += 2
            elif w in ("--dst-type", "--src-type"):
                ok = self.local(p.dst if w == "--dst-type" else p.src) == (rule[i + 1] == "LOCAL")
                i += 2
            elif w == "--mark":
                ok = mark
                i += 2
            elif w == "--probability":
                random = True
                i += 2
            elif w == "--rcheck":
                ok = False
                i += 1
            elif w == "--ctstate":
                ok = "NEW" in rule[i + 1].split(",")
                i += 2
            elif w in ("-j", "-g"):
                break
            elif w in ("-m", "--comment", "--mode", "--name", "--seconds", "--nfacct-name"):
                i += 2
                continue
            else:
                i += 1
                continue
            if ok == negate:
                return False
            negate = False
        return None if random else True

    def walk(self, table: str, chain: str, p: Packet, out: Trace, mark: list[bool], depth: int = 0) -> str:
        """Returns "continue" (fell off the chain / RETURN) or a terminal verdict."""
        if depth > MAX_DEPTH:
            raise RecursionError(f"jump depth over {MAX_DEPTH} at {chain}")
        for rule in self.tables.get(table, {}).get(chain, []):
            m = self.matches(rule, p, mark[0])
            if m is False:
                continue
            target = rule[rule.index("-j") + 1] if "-j" in rule else ""
            if target == "KUBE-MARK-MASQ":
                mark[0] = True
                out.masquerade = True
                continue
            if target == "MARK" or not target:
                continue
            if target == "DNAT":
                dest = rule[rule.index("--to-destination") + 1]
                if dest not in out.endpoints:
                    out.endpoints.append(dest)
                if m is True:
                    return "DNAT"
                continue
            if target == "RETURN":
                if m is True:
                    return "continue"
                continue
            if target in ("ACCEPT", "DROP", "REJECT"):
                return target
            verdict = self.walk(table, target, p, out, mark, depth + 1)
            if verdict != "continue" and m is True:
                return verdict
        return "continue"


def trace(text: str, packet: Packet, node_ips: list[str]) -> Trace:
    tables = parse(text)
    w = _Walker(tables, set(node_ips))
    out = Trace()
    mark = [False]
    w.walk("nat", "KUBE-SERVICES", packet, out, mark)
    if out.endpoints:
        return out
    dst_local = w.local(packet.dst)
    chains = (["KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES"] if dst_local else
              ["KUBE-PROXY-FIREWALL", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"])
    for chain in chains:
        verdict = w.walk("filter", chain, packet, out, mark)
        if verdict in ("DROP", "REJECT"):
            out.verdict = verdict
            out.masquerade = False
            return out
    return out
