"""One question in a kubernetes zone -> one `Reply` (CoreDNS plugin/kubernetes handler.go and
plugin/backend_lookup.go). The single place that decides answers, NXDOMAIN, NODATA, SERVFAIL.

Pure: reads the backend (and through it the cache); returns records as dnspython rdata.
Names that leave the zone (ExternalName targets) are listed in `Reply.chase` for the caller,
which asks the upstream resolver and appends what it gets, as CoreDNS's Upstream.Lookup does.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from dns.rdata import Rdata
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.SRV import SRV

from knet.dns.lookup import Found, KubernetesBackend, NameError_
from knet.dns.objects import service_key
from knet.dns.request import POD, SVC, InvalidRequest, is_reverse, parse_request

IN = dns.rdataclass.IN
RR = tuple[str, int, "Rdata | Address"]  # owner name, TTL, rdata
MAX_CNAME_CHAIN = 7


@dataclass(slots=True)
class Reply:
    rcode: int = dns.rcode.NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    fallthrough: bool = False  # hand the query to the next plugin (forward)
    chase: list[str] = field(default_factory=list)  # out-of-zone CNAME targets to resolve upstream


def rr(owner: str, ttl: int, rdata: Rdata) -> RR:
    return (owner, ttl, rdata)


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


class Address:
    """An A or AAAA rdata, light: built per answer on the query path (dnspython's A/AAAA
    validate and freeze, ten times the cost). Duck-types the rdata parts the renderers use."""

    __slots__ = ("rdtype", "address", "packed")

    def __init__(self, ip: str) -> None:
        if ":" in ip:
            self.rdtype, self.packed = dns.rdatatype.AAAA, socket.inet_pton(socket.AF_INET6, ip)
            self.address = socket.inet_ntop(socket.AF_INET6, self.packed)
        else:
            self.rdtype, self.packed, self.address = dns.rdatatype.A, socket.inet_aton(ip), ip

    def to_text(self) -> str:
        return self.address

    def to_wire(self) -> bytes:
        return self.packed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Address) and other.packed == self.packed

    def __hash__(self) -> int:
        return hash(self.packed)

    def __repr__(self) -> str:
        return f"<{dns.rdatatype.to_text(self.rdtype)} {self.address}>"


def address_rdata(ip: str) -> Address:
    return Address(ip)


def soa_record(backend: KubernetesBackend, zone: str) -> RR:
    ttl = min(300, backend.ttl)
    soa = SOA(IN, dns.rdatatype.SOA, _name("ns.dns." + zone), _name("hostmaster." + zone),
              backend.cache.modified & 0xFFFFFFFF, 7200, 1800, 86400, backend.ttl)
    return rr(zone, ttl, soa)


@dataclass(frozen=True, slots=True)
class KubernetesZones:
    """The kubernetes plugin of one server block: its backend and its fallthrough zones."""

    backend: KubernetesBackend
    fallthrough: tuple[str, ...] | None = None  # None: never; (): every name; else these zones

    def falls_through(self, name: str) -> bool:
        if self.fallthrough is None:
            return False
        if not self.fallthrough:
            return True
        return any(name == z or name.endswith("." + z) or z == "." for z in self.fallthrough)


def serve(plugin: KubernetesZones, qname: str, qtype: int) -> Reply | None:
    """Answer QNAME/QTYPE, or None when QNAME is in none of the plugin's zones."""
    backend = plugin.backend
    name = qname.lower()
    zone_lower = backend.match_zone(name)
    if zone_lower is None:
        return None
    zone = qname[len(qname) - len(zone_lower):] if zone_lower != "." else "."  # keep the query's case
    reply = Reply()
    records: list[RR] = []
    try:
        if qtype == dns.rdatatype.A or qtype == dns.rdatatype.AAAA:
            records = _addresses(backend, name, qname, zone_lower, qtype, [], reply.chase)
        elif qtype == dns.rdatatype.TXT:
            records = [rr(qname, f.ttl, TXT(IN, dns.rdatatype.TXT, [f.text.encode()]))
                       for f in backend.services(name, zone_lower, "TXT")]
        elif qtype == dns.rdatatype.CNAME:
            found = backend.services(name, zone_lower, "CNAME")
            if found and found[0].kind == "CNAME":
                records = [rr(qname, found[0].ttl, CNAME(IN, dns.rdatatype.CNAME, _name(found[0].host)))]
        elif qtype == dns.rdatatype.PTR:
            records = _ptr(backend, name, qname, zone_lower)
        elif qtype == dns.rdatatype.SRV:
            records, reply.additional = _srv(backend, name, qname, zone_lower)
        elif qtype == dns.rdatatype.MX:
            backend.services(name, zone_lower, "MX")  # no Service is a mail exchanger: NODATA
        elif qtype == dns.rdatatype.SOA:
            if name == zone_lower:
                records = [soa_record(backend, zone)]
            else:
                _addresses(backend, name, qname, zone_lower, dns.rdatatype.A, [], [])
        elif qtype == dns.rdatatype.NS and name == zone_lower:
            records, reply.additional = _ns(backend, qname, zone_lower)
        else:
            # A fake A lookup tells NODATA from NXDOMAIN for every other type.
            _addresses(backend, name, qname, zone_lower, dns.rdatatype.A, [], [])
    except NameError_:
        if plugin.falls_through(name):
            return Reply(fallthrough=True)
        reply.rcode = dns.rcode.NXDOMAIN if backend.cache.has_synced() else dns.rcode.SERVFAIL
        reply.authority = [soa_record(backend, zone)]
        reply.chase.clear()
        return reply
    if not records:
        reply.authority = [soa_record(backend, zone)]
        reply.additional = []
        reply.chase.clear()
        return reply
    reply.answer = records
    return reply


