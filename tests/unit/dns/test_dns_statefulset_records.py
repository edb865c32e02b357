"""Per-pod DNS records of a StatefulSet, end to end through the pure parts: the statefulset
controller's pods (hostname = pod name, subdomain = serviceName) -> the endpointslice controller's
slice for the headless Service (endpoint hostnames) -> CoreDNS's answers (plugin/kubernetes: A
records for HOSTNAME.SERVICE.NS.svc, SRV records per named port with the per-pod names as
targets, as handler_test.go's hdls1 rows answer them)."""

from __future__ import annotations

import dns.rcode
import dns.rdatatype as T
import pytest

from knet.api.resources import statefulsets
from knet.controllers.endpointslice import compute_slice_plan
from knet.controllers.statefulset import new_pod
from knet.dns.answer import serve
from knet.dns.cache import ClusterCache
from knet.dns.objects import to_endpoints, to_service

OK, NX = dns.rcode.NOERROR, dns.rcode.NXDOMAIN
SOA = "cluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"
ZONE = "web.shop.svc.cluster.local."


def web_set() -> dict:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "namespace": "shop", "uid": "web-uid"},
           "spec": {"serviceName": "web", "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]}}}}
    statefulsets.defaults(sts)
    return sts


def pod(sts: dict, ordinal: int, ready: bool = True, subdomain: str | None = None) -> dict:
    p = new_pod(sts, ordinal, "web-1234")
    if subdomain is not None:
        p["spec"]["subdomain"] = subdomain
    ip = f"10.244.1.{10 + ordinal}"
    p["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return p


def cache_for(pods: list[dict]) -> ClusterCache:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "uid": "svc-uid"},
           "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}
    plan = compute_slice_plan(svc, pods, {}, [])
    slices = [{**s, "metadata": {**s["metadata"], "name": f"web-{i}"}} for i, s in enumerate(plan.create)]
    cache = ClusterCache()
    cache.load(services=[to_service(svc)], endpoints=[to_endpoints(s) for s in slices], namespaces=["shop"])
    return cache


@pytest.fixture
def plugin(dnskit):
    sts = web_set()
    # web-2 is not ready (not published); `other` names another subdomain: only its IP-derived name
    pods = [pod(sts, 0), pod(sts, 1), pod(sts, 2, ready=False), pod(sts, 3, subdomain="other")]
    return dnskit.make_plugin(cache_for(pods), namespaces=("shop",))


@pytest.mark.parametrize(("qname", "qtype", "rcode", "answer", "extra"), [
    pytest.param(f"web-0.{ZONE}", T.A, OK, [f"web-0.{ZONE}\t5\tIN\tA\t10.244.1.10"], [], id="pod-A"),
    pytest.param(f"web-1.{ZONE}", T.A, OK, [f"web-1.{ZONE}\t5\tIN\tA\t10.244.1.11"], [], id="pod-A-2"),
    pytest.param(f"web-0.{ZONE}", T.AAAA, OK, [], [], id="pod-AAAA-nodata"),
    pytest.param(f"web-2.{ZONE}", T.A, NX, [], [], id="not-ready-pod-unpublished"),
    pytest.param(f"10-244-1-13.{ZONE}", T.A, OK, [f"10-244-1-13.{ZONE}\t5\tIN\tA\t10.244.1.13"], [],
                 id="other-subdomain-by-address"),
    pytest.param(f"web-3.{ZONE}", T.A, NX, [], [], id="other-subdomain-no-hostname"),
    pytest.param(ZONE, T.A, OK, [f"{ZONE}\t5\tIN\tA\t10.244.1.{i}" for i in (10, 11, 13)], [], id="service-A"),
    pytest.param(f"_http._tcp.{ZONE}", T.SRV, OK, [
        f"_http._tcp.{ZONE}\t5\tIN\tSRV\t0 33 8080 web-0.{ZONE}",
        f"_http._tcp.{ZONE}\t5\tIN\tSRV\t0 33 8080 web-1.{ZONE}",
        f"_http._tcp.{ZONE}\t5\tIN\tSRV\t0 33 8080 10-244-1-13.{ZONE}"], [
        f"web-0.{ZONE}\t5\tIN\tA\t10.244.1.10", f"web-1.{ZONE}\t5\tIN\tA\t10.244.1.11",
        f"10-244-1-13.{ZONE}\t5\tIN\tA\t10.244.1.13"], id="named-port-SRV"),
    pytest.param(f"_http._udp.{ZONE}", T.SRV, NX, [], [], id="wrong-protocol"),
    pytest.param(f"_grpc._tcp.{ZONE}", T.SRV, NX, [], [], id="unknown-port-name"),
    pytest.param(f"web-0.{ZONE}", T.SRV, OK, [f"web-0.{ZONE}\t5\tIN\tSRV\t0 100 8080 web-0.{ZONE}"],
                 [f"web-0.{ZONE}\t5\tIN\tA\t10.244.1.10"], id="pod-SRV"),
])
def test_statefulset_pod_records(dnskit, plugin, qname, qtype, rcode, answer, extra):
    dnskit.check_reply(serve(plugin, qname, qtype), rcode, answer, [] if answer else [SOA], extra)
