"""The DNS server on loopback: real UDP/TCP sockets, a cache fed by the CoreDNS fixtures, the
kubeadm Corefile, and upstreams we control (one silent, one answering)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype as T
import pytest

from knet.dns.build import build_handlers
from knet.dns.corefile import KUBEADM_COREFILE, parse_corefile
from knet.dns.objects import to_endpoints, to_service
from knet.dns.server import start_dns


@contextlib.contextmanager
def silent_upstream():
    """A loopback UDP socket that reads queries and never answers (like the upstream here)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()
    finally:
        sock.close()


class AnsweringUpstream(asyncio.DatagramProtocol):
    """A loopback resolver that knows one name: example.test. A 192.0.2.7 (ttl 60)."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q, recursion_available=True)
        if q.question[0].name.to_text().lower() == "example.test." and q.question[0].rdtype == T.A:
            r.answer.append(dns.rrset.from_text("example.test.", 60, "IN", "A", "192.0.2.7"))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(r.to_wire(), addr)


@pytest.fixture
async def dns_server(dnskit, tmp_path):
    """The kubeadm Corefile served on 127.0.0.1:PORT; forward goes to a silent and an answering upstream."""
    loop = asyncio.get_running_loop()
    up_transport, _ = await loop.create_datagram_endpoint(AnsweringUpstream, local_addr=("127.0.0.1", 0))
    up_addr = up_transport.get_extra_info("sockname")
    with silent_upstream() as silent:
        text = KUBEADM_COREFILE.replace(".:53", ".:0").replace("forward . /etc/resolv.conf", "forward . RESOLV")
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {silent[0]}\n")
        text = text.replace("RESOLV", f"{up_addr[0]}:{up_addr[1]} {silent[0]}:{silent[1]}")
        cache = dnskit.make_cache()
        handlers = build_handlers(parse_corefile(text), cache, forward_timeout=0.4)
        handler = handlers[0]
        udp, tcp = await start_dns(handler, "127.0.0.1", 0)
        port = udp.get_extra_info("sockname")[1]
        try:
            yield {"port": port, "cache": cache, "handler": handler, "silent": silent}
        finally:
            udp.close()
            tcp.close()
            up_transport.close()


async def ask(port, qname, qtype=T.A, *, tcp=False, edns=-1, payload=1232, timeout=2.0, **kw):
    q = dns.message.make_query(qname, qtype, use_edns=edns, payload=payload, **kw)
    if tcp:
        return await asyncio.to_thread(dns.query.tcp, q, "127.0.0.1", timeout=timeout, port=port)
    return await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=timeout, port=port)


def addresses(resp):
    return sorted(r.to_text() for rrset in resp.answer for r in rrset if rrset.rdtype in (T.A, T.AAAA))


async def test_dns_server_answers_cluster_names_and_caches(dns_server):
    port, handler = dns_server["port"], dns_server["handler"]
    first = await ask(port, "svc1.testns.svc.cluster.local.")
    assert first.rcode() == dns.rcode.NOERROR and addresses(first) == ["10.0.0.1"]
    assert first.flags & dns.flags.AA and not first.flags & dns.flags.RA
    assert first.answer[0].ttl == 30  # `ttl 30` from the Corefile
    hits = handler.metrics.cache_hits["success"]
    second = await ask(port, "svc1.testns.svc.cluster.local.")
    assert addresses(second) == ["10.0.0.1"] and handler.metrics.cache_hits["success"] == hits + 1
    nx = await ask(port, "nope.testns.svc.cluster.local.")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert nx.authority[0].rdtype == T.SOA and nx.authority[0].ttl == 30


async def test_dns_server_sees_changes_at_once(dns_server, dnskit):
    port, cache = dns_server["port"], dns_server["cache"]
    name = "late.testns.svc.cluster.local."
    assert (await ask(port, name)).rcode() == dns.rcode.NXDOMAIN
    assert (await ask(port, name)).rcode() == dns.rcode.NXDOMAIN  # now served from the wire cache
    cache.upsert_service(to_service(dnskit.service("late", "testns", ["10.0.0.99"])))
    assert addresses(await ask(port, name)) == ["10.0.0.99"]
    cache.delete_service("late.testns")
    assert (await ask(port, name)).rcode() == dns.rcode.NXDOMAIN


async def test_dns_server_srv_ptr_txt_and_pods(dns_server):
    port = dns_server["port"]
    srv = await ask(port, "_http._tcp.hdls1.testns.svc.cluster.local.", T.SRV)
    assert sorted(r.weight for rrset in srv.answer for r in rrset) == [16] * 5
    ptr = await ask(port, "1.0.0.10.in-addr.arpa.", T.PTR)
    assert ptr.answer[0][0].to_text() == "svc1.testns.svc.cluster.local."
    txt = await ask(port, "dns-version.cluster.local.", T.TXT)
    assert txt.answer[0][0].to_text() == '"1.1.0"'
    pod = await ask(port, "10-244-1-5.testns.pod.cluster.local.")
    assert addresses(pod) == ["10.244.1.5"]


async def test_dns_server_forwards_and_times_out_cleanly(dns_server):
    port, handler = dns_server["port"], dns_server["handler"]
    # The answering upstream and the silent one are tried in random order within 0.4 s.
    seen = set()
    for _ in range(6):
        resp = await ask(port, "example.test.")
        seen.add((resp.rcode(), tuple(addresses(resp))))
        if resp.rcode() == dns.rcode.NOERROR:
            break
    assert (dns.rcode.NOERROR, ("192.0.2.7",)) in seen
    # the answer is cached for the next client (cache 30)
    hits = handler.metrics.cache_hits["success"]
    assert addresses(await ask(port, "example.test.")) == ["192.0.2.7"]
    assert handler.metrics.cache_hits["success"] == hits + 1
    # Reverse names nobody owns fall through to forward; unanswered -> NXDOMAIN from the upstream or SERVFAIL.
    resp = await ask(port, "9.9.9.9.in-addr.arpa.", T.PTR)
    assert resp.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL)


async def test_dns_server_servfail_when_upstream_is_silent(dnskit, tmp_path):
    with silent_upstream() as silent:
        text = KUBEADM_COREFILE.replace(".:53", ".:0").replace("/etc/resolv.conf", f"{silent[0]}:{silent[1]}")
        handler = build_handlers(parse_corefile(text), dnskit.make_cache(), forward_timeout=0.3)[0]
        udp, tcp = await start_dns(handler, "127.0.0.1", 0)
        try:
            port = udp.get_extra_info("sockname")[1]
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            resp = await ask(port, "www.example.org.")
            assert resp.rcode() == dns.rcode.SERVFAIL and loop.time() - t0 < 1.5
            # cluster names are still answered while the upstream hangs
            assert addresses(await ask(port, "svc1.testns.svc.cluster.local.")) == ["10.0.0.1"]
        finally:
            udp.close()
            tcp.close()


async def test_dns_server_truncates_and_tcp_has_everything(dns_server, dnskit):
    port, cache = dns_server["port"], dns_server["cache"]
    ips = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(100)]
    cache.upsert_service(to_service(dnskit.service("big", "testns", ["None"])))
    cache.upsert_endpoints(to_endpoints(dnskit.endpoint_slice("big", "testns", [(ip, None) for ip in ips])))
    name = "big.testns.svc.cluster.local."
    small = await ask(port, name)
    assert small.flags & dns.flags.TC and not small.answer
    big_edns = await ask(port, name, edns=0, payload=4096)
    assert not big_edns.flags & dns.flags.TC and len(addresses(big_edns)) == 100
    assert big_edns.edns == 0 and big_edns.payload >= 512
    over_tcp = await ask(port, name, tcp=True)
    assert addresses(over_tcp) == sorted(ips)


async def test_dns_server_loadbalance_rotates(dns_server):
    port = dns_server["port"]
    firsts = set()
    for _ in range(6):
        resp = await ask(port, "hdls1.testns.svc.cluster.local.")
        assert addresses(resp) == ["172.0.0.2", "172.0.0.3", "172.0.0.4", "172.0.0.5"]
        firsts.add(resp.answer[0][0].to_text())
    assert len(firsts) > 1


def raw_query(port, payload: bytes, timeout=0.5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(payload, ("127.0.0.1", port))
        return s.recv(65535)
    except TimeoutError:
        return None
    finally:
        s.close()


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return b"".join(x.to_bytes(2, "big") for x in (qid, flags, qd, an, ns, ar))


def question(name=b"\x04svc1\x06testns\x03svc\x07cluster\x05local\x00", qtype=1, qclass=1):
    return name + qtype.to_bytes(2, "big") + qclass.to_bytes(2, "big")


@pytest.mark.parametrize("payload, rcode", [
    pytest.param(b"\x12", None, id="runt-dropped"),
    pytest.param(header(flags=0x8100) + question(), None, id="response-dropped"),
    pytest.param(header() + b"\x04svc1\x06tes", dns.rcode.FORMERR, id="cut-question"),
    pytest.param(header() + b"\xc0\x0c" + b"\x00\x01\x00\x01", dns.rcode.FORMERR, id="pointer-loop"),
    pytest.param(header() + b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00\x00\x01\x00\x01",
                 dns.rcode.FORMERR, id="name-over-255"),
    pytest.param(header(qd=2) + question() + question(), dns.rcode.FORMERR, id="two-questions"),
    pytest.param(header(flags=0x2000 | 0x0100) + question(), dns.rcode.NOTIMP, id="opcode-notify"),
    pytest.param(header() + question(qclass=3), dns.rcode.NOTIMP, id="class-chaos"),
    pytest.param(header() + question(qtype=252), dns.rcode.REFUSED, id="axfr"),
    pytest.param(header() + question(qtype=65280), dns.rcode.NOERROR, id="unknown-type-nodata"),
    pytest.param(header(ar=1) + question() + b"\x00\x00\x29\x04\xd0\x00\x01\x00\x00\x00\x00",
                 dns.rcode.BADVERS, id="edns-version-1"),
])
async def test_dns_server_bad_input(dns_server, payload, rcode):
    port = dns_server["port"]
    answer = await asyncio.to_thread(raw_query, port, payload)
    if rcode is None:
        assert answer is None
    else:
        assert answer is not None and answer[:2] == payload[:2]
        msg_rcode = answer[3] & 0x0F
        if rcode == dns.rcode.BADVERS:
            assert dns.message.from_wire(answer).rcode() == dns.rcode.BADVERS
        else:
            assert msg_rcode == rcode
    # and the server still answers
    assert addresses(await ask(port, "svc1.testns.svc.cluster.local.")) == ["10.0.0.1"]


def flood(port, count):
    """COUNT queries for distinct random names (all cache misses), as fast as one socket goes."""
    template = dns.message.make_query("r0000000.testns.svc.cluster.local.", T.A).to_wire()
    at = template.index(b"r0000000")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.2", 0))  # another client than the test's own queries (from 127.0.0.1)
    try:
        for _ in range(count):
            s.sendto(template[:at] + os.urandom(4).hex().encode() + template[at + 8:], ("127.0.0.1", port))
    finally:
        s.close()


async def test_dns_server_survives_a_flood_from_one_client(dnskit):
    handler = build_handlers(parse_corefile(KUBEADM_COREFILE.replace(".:53", ".:0")), dnskit.make_cache())[0]
    udp, tcp = await start_dns(handler, "127.0.0.1", 0, miss_rate=500, miss_burst=500)
    try:
        port = udp.get_extra_info("sockname")[1]
        flooding = asyncio.create_task(asyncio.to_thread(flood, port, 20000))
        answered = asked = 0
        while not flooding.done() or asked < 3:
            asked += 1
            try:  # while the flood fills the socket buffer the kernel may drop a query of ours
                resp = await ask(port, "svc1.testns.svc.cluster.local.", timeout=0.5)
            except dns.exception.Timeout:
                continue
            answered += addresses(resp) == ["10.0.0.1"]
        await flooding
        assert answered >= 1
        # the flood's excess was shed, and another client is still answered afterwards (retrying
        # like a stub resolver: its first packet may meet a socket buffer still full of flood)
        assert handler.metrics.dropped > 0
        for attempt in range(3):
            try:
                resp = await ask(port, "svc6.testns.svc.cluster.local.", T.AAAA, timeout=1.0)
                break
            except dns.exception.Timeout:
                assert attempt < 2
        assert addresses(resp) == ["1234:abcd::1"]
    finally:
        udp.close()
        tcp.close()


async def test_dns_server_metrics_text(dns_server):
    port, handler = dns_server["port"], dns_server["handler"]
    await ask(port, "svc1.testns.svc.cluster.local.")
    await ask(port, "svc1.testns.svc.cluster.local.")
    text = handler.metrics.render()
    assert 'coredns_dns_requests_total{family="1",proto="udp",server="dns://:0",type="A",view="",zone="."}' in text
    assert "coredns_dns_request_duration_seconds_bucket{" in text and 'le="+Inf"' in text
    assert 'coredns_cache_hits_total{server="dns://:0",type="success",view="",zones="."} ' in text


async def test_dns_server_externalname_cname_and_upstream_answer(dns_server, dnskit):
    port, cache = dns_server["port"], dns_server["cache"]
    cache.upsert_service(to_service(dnskit.service("ext", "testns", type_="ExternalName", external_name="example.test")))
    for _ in range(6):  # the answering upstream is picked first only some of the time
        resp = await ask(port, "ext.testns.svc.cluster.local.")
        if addresses(resp):
            break
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.answer[0].rdtype == T.CNAME and resp.answer[0][0].to_text() == "example.test."
    assert addresses(resp) == ["192.0.2.7"]
    cname = await ask(port, "ext.testns.svc.cluster.local.", T.CNAME)
    assert [r.to_text() for r in cname.answer[0]] == ["example.test."]


async def test_dns_server_change_forgets_only_dependent_answers(dns_server, dnskit):
    port, cache, handler = dns_server["port"], dns_server["cache"], dns_server["handler"]
    await ask(port, "svc1.testns.svc.cluster.local.")
    await ask(port, "hdls1.testns.svc.cluster.local.")
    await ask(port, "1.0.0.10.in-addr.arpa.", T.PTR)
    cluster = handler.wire_cache.cluster
    assert len(cluster) == 3
    # an endpoint change of hdls1 forgets hdls1's answer and the PTR ("*"), keeps svc1's
    cache.upsert_endpoints(to_endpoints(dnskit.endpoint_slice("hdls1", "testns", [("172.0.0.9", None)])))
    assert len(handler.wire_cache.cluster) == 1
    assert addresses(await ask(port, "hdls1.testns.svc.cluster.local.")) == ["172.0.0.9"]
    # a namespace change may change anything: all forgotten
    cache.add_namespace("brand-new")
    assert len(handler.wire_cache.cluster) == 0
    assert addresses(await ask(port, "svc1.testns.svc.cluster.local.")) == ["10.0.0.1"]


async def test_dns_server_tcp_connection_cap_per_client(dns_server):
    port = dns_server["port"]
    from knet.dns.server import MAX_TCP_PER_CLIENT
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_TCP_PER_CLIENT + 2)]
    try:
        await asyncio.sleep(0.1)
        # another client still gets answers over TCP
        q = dns.message.make_query("svc1.testns.svc.cluster.local.", T.A)
        resp = await asyncio.to_thread(dns.query.tcp, q, "127.0.0.1", timeout=2, port=port, source="127.0.0.3")
        assert addresses(resp) == ["10.0.0.1"]
        # the same client's extra connections were closed by the server
        held[-1].settimeout(1)
        assert held[-1].recv(1) == b""
    finally:
        for s in held:
            s.close()
