"""SPDY/3.1 framing as kubectl (client-go through moby/spdystream) speaks it: frames to bytes and
bytes to frames, and the zlib-compressed header blocks. Pure: no I/O.

Wire layout (draft-mbelshe-httpbis-spdy-00, section 2.2; spdystream's spdy/read.go, write.go):
  control frame: 1 bit 1, 15 bits version (3), 16 bits type, 8 bits flags, 24 bits length, data
  data frame:    1 bit 0, 31 bits stream id, 8 bits flags, 24 bits length, data
A header block is a 32-bit pair count, then per pair a 32-bit name length, the (lowercase) name,
a 32-bit value length and the value (several values joined by NUL); each direction of a session
compresses its blocks with one zlib stream primed with the SPDY/3 dictionary and sync-flushed
after every block, so a decoder must see every block of its direction, in order.

Flow control: spdystream, and so kubectl and the kubelet, never sends WINDOW_UPDATE and ignores
the ones it gets; a peer that waited for window updates would stall after 64 KiB. WINDOW_UPDATE
and SETTINGS frames are therefore parsed and otherwise ignored.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

# Control frame types.
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM only
MAX_LENGTH = (1 << 24) - 1  # the 24-bit length field
MAX_HEADER_BLOCK = 1 << 20  # decompressed; more is refused (a small frame can inflate a lot)

# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
STREAM_IN_USE, STREAM_ALREADY_CLOSED = 8, 9
# GOAWAY status codes.
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

_WORDS = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
          "accept-ranges age allow authorization cache-control connection content-base content-encoding "
          "content-language content-length content-location content-md5 content-range content-type date "
          "etag expect expires from host if-match if-modified-since if-none-match if-range "
          "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
          "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
          "user-agent vary via warning www-authenticate method get status 200|OK version HTTP/1.1 url "
          "public set-cookie keep-alive origin").split()
_TAIL = (b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         b"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         b"403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
# The SPDY/3 header compression dictionary (spec section 2.6.10.1; spdystream spdy/dictionary.go):
# 65 length-prefixed words ("|" stands for a space), then a run of status lines, dates and media types.
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.replace("|", " ").encode() for w in _WORDS) + _TAIL

Headers = dict[str, list[str]]


class SpdyError(Exception):
    """A frame that breaks the protocol: the session answers GOAWAY (or RST_STREAM) with `status`."""

    def __init__(self, message: str, status: int = PROTOCOL_ERROR, stream_id: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.stream_id = stream_id


@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass
class RstStream:
    stream_id: int
    status: int = CANCEL


@dataclass
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)
    clear: bool = False


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int = 0
    status: int = GOAWAY_OK


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate


def header_block(headers: Headers) -> bytes:
    """A header block before compression; names lowercased as spdystream writes them."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def parse_header_block(block: bytes, stream_id: int = 0) -> Headers:
    """The pairs of an uncompressed header block; a short or overlong block is a protocol error."""
    def take(at: int, n: int) -> bytes:
        if n < 0 or at + n > len(block):
            raise SpdyError("header block truncated", PROTOCOL_ERROR, stream_id)
        return block[at:at + n]

    (count,), at = struct.unpack(">I", take(0, 4)), 4
    headers: Headers = {}
    for _ in range(count):
        (n,) = struct.unpack(">I", take(at, 4))
        name, at = take(at + 4, n).decode("latin-1"), at + 4 + n
        (n,) = struct.unpack(">I", take(at, 4))
        value, at = take(at + 4, n).decode("latin-1"), at + 4 + n
        if name != name.lower() or name in headers or not name:
            raise SpdyError(f"bad header name {name!r}", PROTOCOL_ERROR, stream_id)
        headers[name] = value.split("\x00")
    if at != len(block):
        raise SpdyError("trailing bytes after the header block", PROTOCOL_ERROR, stream_id)
    return headers


