"""What Go's standard library prints, so answers read as the real agnhost's. Pure."""

from __future__ import annotations

import json
import os
import re
import sys
import time

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("1.5s", "2h45m", "300ms", "0"), in seconds; ValueError as Go words it."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f'time: invalid duration "{text}"')
        if not m.group(2):
            raise ValueError(f'time: missing unit in duration "{text}"')
        if m.group(2) not in _UNITS:
            raise ValueError(f'time: unknown unit "{m.group(2)}" in duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def go_json(value: object) -> str:
    """encoding/json.Marshal: compact, map keys sorted, <, > and & escaped as \\u003c..."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_now(now: float | None = None) -> str:
    """time.Now().String() without the monotonic part: `2026-01-02 15:04:05.123456789 +0000 UTC`."""
    now = time.time() if now is None else now
    tm = time.localtime(now)
    nanos = int(round((now % 1) * 1e9)) % 1_000_000_000
    frac = f".{nanos:09d}".rstrip("0").rstrip(".")
    offset = tm.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return (time.strftime("%Y-%m-%d %H:%M:%S", tm) + frac +
            f" {sign}{offset // 3600:02d}{offset % 3600 // 60:02d} {tm.tm_zone}")


def host_port(host: str, port: int | str) -> str:
    """net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def errno_words(exc: OSError) -> str:
    """A system call's error as Go's syscall.Errno words it: strerror in lower case."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def remote_addr(host: str, port: int) -> str:
    """A peer as Go's RemoteAddr prints it (an IPv4 client of a dual-stack socket is plain IPv4)."""
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host_port(host, port)


def log(message: str) -> None:
    """Go's log.Printf: `2009/11/10 23:00:00 message` on stderr."""
    line = time.strftime("%Y/%m/%d %H:%M:%S ") + message
    sys.stderr.write(line if line.endswith("\n") else line + "\n")
    sys.stderr.flush()


def fatal(message: str) -> None:
    """log.Fatalf: the message, then exit status 1."""
    log(message)
    sys.exit(1)
