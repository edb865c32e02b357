"""`agnhost connect HOST:PORT`: one TCP, UDP or SCTP connection attempt; exit 0 when it works,
else exit 1 with upstream's prefixes on stderr that NetworkPolicy tests match: UNKNOWN (bad
arguments), TIMEOUT, DNS, REFUSED, OTHER (test/images/agnhost/connect/connect.go)."""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import time

from knet.node.agnhost import flags as fl
from knet.node.agnhost.flags import FlagError
from knet.node.agnhost.golang import errno_words, host_port
from knet.node.agnhost.gonet import lookup_addrs, lookup_port

FLAGS = [
    fl.Flag("timeout", fl.DURATION, 0.0, "Maximum time before returning an error"),
    fl.Flag("protocol", fl.STRING, "tcp", "The protocol to use to perform the connection, can be tcp, udp or sctp"),
    fl.Flag("udp-data", fl.STRING, "hostname", "The UDP payload send to the server"),
    fl.Flag("sctp-data", fl.STRING, "hostname", "The SCTP payload send to the server"),
]


class Outcome(Exception):
    """How the attempt ended: the line for stderr (None: success)."""

    def __init__(self, line: str | None) -> None:
        super().__init__(line)
        self.line = line


def split_host_port(dest: str) -> tuple[str, str]:
    """net.SplitHostPort, with its error text."""
    if dest.startswith("["):
        end = dest.find("]")
        if end < 0:
            raise ValueError(f"address {dest}: missing ']' in address")
        host, rest = dest[1:end], dest[end + 1:]
        if not rest.startswith(":"):
            raise ValueError(f"address {dest}: missing port in address")
        return host, rest[1:]
    if ":" not in dest:
        raise ValueError(f"address {dest}: missing port in address")
    host, port = dest.rsplit(":", 1)
    if ":" in host:
        raise ValueError(f"address {dest}: too many colons in address")
    return host, port


def resolve(dest: str, kind: int, network: str) -> list[tuple[int, tuple]]:
    host, port = split_host_port(dest)
    port_num = lookup_port(port, kind)
    if port_num is None:
        raise LookupError(f"lookup {network}/{port}: unknown port")
    return lookup_addrs(host or None, port_num, kind)


def resolve_or_dns_outcome(dest: str, kind: int, network: str) -> list[tuple[int, tuple]]:
    """resolve(), a failure being connect's DNS outcome."""
    try:
        return resolve(dest, kind, network)
    except (ValueError, LookupError) as exc:
        raise Outcome(f"DNS: {exc}") from None


def connect_tcp(dest: str, timeout: float) -> None:
    try:
        split_host_port(dest)
    except ValueError as exc:
        raise Outcome(f"UNKNOWN: {exc}") from None
    addrs = resolve_or_dns_outcome(dest, socket.SOCK_STREAM, "tcp")
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last: OSError | None = None
    for family, addr in addrs:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise Outcome("TIMEOUT")
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            code = sock.connect_ex(addr)
            if code == errno.EINPROGRESS:
                _, writable, _ = select.select([], [sock], [], remaining)
                if not writable:
                    raise Outcome("TIMEOUT")
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                raise Outcome(None)
            last = OSError(code, os.strerror(code))
            if code == errno.ECONNREFUSED:
                raise Outcome("REFUSED")
            if code == errno.ETIMEDOUT:
                raise Outcome("TIMEOUT")
    assert last is not None
    raise Outcome(f"OTHER: dial tcp {host_port(addrs[0][1][0], addrs[0][1][1])}: connect: {errno_words(last)}")


def connect_udp(dest: str, timeout: float, data: str) -> None:
    addrs = resolve_or_dns_outcome(dest, socket.SOCK_DGRAM, "udp")
    family, addr = addrs[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(addr)
        except OSError as exc:
            raise Outcome(f"OTHER: dial udp {host_port(addr[0], addr[1])}: {errno_words(exc)}") from None
        where = f"{host_port(*sock.getsockname()[:2])}->{host_port(addr[0], addr[1])}"
        if timeout > 0:
            sock.settimeout(timeout)
        try:
            sock.send(f"{data}\n".encode())
            got = sock.recv(1024)
        except TimeoutError:
            raise Outcome(f"TIMEOUT: read udp {where}: i/o timeout") from None
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                raise Outcome(f"REFUSED: read udp {where}: read: connection refused") from None
            raise Outcome(f"UNKNOWN: read udp {where}: read: {errno_words(exc)}") from None
        if not got:
            raise Outcome("OTHER: No data received from the server. Cannot guarantee the server received the request.")
    raise Outcome(None)


def connect_sctp(dest: str, timeout: float, data: str) -> None:
    addrs = resolve_or_dns_outcome(dest, socket.SOCK_STREAM, "sctp")
    family, addr = addrs[0]
    try:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    except OSError as exc:
        raise Outcome(f"OTHER: {errno_words(exc)}") from None
    with sock:
        sock.settimeout(timeout if timeout > 0 else None)
        try:
            sock.connect(addr)
            sock.send(f"{data}\n".encode())
            sock.recv(1024)
        except TimeoutError:
            raise Outcome("TIMEOUT") from None
        except OSError as exc:
            raise Outcome(f"OTHER: {errno_words(exc)}") from None
    raise Outcome(None)


def attempt(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr text) of `agnhost connect ARGV`."""
    try:
        values, args = fl.parse(FLAGS, argv)
    except FlagError as exc:
        return 1, f"Error: {exc}\n"
    if len(args) != 1:
        return 1, f"Error: accepts 1 arg(s), received {len(args)}\n"
    dest, protocol = args[0], values["protocol"]
    try:
        if protocol in ("", "tcp"):
            connect_tcp(dest, values["timeout"])
        elif protocol == "udp":
            connect_udp(dest, values["timeout"], values["udp-data"])
        elif protocol == "sctp":
            connect_sctp(dest, values["timeout"], values["sctp-data"])
        else:
            return 1, "Unsupported protocol\n" + protocol
    except Outcome as outcome:
        return (0, "") if outcome.line is None else (1, outcome.line + "\n")
    return 0, ""


def run(argv: list[str]) -> int:
    code, err = attempt(argv)
    sys.stderr.write(err)
    return code
