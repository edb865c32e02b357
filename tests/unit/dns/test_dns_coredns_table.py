"""The query tables of CoreDNS's plugin/kubernetes tests (handler_test.go, reverse_test.go,
handler_pod_insecure_test.go), run against the same fixtures (conftest.py).

Rows carry CoreDNS's own expected records, pasted from its tests; SOA serials are not compared.
Where current CoreDNS changed an answer (wildcards removed, NXDOMAIN for names that cannot
exist), the row follows current CoreDNS and says so.
"""

from __future__ import annotations

import dns.rcode
import dns.rdatatype as T
import pytest

from knet.dns.answer import KubernetesZones, serve
from knet.dns.cache import ClusterCache
from knet.dns.lookup import KubernetesBackend
from knet.dns.objects import to_endpoints, to_service

OK, NX, SERVFAIL = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL
SOA5 = "cluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5"


def row(qname, qtype, rcode, answer=(), ns=(), extra=(), id=None):
    return pytest.param(qname, qtype, rcode, answer, ns, extra, id=id or f"{qname}/{T.to_text(qtype)}")


# handler_test.go dnsTestCases (namespaces testns exposed)
HANDLER_CASES = [
    row("svc1.testns.svc.cluster.local.", T.A, OK, ["svc1.testns.svc.cluster.local.\t5\tIN\tA\t10.0.0.1"]),
    row("svcempty.testns.svc.cluster.local.", T.A, OK, ["svcempty.testns.svc.cluster.local.\t5\tIN\tA\t10.0.0.1"]),
    row("svc1.testns.svc.cluster.local.", T.SRV, OK,
        ["svc1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svc1.testns.svc.cluster.local."],
        extra=["svc1.testns.svc.cluster.local.  5       IN      A       10.0.0.1"]),
    row("svcempty.testns.svc.cluster.local.", T.SRV, OK,
        ["svcempty.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svcempty.testns.svc.cluster.local."],
        extra=["svcempty.testns.svc.cluster.local.  5       IN      A       10.0.0.1"]),
    row("svc6.testns.svc.cluster.local.", T.SRV, OK,
        ["svc6.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svc6.testns.svc.cluster.local."],
        extra=["svc6.testns.svc.cluster.local.  5       IN      AAAA       1234:abcd::1"]),
    row("_http._tcp.svc1.testns.svc.cluster.local.", T.SRV, OK,
        ["_http._tcp.svc1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svc1.testns.svc.cluster.local."],
        extra=["svc1.testns.svc.cluster.local.\t5\tIN\tA\t10.0.0.1"]),
    row("_http._tcp.svcempty.testns.svc.cluster.local.", T.SRV, OK,
        ["_http._tcp.svcempty.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svcempty.testns.svc.cluster.local."],
        extra=["svcempty.testns.svc.cluster.local.\t5\tIN\tA\t10.0.0.1"]),
    row("hdls1.testns.svc.cluster.local.", T.A, OK, [
        "hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.2",
        "hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.3",
        "hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.4",
        "hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.5"]),
    row("hdlsprtls.testns.svc.cluster.local.", T.A, OK, ["hdlsprtls.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.20"]),
    row("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", T.A, OK,
        ["172-0-0-20.hdlsprtls.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.20"]),
    row("172-0-0-2.hdls1.testns.svc.cluster.local.", T.A, OK, ["172-0-0-2.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.2"]),
    row("172-0-0-3.hdls1.testns.svc.cluster.local.", T.A, OK, ["172-0-0-3.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.3"]),
    row("dup-name.hdls1.testns.svc.cluster.local.", T.A, OK, [
        "dup-name.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.4",
        "dup-name.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.5"]),
    row("_http._tcp.hdls1.testns.svc.cluster.local.", T.SRV, OK, [
        "_http._tcp.hdls1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 16 80 dup-name.hdls1.testns.svc.cluster.local."],
        extra=[
        "172-0-0-2.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.2",
        "172-0-0-3.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.3",
        "5678-abcd--1.hdls1.testns.svc.cluster.local.\t5\tIN\tAAAA\t5678:abcd::1",
        "5678-abcd--2.hdls1.testns.svc.cluster.local.\t5\tIN\tAAAA\t5678:abcd::2",
        "dup-name.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.4",
        "dup-name.hdls1.testns.svc.cluster.local.\t5\tIN\tA\t172.0.0.5"], id="headless-srv-weights"),
    row("5678-abcd--2.hdls1.testns.svc.cluster.local.", T.AAAA, OK,
        ["5678-abcd--2.hdls1.testns.svc.cluster.local.\t5\tIN\tAAAA\t5678:abcd::2"]),
    row("external.testns.svc.cluster.local.", T.CNAME, OK,
        ["external.testns.svc.cluster.local.\t5\tIN\tCNAME\text.interwebs.test."]),
    row("external-to-service.testns.svc.cluster.local.", T.A, OK, [
        "external-to-service.testns.svc.cluster.local.\t5\tIN\tCNAME\tsvc1.testns.svc.cluster.local.",
        "svc1.testns.svc.cluster.local.\t5\tIN\tA\t10.0.0.1"]),
    row("svc1.testns.svc.cluster.local.", T.AAAA, OK, ns=[SOA5], id="A-only-service/AAAA-nodata"),
    row("svc0.testns.svc.cluster.local.", T.AAAA, NX, ns=[SOA5]),
    row("svc0.testns.svc.cluster.local.", T.A, NX, ns=[SOA5]),
    row("svc0.svc-nons.svc.cluster.local.", T.A, NX, ns=[SOA5], id="namespace-not-exposed"),
    row("dns-version.cluster.local.", T.TXT, OK, ["dns-version.cluster.local 28800 IN TXT 1.1.0"]),
    row("bogusendpoint.hdls1.testns.svc.cluster.local.", T.A, NX, ns=[SOA5]),
    row("bogusendpoint.svc0.testns.svc.cluster.local.", T.A, NX, ns=[SOA5]),
    row("svc6.testns.svc.cluster.local.", T.AAAA, OK, ["svc6.testns.svc.cluster.local.\t5\tIN\tAAAA\t1234:abcd::1"]),
    row("_http._tcp.svc6.testns.svc.cluster.local.", T.SRV, OK,
        ["_http._tcp.svc6.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svc6.testns.svc.cluster.local."],
        extra=["svc6.testns.svc.cluster.local.\t5\tIN\tAAAA\t1234:abcd::1"]),
    row("hdls1.testns.svc.cluster.local.", T.AAAA, OK, [
        "hdls1.testns.svc.cluster.local.\t5\tIN\tAAAA\t5678:abcd::1",
        "hdls1.testns.svc.cluster.local.\t5\tIN\tAAAA\t5678:abcd::2"]),
    row("5678-abcd--1.hdls1.testns.svc.cluster.local.", T.AAAA, OK,
        ["5678-abcd--1.hdls1.testns.svc.cluster.local.\t5\tIN\tAAAA\t5678:abcd::1"]),
    row("svc.cluster.local.", T.A, OK, ns=[SOA5]),
    row("pod.cluster.local.", T.A, OK, ns=[SOA5]),
    row("testns.svc.cluster.local.", T.A, OK, ns=[SOA5]),
    row("svc.cluster.local.", T.NS, OK, ns=[SOA5]),
    row("testns.svc.cluster.local.", T.NS, OK, ns=[SOA5]),
    row("foo.cluster.local.", T.NS, NX, ns=[SOA5]),
    row("foo.svc.cluster.local.", T.NS, NX, ns=[SOA5]),
    row("svc-dual-stack.testns.svc.cluster.local.", T.A, OK, ["svc-dual-stack.testns.svc.cluster.local.\t5\tIN\tA\t10.0.0.3"]),
    row("svc-dual-stack.testns.svc.cluster.local.", T.AAAA, OK, ["svc-dual-stack.testns.svc.cluster.local.\t5\tIN\tAAAA\t10::3"]),
    row("svc-dual-stack.testns.svc.cluster.local.", T.SRV, OK,
        ["svc-dual-stack.testns.svc.cluster.local.\t5\tIN\tSRV\t0 50 80 svc-dual-stack.testns.svc.cluster.local."],
        extra=["svc-dual-stack.testns.svc.cluster.local.  5       IN      A       10.0.0.3",
               "svc-dual-stack.testns.svc.cluster.local.  5       IN      AAAA       10::3"]),
    row("svc1.testns.svc.cluster.local.", T.SOA, OK, ns=[SOA5]),
    # Not in CoreDNS's table, same rules: case is kept from the query, matching ignores it.
    row("SVC1.TestNS.svc.Cluster.Local.", T.A, OK, ["SVC1.TestNS.svc.Cluster.Local.\t5\tIN\tA\t10.0.0.1"], id="mixed-case"),
    row("svc1.testns.svc.cluster.local.", T.HINFO, OK, ns=[SOA5], id="other-type-nodata"),
    row("svc0.testns.svc.cluster.local.", T.HINFO, NX, ns=[SOA5], id="other-type-nxdomain"),
    row("a.b.c.d.svc1.testns.svc.cluster.local.", T.A, NX, ns=[SOA5], id="too-long"),
    row("cluster.local.", T.SOA, OK,
        ["cluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 3 7200 1800 86400 5"], id="apex-soa"),
    row("external.testns.svc.cluster.local.", T.SRV, OK, ns=[SOA5], id="externalname-srv-nodata"),
]


