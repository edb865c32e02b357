"""Container logs in the CRI format: how containerd writes them and how the kubelet reads them.

A container's log file holds one record a line (containerd's pkg/cri/io/logger.go):
    2016-10-06T00:17:09.669794202Z stdout F log content 1
    2016-10-06T00:17:09.669794203Z stderr P log content 2
the time it was read (RFC3339Nano), the stream, F for a whole line (its newline dropped) or P for
a partial one (MAX_LINE bytes of a longer line, or what a stream held when it closed without a
newline), then the text. `encode` builds records (crilog.c and crilogwriter.py write them as a
container prints); `messages` reads them back as the kubelet's pkg/kubelet/kuberuntime/logs/logs.go
ReadLogs does for `kubectl logs` (tailLines, sinceSeconds/sinceTime, timestamps, limitBytes,
follow), and `read_logs` drives it for a follower. Pure, apart from the file it is handed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import BinaryIO

STDOUT, STDERR = "stdout", "stderr"
FULL, PARTIAL = "F", "P"
MAX_LINE = 16384  # containerd's max_container_log_line_size default

_TIME = re.compile(rb"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, order=True)
class Stamp:
    """A point in time with nanoseconds (datetime stops at microseconds) and the zone it was
    written in (the kubelet prints a timestamp in its own zone)."""

    ns: int  # since the epoch
    offset: int = 0  # seconds east of UTC; not part of the ordering's meaning (ns is absolute)

    @classmethod
    def now(cls) -> Stamp:
        import time

        return cls(time.time_ns())

    @classmethod
    def of(cls, dt: datetime) -> Stamp:
        off = dt.utcoffset()
        whole = int(dt.replace(microsecond=0).timestamp())
        return cls(whole * 1_000_000_000 + dt.microsecond * 1000, int(off.total_seconds()) if off else 0)

    def __add__(self, seconds: float) -> Stamp:
        return Stamp(self.ns + int(seconds * 1_000_000_000), self.offset)

    def _parts(self) -> tuple[str, int, str]:
        secs, frac = divmod(self.ns, 1_000_000_000)
        base, suffix = _format_seconds(secs, self.offset)
        return base, frac, suffix

    def fixed(self) -> str:
        """RFC3339NanoFixed (2006-01-02T15:04:05.000000000Z07:00): what `--timestamps` prints."""
        base, frac, suffix = self._parts()
        return f"{base}.{frac:09d}{suffix}"

    def nano(self) -> str:
        """RFC3339Nano (trailing zeros of the fraction dropped): what containerd writes."""
        base, frac, suffix = self._parts()
        return base + (f".{frac:09d}".rstrip("0") if frac else "") + suffix


@functools.lru_cache(maxsize=256)
def _format_seconds(secs: int, offset: int) -> tuple[str, str]:
    """(date and time to the second, zone suffix): a log's lines share their seconds."""
    zone = timezone(timedelta(seconds=offset))
    base = datetime.fromtimestamp(secs, UTC).astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")
    if offset == 0:
        return base, "Z"
    sign, off = ("+", offset) if offset > 0 else ("-", -offset)
    return base, f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


