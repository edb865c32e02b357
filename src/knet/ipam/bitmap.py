"""Pure bitmap allocators for IP ranges and port ranges (no I/O).

Kubernetes allocates Service ClusterIPs and NodePorts from a range split in two bands
(KEP-3070 for IPs, KEP-3668 for ports): a small *static* band at the start of the range that
dynamic allocation only uses when the *dynamic* band is full, so users can pick a fixed
address or port there with little chance of a clash. The static band is
min(max(16, size // 16), 256) entries long for IPs and min(max(16, size // 32), 128) for ports.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field


class RangeFull(Exception):
    """No free entry is left in the range."""


class NotInRange(Exception):
    """The requested entry lies outside the allocatable range."""


class AlreadyAllocated(Exception):
    """The requested entry is taken."""


def ip_static_band_size(size: int) -> int:
    return min(max(16, size // 16), 256)


def port_static_band_size(size: int) -> int:
    return min(max(16, size // 32), 128)


@dataclass
class BandedBitmap:
    """Offsets 0..size-1, of which 0..static_size-1 are the static band."""

    size: int
    static_size: int
    rng: random.Random = field(default_factory=random.Random)
    _used: set[int] = field(default_factory=set)

    def allocate(self, offset: int) -> None:
        if not 0 <= offset < self.size:
            raise NotInRange(offset)
        if offset in self._used:
            raise AlreadyAllocated(offset)
        self._used.add(offset)

    def allocate_next(self) -> int:
        """A random free offset, from the dynamic band first, then the static band."""
        static = min(self.static_size, self.size)
        for lo, hi in ((static, self.size), (0, static)):
            offset = self._random_free(lo, hi)
            if offset is not None:
                self._used.add(offset)
                return offset
        raise RangeFull()

    def release(self, offset: int) -> None:
        self._used.discard(offset)

    def has(self, offset: int) -> bool:
        return offset in self._used

    @property
    def free(self) -> int:
        return self.size - len(self._used)

    def _random_free(self, lo: int, hi: int) -> int | None:
        span = hi - lo
        if span <= 0:
            return None
        start = self.rng.randrange(span)
        # A random start then a linear scan: uniform enough and O(span) only when nearly full.
        for i in range(span):
            offset = lo + (start + i) % span
            if offset not in self._used:
                return offset
        return None


class IPRangeAllocator:
    """ClusterIPs of a service CIDR. The network address and (for IPv4) the broadcast address
    are never handed out, as in Kubernetes; offset 0 is the CIDR's first usable address."""

    def __init__(self, cidr: str, rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=True)
        self._base = int(self.network.network_address) + 1
        total = self.network.num_addresses
        usable = total - 2 if self.network.version == 4 else total - 1
        usable = max(0, min(usable, 1 << 24))  # Kubernetes caps very large IPv6 ranges too
        self._bitmap = BandedBitmap(usable, ip_static_band_size(usable), rng or random.Random())

    def contains(self, ip: str) -> bool:
        return self._offset(ip) is not None

    def allocate(self, ip: str) -> None:
        offset = self._offset(ip)
        if offset is None:
            raise NotInRange(ip)
        self._bitmap.allocate(offset)

    def allocate_next(self) -> str:
        return str(ipaddress.ip_address(self._base + self._bitmap.allocate_next()))

    def release(self, ip: str) -> None:
        offset = self._offset(ip)
        if offset is not None:
            self._bitmap.release(offset)

    def has(self, ip: str) -> bool:
        offset = self._offset(ip)
        return offset is not None and self._bitmap.has(offset)

    @property
    def free(self) -> int:
        return self._bitmap.free

    def _offset(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr.version != self.network.version:
            return None
        offset = int(addr) - self._base
        return offset if 0 <= offset < self._bitmap.size else None


class PortRangeAllocator:
    """NodePorts of a range such as 30000-32767 (both ends included)."""

    def __init__(self, first: int, last: int, rng: random.Random | None = None) -> None:
        if last < first:
            raise ValueError(f"empty port range {first}-{last}")
        self.first, self.last = first, last
        size = last - first + 1
        self._bitmap = BandedBitmap(size, port_static_band_size(size), rng or random.Random())

    @classmethod
    def parse(cls, text: str, rng: random.Random | None = None) -> PortRangeAllocator:
        """`30000-32767`, `30000+2767` or a single port, as kube-apiserver's flag accepts."""
        text = text.strip()
        if "+" in text:
            base, extra = text.split("+", 1)
            return cls(int(base), int(base) + int(extra), rng)
        if "-" in text:
            lo, hi = text.split("-", 1)
            return cls(int(lo), int(hi), rng)
        return cls(int(text), int(text), rng)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def contains(self, port: int) -> bool:
        return self.first <= port <= self.last

    def allocate(self, port: int) -> None:
        if not self.contains(port):
            raise NotInRange(port)
        self._bitmap.allocate(port - self.first)

    def allocate_next(self) -> int:
        return self.first + self._bitmap.allocate_next()

    def release(self, port: int) -> None:
        if self.contains(port):
            self._bitmap.release(port - self.first)

    def has(self, port: int) -> bool:
        return self.contains(port) and self._bitmap.has(port - self.first)

    @property
    def free(self) -> int:
        return self._bitmap.free
