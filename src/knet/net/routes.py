"""host-gw routes of a node: other nodes' pod ranges via their node address (iproute2).

The network add-on's CNI agent keeps one route per other node, `POD_CIDR via NODE_IP dev eth0`,
in the node's network namespace (it runs there, hostNetwork). Which routes are its own is read
back from the kernel rather than remembered, so a restarted agent takes over its predecessor's
routes: every gateway route to a destination inside the cluster's pod range. The node's own
podCIDR is a link route on the CNI bridge (no gateway) and is never touched.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Protocol

NODE_LINK = "eth0"  # a node machine's link to the node network (knet.net.machines)


class RouteError(RuntimeError):
    pass


def parse_gateway_routes(ip_json: str, within: str) -> dict[str, str]:
    """`ip -j -4 route show` output -> {destination CIDR: gateway} for the gateway routes whose
    destination lies inside `within` (the cluster's pod range). Pure."""
    net = ipaddress.ip_network(within, strict=False)
    out: dict[str, str] = {}
    for route in json.loads(ip_json or "[]"):
        dst, gateway = route.get("dst"), route.get("gateway")
        if not dst or not gateway or dst == "default":
            continue
        try:
            dest = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if dest.version == net.version and dest.subnet_of(net):
            out[str(dest)] = gateway
    return out


class RouteTable(Protocol):
    """The node's routing table, as far as the CNI agent uses it."""

    def gateway_routes(self, within: str) -> dict[str, str]: ...

    def replace(self, dst: str, via: str) -> None: ...

    def delete(self, dst: str) -> None: ...


class IpRouteTable:
    """The routing table of the network namespace this process runs in, through `ip route`."""

    def __init__(self, dev: str = NODE_LINK) -> None:
        self.dev = dev

    def _ip(self, *args: str) -> str:
        result = subprocess.run(["ip", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise RouteError(f"ip {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def gateway_routes(self, within: str) -> dict[str, str]:
        return parse_gateway_routes(self._ip("-j", "-4", "route", "show"), within)

    def replace(self, dst: str, via: str) -> None:
        self._ip("route", "replace", dst, "via", via, "dev", self.dev)

    def delete(self, dst: str) -> None:
        self._ip("route", "del", dst)


class FakeRouteTable:
    """An in-memory routing table (tests of the agent's decisions)."""

    def __init__(self, routes: dict[str, str] | None = None) -> None:
        self.routes: dict[str, str] = dict(routes or {})

    def gateway_routes(self, within: str) -> dict[str, str]:
        net = ipaddress.ip_network(within, strict=False)
        return {d: g for d, g in self.routes.items() if ipaddress.ip_network(d).subnet_of(net)}

    def replace(self, dst: str, via: str) -> None:
        self.routes[dst] = via

    def delete(self, dst: str) -> None:
        if dst not in self.routes:
            raise RouteError(f"ip route del {dst}: RTNETLINK answers: No such process")
        del self.routes[dst]