@functools.lru_cache(maxsize=256)
def _epoch_seconds(date_time: bytes, zone: bytes) -> tuple[int, int]:
    """(seconds since the epoch, zone offset) of YYYY-MM-DDTHH:MM:SS in a zone (Z or +hh:mm)."""
    offset = 0 if zone == b"Z" else (1 if zone[:1] == b"+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    d, t = date_time.split(b"T")
    year, month, day = (int(x) for x in d.split(b"-"))
    hour, minute, second = (int(x) for x in t.split(b":"))
    dt = datetime(year, month, day, hour, minute, second, tzinfo=timezone(timedelta(seconds=offset)))
    return int(dt.timestamp()), offset


def parse_time(text: str | bytes) -> Stamp:
    """RFC3339 with an optional fraction of 1-9 digits (Go's RFC3339NanoLenient, and what
    time.Parse(time.RFC3339, ...) accepts for metav1.Time). ValueError when it is not one."""
    raw = text.encode() if isinstance(text, str) else text
    m = _TIME.match(raw)
    if m is None:
        raise ValueError(f"parsing time {raw.decode(errors='replace')!r} as RFC3339")
    frac = int((m.group(7) or b"0").ljust(9, b"0"))
    try:
        secs, offset = _epoch_seconds(raw[:19], m.group(8))
    except ValueError as exc:
        raise ValueError(f"parsing time {raw.decode(errors='replace')!r}: {exc}") from None
    return Stamp(secs * 1_000_000_000 + frac, offset)


def encode(stamp: Stamp, stream: str, tag: str, text: bytes) -> bytes:
    """One record of a log file (text without its newline)."""
    return b"%s %s %s %s\n" % (stamp.nano().encode(), stream.encode(), tag.encode(), text)


def split_output(pending: bytes, data: bytes, max_line: int = MAX_LINE, eof: bool = False
                 ) -> tuple[list[tuple[str, bytes]], bytes]:
    """containerd's redirectLogs on one stream: (the (tag, text) records `data` completes after
    what was `pending`, what stays pending). A line ends at "\\n" (a "\\r\\n" goes with it);
    max_line bytes without one make a P record (max_line <= 0: no limit); at the stream's end
    what is left is a P record."""
    buf = pending + data
    out: list[tuple[str, bytes]] = []
    start = 0
    if max_line <= 0:  # containerd: no limit
        max_line = len(buf) + 1
    while True:
        nl = buf.find(b"\n", start)
        if nl >= 0 and nl - start <= max_line:
            line = buf[start:nl]
            out.append((FULL, line[:-1] if line.endswith(b"\r") else line))
            start = nl + 1
        elif len(buf) - start > max_line:
            out.append((PARTIAL, buf[start:start + max_line]))
            start += max_line
        else:
            break
    rest = buf[start:]
    if eof and rest:
        out.append((PARTIAL, rest))
        rest = b""
    return out, rest


# -- reading (the kubelet's logs.go) --

@dataclass
class Message:
    timestamp: Stamp
    stream: str
    log: bytes


def parse_cri(line: bytes) -> Message:
    """parseCRILog: ValueError when the line is not a CRI record."""
    idx = line.find(b" ")
    if idx < 0:
        raise ValueError("timestamp is not found")
    stamp = parse_time(line[:idx])
    line = line[idx + 1:]
    idx = line.find(b" ")
    if idx < 0:
        raise ValueError("stream type is not found")
    stream = line[:idx].decode(errors="replace")
    if stream not in (STDOUT, STDERR):
        raise ValueError(f"unexpected stream type {stream!r}")
    line = line[idx + 1:]
    idx = line.find(b" ")
    if idx < 0:
        raise ValueError("log tag is not found")
    partial = line[:idx].split(b":")[0] == PARTIAL.encode()  # tags after ":" kept for forward compatibility
    if partial and line.endswith(b"\n"):
        line = line[:-1]
    return Message(stamp, stream, line[idx + 1:])


def parse_docker_json(line: bytes) -> Message:
    """parseDockerJSONLog (a node whose runtime writes docker's json-file format)."""
    try:
        entry = json.loads(line)
        return Message(parse_time(entry["time"]), entry.get("stream", ""), str(entry.get("log", "")).encode())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"failed to unmarshal log {line!r}: {exc}") from None


PARSERS: tuple[Callable[[bytes], Message], ...] = (parse_cri, parse_docker_json)


def parser_for(line: bytes) -> Callable[[bytes], Message]:
    """getParseFunc: the first format that reads this sample line."""
    for parse in PARSERS:
        try:
            parse(line)
        except ValueError:
            continue
        return parse
    raise ValueError(f"unsupported log format: {line!r}")


@dataclass
class LogOptions:
    """The kubelet's LogOptions: -1 means unset for tail and bytes."""

    tail: int = -1
    bytes: int = -1
    since: Stamp | None = None
    follow: bool = False
    timestamps: bool = False

    @classmethod
    def from_pod_log_options(cls, *, tail_lines: int | None = None, limit_bytes: int | None = None,
                             since_seconds: int | None = None, since_time: Stamp | None = None,
                             follow: bool = False, timestamps: bool = False, now: Stamp | None = None) -> LogOptions:
        """NewLogOptions: sinceSeconds counts back from now; a later sinceTime wins."""
        opts = cls(tail=-1 if tail_lines is None else tail_lines, bytes=-1 if limit_bytes is None else limit_bytes,
                   follow=follow, timestamps=timestamps)
        if since_seconds is not None:
            now = now or Stamp.now()
            opts.since = Stamp(now.ns - min(since_seconds, 1 << 33) * 1_000_000_000, now.offset)
        if since_time is not None and (opts.since is None or since_time.ns > opts.since.ns):
            opts.since = since_time
        return opts


