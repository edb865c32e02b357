"""Model and trackers: what kube-proxy takes from Services and EndpointSlices, and the deltas."""

from __future__ import annotations

from knet.proxy.model import (
    EndpointsChangeTracker,
    EndpointsMap,
    NamespacedName,
    ServiceChangeTracker,
    ServicePortMap,
    ServicePortName,
    service_ports_from_service,
)
from knet.proxy.topology import categorize_endpoints

from .proxy_objects import endpoint_slice, ep, service

SPN = ServicePortName("ns1", "svc1", "p80", "TCP")


def test_headless_and_external_name_services_are_not_proxied() -> None:
    assert service_ports_from_service(service("h", "None")) == {}
    assert service_ports_from_service({**service("e", ""), "spec": {"type": "ExternalName"}}) == {}


def test_service_port_fields() -> None:
    svc = service("svc1", "10.96.0.5", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000,
                  externalIPs=["192.168.99.1", "fd00::1"], loadBalancerSourceRanges=[" 203.0.113.0/25", "bogus"],
                  sessionAffinity="ClientIP", ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"}]}}
    sp = service_ports_from_service(svc)[SPN]
    assert (sp.cluster_ip, sp.port, sp.node_port, sp.protocol) == ("10.96.0.5", 80, 30080, "TCP")
    assert sp.external_ips == ("192.168.99.1",)
    assert sp.load_balancer_ips == ("1.2.3.4",)
    assert sp.load_balancer_source_ranges == ("203.0.113.0/25",)
    assert sp.session_affinity_client_ip and sp.sticky_seconds == 10800
    assert sp.external_policy_local and sp.health_check_node_port == 31000
    assert str(sp.name) == "ns1/svc1:p80"


def test_service_tracker_drops_changes_that_net_out() -> None:
    t = ServiceChangeTracker()
    a = service("svc1", "10.96.0.5")
    b = service("svc1", "10.96.0.6")
    assert t.update(None, a)
    assert not t.update(a, None)  # added then deleted before a sync: nothing to do
    assert t.update(None, a)
    m = ServicePortMap()
    result = m.apply(t)
    assert result.updated_services == {NamespacedName("ns1", "svc1")} and m[SPN].cluster_ip == "10.96.0.5"
    assert t.update(a, b) and not t.update(b, a)
    assert m.apply(t).updated_services == set()


def test_deleting_a_udp_service_reports_it_for_conntrack() -> None:
    t = ServiceChangeTracker()
    udp = service("dns", "10.96.0.10", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    m = ServicePortMap()
    t.update(None, udp)
    m.apply(t)
    t.update(udp, None)
    assert [p.cluster_ip for p in m.apply(t).deleted_udp_ports] == ["10.96.0.10"]
    assert m == {}


def test_endpoints_merge_slices_sort_and_mark_local() -> None:
    t = EndpointsChangeTracker("node01")
    t.update(None, endpoint_slice("svc1", [ep("10.244.1.9", "node01"), ep("10.244.1.10", "node02")]))
    t.update(None, endpoint_slice("svc1", [ep("10.244.2.3", "node02", ready=False)], name="svc1-2"))
    m = EndpointsMap()
    result = m.apply(t)
    assert result.updated_services == {NamespacedName("ns1", "svc1")}
    assert [str(e) for e in m[SPN]] == ["10.244.1.10:80", "10.244.1.9:80", "10.244.2.3:80"]  # string order
    assert [e.is_local for e in m[SPN]] == [False, True, False]
    assert [e.ready for e in m[SPN]] == [True, True, False]
    assert result.newly_active == {SPN}


def test_removed_endpoints_are_reported() -> None:
    t = EndpointsChangeTracker("node01")
    a = endpoint_slice("svc1", [ep("10.244.1.9"), ep("10.244.1.10")])
    b = endpoint_slice("svc1", [ep("10.244.1.9")])
    m = EndpointsMap()
    t.update(None, a)
    m.apply(t)
    t.update(a, b)
    result = m.apply(t)
    assert [(str(s), str(e)) for s, e in result.deleted_endpoints] == [("ns1/svc1:p80", "10.244.1.10:80")]
    t.update(b, None)
    m.apply(t)
    assert m == {}


def test_terminating_endpoints_are_used_only_when_nothing_is_ready() -> None:
    sp = service_ports_from_service(service("svc1", "10.96.0.5"))[SPN]
    from knet.proxy.model import Endpoint
    ready = Endpoint("10.0.0.1", 80, ready=True)
    term = Endpoint("10.0.0.2", 80, ready=False, serving=True, terminating=True)
    gone = Endpoint("10.0.0.3", 80, ready=False, serving=False, terminating=True)
    assert categorize_endpoints([ready, term, gone], sp).cluster == [ready]
    assert categorize_endpoints([term, gone], sp).cluster == [term]
    assert not categorize_endpoints([gone], sp).has_any


def test_internal_traffic_policy_local_uses_only_local_endpoints() -> None:
    sp = service_ports_from_service(service("svc1", "10.96.0.5", internalTrafficPolicy="Local"))[SPN]
    from knet.proxy.model import Endpoint
    local = Endpoint("10.0.0.1", 80, is_local=True)
    remote = Endpoint("10.0.0.2", 80)
    cat = categorize_endpoints([local, remote], sp)
    assert cat.local == [local] and cat.all_reachable == [local] and cat.cluster == []
    cat = categorize_endpoints([remote], sp)
    assert cat.local == [] and cat.has_any  # has endpoints, but none here: ClusterIP traffic is dropped
