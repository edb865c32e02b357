"""The service-lb controller over FakeApi: addresses for LoadBalancer Services, requested ones,
other classes, release, restarts, and the Events users read in `kubectl describe svc`."""

from __future__ import annotations

from knet.controllers.servicelb import LOAD_BALANCER_CLASS, ServiceLBController
from knet.ipam.lbpool import parse_pool

POOL = "172.30.5.200-172.30.5.201"


def lb_service(name: str, *, ip: str | None = None, cls: str | None = None, svc_type: str = "LoadBalancer",
               created: str = "2026-01-01T00:00:00Z", status_ip: str | None = None) -> dict:
    spec = {"type": svc_type, "clusterIP": "10.96.0.50", "ports": [{"port": 80, "protocol": "TCP"}]}
    if ip:
        spec["loadBalancerIP"] = ip
    if cls:
        spec["loadBalancerClass"] = cls
    status = {"loadBalancer": {"ingress": [{"ip": status_ip, "ipMode": "VIP"}]} if status_ip else {}}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": created},
            "spec": spec, "status": status}


def ingress(api, name: str) -> list:
    svc = next(s for s in api.objects("v1", "services") if s["metadata"]["name"] == name)
    return [i for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def events(api, name: str) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in api.objects("v1", "events")
            if e["involvedObject"]["name"] == name]


async def start(harness, pool: str = POOL) -> ServiceLBController:
    ctrl = ServiceLBController(harness.api, harness.informers, parse_pool(pool))
    await harness.start(ctrl)
    return ctrl


async def test_gives_an_address_and_records_events(harness):
    api = harness.api
    api.seed("v1", "services", lb_service("web"))
    api.seed("v1", "services", lb_service("plain", svc_type="ClusterIP"))
    await start(harness)
    await harness.until(lambda: ingress(api, "web") == [{"ip": "172.30.5.200", "ipMode": "VIP"}])
    await harness.until(lambda: len(events(api, "web")) == 3)
    assert events(api, "web") == [("Normal", "EnsuringLoadBalancer", "Ensuring load balancer"),
                                  ("Normal", "IPAllocated", 'Assigned IP ["172.30.5.200"]'),
                                  ("Normal", "EnsuredLoadBalancer", "Ensured load balancer")]
    assert ingress(api, "plain") == []


async def test_requested_address_outside_the_pool_or_taken_stays_pending(harness):
    api = harness.api
    api.seed("v1", "services", lb_service("first", ip="172.30.5.201", created="2026-01-01T00:00:00Z"))
    await start(harness)
    await harness.until(lambda: ingress(api, "first") == [{"ip": "172.30.5.201", "ipMode": "VIP"}])
    await api.create("v1", "services", lb_service("thief", ip="172.30.5.201"), namespace="default")
    await api.create("v1", "services", lb_service("outside", ip="172.30.5.3"), namespace="default")
    await harness.until(lambda: events(api, "thief") and events(api, "outside"))
    assert events(api, "thief") == [("Warning", "AllocationFailed", 'Failed to allocate IP for "default/thief": '
                                     "172.30.5.201 is already in use by default/first")]
    assert events(api, "outside")[0][:2] == ("Warning", "AllocationFailed")
    assert "172.30.5.3 is not allowed in config" in events(api, "outside")[0][2]
    assert ingress(api, "thief") == ingress(api, "outside") == []
    # the holder goes away: the waiting Service gets the address it asked for
    await api.delete("v1", "services", "first", namespace="default")
    await harness.until(lambda: ingress(api, "thief") == [{"ip": "172.30.5.201", "ipMode": "VIP"}])
    assert ingress(api, "outside") == []


async def test_exhausted_pool_then_release_on_delete_and_type_change(harness):
    api = harness.api
    for i, name in enumerate(("a", "b", "c")):
        api.seed("v1", "services", lb_service(name, created=f"2026-01-01T00:00:0{i}Z"))
    await start(harness)
    await harness.until(lambda: ingress(api, "a") and ingress(api, "b"))
    await harness.until(lambda: events(api, "c"))
    assert events(api, "c")[0][1] == "AllocationFailed" and "no available IPs" in events(api, "c")[0][2]
    held_by_a = ingress(api, "a")[0]["ip"]
    # a type change away from LoadBalancer releases and clears the status; c gets the address
    svc = next(s for s in api.objects("v1", "services") if s["metadata"]["name"] == "a")
    await api.update("v1", "services", {**svc, "spec": {**svc["spec"], "type": "ClusterIP"}}, namespace="default")
    await harness.until(lambda: ingress(api, "a") == [] and ingress(api, "c") == [{"ip": held_by_a, "ipMode": "VIP"}])
    assert ("Normal", "DeletedLoadBalancer", "Deleted load balancer") in events(api, "a")
    # deleting one frees its address for a new Service
    freed = ingress(api, "b")[0]["ip"]
    await api.delete("v1", "services", "b", namespace="default")
    await api.create("v1", "services", lb_service("d"), namespace="default")
    await harness.until(lambda: ingress(api, "d") == [{"ip": freed, "ipMode": "VIP"}])


async def test_other_class_is_left_alone_knets_class_is_served(harness):
    api = harness.api
    api.seed("v1", "services", lb_service("theirs", cls="example.com/other", status_ip="203.0.113.7"))
    api.seed("v1", "services", lb_service("mine", cls=LOAD_BALANCER_CLASS))
    await start(harness)
    await harness.until(lambda: ingress(api, "mine"))
    await harness.until(lambda: len(events(api, "mine")) == 3)
    assert ingress(api, "theirs") == [{"ip": "203.0.113.7", "ipMode": "VIP"}]  # the other implementation's
    assert events(api, "theirs") == []
    assert not [c for c in api.calls if c[0] == "patch" and c[2] == "theirs"]


async def test_restart_keeps_allocations_from_status(harness):
    api = harness.api
    # as left by an earlier run: b has .201, a has .200; a newer Service claims .200 too (a forged status)
    api.seed("v1", "services", lb_service("a", status_ip="172.30.5.200", created="2026-01-01T00:00:00Z"))
    api.seed("v1", "services", lb_service("b", status_ip="172.30.5.201", created="2026-01-01T00:00:01Z"))
    api.seed("v1", "services", lb_service("forged", status_ip="172.30.5.200", created="2026-01-01T00:00:02Z"))
    await start(harness)
    await harness.until(lambda: events(api, "forged"))
    assert ingress(api, "a") == [{"ip": "172.30.5.200", "ipMode": "VIP"}]
    assert ingress(api, "b") == [{"ip": "172.30.5.201", "ipMode": "VIP"}]
    assert ingress(api, "forged") == []  # no address left for it: pending, with the reason
    assert "no available IPs" in events(api, "forged")[0][2]
    assert not [c for c in api.calls if c[0] == "patch" and c[2] in ("a", "b")]  # kept, not rewritten