class MaximumWrite(Exception):
    """errMaximumWrite: limitBytes reached."""


class LogWriter:
    """logWriter: renders parsed messages per the options (since, timestamps, the byte budget)."""

    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.remain = opts.bytes if opts.bytes >= 0 else (1 << 63) - 1

    def write(self, msg: Message, add_prefix: bool) -> tuple[str, bytes] | None:
        """(stream, bytes to send) for msg, or None when it is before `since`. Raises
        MaximumWrite once the budget is spent (after what it returned last time)."""
        if self.opts.since is not None and msg.timestamp.ns < self.opts.since.ns:
            return None
        if msg.stream not in (STDOUT, STDERR):
            raise ValueError(f"unexpected stream type {msg.stream!r}")
        line = msg.log
        if self.opts.timestamps and add_prefix:
            line = msg.timestamp.fixed().encode() + b" " + line
        if len(line) > self.remain:
            line = line[:self.remain]
        self.remain -= len(line)
        return msg.stream, line


def tail_start(f: BinaryIO, n: int, block: int = 1024) -> int:
    """FindTailLineStartIndex: the offset where the last n lines start (n < 0: 0). An unfinished
    last line (no newline yet) is not counted as one."""
    if n < 0:
        return 0
    size = f.seek(0, 2)
    right, count, buf, left = size, 0, b"", size
    while right > 0 and count <= n:
        left = max(0, right - block)
        f.seek(left)
        buf = f.read(right - left)
        count += buf.count(b"\n")
        right = left
    while count > n:
        idx = buf.index(b"\n") + 1
        buf = buf[idx:]
        left += idx
        count -= 1
    return left


WAIT = None  # what `messages` yields at the end of the file while following


def messages(f: BinaryIO, opts: LogOptions) -> Iterator[tuple[str, bytes] | None]:
    """ReadLogs over an open log file: yields (stream, bytes) to send, and WAIT when following and
    at the end of what is written so far (the caller waits, then resumes; an unfinished record is
    read again whole). Stops after `tail` records when not following, or once limitBytes is spent."""
    f.seek(tail_start(f, opts.tail))
    limited = opts.tail >= 0 and not opts.follow
    left = opts.tail
    parse: Callable[[bytes], Message] | None = None
    writer = LogWriter(opts)
    new_line = True
    stop = False
    while not stop and not (limited and left == 0):
        line = f.readline()
        if not line.endswith(b"\n"):
            if opts.follow:
                f.seek(-len(line), 1)
                yield WAIT
                continue
            stop = True
            if not line:
                continue
        if parse is None:
            try:
                parse = parser_for(line)
            except ValueError:
                return  # upstream: "failed to get parse function" ends the read
        try:
            msg = parse(line)
        except ValueError:
            continue  # a line that does not parse is skipped
        out = writer.write(msg, new_line)
        if out is not None and out[1]:
            yield out
        if writer.remain <= 0 and out is not None:
            return
        if limited:
            left -= 1
        new_line = not msg.log or msg.log.endswith(b"\n")


async def read_logs(f: BinaryIO, opts: LogOptions, write: Callable[[str, bytes], Awaitable[None]],
                    running: Callable[[], bool], poll: float = 0.1,
                    flush: Callable[[], Awaitable[None]] | None = None) -> None:
    """Drive `messages` for a reader that may follow: at the end of the file, wait while the
    container runs; once it stopped, read what it wrote last and end (as waitLogs does).
    `flush` (if given) is awaited whenever the reader is about to wait, and at the end."""
    found = True
    for item in messages(f, opts):
        if item is WAIT:
            if flush is not None:
                await flush()
            if not found:
                return
            found = running()
            if found:
                await asyncio.sleep(poll)
            continue
        await write(*item)
    if flush is not None:
        await flush()


def render(data: bytes, opts: LogOptions) -> list[tuple[str, bytes]]:
    """The output for a whole log held in memory (not following)."""
    import io

    return [item for item in messages(io.BytesIO(data), LogOptions(opts.tail, opts.bytes, opts.since, False,
                                                                    opts.timestamps)) if item is not None]
