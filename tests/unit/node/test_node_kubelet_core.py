"""The kubelet's core (Kubelet, NodeAgent, PodWorker) on a fake runtime, fake cgroups and a
FakeApi: what a user sees of a pod (its status, events and container output) as its containers
start, exit, run out of memory, are deleted, wait for a ConfigMap and outlive their kubelet."""

from __future__ import annotations

import ipaddress
import time

import pytest

from knet.client.fake import FakeApi

from .fakes import (
    NODE_IP,
    POD_CIDR,
    FakeCgroupDriver,
    FakeRuntime,
    KubeletOnFakes,
    eventually,
    running_kubelet,
)

Obj = dict


def pod(name: str, *containers: Obj, **spec: object) -> Obj:
    return {"metadata": {"name": name}, "spec": {"containers": list(containers), **spec}}


def container(name: str, **fields: object) -> Obj:
    return {"name": name, "image": "busybox", **fields}


def running(k: KubeletOnFakes, name: str, restarts: int = 0) -> Obj | None:
    """The pod's status once it is Running with every container running after `restarts` restarts."""
    status = (k.pod(name) or {}).get("status") or {}
    statuses = status.get("containerStatuses") or []
    if status.get("phase") == "Running" and statuses and all(
            "running" in s["state"] and s["restartCount"] == restarts for s in statuses):
        return status
    return None


def container_running(k: KubeletOnFakes, pod_name: str, name: str, restarts: int) -> bool:
    s = k.container_status(pod_name, name)
    return s.get("restartCount") == restarts and "running" in s.get("state", {})


def reasons(k: KubeletOnFakes, name: str) -> list[str]:
    return [reason for _, reason, _ in k.events(name)]


async def test_containers_start_and_the_pod_is_running(tmp_path):
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(pod("web", container("app"), container("sidecar")))
        status = await eventually(lambda: running(k, "web"), what="web Running")
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(POD_CIDR)
        assert status["hostIP"] == NODE_IP and status["podIPs"] == [{"ip": status["podIP"]}]
        assert {s["name"]: (s["ready"], s["restartCount"]) for s in status["containerStatuses"]} == {
            "app": (True, 0), "sidecar": (True, 0)}
        assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
        await eventually(lambda: reasons(k, "web").count("Started") == 2, what="Started events")
        assert reasons(k, "web").count("Created") == 2 and reasons(k, "web").count("Pulled") == 2
        # The pod's /etc/hosts: its own name at its IP, and the node machines' names.
        hosts = (tmp_path / "pods" / k.pod("web")["metadata"]["uid"] / "etc-hosts").read_text()
        assert f"{status['podIP']}\tweb" in hosts and "controlplane" in hosts