@pytest.mark.parametrize("qname, qtype, rcode, answer, ns, extra", HANDLER_CASES)
def test_dns_handler_table(dnskit, qname, qtype, rcode, answer, ns, extra):
    plugin = dnskit.make_plugin(dnskit.make_cache())
    dnskit.check_reply(serve(plugin, qname, qtype), rcode, answer, ns, extra)


def test_dns_all_namespaces_exposed_but_must_exist(dnskit):
    # handler_test.go nsTestCases: no `namespaces` option; nsnoexist does not exist.
    plugin = dnskit.make_plugin(dnskit.make_cache(), namespaces=(), ttl=30)
    dnskit.check_reply(serve(plugin, "svc1.testns.svc.cluster.local.", T.A), OK,
                       ["svc1.testns.svc.cluster.local.\t30\tIN\tA\t10.0.0.1"])
    dnskit.check_reply(serve(plugin, "svc1.nsnoexist.svc.cluster.local.", T.A), NX, ns=[
        "cluster.local.\t30\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 1551484803 7200 1800 86400 30"])
    dnskit.check_reply(serve(plugin, "svc1.unexposedns.svc.cluster.local.", T.A), OK,
                       ["svc1.unexposedns.svc.cluster.local.\t30\tIN\tA\t10.0.0.2"])