def dependency(plugin: KubernetesZones, qname: str, qtype: int, reply: Reply) -> str:
    """What a cached answer to QNAME depends on (see wirecache): the Service key, "pod", "static"
    for a name that cannot exist, or "*" when it may depend on anything (PTR, NS, CNAME chains)."""
    name = qname.lower()
    zone = plugin.backend.match_zone(name)
    if zone is None or is_reverse(zone) or qtype in (dns.rdatatype.NS, dns.rdatatype.PTR):
        return "*"
    if name.startswith("ns.dns.") or any(r.rdtype == dns.rdatatype.CNAME for _, _, r in reply.answer):
        return "*"
    try:
        r = parse_request(name, zone)
    except InvalidRequest:
        return "static"
    if r.pod_or_svc == SVC and r.service:
        return service_key(r.service, r.namespace)
    if r.pod_or_svc == POD and r.service:
        return "pod"
    return "*"


def _addresses(backend: KubernetesBackend, name: str, qname: str, zone: str, qtype: int,
               previous: list[RR], chase: list[str]) -> list[RR]:
    """plugin.A / plugin.AAAA: addresses, following CNAMEs inside the zone."""
    want = "A" if qtype == dns.rdatatype.A else "AAAA"
    records: list[RR] = []
    seen: set[str] = set()
    for f in backend.services(name, zone, want):
        kind = f.kind
        if kind == "CNAME":
            target = f.host
            if target == name:  # x CNAME x is a loop
                continue
            if len(previous) > MAX_CNAME_CHAIN:
                continue
            cname = rr(qname, f.ttl, CNAME(IN, dns.rdatatype.CNAME, _name(target)))
            if any(p[2] == cname[2] and p[0].lower() == qname.lower() for p in previous):
                continue
            if target == zone or target.endswith("." + zone):
                try:
                    nxt = _addresses(backend, target, target, zone, qtype, [*previous, cname], chase)
                except NameError_:
                    continue
                if nxt:
                    records.append(cname)
                    records.extend(nxt)
                continue
            records.append(cname)
            chase.append(target)
        elif kind == want and f.host not in seen:
            seen.add(f.host)
            records.append(rr(qname, f.ttl, address_rdata(f.host)))
    return records


def _ptr(backend: KubernetesBackend, name: str, qname: str, zone: str) -> list[RR]:
    seen: set[str] = set()
    records = []
    for f in backend.reverse(name, zone):
        if f.kind == "CNAME" and f.host not in seen:
            seen.add(f.host)
            records.append(rr(qname, f.ttl, PTR(IN, dns.rdatatype.PTR, _name(f.host))))
    return records


def srv_weights(found: list[Found]) -> int:
    """The per-record SRV weight CoreDNS gives N equal-priority targets: floor(100 / N * 100 / 100)."""
    total = 100 * len(found)
    weight = int(math.floor(100.0 / total * 100)) if total else 0
    return weight or 1


def _srv(backend: KubernetesBackend, name: str, qname: str, zone: str) -> tuple[list[RR], list[RR]]:
    found = backend.services(name, zone, "SRV")
    weight = srv_weights(found)
    records: list[RR] = []
    extra: list[RR] = []
    seen_srv: set[tuple[str, int]] = set()
    seen_addr: set[tuple[str, str]] = set()
    for f in found:
        if f.port == -1:  # a Service or endpoint without ports has no SRV record
            continue
        if f.kind == "CNAME":
            continue
        if (f.name, f.port) not in seen_srv:
            seen_srv.add((f.name, f.port))
            records.append(rr(qname, f.ttl, SRV(IN, dns.rdatatype.SRV, 0, weight, f.port, _name(f.name))))
        if (f.name, f.host) not in seen_addr:
            seen_addr.add((f.name, f.host))
            extra.append(rr(f.name, f.ttl, address_rdata(f.host)))
    return records, extra


def _ns(backend: KubernetesBackend, qname: str, zone: str) -> tuple[list[RR], list[RR]]:
    records: list[RR] = []
    extra: list[RR] = []
    seen: set[str] = set()
    for f in backend.services(zone, zone, "NS"):
        extra.append(rr(f.name, f.ttl, address_rdata(f.host)))
        if f.name not in seen:
            seen.add(f.name)
            records.append(rr(qname, f.ttl, NS(IN, dns.rdatatype.NS, _name(f.name))))
    return records, extra