# The restart decision of the kubelet (pkg/kubelet/container/helpers.go ShouldContainerBeRestarted):
# Always restarts any exit, OnFailure a non-zero one, Never none; a pod whose containers are all
# done is Succeeded when each exited 0, else Failed (pkg/kubelet/kubelet_pods.go getPhase).
@pytest.mark.parametrize("policy,code,restarted,phase", [
    pytest.param("Always", 0, True, "Running", id="always-exit-0"),
    pytest.param("Always", 1, True, "Running", id="always-exit-1"),
    pytest.param("OnFailure", 2, True, "Running", id="onfailure-exit-2"),
    pytest.param("OnFailure", 0, False, "Succeeded", id="onfailure-exit-0"),
    pytest.param("Never", 1, False, "Failed", id="never-exit-1"),
    pytest.param("Never", 0, False, "Succeeded", id="never-exit-0"),
])
async def test_an_exited_container_is_restarted_per_restart_policy(tmp_path, policy, code, restarted, phase):
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(pod("job", container("c"), restartPolicy=policy))
        await eventually(lambda: running(k, "job"), what="job Running")
        k.runtime.running("job", "c").exit(code)
        if not restarted:
            status = await eventually(lambda: (k.pod("job")["status"]["phase"] == phase) and k.pod("job")["status"],
                                      what=f"phase {phase}")
            c = status["containerStatuses"][0]
            assert c["state"]["terminated"]["exitCode"] == code and c["restartCount"] == 0
            assert c["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
            return
        # The first restart is immediate; restartCount and lastState tell what happened.
        status = await eventually(lambda: running(k, "job", restarts=1), what="restarted once")
        last = status["containerStatuses"][0]["lastState"]["terminated"]
        assert last["exitCode"] == code and last["reason"] == ("Completed" if code == 0 else "Error")
        # The next one waits: CrashLoopBackOff, 10 s (kubelet's initial back-off), and a BackOff event.
        k.runtime.running("job", "c").exit(code)
        uid = k.pod("job")["metadata"]["uid"]
        c = await eventually(lambda: "waiting" in k.container_status("job", "c").get("state", {})
                             and k.container_status("job", "c"), what="CrashLoopBackOff")
        assert c["state"]["waiting"] == {
            "reason": "CrashLoopBackOff",
            "message": f"back-off 10s restarting failed container=c pod=job_default({uid})"}
        assert c["restartCount"] == 1 and c["lastState"]["terminated"]["exitCode"] == code
        assert k.pod("job")["status"]["phase"] == phase
        await eventually(lambda: "BackOff" in reasons(k, "job"), what="BackOff event")


async def test_a_container_killed_by_the_oom_killer_is_oomkilled_137(tmp_path):
    limits = {"resources": {"limits": {"memory": "64Mi"}}}
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(pod("hog", container("c", **limits)))
        await eventually(lambda: running(k, "hog"), what="hog Running")
        first = k.runtime.running("hog", "c")
        assert k.cgroups.cgroups[first.cgroup].memory_limit == 64 * 2**20  # the limit is the container's cgroup's
        k.cgroups.oom_kill(first.cgroup)
        first.exit(137)  # the kernel's SIGKILL
        status = await eventually(lambda: running(k, "hog", restarts=1), what="restarted after OOM")
        assert status["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "OOMKilled"
        assert status["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
        # A SIGKILL without an OOM kill in the new instance's cgroup is no OOMKilled (it is the
        # second crash: the container now waits in CrashLoopBackOff).
        k.runtime.running("hog", "c").exit(137)
        c = await eventually(lambda: "waiting" in k.container_status("hog", "c").get("state", {})
                             and k.container_status("hog", "c"), what="CrashLoopBackOff after the kill")
        assert c["lastState"]["terminated"]["reason"] == "Error" and c["lastState"]["terminated"]["exitCode"] == 137


async def test_graceful_deletion_runs_pre_stop_then_sigterm_and_removes_the_pod(tmp_path):
    record = 'echo "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) stdout F preStop ran" >> "$CONTAINER_STDOUT"'
    pre_stop = {"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", record]}}}}
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(pod("web", container("app", **pre_stop), terminationGracePeriodSeconds=30))
        await eventually(lambda: running(k, "web"), what="web Running")
        app = k.runtime.running("web", "app")
        await k.delete_pod("web", grace_seconds=30)
        await eventually(lambda: k.pod("web") is None, what="the pod object gone")
        # `kubectl logs` of the container: the hook ran before the SIGTERM, nothing was killed.
        assert app.output() == ["started app", "preStop ran", "received signal 15"]
        assert app.returncode == 143
        await eventually(lambda: ("Normal", "Killing", "Stopping container app") in k.events("web"))
        assert not k.runtime.sandboxes and not k.runtime.allocator.used  # sandbox and address released


async def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    async with running_kubelet(tmp_path) as k:
        k.runtime.ignore_sigterm.add("stubborn")
        await k.create_pod(pod("web", container("stubborn"), terminationGracePeriodSeconds=1))
        await eventually(lambda: running(k, "web"), what="web Running")
        proc = k.runtime.running("web", "stubborn")
        t0 = time.monotonic()
        await k.delete_pod("web", grace_seconds=1)
        await eventually(lambda: k.pod("web") is None, timeout=10, what="the pod object gone")
        assert time.monotonic() - t0 >= 1.0
        assert proc.signals == [15, 9] and proc.returncode == 137


