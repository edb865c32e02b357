"""The per-kind write hooks the generic verbs call (ResourceType: grace_period, begin_deletion,
deletion_held, carry_over, allocator, status_on_create), on a real ObjectService over an
in-memory store: what a user sees of each through the API."""

from __future__ import annotations

import pytest

from knet.api.allocation import ServiceAllocator
from knet.api.errors import ApiError
from knet.api.resources import build_registry, pods
from knet.api.rest import ObjectService, Options
from knet.api.storage.sqlite import SqliteStore


@pytest.mark.parametrize(("pod", "requested", "seconds"), [
    ({"spec": {"nodeName": "n1"}}, None, 30),  # upstream's default terminationGracePeriodSeconds
    ({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}}, None, 5),
    ({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}}, 12, 12),  # the request wins
    ({"spec": {"nodeName": "n1"}}, 0, 0),  # --grace-period=0 --force
    ({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": None}}, None, 30),
    ({"spec": {"nodeName": "n1"}}, -1, 30),
    ({"spec": {}}, None, 0),  # never scheduled: nothing to stop
    ({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}}, None, 0),
    ({"spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}}, 10, 0),
])
def test_pod_grace_period_table(pod, requested, seconds):
    assert pods.grace_period(pod, requested) == seconds


@pytest.fixture
async def service():
    store = SqliteStore(":memory:")
    objects = ObjectService(build_registry(), store, ServiceAllocator("10.96.0.0/29", "30000-30001"))
    await objects.create(objects.registry.lookup("", "v1", "namespaces"), "", {"metadata": {"name": "default"}}, Options())
    try:
        yield objects
    finally:
        await store.close()


def svc(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


async def test_a_dry_run_or_a_failed_create_keeps_no_address(service):
    rt = service.registry.lookup("", "v1", "services")
    free = service.allocator.ips.free
    await service.create(rt, "default", svc("dry", type="NodePort"), Options(dry_run=True))
    assert service.allocator.ips.free == free
    await service.create(rt, "default", svc("web"), Options())
    assert service.allocator.ips.free == free - 1
    with pytest.raises(ApiError) as err:
        await service.create(rt, "default", svc("web"), Options())  # AlreadyExists, after allocating
    assert err.value.code == 409 and service.allocator.ips.free == free - 1


async def test_an_update_keeps_the_allocated_ip_and_a_delete_frees_it(service):
    rt = service.registry.lookup("", "v1", "services")
    free = service.allocator.ips.free
    created = await service.create(rt, "default", svc("web"), Options())
    ip = created["spec"]["clusterIP"]
    without_ip = svc("web", selector={"app": "web"})  # a client that leaves clusterIP out
    _, updated = await service.update(rt, "default", "web", without_ip, Options())
    assert updated["spec"]["clusterIP"] == ip  # carried over
    await service.delete(rt, "default", "web", {}, Options())
    assert service.allocator.ips.free == free


async def test_a_deleted_namespace_is_terminating_until_its_finalizers_go(service):
    rt = service.registry.lookup("", "v1", "namespaces")
    await service.create(rt, "", {"metadata": {"name": "team"}}, Options())
    _, ns = await service.delete(rt, "", "team", {}, Options())
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    finalized = {**ns, "spec": {"finalizers": []}}  # as a client sends it (stored objects are never mutated)
    await service.update(rt, "", "team", finalized, Options(), subresource="finalize")
    assert service.store.get("namespaces", "", "team") is None


async def test_a_bound_pod_stays_for_its_grace_period_and_a_node_keeps_its_status(service):
    pod_rt, node_rt = service.registry.lookup("", "v1", "pods"), service.registry.lookup("", "v1", "nodes")
    node = await service.create(node_rt, "", {"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2"}}},
                                Options())
    assert node["status"]["capacity"] == {"cpu": "2"}  # a kubelet registers with its status
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
           "status": {"phase": "Running"}}
    created = await service.create(pod_rt, "default", pod, Options())
    assert created["status"]["phase"] == "Pending"  # not the client's Running: the kubelet writes status
    _, marked = await service.delete(pod_rt, "default", "p", {"gracePeriodSeconds": 7}, Options())
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 7
    _, shorter = await service.delete(pod_rt, "default", "p", {"gracePeriodSeconds": 0}, Options())
    assert service.store.get("pods", "default", "p") is None and shorter["metadata"]["name"] == "p"
