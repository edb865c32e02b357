"""A container the runtime fails to start (`runc run` cannot exec its command, a mount fails) is
reported as the kubelet over containerd reports it: the attempt terminated with reason
StartError, exit code 128 and the runtime's message; a container that will be restarted waits
in RunContainerError with that as its last state; a Warning event `Failed` says "Error: <msg>".
(kuberuntime_container.go startContainer; containerd's container_start.go errorStartReason.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from knet.node import oci
from knet.node.podworker import PodWorker
from knet.node.runc import FakeRunc, StartError, start_error
from knet.node.runtime import RealRuntime, Sandbox

from .fakes import FakeHost

MESSAGE = 'runc run failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH'


def test_start_error_is_runcs_last_error_in_its_json_log():
    log = "\n".join([
        json.dumps({"level": "warning", "msg": "some warning", "time": "t"}),
        "not json",
        json.dumps({"level": "error", "msg": MESSAGE, "time": "t"}),
    ])
    assert start_error(log) == MESSAGE
    assert start_error(json.dumps({"level": "info", "msg": "x"})) is None
    assert start_error("") is None


class FailingRunc(FakeRunc):
    async def run(self, container_id, bundle, log_path, stdio=None):
        raise StartError(MESSAGE)


def _worker(tmp_path: Path, policy: str) -> tuple[PodWorker, list]:
    rt = RealRuntime.__new__(RealRuntime)
    rt.cni_bin_dir, rt.cni_conf_dir, rt.root_dir, rt.runc = "", "", str(tmp_path), FailingRunc()
    rt.layout = oci.HostLayout(system_dirs=("/usr",), runtime_dirs=(), python_path="/src")
    events: list = []
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
           "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "busybox", "command": ["nosuchcmd"]}]}}

    class Host(FakeHost):
        async def event(self, pod, event_type, reason, message, field_path):
            rec = worker.runs["c"].record
            events.append((event_type, reason, message, rec.state_dict(), dict(rec.last_state), rec.restart_count))

    host = Host(pods_dir=tmp_path / "pods", runtime=rt)
    worker = PodWorker(host, pod)
    worker.sandbox = Sandbox(id="sb", ip="10.244.1.9", pid=None)
    return worker, events


def test_never_restarted_container_ends_start_error(tmp_path):
    async def main():
        worker, events = _worker(tmp_path, "Never")
        await asyncio.wait_for(worker._container_loop(worker.runs["c"]), 5)
        return worker, events

    worker, events = asyncio.run(main())
    state = worker.runs["c"].record.state_dict()
    assert state["terminated"]["reason"] == "StartError"
    assert state["terminated"]["exitCode"] == 128 and state["terminated"]["message"] == MESSAGE
    assert state["terminated"]["startedAt"] == "1970-01-01T00:00:00Z"
    failed = [e for e in events if e[1] == "Failed"]
    assert [(t, m) for t, _, m, *_ in failed] == [("Warning", f"Error: {MESSAGE}")]
    assert not any(e[1] == "Started" for e in events)
    assert worker.status()["phase"] == "Failed"


def test_restarted_container_waits_in_run_container_error(tmp_path):
    async def main():
        worker, events = _worker(tmp_path, "Always")
        task = asyncio.create_task(worker._container_loop(worker.runs["c"]))
        for _ in range(200):  # the second attempt fails too, then back-off
            if sum(e[1] == "Failed" for e in events) >= 2:
                break
            await asyncio.sleep(0.01)
        worker.stopping.set()
        task.cancel()
        return worker, events

    worker, events = asyncio.run(main())
    failed = [e for e in events if e[1] == "Failed"]
    assert len(failed) >= 2
    _, _, message, state, last, restarts = failed[0]
    assert state == {"waiting": {"reason": "RunContainerError", "message": MESSAGE}}
    assert last["terminated"]["reason"] == "StartError" and last["terminated"]["exitCode"] == 128
    assert restarts == 0 and failed[1][5] == 1  # each attempt is a restart, as a new container
    status = worker.status()["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] in ("RunContainerError", "CrashLoopBackOff")
    assert not status["ready"] and not status["started"]
