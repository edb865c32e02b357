"""Ingest: what the stripped objects keep from wire dicts, and the cache's indexes."""

from __future__ import annotations

from knet.dns.cache import ClusterCache
from knet.dns.http import split_address
from knet.dns.localaddrs import local_ipv4_addresses
from knet.dns.objects import to_endpoints, to_pod, to_service


def test_dns_objects_service_shapes():
    svc = to_service({"metadata": {"name": "web", "namespace": "default"},
                      "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"],
                               "ports": [{"name": "http", "port": 80}]}})
    assert svc.key == "web.default" and svc.cluster_ips == ("10.96.0.5", "fd00::5") and not svc.headless
    assert [(p.name, p.protocol, p.port) for p in svc.ports] == [("http", "TCP", 80)]
    bare = to_service({"metadata": {"name": "h", "namespace": "x"}, "spec": {"clusterIP": "None"}})
    assert bare.headless and [p.port for p in bare.ports] == [-1]  # CoreDNS's no-ports sentinel


def test_dns_objects_endpointslice_readiness_and_hostnames():
    eps = to_endpoints({
        "metadata": {"name": "db-abc", "namespace": "d", "labels": {"kubernetes.io/service-name": "db"}},
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "hostname": "db-0",
             "targetRef": {"kind": "Pod", "name": "db-0"}},
            {"addresses": ["10.0.0.2"], "conditions": {}},  # ready unset: ready
            {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
        ],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]})
    assert eps.index == "db.d"
    assert [(a.ip, a.hostname, a.target_ref_name) for a in eps.addresses] == [
        ("10.0.0.1", "db-0", "db-0"), ("10.0.0.2", "", "")]
    assert [(p.name, p.port) for p in eps.ports] == [("pg", 5432)]


def test_dns_objects_pod_ips():
    assert to_pod({"metadata": {"name": "p", "namespace": "n"},
                   "status": {"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}]}}).ips == (
        "10.0.0.9", "fd00::9")
    assert to_pod({"metadata": {"name": "p", "namespace": "n"}, "status": {}}).ips == ()


def test_dns_cache_indexes_follow_updates_and_deletes():
    cache = ClusterCache()
    changes = []
    cache.on_change(changes.append)
    slice_a = {"metadata": {"name": "s1", "namespace": "n", "labels": {"kubernetes.io/service-name": "a"}},
               "endpoints": [{"addresses": ["10.0.0.1"]}]}
    cache.upsert_endpoints(to_endpoints(slice_a))
    assert [e.name for e in cache.ep_index_reverse("10.0.0.1")] == ["s1"]
    # the slice moves to another IP: the old reverse entry goes
    slice_a["endpoints"] = [{"addresses": ["10.0.0.2"]}]
    cache.upsert_endpoints(to_endpoints(slice_a))
    assert cache.ep_index_reverse("10.0.0.1") == [] and len(cache.ep_index("a.n")) == 1
    cache.delete_endpoints("n", "s1")
    assert cache.ep_index("a.n") == [] and cache.ep_index_reverse("10.0.0.2") == []
    assert changes == ["a.n", "a.n", "a.n"]
    cache.add_namespace("n")
    assert changes[-1] is None and not cache.has_synced()
    cache.expect("services")
    cache.mark_synced("services")
    assert cache.has_synced()


def test_dns_http_addresses_and_local_ips():
    assert split_address(":8080", 8080) == ("0.0.0.0", 8080)
    assert split_address("localhost:9153", 9153) == ("localhost", 9153)
    assert split_address("127.0.0.1:0", 1) == ("127.0.0.1", 0)
    assert split_address("", 8181) == ("0.0.0.0", 8181)
    ips = local_ipv4_addresses()
    assert ips and all(ip.count(".") == 3 for ip in ips)
