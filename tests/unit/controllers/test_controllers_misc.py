"""ServiceAccounts, the garbage collector, --controllers and durations."""

from __future__ import annotations

import pytest

from knet.cli.controlplane import parse_duration
from knet.controllers.garbagecollector import GarbageCollector
from knet.controllers.manager import enabled_controllers
from knet.controllers.serviceaccount import ServiceAccountController


async def test_default_serviceaccount_and_root_ca_in_every_namespace(harness):
    api = harness.api
    api.seed("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    await harness.start(ServiceAccountController(api, harness.informers),
                        ServiceAccountController(api, harness.informers, root_ca="PEM", service_accounts=False))
    api.seed("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}})
    await harness.until(lambda: {(s["metadata"]["namespace"], s["metadata"]["name"])
                                 for s in api.objects("v1", "serviceaccounts")} == {("default", "default"),
                                                                                    ("dev", "default")})
    await harness.until(lambda: len(api.objects("v1", "configmaps")) == 2)
    assert api.objects("v1", "configmaps")[0]["data"] == {"ca.crt": "PEM"}
    await api.delete("v1", "serviceaccounts", "default", namespace="dev")  # recreated, as upstream
    await harness.until(lambda: len(api.objects("v1", "serviceaccounts")) == 2)


async def test_gc_deletes_orphans_but_not_dependents_of_live_owners(harness):
    api = harness.api
    owner = api.seed("apps/v1", "replicasets", {"metadata": {"name": "live", "namespace": "default"}, "spec": {}})

    def pod(name, uid, kind="ReplicaSet"):
        return {"metadata": {"name": name, "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": uid, "controller": True}]}, "spec": {}}

    api.seed("v1", "pods", pod("kept", owner["metadata"]["uid"]))
    api.seed("v1", "pods", pod("orphan", "gone-uid"))
    api.seed("v1", "pods", pod("unknown-kind", "gone-uid", kind="Widget"))
    api.seed("v1", "pods", {"metadata": {"name": "on-deleted-node", "namespace": "default"},
                            "spec": {"nodeName": "node09"}})
    gc = GarbageCollector(api, harness.informers, period=0.05)
    await harness.start(gc)
    await harness.until(lambda: sorted(p["metadata"]["name"] for p in api.objects("v1", "pods"))
                        == ["kept", "unknown-kind"])


async def test_pod_gc_only_removes_pods_of_deleted_nodes(harness):
    api = harness.api
    api.seed("v1", "nodes", {"metadata": {"name": "node01"}})
    for name, node in (("here", "node01"), ("gone", "node09")):
        api.seed("v1", "pods", {"metadata": {"name": name, "namespace": "default", "ownerReferences": [
            {"kind": "ReplicaSet", "name": "x", "uid": "missing", "controller": True}]}, "spec": {"nodeName": node}})
    await harness.start(GarbageCollector(api, harness.informers, period=0.05, owners=False))
    await harness.until(lambda: [p["metadata"]["name"] for p in api.objects("v1", "pods")] == ["here"])


@pytest.mark.parametrize(("flag", "on", "off"), [
    pytest.param("*", {"deployment", "endpointslice", "nodeipam"}, set(), id="star"),
    pytest.param("*,bootstrapsigner,tokencleaner", {"daemonset"}, set(), id="kubeadm"),
    pytest.param("*,-nodelifecycle", {"deployment"}, {"nodelifecycle"}, id="disable"),
    pytest.param("deployment,replicaset", {"deployment", "replicaset"}, {"daemonset"}, id="explicit"),
    pytest.param("*", {"podgc", "root-ca-cert-publisher"}, {"garbagecollector", "namespace"},
                 id="apiserver-does-gc-and-namespaces"),
    pytest.param("*,garbagecollector", {"garbagecollector"}, {"namespace"}, id="opt-in-gc"),
    pytest.param("*", {"endpoint", "endpointslice"}, set(), id="endpoints-and-slices"),
    pytest.param("*,-endpoint", {"endpointslice"}, {"endpoint"}, id="no-legacy-endpoints"),
    pytest.param("*", {"service-lb-controller"}, set(), id="service-lb-on-by-default"),
    pytest.param("*,-service-lb-controller", {"deployment"}, {"service-lb-controller"}, id="service-lb-off"),
    pytest.param("*,-service", {"deployment"}, {"service-lb-controller"}, id="service-lb-off-by-upstream-alias"),
])
def test_controllers_flag(flag, on, off):
    chosen = set(enabled_controllers(flag.split(",")))
    assert on <= chosen and not (off & chosen)


