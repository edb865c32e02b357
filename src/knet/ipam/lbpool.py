"""The LoadBalancer address pool: which addresses Services of `type: LoadBalancer` get, and who
has which. Pure (no I/O): the service-lb controller rebuilds it from the Services' status after a
restart and asks it for addresses; the node's L2 announcer asks it only whether an address is
the pool's (it answers ARP for no other).

A pool is written as MetalLB's IPAddressPool `addresses` are: ranges `A-B` or CIDRs, comma
separated (`172.30.5.192-172.30.5.254`, `172.30.5.224/27`). The default is the upper quarter of
the node network, past every node's address (upstream kind's documented MetalLB pool is the top
of its docker network the same way).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

IPv4 = ipaddress.IPv4Address


class PoolError(ValueError):
    """A pool text that is not ranges/CIDRs, or one that clashes with the node network."""


@dataclass(frozen=True)
class Pool:
    ranges: tuple[tuple[IPv4, IPv4], ...]  # inclusive [first, last], sorted, disjoint

    def __contains__(self, ip: object) -> bool:
        try:
            addr = IPv4(str(ip))
        except ValueError:
            return False
        return any(a <= addr <= b for a, b in self.ranges)

    def __iter__(self):
        for a, b in self.ranges:
            for n in range(int(a), int(b) + 1):
                yield IPv4(n)

    def __len__(self) -> int:
        return sum(int(b) - int(a) + 1 for a, b in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ranges)


def parse_pool(text: str) -> Pool:
    """`A-B,C/27,D` -> Pool; PoolError for anything else (IPv4 only, as knet's node network)."""
    ranges: list[tuple[IPv4, IPv4]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                first, last = (IPv4(x.strip()) for x in part.split("-", 1))
            elif "/" in part:
                net = ipaddress.IPv4Network(part, strict=False)
                first, last = net[0], net[-1]
            else:
                first = last = IPv4(part)
        except ValueError as exc:
            raise PoolError(f"load balancer pool {part!r}: {exc}") from exc
        if last < first:
            raise PoolError(f"load balancer pool {part!r}: the range ends before it starts")
        ranges.append((first, last))
    if not ranges:
        raise PoolError("load balancer pool is empty")
    ranges.sort()
    for (_, last), (first, _) in zip(ranges, ranges[1:], strict=False):
        if first <= last:
            raise PoolError(f"load balancer pool {text!r}: ranges overlap")
    return Pool(tuple(ranges))


def default_pool(node_network: str, node_ips: Iterable[str]) -> Pool | None:
    """The upper quarter of the node network (without its broadcast address), starting past the
    last node address; None when no address is left there."""
    net = ipaddress.IPv4Network(node_network)
    size = net.num_addresses
    first = int(net[0]) + size - size // 4
    nodes = [int(IPv4(ip)) for ip in node_ips]
    if nodes:
        first = max(first, max(nodes) + 1)
    last = int(net[-1]) - 1  # not the broadcast address
    if first > last:
        return None
    return Pool(((IPv4(first), IPv4(last)),))


def check_pool(pool: Pool, node_network: str, reserved: Iterable[str]) -> None:
    """PoolError unless every address is a usable host of the node network (the host routes it on
    the bridge; the nodes announce it there) that no node and not the host has."""
    net = ipaddress.IPv4Network(node_network)
    for a, b in pool.ranges:
        if a not in net or b not in net:
            raise PoolError(f"load balancer pool {pool} must lie inside the node network {net}")
        if a == net[0] or b == net[-1]:
            raise PoolError(f"load balancer pool {pool} must not hold {net}'s network or broadcast address")
    for ip in reserved:
        if ip in pool:
            raise PoolError(f"load balancer pool {pool} holds {ip}, a node's or the host's address")


# ---- allocation ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Allocation:
    ip: str | None
    error: str = ""  # why there is none, for the Service's Event


@dataclass
class Allocator:
    """Who (a Service key, `ns/name`) holds which address of the pool."""

    pool: Pool
    owners: dict[str, str] = field(default_factory=dict)  # ip -> service key

    def holder(self, ip: str) -> str | None:
        return self.owners.get(ip)

    def held_by(self, key: str) -> str | None:
        return next((ip for ip, k in self.owners.items() if k == key), None)

    def assign(self, key: str, requested: str | None = None) -> Allocation:
        """The address `key` gets: the one it asked for (spec.loadBalancerIP) if that is the pool's
        and free, else what it holds, else the lowest free one. A Service that asked for an
        address it cannot have gets none (it stays pending, as on a cloud)."""
        current = self.held_by(key)
        if requested:
            try:
                requested = str(IPv4(requested))
            except ValueError:
                return Allocation(None, f"{requested!r} is not a valid IPv4 address")
            if requested not in self.pool:
                return Allocation(None, f"{requested} is not allowed in config (not in the pool {self.pool})")
            holder = self.owners.get(requested)
            if holder is not None and holder != key:
                return Allocation(None, f"{requested} is already in use by {holder}")
            if current and current != requested:
                self.release(key)
            self.owners[requested] = key
            return Allocation(requested)
        if current:
            return Allocation(current)
        for ip in self.pool:
            if str(ip) not in self.owners:
                self.owners[str(ip)] = key
                return Allocation(str(ip))
        return Allocation(None, f"no available IPs in the pool {self.pool}")

    def claim(self, key: str, ip: str) -> bool:
        """Take `ip` for `key` as its status says it has it (rebuilding after a restart); False
        when it is not the pool's or another Service holds it already."""
        if ip not in self.pool or self.owners.get(ip, key) != key:
            return False
        current = self.held_by(key)
        if current and current != ip:
            return False
        self.owners[ip] = key
        return True

    def release(self, key: str) -> str | None:
        ip = self.held_by(key)
        if ip is not None:
            del self.owners[ip]
        return ip
