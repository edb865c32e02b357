"""The node fakes behave as the side they stand for (runc's shim, the pod network, the OOM
killer), and the runtimes answer the dataplane questions the kubelet asks them."""

from __future__ import annotations

import signal

import pytest

from knet.node import checkpoint
from knet.node.cgroups import Resources
from knet.node.config import KubeletConfig
from knet.node.runtime import SimRuntime, for_dataplane

from .fakes import FakeCgroupDriver, FakeRuntime

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": {"containers": [{"name": "c"}]}}


async def test_fake_containers_exit_as_runc_reports_them(tmp_path):
    rt = FakeRuntime(tmp_path / "pods")
    rt.ignore_sigterm.add("stubborn")
    sandbox = await rt.create_sandbox(POD, "web", [], "192.168.10.11")
    other = await rt.create_sandbox(POD, "web", [], "192.168.10.11")
    assert sandbox.ip != other.ip  # an address in use is never handed out again
    c = await rt.start_container(sandbox, POD, {"name": "c"}, ["x"], {}, tmp_path / "c.log", "web", "cid-c",
                                 tmp_path / "b-c")
    s = await rt.start_container(sandbox, POD, {"name": "stubborn"}, ["x"], {}, tmp_path / "s.log", "web", "cid-s",
                                 tmp_path / "b-s")
    assert rt.process_start_time(c.pid) is not None
    c.send_signal(signal.SIGTERM)
    s.send_signal(signal.SIGTERM)
    assert await c.wait() == 143 and s.returncode is None  # one ignores SIGTERM...
    s.send_signal(signal.SIGKILL)
    assert await s.wait() == 137  # ...nobody ignores SIGKILL
    assert checkpoint.read_exit_code(str(tmp_path / "b-s" / "exit")) == 137  # as the shim writes it
    assert rt.process_start_time(c.pid) is None  # gone: not adoptable
    cp = checkpoint.ContainerCheckpoint("cid-c", shim_pid=c.pid, shim_start=123)
    assert rt.adopt_container(cp, tmp_path / "b-c" / "exit") is None
    with pytest.raises(AssertionError, match="id used twice"):
        await rt.start_container(sandbox, POD, {"name": "c"}, ["x"], {}, tmp_path / "c.log", "web", "cid-c",
                                 tmp_path / "b-c")
    await rt.remove_sandbox(sandbox, POD)
    with pytest.raises(AssertionError, match="outside a live sandbox"):
        await rt.start_container(sandbox, POD, {"name": "c"}, ["x"], {}, tmp_path / "c.log", "web", "cid-new",
                                 tmp_path / "b-c")
    assert rt.allocator.used == {other.ip}


def test_fake_oom_killer_strikes_only_in_existing_cgroups():
    driver = FakeCgroupDriver()
    driver.create("/knet/t/kubepods/pod1/c1", Resources(memory_limit=1))
    driver.oom_kill("/knet/t/kubepods/pod1/c1")
    assert driver.oom_kills("/knet/t/kubepods/pod1/c1") == 1
    with pytest.raises(AssertionError):
        driver.oom_kill("/knet/t/kubepods/pod1/c2")
    driver.remove("/knet/t/kubepods/pod1")
    assert not driver.exists("/knet/t/kubepods/pod1/c1") and driver.oom_kills("/knet/t/kubepods/pod1/c1") == 0


async def test_the_simulated_runtime_keeps_nothing_across_kubelets(tmp_path):
    rt = for_dataplane(KubeletConfig(dataplane="sim"), str(tmp_path))
    assert isinstance(rt, SimRuntime)
    assert not (rt.checkpoints or rt.private_root_filesystem or rt.needs_service_env or rt.refreshes_volumes
                or rt.network_from_plugin)
    assert rt.well_known_hosts() == {} and rt.adoptable_pods() == {}
    assert await rt.clean_containers() == 0 and rt.clean_orphans(str(tmp_path)) == 0
    assert rt.runs_processes(POD, static=True) and not rt.runs_processes(POD, static=False)


def _members(protocol: type) -> set[str]:
    """What a Protocol asks for: its methods, properties and annotated attributes."""
    return {n for n in vars(protocol) if not n.startswith("_")} | set(getattr(protocol, "__annotations__", {}))


async def test_the_real_and_fake_sides_implement_the_same_interfaces(tmp_path):
    """No type checker runs here: each side of a PodRuntime / PodHost must have all its members."""
    from knet.node.podhost import PodHost
    from knet.node.runtime import PodRuntime, RealRuntime

    from .fakes import FakeHost, running_kubelet

    for runtime_class in (RealRuntime, SimRuntime, FakeRuntime):
        assert _members(PodRuntime) <= set(dir(runtime_class)), runtime_class
    async with running_kubelet(tmp_path) as k:
        hosts = (k.node, FakeHost(pods_dir=tmp_path, runtime=k.runtime))
        for host in hosts:
            assert not {m for m in _members(PodHost) if not hasattr(host, m)}, type(host)
