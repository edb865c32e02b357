"""ARP on a node's eth0 for the LoadBalancer addresses it announces (MetalLB's layer-2 mode).

The node answers "who has <LB IP>?" with its own MAC without holding the address: the kernel
would answer only for an address of its own, and an address of its own would deliver to the
node's sockets whatever kube-proxy does not DNAT (the kubelet's port, say). So a raw packet
socket reads the ARP requests on eth0 and answers those for the addresses announced; taking an
address over, it sends a gratuitous ARP so that the host (and every node) moves its neighbour
entry at once. Nothing is left behind when it stops: its answers are other machines' cache
entries, which expire (and go with the bridge on `knet down`).

`parse`/`reply`/`gratuitous` are pure; `ArpResponder` is the socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = b"\xff" * 6
PACKET_OUTGOING = 4  # sll_pkttype of what this machine sent itself
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True)
class ArpPacket:
    op: int
    sender_mac: bytes
    sender_ip: str
    target_mac: bytes
    target_ip: str


def parse(frame: bytes) -> ArpPacket | None:
    """An Ethernet/IPv4 ARP frame, or None for anything else."""
    if len(frame) < _ETH.size + _ARP.size:
        return None
    _dst, _src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    return ArpPacket(op, sha, str(ipaddress.IPv4Address(spa)), tha, str(ipaddress.IPv4Address(tpa)))


def _frame(dst: bytes, src: bytes, op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    return _ETH.pack(dst, src, ETH_P_ARP) + _ARP.pack(
        1, ETH_P_IP, 6, 4, op, sha, ipaddress.IPv4Address(spa).packed, tha, ipaddress.IPv4Address(tpa).packed)


def reply(request: ArpPacket, mac: bytes) -> bytes:
    """`request.target_ip is at mac`, to the asker only."""
    return _frame(request.sender_mac, mac, ARP_REPLY, mac, request.target_ip, request.sender_mac, request.sender_ip)


def gratuitous(ip: str, mac: bytes) -> bytes:
    """A broadcast ARP request for `ip` from `ip` (RFC 5227's announcement): every neighbour that
    has an entry for `ip` moves it to `mac`."""
    return _frame(BROADCAST, mac, ARP_REQUEST, mac, ip, b"\x00" * 6, ip)


def should_answer(packet: ArpPacket, own_mac: bytes, announced: Callable[[str], bool]) -> bool:
    """A request for an address this node announces, asked by someone else: not our own
    request, and not a gratuitous ARP (sender address = target address: someone announcing the
    address, to which an answer would only fight over it)."""
    return (packet.op == ARP_REQUEST and packet.sender_mac != own_mac and packet.sender_ip != packet.target_ip
            and announced(packet.target_ip))


def interface_mac(ifname: str) -> bytes:
    with open(f"/sys/class/net/{ifname}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


class ArpResponder:
    """Answers ARP on `ifname` for the addresses `announced(ip)` says, until closed."""

    def __init__(self, ifname: str, announced: Callable[[str], bool]) -> None:
        self.ifname = ifname
        self.announced = announced
        self.mac = interface_mac(ifname)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((ifname, ETH_P_ARP))
        self.sock.setblocking(False)
        self.answered = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                frame, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("reading ARP on %s: %s", self.ifname, exc)
                return
            if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue
            packet = parse(frame)
            if packet is None or not should_answer(packet, self.mac, self.announced):
                continue
            self._send(reply(packet, self.mac))
            self.answered += 1

    def announce(self, ip: str) -> None:
        """Gratuitous ARP for a newly taken address (twice, as arping -U and MetalLB do)."""
        frame = gratuitous(ip, self.mac)
        self._send(frame)
        self._send(frame)

    def _send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError as exc:
            log.warning("sending ARP on %s: %s", self.ifname, exc)

    def close(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            loop.remove_reader(self.sock.fileno())
        self.sock.close()
