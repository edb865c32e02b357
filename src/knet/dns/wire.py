"""DNS wire format for the common case, without building message objects.

`parse_query` reads a plain query (one question, at most an OPT record, nothing unusual) in a
few slices; anything else returns None and goes to dnspython's full parser. `render` writes a
response from flat records: owner names equal to the question are compressed to a pointer at
the question, other names are written in full (always valid), rdata comes from the record.
Pure functions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.flags
import dns.message

OPT = 41
CLASS_IN = 1
QR, AA, TC, RD = 0x8000, 0x0400, 0x0200, 0x0100
DO = 0x8000
MAX_NAME = 255
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_OPT = struct.Struct("!HHBBHH")


@dataclass(slots=True)
class Query:
    id: int
    flags: int
    qname: str  # as asked (case kept), fully qualified
    qtype: int
    qclass: int
    question: bytes  # the question section as received
    edns: int = -1  # EDNS version, -1 without OPT
    payload: int = 512  # the client's UDP buffer size (EDNS)
    do: bool = False

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


def parse_query(wire: bytes) -> Query | None:
    """A plain query, or None when it needs the full parser (or is malformed)."""
    n = len(wire)
    if n < 17:
        return None
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
    if flags & (QR | 0x7800) or qd != 1 or an or ns or ar > 1:
        return None
    pos = 12
    labels: list[str] = []
    while True:
        if pos >= n:
            return None
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:  # compression pointers or extended labels in a question: full parser
            return None
        label = wire[pos + 1: pos + 1 + length]
        if len(label) != length or not _SAFE.issuperset(label):
            return None
        labels.append(label.decode())
        pos += 1 + length
    if pos - 12 > MAX_NAME or pos + 4 > n:
        return None
    qtype, qclass = struct.unpack_from("!HH", wire, pos)
    pos += 4
    question = wire[12:pos]
    q = Query(qid, flags, ".".join(labels) + "." if labels else ".", qtype, qclass, question)
    if ar:
        if pos + 11 > n or wire[pos] != 0:
            return None
        rtype, payload, _ext, version, eflags, rdlen = _OPT.unpack_from(wire, pos + 1)
        if rtype != OPT or pos + 11 + rdlen != n:
            return None
        q.edns, q.payload, q.do = version, payload, bool(eflags & DO)
        return q
    return q if pos == n else None


def from_message(msg: dns.message.Message) -> Query:
    """A Query from dnspython's parse (the slow path for unusual but valid queries)."""
    rrset = msg.question[0]
    question = rrset.name.to_wire() + struct.pack("!HH", rrset.rdtype, rrset.rdclass)
    return Query(msg.id, msg.flags, rrset.name.to_text(), rrset.rdtype, rrset.rdclass, question,
                 msg.edns, msg.payload if msg.edns >= 0 else 512, bool(msg.ednsflags & dns.flags.DO))


_names: dict[str, bytes] = {}


def encode_name(name: str) -> bytes:
    wire = _names.get(name)
    if wire is None:
        if len(_names) > 20_000:
            _names.clear()
        wire = b"".join(bytes([len(lab)]) + lab for lab in (p.encode() for p in name.rstrip(".").split(".")) if lab)
        wire += b"\x00"
        _names[name] = wire
    return wire


def rdata_wire(rdata) -> bytes:
    packed = getattr(rdata, "packed", None)
    if packed is not None:
        return packed
    return rdata.to_wire()


def _records(records, qname_lower: str) -> list[bytes]:
    out = []
    for owner, ttl, rdata in records:
        name = b"\xc0\x0c" if owner.lower() == qname_lower else encode_name(owner)
        data = rdata_wire(rdata)
        out.append(name + _RR.pack(rdata.rdtype, CLASS_IN, ttl, len(data)) + data)
    return out


def render(q: Query, rcode: int, answer, authority, additional, max_size: int, *,
           authoritative: bool, truncated: bool = False) -> bytes:
    """The response to Q. Too big for MAX_SIZE: without the additional records, else with TC set
    and no records (the client retries over TCP)."""
    qname_lower = q.qname.lower()
    an = _records(answer, qname_lower)
    ns = _records(authority, qname_lower)
    ar = _records(additional, qname_lower)
    opt = b""
    if q.edns >= 0:
        payload = max(512, min(q.payload, 65535))
        opt = b"\x00" + _OPT.pack(OPT, payload, (rcode >> 4) & 0xFF, 0, DO if q.do else 0, 0)
    flags = QR | (q.flags & 0x7800) | (q.flags & RD) | (rcode & 0xF)
    if authoritative:
        flags |= AA
    fixed = 12 + len(q.question) + len(opt)
    size = fixed + sum(map(len, an)) + sum(map(len, ns)) + sum(map(len, ar))
    if size > max_size:
        truncated = True
        ar = []
        if fixed + sum(map(len, an)) + sum(map(len, ns)) > max_size:
            an, ns = [], []
    if truncated:
        flags |= TC
    header = _HEADER.pack(q.id, flags, 1, len(an), len(ns), len(ar) + (1 if opt else 0))
    return b"".join((header, q.question, *an, *ns, *ar, opt))
