"""EndpointSlice/Endpoints: pure computation tables, then the controller over FakeApi."""

from __future__ import annotations

import asyncio

import pytest

from knet.controllers.endpointslice import (
    MANAGED_BY,
    EndpointSliceController,
    compute_endpoints,
    compute_slice_endpoints,
    compute_slice_plan,
)


def service(name="web", selector=None, ports=None, **spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": name}},
            "spec": {"selector": {"app": "web"} if selector is None else selector,
                     "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                     **spec}}


def pod(name, ip="10.244.1.5", ready=True, node="node01", labels=None, deleting=False, phase="Running",
        container_ports=None):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": container_ports or []}]},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


NODES = {"node01": {"metadata": {"name": "node01", "labels": {"topology.kubernetes.io/zone": "zone-a"}}}}


@pytest.mark.parametrize(("pods", "expected"), [
    pytest.param([pod("a")], [("10.244.1.5", True, True, False)], id="ready"),
    pytest.param([pod("a", ready=False)], [("10.244.1.5", False, False, False)], id="not-ready"),
    pytest.param([pod("a", deleting=True)], [("10.244.1.5", False, True, True)], id="terminating-serving"),
    pytest.param([pod("a", ip="")], [], id="no-ip-yet"),
    pytest.param([pod("a", phase="Succeeded")], [], id="terminal"),
    pytest.param([pod("a", labels={"app": "db"})], [], id="not-selected"),
])
def test_endpoint_conditions(pods, expected):
    slices = compute_slice_endpoints(service(), pods, NODES)
    got = [(e["addresses"][0], e["conditions"]["ready"], e["conditions"]["serving"], e["conditions"]["terminating"])
           for s in slices for e in s.endpoints]
    assert got == expected


def test_endpoint_carries_node_zone_and_target_ref():
    [slc] = compute_slice_endpoints(service(), [pod("a")], NODES)
    ep = slc.endpoints[0]
    assert ep["nodeName"] == "node01" and ep["zone"] == "zone-a"
    assert ep["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}
    assert slc.ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_named_target_port_resolves_per_pod_and_splits_slices():
    svc = service(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    pods = [pod("a", ip="10.244.1.2", container_ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", ip="10.244.1.3", container_ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", ip="10.244.1.4", container_ports=[{"name": "web", "containerPort": 8080}])]
    slices = compute_slice_endpoints(svc, pods, NODES)
    by_port = {s.ports[0]["port"]: [e["addresses"][0] for e in s.endpoints] for s in slices}
    assert by_port == {8080: ["10.244.1.2", "10.244.1.4"], 9090: ["10.244.1.3"]}


def test_at_most_100_endpoints_per_slice():
    pods = [pod(f"p{i:03d}", ip=f"10.244.{i // 200}.{i % 200 + 1}") for i in range(250)]
    sizes = [len(s.endpoints) for s in compute_slice_endpoints(service(), pods, NODES)]
    assert sizes == [100, 100, 50]


def test_plan_is_a_noop_when_nothing_changed_and_creates_placeholder_when_empty():
    svc = service()
    plan = compute_slice_plan(svc, [], NODES, [])
    [placeholder] = plan.create
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    labels = placeholder["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "web"
    assert labels["endpointslice.kubernetes.io/managed-by"] == MANAGED_BY
    assert placeholder["metadata"]["ownerReferences"][0]["controller"] is True
    existing = {**placeholder, "metadata": {**placeholder["metadata"], "name": "web-abcde"}}
    again = compute_slice_plan(svc, [], NODES, [existing])
    assert (again.create, again.update, again.delete) == ([], [], [])
    grown = compute_slice_plan(svc, [pod("a")], NODES, [existing])
    assert [s["metadata"]["name"] for s in grown.update] == ["web-abcde"] and not grown.create


def test_legacy_endpoints_split_ready_and_not_ready_and_drop_terminating():
    eps = compute_endpoints(service(), [pod("a", ip="10.244.1.2"), pod("b", ip="10.244.1.3", ready=False),
                                        pod("c", ip="10.244.1.4", deleting=True)])
    [subset] = eps["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.244.1.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.1.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


async def test_controller_follows_readiness_and_leaves_selectorless_services_alone(harness):
    api = harness.api
    api.seed("v1", "services", service())
    api.seed("v1", "services", service("kubernetes", selector={}))
    api.seed("v1", "pods", pod("a", ip="10.244.1.2"))
    ctrl = EndpointSliceController(api, harness.informers)
    await harness.start(ctrl)

    def ready_ips():
        return sorted(e["addresses"][0] for s in api.objects("discovery.k8s.io/v1", "endpointslices")
                      for e in s.get("endpoints") or [] if e["conditions"]["ready"])

    await harness.until(lambda: ready_ips() == ["10.244.1.2"])
    api.seed("v1", "pods", pod("b", ip="10.244.1.3", ready=False))
    await harness.until(lambda: any(e["addresses"] == ["10.244.1.3"] and not e["conditions"]["ready"]
                                    for s in api.objects("discovery.k8s.io/v1", "endpointslices")
                                    for e in s["endpoints"]))
    b = await api.get("v1", "pods", "b", namespace="default")
    b["status"]["conditions"][0]["status"] = "True"
    await api.update("v1", "pods", b, subresource="status")
    await harness.until(lambda: ready_ips() == ["10.244.1.2", "10.244.1.3"])
    await api.delete("v1", "pods", "a", namespace="default")
    await harness.until(lambda: ready_ips() == ["10.244.1.3"])
    eps = await harness.until(lambda: [e for e in api.objects("v1", "endpoints")
                                       if e["metadata"]["name"] == "web"
                                       and [a["ip"] for a in e["subsets"][0].get("addresses", [])] == ["10.244.1.3"]])
    assert eps
    slices = api.objects("discovery.k8s.io/v1", "endpointslices")
    assert {s["metadata"]["labels"]["kubernetes.io/service-name"] for s in slices} == {"web"}
    assert not [e for e in api.objects("v1", "endpoints") if e["metadata"]["name"] == "kubernetes"]
    await api.delete("v1", "services", "web", namespace="default")
    await harness.until(lambda: not api.objects("discovery.k8s.io/v1", "endpointslices"))


@pytest.mark.parametrize(("subdomain", "published"), [("web", "web-0"), ("other", None), (None, None)])
def test_hostname_published_only_through_the_subdomain_service(subdomain, published):
    p = pod("web-0")
    p["spec"]["hostname"] = "web-0"
    if subdomain:
        p["spec"]["subdomain"] = subdomain
    [slc] = compute_slice_endpoints(service(), [p], NODES)
    assert slc.endpoints[0].get("hostname") == published
    address = compute_endpoints(service(), [p])["subsets"][0]["addresses"][0]
    assert address.get("hostname") == published


async def test_a_burst_of_pods_never_duplicates_slices(harness):
    from knet.client.fake import FakeApi
    from knet.controllers.base import InformerFactory
    api = harness.api = FakeApi(watch_latency=0.05)  # the cache lags our own writes
    harness.informers = InformerFactory(api)
    await harness.start(EndpointSliceController(api, harness.informers))
    api.seed("v1", "services", service())
    for i in range(30):
        api.seed("v1", "pods", pod(f"p{i:02d}", ip=f"10.244.1.{i + 2}"))
        await asyncio.sleep(0.005)
    await harness.until(lambda: sum(len(s["endpoints"]) for s in api.objects("discovery.k8s.io/v1", "endpointslices"))
                        == 30)
    assert len(api.objects("discovery.k8s.io/v1", "endpointslices")) == 1
    assert [c for c in api.calls if c[:2] == ("create", "endpointslices")].__len__() == 1
