"""A restarted kubelet re-adopts its pods: the container shim's exit file, waiting on a
container a previous kubelet started, the worker's checkpoint as the next kubelet adopts it,
and the cleanup that keeps adopted containers and releases unwanted sandboxes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from types import SimpleNamespace

from knet.node import checkpoint, oci
from knet.node.podworker import PodWorker
from knet.node.runc import AdoptedProcess, FakeRunc, process_start_time, shim_argv
from knet.node.runtime import RealRuntime, Sandbox

from .checkpoints import sample_checkpoint
from .fakes import FakeHost

_cp = sample_checkpoint



def test_shim_writes_the_exit_code_and_adopted_process_reads_it(tmp_path):
    exit_file = tmp_path / "exit"
    # `sh -c "exit 7"` stands in for `runc run`: the shim passes its exit code on and writes it down.
    assert subprocess.run(shim_argv(exit_file, ["sh", "-c", "exit 7"])).returncode == 7
    assert exit_file.read_text().strip() == "7" and checkpoint.read_exit_code(str(exit_file)) == 7
    assert checkpoint.read_exit_code(str(tmp_path / "none")) is None

    async def main():
        slow = tmp_path / "exit2"
        proc = subprocess.Popen(shim_argv(slow, ["sh", "-c", "sleep 0.5; exit 3"]))
        start = process_start_time(proc.pid)
        assert start is not None
        adopted = AdoptedProcess(FakeRunc(), "cid", proc.pid, start, slow)
        assert adopted.returncode is None
        reaper = asyncio.get_running_loop().run_in_executor(None, proc.wait)  # as the node's init would
        assert await asyncio.wait_for(adopted.wait(), 5) == 3
        await reaper
        # A shim gone without an exit file: the container is taken as killed.
        assert AdoptedProcess(FakeRunc(), "cid", proc.pid, start, tmp_path / "missing").returncode == 137

    asyncio.run(main())


def _agent(tmp_path: Path, runc: FakeRunc) -> FakeHost:
    rt = RealRuntime.__new__(RealRuntime)
    layout = oci.HostLayout(system_dirs=("/usr",), runtime_dirs=(), python_path="/src")
    rt.cni_bin_dir, rt.cni_conf_dir, rt.root_dir, rt.runc, rt.layout = "", "", str(tmp_path), runc, layout
    return FakeHost(pods_dir=tmp_path / "pods", runtime=rt, node_ip="10.0.0.1")


POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
       "spec": {"restartPolicy": "Always", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"},
                                                          {"name": "c", "image": "i"}]}}


def test_worker_checkpoint_is_what_the_next_kubelet_adopts(tmp_path):
    async def main():
        runc = FakeRunc()
        agent = _agent(tmp_path, runc)
        pause = subprocess.Popen(["sleep", "30"])  # stands in for the pause: a live pid with a start time
        shim = subprocess.Popen(["sleep", "30"])
        try:
            old = PodWorker(agent, POD)
            old.sandbox = Sandbox(id="sb", ip="10.244.1.9", pid=pause.pid, new_net=True, mounts=[("/s", "/d", True)])
            a, b = old.runs["a"], old.runs["b"]
            a.record.container_id, a.record.restart_count, a.log_index, a.record.state = "cid-a", 3, 3, "running"
            a.record.started_at, a.record.ready = "2026-01-01T00:00:01Z", True
            a.process = SimpleNamespace(pid=shim.pid, exit_file=tmp_path / "a-exit")
            a.shim_start = process_start_time(shim.pid)
            b.record.container_id, b.record.state, b.log_index = "cid-b", "running", 0
            b.process = SimpleNamespace(pid=999999, exit_file=tmp_path / "b-exit")  # its shim is gone...
            b.shim_start = 1
            (tmp_path / "b-exit").write_text("1\n")                                # ...having written 1
            old.changed()
            saved = checkpoint.load(tmp_path / "pods" / "u1")
            assert saved is not None and saved.ip == "10.244.1.9" and set(saved.containers) == {"a", "b"}

            found = RealRuntime.adoptable_pods(agent.runtime)
            assert set(found) == {"u1"}
            new = PodWorker(agent, POD)
            new.adopt(found["u1"])
            assert new.sandbox.ip == "10.244.1.9" and new.sandbox.pid == pause.pid and new.sandbox.mounts == [
                ("/s", "/d", True)] and new.start_time == old.start_time
            ra, rb, rc = new.runs["a"].record, new.runs["b"].record, new.runs["c"].record
            assert (ra.container_id, ra.restart_count, ra.state, ra.started_at, new.runs["a"].log_index) == (
                "cid-a", 3, "running", "2026-01-01T00:00:01Z", 3)
            assert new.runs["a"].adopted and isinstance(new.runs["a"].process, AdoptedProcess)
            assert ra.ready  # as it was: no readiness flap from a kubelet restart
            assert (rb.state, rb.exit_code, rb.ran, rb.reason) == ("terminated", 1, True, "Error")
            assert rb.last_state == {"terminated": rb.state_dict()["terminated"]}  # Always: it will restart
            assert (rc.state, rc.container_id) == ("waiting", "")  # never started: started afresh
            status = new.status()
            assert status["podIP"] == "10.244.1.9" and status["startTime"] == old.start_time

            # A stopping worker writes no checkpoint; removing the sandbox removes it.
            pause.kill()
            pause.wait()
            assert RealRuntime.adoptable_pods(agent.runtime) == {}  # the pause died: nothing to adopt
        finally:
            for p in (pause, shim):
                p.kill()
                p.wait()

    asyncio.run(main())


def test_release_sandbox_deletes_containers_pause_and_address(tmp_path):
    async def main():
        runc = FakeRunc()
        agent = _agent(tmp_path, runc)
        pause = subprocess.Popen(["sleep", "30"])
        ipam = tmp_path / "cni" / "ipam" / "knet"
        ipam.mkdir(parents=True)
        (ipam / "10.244.1.5").write_text("sb\n")
        (ipam / "10.244.1.6").write_text("other\n")
        cp = _cp(pause_pid=pause.pid, pause_start=process_start_time(pause.pid))
        checkpoint.save(tmp_path / "pods" / "u1", cp)
        await agent.runtime.release_sandbox(cp)
        assert pause.wait(timeout=5) == -9
        assert runc.deleted == ["cid"]
        assert not (ipam / "10.244.1.5").exists() and (ipam / "10.244.1.6").exists()
        assert checkpoint.load(tmp_path / "pods" / "u1") is None

    asyncio.run(main())


def test_clean_containers_keeps_the_adopted_ones(tmp_path):
    async def main():
        runc = FakeRunc()
        agent = _agent(tmp_path, runc)
        for cid in ("keep", "stale"):
            (tmp_path / cid).mkdir()
            (tmp_path / cid / "config.json").write_text("{}")
            await runc.run(cid, tmp_path / cid, tmp_path / "log")
        assert await agent.runtime.clean_containers(frozenset({"keep"})) == 1
        assert runc.deleted == ["stale"] and await runc.list() == ["keep"]

    asyncio.run(main())