class Encoder:
    """Frames to bytes for one direction of a session (it owns that direction's zlib stream)."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)

    def _headers(self, headers: Headers) -> bytes:
        return self._zlib.compress(header_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        match frame:
            case DataFrame(stream_id=sid, data=data, fin=fin):
                if len(data) > MAX_LENGTH:
                    raise ValueError("a data frame carries at most 2^24-1 bytes")
                return struct.pack(">II", sid & 0x7FFFFFFF, (FLAG_FIN if fin else 0) << 24 | len(data)) + data
            case SynStream():
                flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
                body = struct.pack(">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, 0)
                return _control(SYN_STREAM, flags, body + self._headers(frame.headers))
            case SynReply():
                return _control(SYN_REPLY, FLAG_FIN if frame.fin else 0,
                                struct.pack(">I", frame.stream_id) + self._headers(frame.headers))
            case HeadersFrame():
                return _control(HEADERS, FLAG_FIN if frame.fin else 0,
                                struct.pack(">I", frame.stream_id) + self._headers(frame.headers))
            case RstStream(stream_id=sid, status=status):
                return _control(RST_STREAM, 0, struct.pack(">II", sid, status))
            case Settings(entries=entries, clear=clear):
                body = struct.pack(">I", len(entries)) + b"".join(
                    struct.pack(">II", (f & 0xFF) << 24 | (i & 0xFFFFFF), v) for f, i, v in entries)
                return _control(SETTINGS, 1 if clear else 0, body)
            case Ping(id=pid):
                return _control(PING, 0, struct.pack(">I", pid))
            case GoAway(last_good_stream_id=last, status=status):
                return _control(GOAWAY, 0, struct.pack(">II", last, status))
            case WindowUpdate(stream_id=sid, delta=delta):
                return _control(WINDOW_UPDATE, 0, struct.pack(">II", sid, delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")


def _control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(body)) + body


class Decoder:
    """Bytes to frames for one direction of a session: feed() what arrived, get the whole frames
    it completed (a partial frame waits for more bytes)."""

    def __init__(self, max_frame: int = MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            first, flags_length = struct.unpack_from(">II", self._buf)
            length, flags = flags_length & 0xFFFFFF, flags_length >> 24
            if length > self._max_frame:
                raise SpdyError(f"frame of {length} bytes is too large")
            if len(self._buf) < 8 + length:
                break
            body = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if first & 0x80000000:
                version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}", UNSUPPORTED_VERSION)
                frame = self._control(kind, flags, body)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, body, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, data: bytes, stream_id: int) -> Headers:
        try:
            block = self._zlib.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyError(f"header block does not decompress: {exc}", PROTOCOL_ERROR, stream_id) from None
        if self._zlib.unconsumed_tail:
            raise SpdyError("header block larger than 1 MiB", PROTOCOL_ERROR, stream_id)
        return parse_header_block(block, stream_id)

    def _control(self, kind: int, flags: int, body: bytes) -> Frame | None:
        def need(n: int) -> None:
            if len(body) < n:
                raise SpdyError(f"control frame type {kind} of {len(body)} bytes is too short")

        fin = bool(flags & FLAG_FIN)
        if kind == SYN_STREAM:
            need(10)
            sid, assoc, prio = struct.unpack_from(">IIB", body)
            sid &= 0x7FFFFFFF
            return SynStream(sid, self._headers(body[10:], sid), assoc & 0x7FFFFFFF, prio >> 5, fin,
                             bool(flags & FLAG_UNIDIRECTIONAL))
        if kind in (SYN_REPLY, HEADERS):
            need(4)
            sid = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            cls = SynReply if kind == SYN_REPLY else HeadersFrame
            return cls(sid, self._headers(body[4:], sid), fin)
        if kind == RST_STREAM:
            need(8)
            sid, status = struct.unpack_from(">II", body)
            return RstStream(sid & 0x7FFFFFFF, status)
        if kind == SETTINGS:
            need(4)
            (count,) = struct.unpack_from(">I", body)
            need(4 + 8 * count)
            entries = [(fi >> 24, fi & 0xFFFFFF, v) for fi, v in
                       (struct.unpack_from(">II", body, 4 + 8 * i) for i in range(count))]
            return Settings(entries, bool(flags & 1))
        if kind == PING:
            need(4)
            return Ping(struct.unpack_from(">I", body)[0])
        if kind == GOAWAY:
            need(4)
            last = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            status = struct.unpack_from(">I", body, 4)[0] if len(body) >= 8 else GOAWAY_OK
            return GoAway(last, status)
        if kind == WINDOW_UPDATE:
            need(8)
            sid, delta = struct.unpack_from(">II", body)
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return None  # unknown control frames are ignored (spec section 2.2.1)


__all__ = ["DICTIONARY", "DataFrame", "Decoder", "Encoder", "Frame", "GoAway", "Headers", "HeadersFrame", "Ping",
           "RstStream", "Settings", "SpdyError", "SynReply", "SynStream", "WindowUpdate", "header_block",
           "parse_header_block"]
