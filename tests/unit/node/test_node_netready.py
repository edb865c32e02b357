"""The kubelet's gate on the pod network (knet.node.netready, PodWorker._wait_for_network): until
the network add-on has written the node's CNI config, a pod that is not hostNetwork waits with
upstream's NetworkNotReady Warning and starts once the config appears; the node's status is
posted as soon as its network readiness changes. The end-to-end version (a real kubelet, the
agent stopped and its conflist removed) is in tests/e2e/test_dataplane_pods.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from knet.net import cni
from knet.node import netready
from knet.node.podworker import PodWorker
from knet.node.runtime import RealRuntime

from .fakes import FakeHost, FakeRuntime

# upstream kubelet.go SyncPod: Eventf(pod, Warning, events.NetworkNotReady, "%s: %v",
# NetworkNotReadyErrorMsg, err), err being the runtime's network condition.
UPSTREAM = ("network is not ready: container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
HOST_POD = {"metadata": {"name": "agent", "namespace": "kube-system", "uid": "u2"},
            "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "x"}]}}


def test_only_pods_on_the_pod_network_wait():
    assert netready.pod_network_error(POD, network_ready=False) == UPSTREAM
    assert netready.pod_network_error(POD, network_ready=True) is None
    assert netready.pod_network_error(HOST_POD, network_ready=False) is None


def test_a_real_nodes_network_is_ready_when_the_conflist_is_there(tmp_path):
    runtime = RealRuntime.__new__(RealRuntime)
    runtime.cni_conf_dir = str(tmp_path)
    assert not runtime.network_ready()
    (tmp_path / cni.CONFLIST_NAME).write_text("{half a file")  # unreadable: not ready
    assert not runtime.network_ready()
    cni.write_conflist(tmp_path, cni.pod_network_conflist("10.244.1.0/24", "/ipam"))
    assert runtime.network_ready()


def waiting_host(tmp_path) -> FakeHost:
    """A node whose network add-on has not written its CNI config yet."""
    runtime = FakeRuntime(tmp_path)
    runtime.network_is_ready = False
    return FakeHost(pods_dir=tmp_path, runtime=runtime)


async def test_a_pod_waits_with_the_event_and_starts_once_the_network_is_ready(monkeypatch, tmp_path):
    monkeypatch.setattr(netready, "RETRY_SECONDS", 0.01)
    node = waiting_host(tmp_path)
    worker = PodWorker(node, POD)
    waiting = asyncio.create_task(worker._wait_for_network())
    while len(node.events) < 3:
        await asyncio.sleep(0.005)
    assert not waiting.done()
    assert set(node.events) == {("Warning", "NetworkNotReady", UPSTREAM)}  # repeats: aggregated by the recorder
    assert node.status_changes == 1  # Pending/ContainerCreating, written once
    status = worker.status()
    assert status["phase"] == "Pending" and "podIP" not in status
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    node.runtime.network_is_ready = True
    assert await asyncio.wait_for(waiting, 1.0) is True


async def test_hostnetwork_pods_never_wait_and_a_deleted_pod_stops_waiting(monkeypatch, tmp_path):
    monkeypatch.setattr(netready, "RETRY_SECONDS", 0.01)
    node = waiting_host(tmp_path)
    assert await PodWorker(node, HOST_POD)._wait_for_network() is True and node.events == []
    worker = PodWorker(node, POD)
    waiting = asyncio.create_task(worker._wait_for_network())
    await asyncio.sleep(0.03)
    worker.stopping.set()
    assert await asyncio.wait_for(waiting, 1.0) is False


async def test_node_status_is_posted_when_network_readiness_changes():
    a, b = SimpleNamespace(ready=False), SimpleNamespace(ready=True)
    for n in (a, b):
        n.network_ready = lambda n=n: n.ready
    reports = []
    task = asyncio.create_task(netready.watch_network_ready([a, b], lambda: reports.append(1), fast=0.005, slow=0.01))
    try:
        await asyncio.sleep(0.05)
        assert reports == []  # nothing changed
        a.ready = True        # the add-on wrote a's config
        while len(reports) < 1:
            await asyncio.sleep(0.005)
        b.ready = False       # someone removed b's
        while len(reports) < 2:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        assert len(reports) == 2
    finally:
        task.cancel()
