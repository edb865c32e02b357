"""RealRuntime's container side against the fake runc: the bundle it writes (config.json, an
empty rootfs, mount points the host lacks), signals through `runc kill`, exec through `runc
exec`, and the cleanup of a previous kubelet's containers."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from knet.node import oci, stdioholder
from knet.node.attachio import Stdio, holder_argv
from knet.node.runc import FakeRunc, RealRunc, container_started
from knet.node.runtime import RealRuntime, Sandbox, signal_process


def runtime(tmp_path: Path, runc: FakeRunc) -> RealRuntime:
    layout = oci.HostLayout(system_dirs=("/usr", "/etc"), runtime_dirs=(), python_path="/src")
    rt = RealRuntime.__new__(RealRuntime)  # no pause build, no CNI: only the container side
    rt.cni_bin_dir, rt.cni_conf_dir, rt.root_dir, rt.runc, rt.layout = "", "", str(tmp_path), runc, layout
    return rt


POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": {"containers": [{"name": "c"}]}}


def test_bundle_and_lifecycle(tmp_path):
    async def main():
        fake = FakeRunc()
        rt = runtime(tmp_path, fake)
        volume = tmp_path / "vol"
        volume.mkdir()
        sandbox = Sandbox(id="s", ip="10.0.0.2", pid=77, new_net=True, mounts=[
            (str(volume), "/etc/knet-test-missing-dir", True),      # mount point the host's /etc lacks
            (str(tmp_path / "no-such-source"), "/lib/modules", True),  # a hostPath missing on the host
            (str(volume), "/data", False)])
        bundle = tmp_path / "pods" / "u1" / "containers" / "c"
        (bundle / "rootfs" / "stale").mkdir(parents=True)  # a previous instance's layer goes
        proc = await rt.start_container(sandbox, POD, {"name": "c", "image": "busybox"}, ["sleep", "1"],
                                        {"K": "V"}, tmp_path / "log", "web", "cid1", bundle)
        spec = fake.bundles["cid1"]
        assert spec == json.loads((bundle / "config.json").read_text())
        assert not (bundle / "rootfs" / "stale").exists() and (bundle / "rootfs" / "tmp").stat().st_mode & 0o1777 == 0o1777
        etc = next(m for m in spec["mounts"] if m["destination"] == "/etc")
        assert etc["type"] == "overlay" and (bundle / "layers" / "etc" / "knet-test-missing-dir").is_dir()
        modules = next(m for m in spec["mounts"] if m["destination"] == "/lib/modules")
        assert modules["source"] == str(bundle / "empty") and not (tmp_path / "no-such-source").exists()
        env = dict(e.split("=", 1) for e in spec["process"]["env"])
        assert env["K"] == "V" and env["HOSTNAME"] == "web"
        assert {"type": "network", "path": "/proc/77/ns/net"} in spec["linux"]["namespaces"]
        # the pod's /dev/shm (shared by its containers), not a tmpfs of the container's own
        shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
        assert shm == {"destination": "/dev/shm", "type": "bind", "source": str(tmp_path / "pods" / "u1" / "shm"),
                       "options": ["rbind", "rw"]}
        assert rt.exec_prefix(sandbox, "cid1") == ["fake-runc", "exec", "cid1"]
        assert await rt.clean_containers() == 1 and fake.deleted == ["cid1"]
        assert await proc.wait() == 137

        proc = await rt.start_container(sandbox, POD, {"name": "c"}, ["sleep", "1"], {}, tmp_path / "log", "web",
                                        "cid2", bundle)
        signal_process(proc, signal.SIGTERM)  # through `runc kill`, not to the runc process
        assert await proc.wait() == 143 and proc.signals == [signal.SIGTERM]

        with pytest.raises(oci.ContainerConfigError):
            await rt.start_container(sandbox, {**POD, "spec": {"securityContext": {"runAsNonRoot": True}}},
                                     {"name": "c"}, ["true"], {}, tmp_path / "log", "web", "cid3", bundle)

    asyncio.run(main())


def test_real_runc_argv_is_scoped_to_the_nodes_state_dir(tmp_path):
    runc = RealRunc(tmp_path / "runc")
    assert runc.exec_argv("abc", {"TERM": "xterm"}) == [
        "runc", "--root", str(tmp_path / "runc"), "exec", "--env", "TERM=xterm", "abc"]
    assert asyncio.run(runc.list()) == []  # no state dir yet: nothing to list (and no runc call)


def test_stdin_and_tty_containers_run_under_the_stdio_holder(tmp_path):
    async def main():
        fake = FakeRunc()
        rt = runtime(tmp_path, fake)
        sandbox = Sandbox(id="s", ip="10.0.0.2", pid=77, new_net=True)
        for cid, container in (("plain", {"name": "c"}), ("it", {"name": "c", "stdin": True, "tty": True,
                                                                   "stdinOnce": True})):
            await rt.start_container(sandbox, POD, container, ["sh"], {}, tmp_path / "log", "web", cid,
                                     tmp_path / cid)
        assert fake.stdio == {"plain": None, "it": Stdio(stdin=True, tty=True, stdin_once=True)}
        assert fake.bundles["it"]["process"]["terminal"] is True

    asyncio.run(main())


def test_holder_argv_runs_the_holder_isolated_before_runc():
    argv = holder_argv(Stdio(stdin=True, tty=False, stdin_once=True), python="/py")
    assert argv == ["/py", "-I", "-S", stdioholder.__file__, "--stdin", "--stdin-once", "attach.sock", "--"]


def test_host_ipc_pods_get_the_nodes_dev_shm(tmp_path):
    async def main():
        fake = FakeRunc()
        rt = runtime(tmp_path, fake)
        sandbox = Sandbox(id="s", ip="10.0.0.2", pid=77, new_net=True)
        pod = {**POD, "spec": {"hostIPC": True, "containers": [{"name": "c"}]}}
        await rt.start_container(sandbox, pod, {"name": "c"}, ["true"], {}, tmp_path / "log", "web", "cid",
                                 tmp_path / "bundle")
        shm = next(m for m in fake.bundles["cid"]["mounts"] if m["destination"] == "/dev/shm")
        assert shm["type"] == "bind" and shm["source"] == "/dev/shm"

    asyncio.run(main())


@pytest.mark.parametrize(("files", "init_start", "started"), [
    ({"exec.fifo": "", "state.json": '{"init_process_pid": 7, "init_process_start": 100}'}, 100, False),  # created, waiting
    ({"state.json": '{"init_process_pid": 7, "init_process_start": 100}'}, 100, True),  # init exec'd the command
    # runc destroying a container whose start failed: fifo gone first, init already reaped
    ({"state.json": '{"init_process_pid": 7, "init_process_start": 100}'}, None, False),
    ({"state.json": '{"init_process_pid": 7, "init_process_start": 100}'}, 555, False),  # the pid reused
    ({"state.json": '{"init_process_pid": 7'}, 100, False),  # half written
    ({}, 100, False),  # not created yet, or removed
])
def test_a_container_counts_as_started_only_while_its_init_process_runs(tmp_path, files, init_start, started):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert container_started(tmp_path, lambda pid: init_start if pid == 7 else None) is started
