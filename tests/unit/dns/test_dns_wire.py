"""The plain-query parser and the flat renderer, checked against dnspython's own parser."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype as T
import pytest

from knet.dns.answer import Address, soa_record
from knet.dns.wire import parse_query, render


@pytest.mark.parametrize("make, plain", [
    pytest.param(lambda: dns.message.make_query("Web.Default.svc.cluster.local.", T.A), True, id="0x20-case"),
    pytest.param(lambda: dns.message.make_query("a.b.", T.SRV, use_edns=0, payload=4096, want_dnssec=True), True,
                 id="edns-do"),
    pytest.param(lambda: dns.message.make_query(".", T.NS), True, id="root"),
    pytest.param(lambda: dns.message.make_query("a\\.b.c.", T.A), False, id="dot-in-label"),
    pytest.param(lambda: dns.message.make_query("a.b.", T.A, use_edns=0, options=[
        dns.edns.GenericOption(10, b"12345678")]), True, id="edns-cookie"),
])
def test_dns_wire_parse_matches_dnspython(make, plain):
    msg = make()
    q = parse_query(msg.to_wire())
    if not plain:
        assert q is None
        return
    assert (q.id, q.qname, q.qtype, q.qclass, q.edns) == (msg.id, msg.question[0].name.to_text(),
                                                          msg.question[0].rdtype, 1, msg.edns)
    if msg.edns >= 0:
        assert (q.payload, q.do) == (msg.payload, bool(msg.ednsflags & dns.flags.DO))


def test_dns_wire_render_reads_back(dnskit):
    msg = dns.message.make_query("SVC1.testns.svc.cluster.local.", T.A, use_edns=0, payload=1232, want_dnssec=True)
    q = parse_query(msg.to_wire())
    wire = render(q, dns.rcode.NOERROR, [("SVC1.testns.svc.cluster.local.", 30, Address("10.0.0.1"))], [],
                  [("x.testns.svc.cluster.local.", 30, Address("fd00::1"))], 1232, authoritative=True)
    back = dns.message.from_wire(wire)
    assert back.id == msg.id and back.flags & dns.flags.AA and back.flags & dns.flags.RD
    assert not back.flags & dns.flags.RA
    assert back.question[0].name.to_text() == "SVC1.testns.svc.cluster.local."  # case kept
    assert [r.to_text() for r in back.answer[0]] == ["10.0.0.1"] and back.answer[0].ttl == 30
    assert [r.to_text() for r in back.additional[0]] == ["fd00::1"]
    assert back.edns == 0 and back.ednsflags & dns.flags.DO


def test_dns_wire_render_truncates_and_badvers(dnskit):
    q = parse_query(dns.message.make_query("big.testns.svc.cluster.local.", T.A).to_wire())
    many = [("big.testns.svc.cluster.local.", 30, Address(f"10.1.0.{i}")) for i in range(1, 60)]
    back = dns.message.from_wire(render(q, 0, many, [], [], 512, authoritative=True))
    assert back.flags & dns.flags.TC and not back.answer
    assert len(dns.message.from_wire(render(q, 0, many, [], [], 65535, authoritative=True)).answer[0]) == 59
    cache = dnskit.make_cache()
    soa = soa_record(dnskit.make_plugin(cache).backend, "cluster.local.")
    nx = dns.message.from_wire(render(q, dns.rcode.NXDOMAIN, [], [soa], [], 512, authoritative=True))
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == T.SOA
    e = parse_query(dns.message.make_query("a.b.", T.A, use_edns=0).to_wire())
    assert dns.message.from_wire(render(e, dns.rcode.BADVERS, [], [], [], 512, authoritative=False)).rcode() == \
        dns.rcode.BADVERS
