"""The IPv4 addresses of this network namespace's interfaces (for NS records, as CoreDNS's
localIPs), read with the SIOCGIFADDR ioctl: no subprocess, no netlink."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct

SIOCGIFADDR = 0x8915


def local_ipv4_addresses() -> tuple[str, ...]:
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, ifname in socket.if_nameindex():
            with contextlib.suppress(OSError):
                packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", ifname[:15].encode()))
                found.append(socket.inet_ntoa(packed[20:24]))
    outside = [ip for ip in found if not ip.startswith("127.")]
    return tuple(outside or found)