async def test_a_missing_config_map_holds_the_container_until_it_exists(tmp_path):
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}}}]
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(pod("app", container("c", env=env)))
        c = await eventually(lambda: "waiting" in k.container_status("app", "c").get("state", {})
                             and k.container_status("app", "c"), what="CreateContainerConfigError")
        assert c["state"]["waiting"] == {"reason": "CreateContainerConfigError",
                                         "message": 'configmap "app-config" not found'}
        assert k.pod("app")["status"]["phase"] == "Pending"
        await eventually(lambda: ("Warning", "Failed", 'Error: configmap "app-config" not found') in k.events("app"))
        await k.api.create("v1", "configmaps", {"metadata": {"name": "app-config", "namespace": "default"},
                                               "data": {"mode": "blue"}}, namespace="default")
        await eventually(lambda: running(k, "app"), timeout=10, what="app Running once the ConfigMap exists")
        assert k.runtime.running("app", "c").env["MODE"] == "blue"


async def test_a_restarted_kubelet_readopts_its_pod_with_its_ip_and_restart_counts(tmp_path):
    api, driver, runtime = FakeApi(), FakeCgroupDriver(), FakeRuntime(tmp_path / "pods")
    async with running_kubelet(tmp_path, runtime=runtime, api=api, driver=driver, dies=True) as k:
        await k.create_pod(pod("web", container("app"), container("worker")))
        await eventually(lambda: running(k, "web"), what="web Running")
        k.runtime.running("web", "app").exit(1)
        before = await eventually(lambda: container_running(k, "web", "app", 1) and k.pod("web")["status"],
                                  what="app restarted once")
        await eventually(lambda: reasons(k, "web").count("Started") == 3)
    # The kubelet died. Its containers run on; one of them exits before the next kubelet starts.
    app = runtime.running("web", "app")
    runtime.running("web", "worker").exit(2)
    async with running_kubelet(tmp_path, runtime=runtime, api=api, driver=driver) as k:
        # worker: its exit (from its exit file) is seen and it is restarted; app: kept as it was.
        after = await eventually(lambda: container_running(k, "web", "worker", 1) and k.pod("web")["status"],
                                 what="worker restarted by the new kubelet")
        assert after["podIP"] == before["podIP"] and after["startTime"] == before["startTime"]
        assert k.container_status("web", "worker")["lastState"]["terminated"]["exitCode"] == 2
        assert container_running(k, "web", "app", 1)
        assert k.container_status("web", "app")["containerID"] == next(s for s in before["containerStatuses"]
                                                 if s["name"] == "app")["containerID"]
        assert runtime.running("web", "app") is app and app.signals == []  # not restarted
        assert reasons(k, "web").count("Started") == 4  # only the worker's restart was a new start
        # The new kubelet tracks app too, with its crash count: its next exit is its second
        # crash, so it backs off 10 s as it would have under the old kubelet.
        app.exit(1)
        c = await eventually(lambda: "waiting" in k.container_status("web", "app").get("state", {})
                             and k.container_status("web", "app"), what="app backing off")
        assert c["state"]["waiting"]["reason"] == "CrashLoopBackOff" and "back-off 10s" in c["state"]["waiting"][
            "message"] and c["restartCount"] == 1


async def test_a_pod_deleted_while_the_kubelet_was_down_is_released_by_the_next_one(tmp_path):
    api, driver, runtime = FakeApi(), FakeCgroupDriver(), FakeRuntime(tmp_path / "pods")
    async with running_kubelet(tmp_path, runtime=runtime, api=api, driver=driver, dies=True) as k:
        await k.create_pod(pod("gone", container("c")))
        await eventually(lambda: running(k, "gone"), what="gone Running")
    proc = runtime.running("gone", "c")
    await api.delete("v1", "pods", "gone", namespace="default")
    async with running_kubelet(tmp_path, runtime=runtime, api=api, driver=driver):
        await eventually(lambda: proc.returncode is not None and not runtime.sandboxes, what="sandbox released")
        assert not runtime.allocator.used