def test_dns_not_synced_is_servfail(dnskit):
    plugin = dnskit.make_plugin(dnskit.make_cache(synced=False))
    dnskit.check_reply(serve(plugin, "svc0.testns.svc.cluster.local.", T.A), SERVFAIL, ns=[SOA5])


POD_CASES = [  # handler_pod_insecure_test.go, ttl 5 there; SOA minttl from our ttl
    row("10-240-0-1.podns.pod.cluster.local.", T.A, OK, ["10-240-0-1.podns.pod.cluster.local.\t5\tIN\tA\t10.240.0.1"]),
    row("172-0-0-2.podns.pod.cluster.local.", T.A, OK, ["172-0-0-2.podns.pod.cluster.local.\t5\tIN\tA\t172.0.0.2"]),
    row("blah.podns.pod.cluster.local.", T.A, NX, ns=[SOA5]),
    row("blah.podns.pod.cluster.local.", T.AAAA, NX, ns=[SOA5]),
    row("blah.podns.pod.cluster.local.", T.HINFO, NX, ns=[SOA5]),
    row("blah.pod-nons.pod.cluster.local.", T.A, NX, ns=[SOA5]),
    # Current CoreDNS: NS.pod.zone for an existing namespace is NODATA (findPods, empty podname).
    row("podns.pod.cluster.local.", T.A, OK, ns=[SOA5]),
    row("1234-abcd--1.podns.pod.cluster.local.", T.AAAA, OK, ["1234-abcd--1.podns.pod.cluster.local.\t5\tIN\tAAAA\t1234:abcd::1"]),
]


@pytest.mark.parametrize("qname, qtype, rcode, answer, ns, extra", POD_CASES)
def test_dns_pods_insecure(dnskit, qname, qtype, rcode, answer, ns, extra):
    plugin = dnskit.make_plugin(dnskit.make_cache(), namespaces=(), pod_mode="insecure")
    dnskit.check_reply(serve(plugin, qname, qtype), rcode, answer, ns, extra)


def test_dns_pods_disabled_and_verified(dnskit):
    disabled = dnskit.make_plugin(dnskit.make_cache(), namespaces=())
    dnskit.check_reply(serve(disabled, "10-240-0-1.podns.pod.cluster.local.", T.A), NX, ns=[SOA5])
    pod = {"metadata": {"name": "foo", "namespace": "podns"}, "status": {"podIP": "10.240.0.1"}}
    verified = dnskit.make_plugin(dnskit.make_cache(pods=[pod]), namespaces=(), pod_mode="verified")
    dnskit.check_reply(serve(verified, "10-240-0-1.podns.pod.cluster.local.", T.A), OK,
                       ["10-240-0-1.podns.pod.cluster.local.\t5\tIN\tA\t10.240.0.1"])
    dnskit.check_reply(serve(verified, "10-240-0-2.podns.pod.cluster.local.", T.A), NX, ns=[SOA5])
    dnskit.check_reply(serve(verified, "10-240-0-1.testns.pod.cluster.local.", T.A), NX, ns=[SOA5])


