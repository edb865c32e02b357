"""CidrSet: hands out fixed-size subnets of a cluster CIDR, as kube-controller-manager's
range allocator does (pkg/controller/nodeipam/ipam/cidrset): the next free subnet after the last
one handed out, wrapping around; `occupy` marks subnets already in use (rebuilt from the nodes
after a restart); `release` frees one. Pure, no I/O.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network

Network = IPv4Network | IPv6Network


class CIDRRangeNoCIDRsRemainingError(Exception):
    """The cluster CIDR is exhausted (upstream: "CIDR allocation failed; there are no remaining CIDRs left")."""


class CidrSet:
    def __init__(self, cluster_cidr: str | Network, node_mask_size: int) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=False)
        if node_mask_size < self.cluster.prefixlen or node_mask_size > self.cluster.max_prefixlen:
            raise ValueError(f"node mask /{node_mask_size} does not fit in {self.cluster}")
        if node_mask_size - self.cluster.prefixlen > 16:
            # upstream refuses more than 2^16 node subnets for the same reason: the bitmap size
            raise ValueError(f"node mask /{node_mask_size} makes too many subnets of {self.cluster}")
        self.node_mask_size = node_mask_size
        self.max_cidrs = 1 << (node_mask_size - self.cluster.prefixlen)
        self._step = 1 << (self.cluster.max_prefixlen - node_mask_size)
        self._used: set[int] = set()
        self._next_candidate = 0

    @property
    def allocated(self) -> int:
        return len(self._used)

    def _subnet(self, index: int) -> Network:
        base = int(self.cluster.network_address) + index * self._step
        return ipaddress.ip_network((base, self.node_mask_size))

    def _index(self, cidr: str | Network) -> int:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != self.cluster.version or not net.subnet_of(self.cluster):  # type: ignore[arg-type]
            raise ValueError(f"{net} is not in the cluster CIDR {self.cluster}")
        if net.prefixlen != self.node_mask_size:
            raise ValueError(f"{net} is not a /{self.node_mask_size}")
        return (int(net.network_address) - int(self.cluster.network_address)) // self._step

    def allocate_next(self) -> Network:
        for offset in range(self.max_cidrs):
            index = (self._next_candidate + offset) % self.max_cidrs
            if index not in self._used:
                self._used.add(index)
                self._next_candidate = (index + 1) % self.max_cidrs
                return self._subnet(index)
        raise CIDRRangeNoCIDRsRemainingError(
            f"CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range "
            f"{self.cluster}")

    def occupy(self, cidr: str | Network) -> None:
        self._used.add(self._index(cidr))

    def release(self, cidr: str | Network) -> None:
        self._used.discard(self._index(cidr))

    def is_allocated(self, cidr: str | Network) -> bool:
        return self._index(cidr) in self._used

    def contains(self, cidr: str | Network) -> bool:
        try:
            self._index(cidr)
        except ValueError:
            return False
        return True
