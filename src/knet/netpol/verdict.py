"""Would this connection be allowed? The compiled rules evaluated in Python, as the kernel evaluates
the rendered ones: what a simulated cluster answers (and `knet trace` can ask). Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from knet.netpol.compiler import EGRESS, INGRESS, Allow, NodeRules, PortMatch


def _in(ip: str, cidrs: Iterable[str]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _port_ok(ports: tuple[PortMatch, ...] | None, protocol: str, port: int) -> bool:
    if ports is None:
        return True
    for p in ports:
        if p.protocol != protocol.lower():
            continue
        if p.port is None or p.port == port or (p.end_port and p.port <= port <= p.end_port):
            return True
    return False


def _allows(allow: Allow, peer_ip: str, local_ip: str, protocol: str, port: int) -> bool:
    if allow.local_ip and allow.local_ip != local_ip:
        return False
    if allow.peer is not None and (not _in(peer_ip, allow.peer.cidrs) or _in(peer_ip, allow.peer.excepts)):
        return False
    return _port_ok(allow.ports, protocol, port)


def _direction_ok(rules: NodeRules, direction: str, local_ip: str, peer_ip: str, protocol: str, port: int) -> bool:
    for guard in rules.guards:  # a pending isolated pod's address may be this one: closed until known
        if guard.direction == direction and _in(local_ip, [guard.pod_cidr]) and local_ip not in guard.known_ips:
            return False
    pods = rules.ingress if direction == INGRESS else rules.egress
    pod = next((p for p in pods if p.ip == local_ip), None)
    if pod is None:
        return True  # not isolated in this direction
    by_key = {(pr.policy, pr.direction): pr for pr in rules.policies}
    return any(_allows(a, peer_ip, local_ip, protocol, port)
               for policy in pod.policies for a in by_key[(policy, direction)].allows)


def allowed(nodes: Iterable[NodeRules], src_ip: str, dst_ip: str, protocol: str, port: int) -> bool:
    """A new connection src -> dst:port/protocol (dst already a pod's address, after any Service
    DNAT): the egress rules of the source's node and the ingress rules of the destination's."""
    nodes = list(nodes)
    return (all(_direction_ok(n, EGRESS, src_ip, dst_ip, protocol, port) for n in nodes)
            and all(_direction_ok(n, INGRESS, dst_ip, src_ip, protocol, port) for n in nodes))
