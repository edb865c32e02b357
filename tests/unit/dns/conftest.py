"""The fixtures of CoreDNS's plugin/kubernetes handler_test.go (APIConnServeTest), as wire dicts.

svcIndex and epsIndex there become Services and EndpointSlices here, stripped by knet.dns.objects
exactly as the live watch strips them, so the table tests also cover ingest.
"""

from __future__ import annotations

from types import SimpleNamespace

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from knet.dns.answer import KubernetesZones, Reply
from knet.dns.cache import ClusterCache
from knet.dns.lookup import KubernetesBackend
from knet.dns.objects import to_endpoints, to_pod, to_service


def service(name: str, ns: str, cluster_ips: list[str] | None = None, ports=(("http", "TCP", 80),),
            type_: str = "ClusterIP", external_name: str | None = None) -> dict:
    spec: dict = {"type": type_, "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports]}
    if cluster_ips:
        spec["clusterIP"] = cluster_ips[0]
        spec["clusterIPs"] = cluster_ips
    if external_name:
        spec["externalName"] = external_name
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint_slice(service_name: str, ns: str, endpoints: list[tuple[str, str | None]],
                   ports=(("http", "TCP", 80),), ready=True) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-slice1", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, **({"hostname": h} if h else {})}
                      for ip, h in endpoints],
        "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports],
    }


COREDNS_SERVICES = [
    service("kubedns", "kube-system", ["10.0.0.10"], ports=(("dns", "UDP", 53),)),
    service("svc1", "testns", ["10.0.0.1"]),
    service("svcempty", "testns", ["10.0.0.1"]),
    service("svc6", "testns", ["1234:abcd::1"]),
    service("hdls1", "testns", ["None"], ports=()),
    service("external", "testns", type_="ExternalName", external_name="ext.interwebs.test"),
    service("external-to-service", "testns", type_="ExternalName", external_name="svc1.testns.svc.cluster.local."),
    service("hdlsprtls", "testns", ["None"], ports=()),
    service("svc1", "unexposedns", ["10.0.0.2"]),
    service("svc-dual-stack", "testns", ["10.0.0.3", "10::3"]),
]

COREDNS_SLICES = [
    endpoint_slice("kubedns", "kube-system", [("172.0.0.100", None)], ports=(("dns", "UDP", 53),)),
    endpoint_slice("svc1", "testns", [("172.0.0.1", "ep1a")]),
    endpoint_slice("svcempty", "testns", []),
    endpoint_slice("hdls1", "testns", [("172.0.0.2", None), ("172.0.0.3", None), ("172.0.0.4", "dup-name"),
                                       ("172.0.0.5", "dup-name"), ("5678:abcd::1", None), ("5678:abcd::2", None)]),
    endpoint_slice("hdlsprtls", "testns", [("172.0.0.20", None)], ports=(("", "TCP", None),)),
]

# GetNamespaceByName in the CoreDNS fixture: every namespace exists except these two.
MISSING_NAMESPACES = {"pod-nons", "nsnoexist"}
EXISTING_NAMESPACES = ["testns", "kube-system", "unexposedns", "svc-nons", "podns", "default"]

SERIAL = 3  # APIConnServeTest.Modified()


def make_cache(synced: bool = True, pods=()) -> ClusterCache:
    cache = ClusterCache()
    cache.load(services=[to_service(s) for s in COREDNS_SERVICES],
               endpoints=[to_endpoints(e) for e in COREDNS_SLICES],
               namespaces=EXISTING_NAMESPACES, pods=[to_pod(p) for p in pods])
    if not synced:
        cache.expect("never")
    cache.modified = SERIAL
    return cache


def make_plugin(cache: ClusterCache, zones=("cluster.local.",), namespaces=("testns",), ttl=5,
                pod_mode="disabled", fallthrough=None) -> KubernetesZones:
    backend = KubernetesBackend(cache, list(zones), ttl=ttl, pod_mode=pod_mode, namespaces=frozenset(namespaces))
    return KubernetesZones(backend, fallthrough)


def canonical(line: str) -> str:
    """A zone-file line in canonical text: lower-case owner, one space, SOA serial zeroed."""
    owner, ttl, klass, rtype, rest = line.split(None, 4)
    rdtype = dns.rdatatype.from_text(rtype)
    rdata = dns.rdata.from_text(dns.rdataclass.from_text(klass), rdtype, rest)
    if rdtype == dns.rdatatype.SOA:
        rdata = rdata.replace(serial=0)
    owner = owner.lower().rstrip(".") + "."
    return f"{owner} {int(ttl)} {klass} {rtype} {rdata.to_text()}"


def section_text(records) -> list[str]:
    return sorted(canonical(f"{o} {t} IN {dns.rdatatype.to_text(r.rdtype)} {r.to_text()}") for o, t, r in records)


def expected_text(lines) -> list[str]:
    return sorted(canonical(line) for line in lines)


def check_reply(reply: Reply, rcode: int, answer=(), ns=(), extra=()) -> None:
    assert reply is not None
    assert (reply.rcode, section_text(reply.answer), section_text(reply.authority)) == (
        rcode, expected_text(answer), expected_text(ns))
    if extra:
        assert section_text(reply.additional) == expected_text(extra)


@pytest.fixture
def dnskit() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(make_cache=make_cache, make_plugin=make_plugin, check_reply=check_reply,
                           service=service, endpoint_slice=endpoint_slice, canonical=canonical,
                           section_text=section_text, expected_text=expected_text)
