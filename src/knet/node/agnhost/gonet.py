"""Name lookups as Go's net package makes them for the agnhost subcommands that dial."""

from __future__ import annotations

import socket


def lookup_port(port: str, kind: int) -> int | None:
    """net.LookupPort: a decimal port 0-65535, else the service name's port for TCP or UDP
    (`kind` SOCK_STREAM / SOCK_DGRAM) from /etc/services; None when it names none."""
    try:
        port_num = int(port)
        if 0 <= port_num <= 65535:
            return port_num
    except ValueError:
        pass
    try:
        return socket.getservbyname(port, "udp" if kind == socket.SOCK_DGRAM else "tcp")
    except OSError:
        return None


def lookup_addrs(host: str | None, port: int, kind: int) -> list[tuple[int, tuple]]:
    """(family, sockaddr) for each of host's addresses, IPv4 first as Go's dialer prefers;
    LookupError `lookup HOST: no such host` when it has none."""
    try:
        infos = socket.getaddrinfo(host, port, 0, kind)
    except socket.gaierror:
        raise LookupError(f"lookup {host}: no such host") from None
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    return [(i[0], i[4]) for i in infos]
