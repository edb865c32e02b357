"""What a packet walk produces, for both kernel frameworks (iptables_walk, nftables_walk). Pure.

A walk follows one new connection's first packet through one netfilter hook of one node, as the
kernel would, and returns every way it can go: random choices (`-m statistic`, `numgen random`)
fork the walk, each branch with its probability, so a Service with three endpoints gives three
flows of p=1/3. A flow records each rule that matched, as `iptables -S` / `nft list` prints it.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
MASQ_BIT = 0x4000  # kube-proxy's masquerade mark (--masquerade-bit 14)


@dataclass
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"


@dataclass(frozen=True)
class Step:
    table: str     # "nat", "filter" (iptables) or "ip kube-proxy", "ip knet-netpol" (nftables)
    chain: str
    rule: str      # as `iptables -S` / `nft list` prints it
    note: str = ""  # what it did: "DNAT to 10.244.1.5:80 (p=0.5)", "mark 0x4000", ...

    def text(self) -> str:
        return f"{self.table} {self.chain}: {self.rule}" + (f"  [{self.note}]" if self.note else "")


@dataclass
class Flow:
    """One way the packet can go. `packet` is as it is now (after any DNAT)."""
    packet: Packet
    node: str = ""
    mark: int = 0
    probability: float = 1.0
    steps: list[Step] = field(default_factory=list)
    dnat: str = ""            # "ip:port" the destination was rewritten to
    original_dst: str = ""    # "ip:port" before DNAT
    masquerade: bool = False  # source rewritten to the node's address on the way out
    masquerade_why: str = ""  # the rule that marked the packet for masquerade
    affinity: str = ""        # the session-affinity rule that pinned the endpoint, if one did
    verdict: str = ""         # "" (accepted so far), "DROP" or "REJECT"
    verdict_step: Step | None = None

    def fork(self, p: float) -> Flow:
        f = copy.copy(self)
        f.packet = copy.copy(self.packet)
        f.steps = list(self.steps)
        f.probability = self.probability * p
        return f

    def do_dnat(self, to: str) -> None:
        ip, _, port = to.rpartition(":")
        if not ip:
            ip, port = to, str(self.packet.dport)
        self.original_dst = self.original_dst or f"{self.packet.dst}:{self.packet.dport}"
        self.dnat = f"{ip}:{port}"
        self.packet.dst, self.packet.dport = ip, int(port)


class Walker(Protocol):
    def hook(self, flow: Flow, hook: str) -> list[Flow]: ...


@lru_cache(maxsize=65536)
def _net(spec: str) -> tuple[int, int] | None:
    """(network address, mask) of an IPv4 CIDR or address; None if it is not one."""
    try:
        net = ipaddress.IPv4Network(spec, strict=False)
    except ValueError:
        return None
    return int(net.network_address), int(net.netmask)


@lru_cache(maxsize=65536)
def _addr(text: str) -> int | None:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def in_net(addr: str, spec: str) -> bool:
    if addr == spec:
        return True
    net, a = _net(spec), _addr(addr)
    return net is not None and a is not None and a & net[1] == net[0]


def is_local(addr: str, local_ips: set[str]) -> bool:
    return addr in local_ips or in_net(addr, "127.0.0.0/8")


def parse_mark(spec: str) -> tuple[int, int]:
    """"0x4000/0x4000" -> (value, mask); a mark without mask has mask 0xffffffff."""
    value, _, mask = spec.partition("/")
    return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF


@dataclass
class Trace:
    """Every way a new connection can go through one node."""
    flows: list[Flow]

    @property
    def endpoints(self) -> list[str]:
        return list(dict.fromkeys(f.dnat for f in self.flows if f.dnat and not f.verdict))

    @property
    def verdict(self) -> str:
        verdicts = {f.verdict for f in self.flows}
        return verdicts.pop() if len(verdicts) == 1 else ""

    @property
    def masquerade(self) -> bool:
        return any(f.mark & MASQ_BIT or f.masquerade for f in self.flows if not f.verdict)

    @property
    def output(self) -> str:
        return self.verdict or ", ".join(self.endpoints)


def through_node(walker: Walker, packet: Packet, local_ips: set[str]) -> Trace:
    """A new connection arriving at a node (or, from one of its addresses, leaving it): prerouting
    or output, then input (to a local address) or forward and postrouting."""
    first = "output" if is_local(packet.src, local_ips) else "prerouting"
    out: list[Flow] = []
    for f in walker.hook(Flow(packet), first):
        local_dst = is_local(f.packet.dst, local_ips)
        if f.verdict:
            out.append(f)
        elif first == "output":  # locally generated: postrouting, then input when it stays here
            for g in walker.hook(f, "postrouting"):
                out += walker.hook(g, "input") if local_dst and not g.verdict else [g]
        elif local_dst:
            out += walker.hook(f, "input")
        else:
            for g in walker.hook(f, "forward"):
                out += [g] if g.verdict else walker.hook(g, "postrouting")
    return Trace(out)
