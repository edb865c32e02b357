"""Names and addresses of a cluster's network pieces: pure, no I/O.

Everything knet creates on the host carries the cluster's prefix so that teardown finds it
again, even after a crash: namespaces `knet-CLUSTER-NODE`, links `kn<6 hex of the cluster>...`.
Interface names are at most 15 characters (IFNAMSIZ - 1).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

IFNAME_MAX = 15


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def link_prefix(cluster: str) -> str:
    """The prefix of every host link of one cluster ("kn" + 6 hex)."""
    return "kn" + _short_hash(cluster, 6)


def netns_name(cluster: str, node: str) -> str:
    return f"knet-{cluster}-{node}"


def netns_prefix(cluster: str) -> str:
    return f"knet-{cluster}-"


@dataclass(frozen=True)
class ClusterNetwork:
    """The node network of one cluster: a host bridge and a /24-ish subnet."""

    cluster: str
    node_cidr: str = "172.30.0.0/24"

    @property
    def prefix(self) -> str:
        return link_prefix(self.cluster)

    @property
    def bridge(self) -> str:
        return self.prefix + "br"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.node_cidr, strict=False)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def gateway(self) -> str:
        """The host's address on the bridge, with prefix length (the network's first host)."""
        return f"{self.network.network_address + 1}/{self.prefixlen}"

    def node_ip(self, index: int) -> str:
        """Node `index` (0 = controlplane) gets the network's (index + 2)th address."""
        address = self.network.network_address + 2 + index
        if address not in self.network or address == self.network.broadcast_address:
            raise ValueError(f"node network {self.node_cidr} has no room for node #{index}")
        return str(address)

    def host_link(self, node: str) -> str:
        """Host end of the node's veth: PREFIX + '-' + 4 hex of the node name."""
        name = f"{self.prefix}-{_short_hash(node, 4)}"
        assert len(name) <= IFNAME_MAX
        return name


def hosts_file_text(own_name: str, own_ip: str, hosts: dict[str, str]) -> str:
    """An /etc/hosts naming localhost, this machine and the cluster's well-known nodes."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    seen = {own_name}
    lines.append(f"{own_ip}\t{own_name}")
    for name, ip in sorted(hosts.items()):
        if name not in seen:
            lines.append(f"{ip}\t{name}")
            seen.add(name)
    return "\n".join(lines) + "\n"