@pytest.mark.parametrize(("text", "seconds"), [("40s", 40), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("5", 5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


async def test_namespace_controller_empties_then_finalizes(harness):
    from knet.controllers.namespace import NamespaceController
    api = harness.api
    api.seed("v1", "namespaces", {"metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                                  "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
    api.seed("v1", "namespaces", {"metadata": {"name": "kept"}, "spec": {"finalizers": ["kubernetes"]}})
    for ns in ("gone", "kept"):
        api.seed("v1", "configmaps", {"metadata": {"name": "c", "namespace": ns}})
        api.seed("apps/v1", "deployments", {"metadata": {"name": "d", "namespace": ns}, "spec": {}})
    await harness.start(NamespaceController(api, harness.informers))
    await harness.until(lambda: next(n for n in api.objects("v1", "namespaces")
                                     if n["metadata"]["name"] == "gone")["spec"]["finalizers"] == [])
    assert {o["metadata"]["namespace"] for o in api.objects("v1", "configmaps")} == {"kept"}
    assert {o["metadata"]["namespace"] for o in api.objects("apps/v1", "deployments")} == {"kept"}
    kept = next(n for n in api.objects("v1", "namespaces") if n["metadata"]["name"] == "kept")
    assert kept["spec"]["finalizers"] == ["kubernetes"]


@pytest.mark.parametrize("finalizer", ["orphan", "foregroundDeletion"])
async def test_gc_finishes_orphan_and_foreground_deletions(harness, finalizer):
    api = harness.api
    owner = api.seed("apps/v1", "replicasets", {"metadata": {
        "name": "rs", "namespace": "default", "deletionTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": [finalizer]}, "spec": {}})
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner["metadata"]["uid"],
           "controller": True}
    for name in ("a", "b"):
        api.seed("v1", "pods", {"metadata": {"name": name, "namespace": "default", "ownerReferences": [ref]},
                                "spec": {}})
    await harness.start(GarbageCollector(api, harness.informers, period=0.05))
    await harness.until(lambda: not api.objects("apps/v1", "replicasets")[0]["metadata"].get("finalizers"))
    pods = api.objects("v1", "pods")
    if finalizer == "orphan":
        assert sorted(p["metadata"]["name"] for p in pods) == ["a", "b"]
        assert all(not p["metadata"].get("ownerReferences") for p in pods)
    else:
        assert pods == []


@pytest.mark.parametrize(("controllers", "slices", "endpoints"), [
    pytest.param(("*",), True, True, id="both"),
    pytest.param(("*", "-endpoint"), True, False, id="slices-only"),
    pytest.param(("endpoint",), False, True, id="endpoints-only"),
])
async def test_endpoint_and_endpointslice_controllers_are_separate(controllers, slices, endpoints):
    """Upstream's `endpoint` (legacy Endpoints) and `endpointslice` controllers: each on or off
    by --controllers; knet computes both in one pass over the same caches."""
    import asyncio

    from knet.client.fake import FakeApi
    from knet.controllers.manager import ManagerOptions, run_controller_manager

    api = FakeApi()
    api.seed("v1", "services", {"metadata": {"name": "web", "namespace": "default"},
                                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    api.seed("v1", "pods", {"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
                            "spec": {"nodeName": "n"}, "status": {"podIP": "10.244.0.5",
                                                                  "conditions": [{"type": "Ready", "status": "True"}]}})
    manager = asyncio.create_task(run_controller_manager(api, ManagerOptions(controllers=controllers)))

    async def settle(done) -> None:
        for _ in range(100):
            if done():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)

    try:
        await settle(lambda: api.objects("discovery.k8s.io/v1", "endpointslices") or api.objects("v1", "endpoints"))
        assert bool(api.objects("discovery.k8s.io/v1", "endpointslices")) is slices
        assert bool(api.objects("v1", "endpoints")) is endpoints
        # the Service goes: so do its Endpoints (upstream's endpoint controller deletes them)
        await api.delete("v1", "services", "web", namespace="default")
        await settle(lambda: not api.objects("v1", "endpoints"))
        assert not api.objects("v1", "endpoints")
    finally:
        manager.cancel()
        await asyncio.gather(manager, return_exceptions=True)
    # without --use-service-account-credentials: no accounts, no tokens, one identity
    assert not api.objects("v1", "serviceaccounts") and not api.token_requests
