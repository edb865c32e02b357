"""Watch an interface for IPv4 packets to given networks: a passive AF_PACKET capture (what tcpdump
does), for "no packet to a cluster address leaves by the host's default route". Nothing is sent."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import threading
from collections.abc import Iterable

ETH_P_ALL = 0x0003  # outgoing packets reach only ETH_P_ALL taps (dev_queue_xmit_nit), not ETH_P_IP ones
ETH_P_IP = 0x0800


def default_route_interfaces() -> list[str]:
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True, text=True).stdout
    return sorted({r["dev"] for r in json.loads(out or "[]") if r.get("dev")})


class PacketWatch:
    """`with PacketWatch("eth0", [net]) as w: ...; w.seen` = destinations of the IPv4 packets to
    `networks` that crossed the interface (either way) while the block ran."""

    def __init__(self, ifname: str, networks: Iterable[ipaddress.IPv4Network]) -> None:
        self.ifname = ifname
        self.networks = list(networks)
        self.seen: list[str] = []
        self._stop = threading.Event()
        # SOCK_DGRAM: packets arrive without their link-layer header, whatever the link type.
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self._sock.bind((ifname, ETH_P_ALL))
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packet, (_, protocol, *_) = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if protocol == ETH_P_IP and len(packet) >= 20 and packet[0] >> 4 == 4:
                dst = ipaddress.IPv4Address(packet[16:20])
                if any(dst in n for n in self.networks):
                    self.seen.append(str(dst))

    def __enter__(self) -> PacketWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
