"""Ephemeral containers on a node (`kubectl debug`): the kubelet on a fake runtime starts each one
a pod gains once, in the pod's sandbox, joined to its target's PID namespace; reports it in
status.ephemeralContainerStatuses; never restarts it (not even a restarted kubelet); and the
runc side writes the target's PID namespace into the container's config.json."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from knet.client.fake import FakeApi
from knet.node import ephemeral, oci
from knet.node.runc import FakeRunc, process_start_time
from knet.node.runtime import RealRuntime, Sandbox, running_init_pid

from .fakes import FakeCgroupDriver, FakeRuntime, KubeletOnFakes, eventually, running_kubelet

POD = {"metadata": {"name": "web"}, "spec": {
    "containers": [{"name": "app", "image": "busybox"}],
    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "root", "hostPath": {"path": "/"}}]}}


def debugger(name: str = "debugger-abcde", **fields) -> dict:
    return {"name": name, "image": "busybox", "command": ["ps"], "targetContainerName": "app", **fields}


def ephemeral_status(k: KubeletOnFakes, name: str) -> dict:
    statuses = ((k.pod("web") or {}).get("status") or {}).get("ephemeralContainerStatuses") or []
    return next((s for s in statuses if s["name"] == name), {})


async def add(k: KubeletOnFakes, *containers: dict) -> None:
    await k.api.patch("v1", "pods", "web", {"spec": {"ephemeralContainers": list(containers)}}, namespace="default")


def instances(runtime: FakeRuntime, name: str) -> list:
    return [c for c in runtime.containers.values() if c.name == name]


async def test_an_ephemeral_container_runs_once_in_its_targets_pid_namespace(tmp_path):
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(POD)
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"))
        app_id = k.container_status("web", "app")["containerID"].removeprefix("knet://")
        await add(k, debugger(volumeMounts=[{"name": "data", "mountPath": "/debug-data"}]))
        status = await eventually(lambda: "running" in ephemeral_status(k, "debugger-abcde").get("state", {})
                                  and ephemeral_status(k, "debugger-abcde"), what="debugger running")
        assert status["ready"] is False and status["restartCount"] == 0 and "started" not in status
        proc = k.runtime.running("web", "debugger-abcde")
        mounts, target = k.runtime.started_with[proc.container_id]
        assert target == app_id  # joined app's PID namespace
        uid = k.pod("web")["metadata"]["uid"]
        assert (str(tmp_path / "pods" / uid / "volumes" / "data"), "/debug-data", False) in mounts
        # It ends: terminated, and never started again, whatever the pod's restartPolicy (Always).
        proc.exit(0)
        term = await eventually(lambda: ephemeral_status(k, "debugger-abcde").get("state", {}).get("terminated"),
                                what="debugger terminated")
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
        await asyncio.sleep(0.3)
        assert len(instances(k.runtime, "debugger-abcde")) == 1
        # The pod itself is unaffected: Running, app not restarted, the debugger not among its containers.
        pod = k.pod("web")
        assert pod["status"]["phase"] == "Running"
        assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["app"]
        assert k.container_status("web", "app")["restartCount"] == 0
        # A second one comes beside it; the first stays as it was.
        await add(k, debugger(), debugger("second", targetContainerName=None, command=["sleep", "1"]))
        await eventually(lambda: "running" in ephemeral_status(k, "second").get("state", {}))
        assert len(instances(k.runtime, "debugger-abcde")) == 1
        assert k.runtime.started_with[k.runtime.running("web", "second").container_id][1] is None
        # Its logs and exec find it as any container (kubectl logs/exec -c NAME).
        worker = k.node.workers[uid]
        assert "second" in worker.all_runs()


async def test_a_failing_ephemeral_container_is_not_restarted(tmp_path):
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(POD)
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"))
        await add(k, debugger())
        await eventually(lambda: "running" in ephemeral_status(k, "debugger-abcde").get("state", {}))
        k.runtime.running("web", "debugger-abcde").exit(3)
        term = await eventually(lambda: ephemeral_status(k, "debugger-abcde").get("state", {}).get("terminated"))
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        await asyncio.sleep(0.3)
        assert len(instances(k.runtime, "debugger-abcde")) == 1
        assert ephemeral_status(k, "debugger-abcde")["restartCount"] == 0


async def test_a_target_that_is_not_running_is_a_start_error(tmp_path):
    async with running_kubelet(tmp_path) as k:
        await k.create_pod({"metadata": {"name": "web"}, "spec": {
            "restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"},
                                                     {"name": "sidecar", "image": "busybox"}]}})
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"))
        k.runtime.running("web", "app").exit(0)
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("terminated"))
        await add(k, debugger())
        term = await eventually(lambda: ephemeral_status(k, "debugger-abcde").get("state", {}).get("terminated"))
        assert term["reason"] == "StartError" and "not running" in term["message"]
        assert instances(k.runtime, "debugger-abcde") == []


async def test_a_restarted_kubelet_keeps_a_running_ephemeral_container_and_restarts_none(tmp_path):
    api, driver, runtime = FakeApi(), FakeCgroupDriver(), FakeRuntime(tmp_path / "pods")
    async with running_kubelet(tmp_path, runtime=runtime, api=api, driver=driver, dies=True) as k:
        await k.create_pod(POD)
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"))
        await add(k, debugger(), debugger("done", command=["true"]))
        await eventually(lambda: "running" in ephemeral_status(k, "done").get("state", {}))
        k.runtime.running("web", "done").exit(0)
        await eventually(lambda: "terminated" in ephemeral_status(k, "done").get("state", {}))
        await eventually(lambda: "running" in ephemeral_status(k, "debugger-abcde").get("state", {}))
        done = ephemeral_status(k, "done")
    running = runtime.running("web", "debugger-abcde")
    await asyncio.sleep(1.1)  # the clock moves on (statuses are to the second): a rewritten one would differ
    async with running_kubelet(tmp_path, runtime=runtime, api=api, driver=driver) as k:
        await asyncio.sleep(0.5)
        assert runtime.running("web", "debugger-abcde") is running and running.signals == []
        assert len(instances(runtime, "done")) == 1 and len(instances(runtime, "debugger-abcde")) == 1
        assert "running" in ephemeral_status(k, "debugger-abcde")["state"]
        assert ephemeral_status(k, "done") == done  # the finished one as it was (its times too)
        running.exit(0)
        await eventually(lambda: "terminated" in ephemeral_status(k, "debugger-abcde").get("state", {}))


def test_the_spec_joins_the_targets_pid_namespace():
    pod = {"metadata": {"name": "p"}, "spec": {}}
    ns = oci._namespaces(pod, oci.SandboxNamespaces(pause_pid=7, pid_target=42))
    assert {"type": "pid", "path": "/proc/42/ns/pid"} in ns
    # A pod sharing its PID namespace (kubectl debug --copy-to's --share-processes): the pod's.
    shared = {"metadata": {"name": "p"}, "spec": {"shareProcessNamespace": True}}
    ns = oci._namespaces(shared, oci.SandboxNamespaces(pause_pid=7, pid=True, pid_target=42))
    assert {"type": "pid", "path": "/proc/7/ns/pid_for_children"} in ns
    # hostPID (kubectl debug node/...): no PID namespace of its own, the node's.
    assert not [n for n in oci._namespaces({"spec": {"hostPID": True}}, oci.SandboxNamespaces(pause_pid=7))
                if n["type"] == "pid"]


def test_a_running_containers_init_pid_comes_from_runcs_state(tmp_path):
    state = tmp_path / "cid"
    state.mkdir()
    me = os.getpid()
    (state / "state.json").write_text(json.dumps({"init_process_pid": me, "init_process_start": 5}))
    assert running_init_pid(state, lambda pid: 5) == me
    assert running_init_pid(state, lambda pid: 6) is None  # a reused pid
    assert running_init_pid(tmp_path / "gone", lambda pid: 5) is None


def test_the_runc_bundle_of_an_ephemeral_container(tmp_path):
    async def main():
        fake = FakeRunc()
        fake.state_dir = str(tmp_path / "runc")  # where runc keeps its containers' state
        target = Path(fake.state_dir) / "target"
        target.mkdir(parents=True)
        (target / "state.json").write_text(json.dumps({"init_process_pid": os.getpid(),
                                                       "init_process_start": process_start_time(os.getpid())}))
        rt = RealRuntime.__new__(RealRuntime)
        rt.cni_bin_dir, rt.cni_conf_dir, rt.root_dir, rt.runc = "", "", str(tmp_path), fake
        rt.layout = oci.HostLayout(system_dirs=("/usr",), python_path="/src")
        sandbox = Sandbox(id="s", ip="10.0.0.2", pid=77, new_net=True)
        pod = {"metadata": {"name": "web", "uid": "u1"}, "spec": {}}
        spec_in = debugger(stdin=True, tty=True)
        mounts = ephemeral.container_mounts({"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}},
                                            tmp_path, [], {"volumeMounts": [{"name": "root", "mountPath": "/host"}]})
        await rt.start_container(sandbox, pod, spec_in, ["ps"], {}, tmp_path / "log", "web", "eph",
                                 tmp_path / "bundle", mounts=mounts, pid_target="target")
        spec = fake.bundles["eph"]
        assert {"type": "pid", "path": f"/proc/{os.getpid()}/ns/pid"} in spec["linux"]["namespaces"]
        assert {"destination": "/host", "type": "bind", "source": "/", "options": ["rbind", "rw"]} in spec["mounts"]
        try:
            await rt.start_container(sandbox, pod, spec_in, ["ps"], {}, tmp_path / "log", "web", "eph2",
                                     tmp_path / "bundle2", pid_target="not-running")
        except OSError as exc:
            assert "not running" in str(exc)
        else:
            raise AssertionError("joined the PID namespace of a container that does not run")

    asyncio.run(main())


async def test_an_ephemeral_container_waiting_for_its_config_map_starts_once_it_exists(tmp_path):
    # As upstream's kubelet: CreateContainerConfigError means no container was created, so the
    # next pod sync tries again (kuberuntime_manager's SyncPod: startContainer of each ephemeral
    # container not yet started); once it runs, it is never started again.
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "dbg", "key": "mode"}}}]
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(POD)
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"))
        await add(k, debugger(env=env))
        waiting = await eventually(lambda: ephemeral_status(k, "debugger-abcde").get("state", {}).get("waiting"),
                                   what="debugger waiting")
        assert waiting == {"reason": "CreateContainerConfigError", "message": 'configmap "dbg" not found'}
        assert instances(k.runtime, "debugger-abcde") == []
        await k.api.create("v1", "configmaps", {"metadata": {"name": "dbg", "namespace": "default"},
                                               "data": {"mode": "blue"}}, namespace="default")
        await eventually(lambda: "running" in ephemeral_status(k, "debugger-abcde").get("state", {}),
                         timeout=10, what="debugger running once its ConfigMap exists")
        assert k.runtime.running("web", "debugger-abcde").env["MODE"] == "blue"
        assert len(instances(k.runtime, "debugger-abcde")) == 1


async def test_killing_an_ephemeral_container_names_its_field_path(tmp_path):
    async with running_kubelet(tmp_path) as k:
        await k.create_pod(POD)
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"))
        await add(k, debugger())
        await eventually(lambda: "running" in ephemeral_status(k, "debugger-abcde").get("state", {}))
        await k.delete_pod("web", grace_seconds=1)
        await eventually(lambda: k.pod("web") is None, timeout=10, what="the pod object gone")
        await k.kubelet.recorder.flush()
        killing = {e["message"]: e["involvedObject"].get("fieldPath") for e in k.api.objects("v1", "events")
                   if e["reason"] == "Killing"}
        assert killing == {"Stopping container app": "spec.containers{app}",
                           "Stopping container debugger-abcde": "spec.ephemeralContainers{debugger-abcde}"}