REVERSE_ZONES = ("cluster.local.", "0.10.in-addr.arpa.", "168.192.in-addr.arpa.",
                 "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.",
                 "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.")


def reverse_cache(dnskit):
    # reverse_test.go APIConnReverseTest: svc1 has ClusterIP 192.168.1.100 and four named endpoints.
    cache = ClusterCache()
    cache.load(services=[to_service(dnskit.service("svc1", "testns", ["192.168.1.100"]))],
               endpoints=[to_endpoints(dnskit.endpoint_slice("svc1", "testns", [
                   ("10.0.0.100", "ep1a"), ("1234:abcd::1", "ep1b"), ("fd00:77:30::a", "ip6svc1ex"),
                   ("fd00:77:30::2:9ba6", "ip6svc1in")]))],
               namespaces=["testns"])
    return cache


REVERSE_CASES = [
    row("100.0.0.10.in-addr.arpa.", T.PTR, OK, ["100.0.0.10.in-addr.arpa.      5    IN      PTR       ep1a.svc1.testns.svc.cluster.local."]),
    row("100.1.168.192.in-addr.arpa.", T.PTR, OK, ["100.1.168.192.in-addr.arpa.     5     IN      PTR       svc1.testns.svc.cluster.local."]),
    row("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", T.PTR, OK,
        ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 IN PTR ep1b.svc1.testns.svc.cluster.local."]),
    row("a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.", T.PTR, OK,
        ["a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa. 5 IN PTR ip6svc1ex.svc1.testns.svc.cluster.local."]),
    row("6.a.b.9.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.", T.PTR, OK,
        ["6.a.b.9.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa. 5 IN PTR ip6svc1in.svc1.testns.svc.cluster.local."]),
    # Current reverse.go: no Service or endpoint has the IP -> errNoItems -> NXDOMAIN.
    row("101.0.0.10.in-addr.arpa.", T.PTR, NX,
        ns=["0.10.in-addr.arpa.\t5\tIN\tSOA\tns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 1502782828 7200 1800 86400 5"]),
    # Current parse.go: "org" is neither svc nor pod -> errInvalidRequest -> NXDOMAIN.
    row("example.org.cluster.local.", T.PTR, NX, ns=[SOA5]),
]


@pytest.mark.parametrize("qname, qtype, rcode, answer, ns, extra", REVERSE_CASES)
def test_dns_reverse(dnskit, qname, qtype, rcode, answer, ns, extra):
    plugin = dnskit.make_plugin(reverse_cache(dnskit), zones=REVERSE_ZONES, namespaces=())
    dnskit.check_reply(serve(plugin, qname, qtype), rcode, answer, ns, extra)


def test_dns_reverse_fallthrough_hands_over(dnskit):
    plugin = dnskit.make_plugin(dnskit.make_cache(), zones=("cluster.local.", "in-addr.arpa.", "ip6.arpa."),
                                namespaces=(), fallthrough=("in-addr.arpa.", "ip6.arpa."))
    assert serve(plugin, "9.9.9.9.in-addr.arpa.", T.PTR).fallthrough
    dnskit.check_reply(serve(plugin, "1.0.0.10.in-addr.arpa.", T.PTR), OK,
                       ["1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."])
    dnskit.check_reply(serve(plugin, "20.0.0.172.in-addr.arpa.", T.PTR), OK,
                       ["20.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-20.hdlsprtls.testns.svc.cluster.local."])
    # names in cluster.local do not fall through
    assert serve(plugin, "svc0.testns.svc.cluster.local.", T.A).rcode == NX
    assert serve(plugin, "example.com.", T.A) is None


def test_dns_ns_records_at_apex(dnskit):
    backend = KubernetesBackend(dnskit.make_cache(), ["cluster.local."], local_ips=("172.0.0.100",))
    reply = serve(KubernetesZones(backend), "cluster.local.", T.NS)
    dnskit.check_reply(reply, OK, ["cluster.local. 5 IN NS kubedns.kube-system.svc.cluster.local."],
                       extra=["kubedns.kube-system.svc.cluster.local. 5 IN A 10.0.0.10"])
    lonely = KubernetesBackend(dnskit.make_cache(), ["cluster.local."], local_ips=("127.0.0.9",))
    dnskit.check_reply(serve(KubernetesZones(lonely), "ns.dns.cluster.local.", T.A), OK,
                       ["ns.dns.cluster.local. 5 IN A 127.0.0.9"])
