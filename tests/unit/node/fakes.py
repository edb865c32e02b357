"""Fakes of a node's side effects, for unit tests of the pod worker and the kubelet's core.

- FakeRuntime: a PodRuntime whose sandboxes and containers are records in memory. Its
  processes live as long as the FakeRuntime object does, not as long as a kubelet: a second
  Kubelet given the same FakeRuntime is a restarted kubelet finding its containers again.
  Invariants it checks: a pod address is never handed out twice while in use, a container is
  only started in a live sandbox, and a container id is never reused.
- FakeCgroupDriver: the CgroupDriver under NodeCgroups (the kubelet's own cgroup logic runs for
  real on top of it); a test makes the kernel's OOM killer strike with `oom_kill(path)`.
- FakeHost: a PodHost for a lone PodWorker (no kubelet, no API).
- running_kubelet(): a Kubelet on these fakes and a FakeApi, its pods informer, status writer and
  event recorder running, so tests read what a user reads: the pod's status and its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knet.client import Informer
from knet.client.fake import FakeApi
from knet.node import checkpoint, crilog
from knet.node.agent import Kubelet, NodeAgent
from knet.node.cgroups import Resources, Usage
from knet.node.config import KubeletConfig
from knet.node.podcgroups import NodeCgroups
from knet.node.runc import FakeProcess
from knet.node.runtime import PodCidrAllocator, Sandbox, new_id

Obj = dict[str, Any]
POD_CIDR = "10.244.1.0/24"
NODE = "node01"
NODE_IP = "192.168.10.11"


class FakeContainer(FakeProcess):
    """A container process (ContainerProcess; runc's FakeProcess with more of a container): it
    runs until the test ends it (`exit`) or a signal does. SIGKILL always ends it (137); SIGTERM
    ends it (143) unless it ignores SIGTERM. What it "prints" goes to its log file, as a
    container's output does; its exit code goes to its exit file, as runc's shim writes it."""

    def __init__(self, runtime: FakeRuntime, container_id: str, pid: int, *, name: str, pod: Obj, env: dict[str, str],
                 log_path: Path, exit_file: Path, cgroup: str | None, ignores_sigterm: bool) -> None:
        super().__init__(container_id)
        self.runtime = runtime
        self.pid = pid
        self.name = name
        self.pod = pod
        self.env = env
        self.log_path = log_path
        self.exit_file = exit_file
        self.cgroup = cgroup
        self.ignores_sigterm = ignores_sigterm
        self.log(f"started {name}")

    def log(self, line: str, stream: str = crilog.STDOUT) -> None:
        """A line printed: a CRI record in the log file, as the log writer would append it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as f:
            f.write(crilog.encode(crilog.Stamp.now(), stream, crilog.FULL, line.encode()))

    def output(self) -> list[str]:
        """The lines of its log (`kubectl logs`)."""
        return [text.decode() for _, text in crilog.render(self.log_path.read_bytes(), crilog.LogOptions())
                for text in [text.removesuffix(b"\n")]]

    def exit(self, code: int) -> None:
        if self.returncode is None:
            self.exit_file.parent.mkdir(parents=True, exist_ok=True)
            self.exit_file.write_text(f"{code}\n")
            self.runtime.start_times.pop(self.pid, None)
        super().exit(code)

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        self.signals.append(sig)
        self.log(f"received signal {int(sig)}")
        if sig == signal.SIGKILL or not self.ignores_sigterm:
            self.exit(128 + int(sig))


class FakeRuntime:
    """A PodRuntime (knet.node.runtime) with a real runtime's capabilities: it checkpoints, pods
    have files and a root filesystem of their own, containers start in their cgroup."""

    name = "fake"
    starts_in_cgroup = True
    checkpoints = True
    private_root_filesystem = True
    needs_service_env = True
    refreshes_volumes = False  # no loop: tests refresh nothing behind the worker's back
    network_from_plugin = False

    def __init__(self, pods_dir: Path, pod_cidr: str = POD_CIDR) -> None:
        self.pods_dir = pods_dir  # where the node's pods' checkpoints lie
        self.allocator = PodCidrAllocator()
        self.allocator.set_cidr(pod_cidr)
        self._pids = itertools.count(1000)
        self.start_times: dict[int, int] = {}  # the live processes: pid -> start time
        self.sandboxes: dict[str, Sandbox] = {}  # live sandboxes by id
        self.containers: dict[str, FakeContainer] = {}  # every container started, by id
        self.ignore_sigterm: set[str] = set()  # names of containers that ignore SIGTERM
        # container id -> (mounts, pid_target) given to start_container (ephemeral containers)
        self.started_with: dict[str, tuple[list | None, str | None]] = {}
        self.sandbox_error: str | None = None  # create_sandbox fails with this while set
        self.network_is_ready = True  # False: the network add-on has not written the CNI config

    # -- the test's view -------------------------------------------------------------------------
    def running(self, pod_name: str, container: str) -> FakeContainer:
        """The pod's live instance of `container` (AssertionError: none runs)."""
        live = [c for c in self.containers.values()
                if c.returncode is None and c.name == container and c.pod["metadata"]["name"] == pod_name]
        assert len(live) == 1, f"{len(live)} running instances of {pod_name}/{container}"
        return live[0]

    def _spawn(self) -> int:
        pid = next(self._pids)
        self.start_times[pid] = int(time.monotonic() * 100) + pid
        return pid

    # -- PodRuntime ------------------------------------------------------------------------------
    def runs_processes(self, pod: Obj, static: bool) -> bool:
        return True

    def network_ready(self) -> bool:
        return self.network_is_ready

    def set_pod_cidr(self, cidr: str) -> None:
        self.allocator.set_cidr(cidr)

    def well_known_hosts(self) -> dict[str, str]:
        return {"controlplane": "192.168.10.10"}

    def process_start_time(self, pid: int) -> int | None:
        return self.start_times.get(pid)

    async def create_sandbox(self, pod: Obj, hostname: str, mounts: list[tuple[str, str, bool]],
                             node_ip: str) -> Sandbox:
        if self.sandbox_error:
            raise RuntimeError(self.sandbox_error)
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        ip = node_ip if host_network else self.allocator.allocate()
        sandbox = Sandbox(id=new_id(), ip=ip, pid=self._spawn(), new_net=not host_network, mounts=list(mounts))
        self.sandboxes[sandbox.id] = sandbox
        return sandbox

    async def remove_sandbox(self, sandbox: Sandbox, pod: Obj) -> None:
        self._remove(sandbox.id, sandbox.ip if sandbox.new_net else None, sandbox.pid)

    def _remove(self, sandbox_id: str, ip: str | None, pause_pid: int | None) -> None:
        self.sandboxes.pop(sandbox_id, None)
        if ip is not None:
            self.allocator.release(ip)
        if pause_pid is not None:
            self.start_times.pop(pause_pid, None)

    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, argv: list[str],
                              env: dict[str, str], log_path: Path, hostname: str, container_id: str,
                              bundle_dir: Path, cgroup: str | None = None, *,
                              mounts: list[tuple[str, str, bool]] | None = None,
                              pid_target: str | None = None) -> FakeContainer:
        assert sandbox.id in self.sandboxes, "a container started outside a live sandbox"
        assert container_id not in self.containers, "a container id used twice"
        if pid_target is not None:  # as runc joining /proc/PID/ns/pid: the target must run
            assert self.containers[pid_target].returncode is None, "joined a stopped container's PID namespace"
        self.started_with[container_id] = (mounts, pid_target)
        proc = FakeContainer(self, container_id, self._spawn(), name=container["name"], pod=pod, env=env,
                             log_path=log_path, exit_file=bundle_dir / "exit", cgroup=cgroup,
                             ignores_sigterm=container["name"] in self.ignore_sigterm)
        self.containers[container_id] = proc
        return proc

    def exec_prefix(self, sandbox: Sandbox, container_id: str, env: dict[str, str] | None = None,
                    tty: bool = False, size: tuple[int, int] | None = None) -> list[str]:
        # A command "in the container" (an exec hook) runs as a host process; $CONTAINER_STDOUT is
        # the container's log file (a record appended there is output of the container's, as what
        # a real hook writes to /proc/1/fd/1 goes through the container's log writer).
        return ["env", f"CONTAINER_STDOUT={self.containers[container_id].log_path}"]

    def adoptable_pods(self) -> dict[str, checkpoint.PodCheckpoint]:
        return checkpoint.adoptable(checkpoint.load_all(self.pods_dir), self.process_start_time)

    def adopt_container(self, c: checkpoint.ContainerCheckpoint, exit_file: Path) -> FakeContainer | None:
        if not checkpoint.shim_alive(c, self.process_start_time):
            return None
        return self.containers[c.container_id]

    async def clean_containers(self, keep: frozenset[str] = frozenset()) -> int:
        gone = [c for cid, c in self.containers.items() if c.returncode is None and cid not in keep]
        for c in gone:
            c.exit(137)
        return len(gone)

    def clean_orphans(self, ipam_dir: str, keep: dict[str, checkpoint.PodCheckpoint] | None = None) -> int:
        kept = {cp.sandbox_id for cp in (keep or {}).values()}
        orphans = [s for sid, s in self.sandboxes.items() if sid not in kept]
        for s in orphans:
            self._remove(s.id, s.ip if s.new_net else None, s.pid)
        return len(orphans)

    async def release_sandbox(self, cp: checkpoint.PodCheckpoint) -> None:
        for c in cp.containers.values():
            proc = self.containers.get(c.container_id)
            if proc is not None:
                proc.exit(137)
        self._remove(cp.sandbox_id, cp.ip if cp.new_net else None, cp.pause_pid)


class FakeCgroupDriver:
    """The kernel's cgroupfs as a dict (cgroups.CgroupDriver): it checks that processes go only
    into existing cgroups and OOM kills happen only in them."""

    version = 2

    def __init__(self) -> None:
        self.cgroups: dict[str, Resources] = {}
        self.processes: dict[str, list[int]] = {}
        self.ooms: dict[str, int] = {}

    def oom_kill(self, path: str) -> None:
        """The OOM killer strikes in the cgroup `path` (the test then ends the process: 137)."""
        assert path in self.cgroups, f"OOM in a cgroup that does not exist: {path}"
        self.ooms[path] = self.ooms.get(path, 0) + 1

    def create(self, path: str, resources: Resources) -> None:
        self.cgroups[path] = resources

    def add_process(self, path: str, pid: int) -> None:
        assert path in self.cgroups, f"process into a missing cgroup {path}"
        self.processes.setdefault(path, []).append(pid)

    def usage(self, path: str) -> Usage | None:
        return None

    def oom_kills(self, path: str) -> int:
        return self.ooms.get(path, 0)

    def pids(self, path: str) -> list[int]:
        return []

    def oom_notifier(self, path: str) -> int | None:
        return None

    def remove(self, path: str) -> bool:
        for p in [p for p in self.cgroups if p == path or p.startswith(path + "/")]:
            del self.cgroups[p]
            self.ooms.pop(p, None)
        return True

    def exists(self, path: str) -> bool:
        return path in self.cgroups


@dataclass
class FakeHost:
    """A PodHost (knet.node.podhost) for a PodWorker on its own: no API, no volumes but the
    pod's emptyDirs' directories; what the worker reports is recorded."""

    pods_dir: Path
    runtime: Any
    cgroups: NodeCgroups = field(default_factory=NodeCgroups.none)
    node_name: str = NODE
    node_ip: str = NODE_IP
    cluster_dns: list[str] = field(default_factory=lambda: ["10.96.0.10"])
    cluster_domain: str = "cluster.local"
    well_known_hosts: dict[str, str] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    adoptions: dict[str, checkpoint.PodCheckpoint] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    status_changes: int = 0
    retried: list[Any] = field(default_factory=list)
    terminated: list[Any] = field(default_factory=list)

    def network_ready(self) -> bool:
        return self.runtime.network_ready()

    async def materialise_volumes(self, pod: Obj, pod_dir: Path, *, static: bool) -> tuple[Obj, dict[str, Path]]:
        from knet.node import volumes

        return pod, await volumes.materialise(None, pod, pod_dir)

    async def fetch_env_sources(self, namespace: str, container: Obj) -> None:
        pass

    def services(self) -> list[Obj]:
        return []

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get((namespace, name))

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return None

    async def event(self, pod: Obj, event_type: str, reason: str, message: str, field_path: str | None) -> None:
        self.events.append((event_type, reason, message))

    def status_changed(self, worker: Any) -> None:
        self.status_changes += 1

    def retry_pod(self, worker: Any) -> None:
        self.retried.append(worker)

    async def pod_terminated(self, worker: Any) -> None:
        self.terminated.append(worker)

    def take_adoption(self, uid: str) -> checkpoint.PodCheckpoint | None:
        return self.adoptions.pop(uid, None)


# -- a kubelet on the fakes -------------------------------------------------------------------------
@dataclass
class KubeletOnFakes:
    kubelet: Kubelet
    node: NodeAgent
    api: FakeApi
    runtime: FakeRuntime
    cgroups: FakeCgroupDriver

    def pod(self, name: str, namespace: str = "default") -> Obj | None:
        """The pod as `kubectl get pod -o yaml` shows it (None: not found)."""
        found = [p for p in self.api.objects("v1", "pods")
                 if p["metadata"]["name"] == name and p["metadata"].get("namespace") == namespace]
        return found[0] if found else None

    def container_status(self, pod_name: str, container: str) -> Obj:
        pod = self.pod(pod_name) or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return next((s for s in statuses if s["name"] == container), {})

    def events(self, pod_name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the pod's events, as `kubectl describe pod` lists them, an
        event that happened N times (an Event of count N, "x2 over 3s") N times over."""
        return [(e["type"], e["reason"], e["message"]) for e in self.api.objects("v1", "events")
                if e["involvedObject"].get("name") == pod_name for _ in range(int(e.get("count") or 1))]

    async def create_pod(self, pod: Obj) -> Obj:
        pod = {"apiVersion": "v1", "kind": "Pod", **pod}
        pod["metadata"] = {"namespace": "default", **pod["metadata"]}
        pod["spec"] = {"nodeName": NODE, **pod["spec"]}
        return await self.api.create("v1", "pods", pod, namespace=pod["metadata"]["namespace"])

    async def delete_pod(self, name: str, grace_seconds: int, namespace: str = "default") -> None:
        """`kubectl delete pod`: the apiserver marks the pod (deletionTimestamp); the kubelet ends it."""
        await self.api.patch("v1", "pods", name, {"metadata": {
            "deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": grace_seconds}},
            namespace=namespace)


async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (what it returned), else fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_kubelet(root_dir: Path, *, runtime: FakeRuntime | None = None, api: FakeApi | None = None,
                          driver: FakeCgroupDriver | None = None, dies: bool = False
                          ) -> AsyncIterator[KubeletOnFakes]:
    """A kubelet of node01 on the fakes, connected to `api` as _api_main connects it (pods
    informer, status writer, events). The runtime and driver given outlive it, as a node's
    containers and cgroups outlive its kubelet process. On exit it stops its pods, as a kubelet
    shutting down does, unless it `dies` (killed: its containers keep running)."""
    api = api or FakeApi()
    driver = driver or FakeCgroupDriver()
    cfg = KubeletConfig(hostname_override=NODE, node_ip=NODE_IP, root_dir=str(root_dir), dataplane="fake",
                        cni_conf_dir=str(root_dir / "cni-conf"), cluster_dns=["10.96.0.10"], port=0)
    rt = runtime or FakeRuntime(root_dir / "pods")
    kubelet = Kubelet(cfg, new_runtime=lambda _root: rt, new_cgroups=lambda name, _root: NodeCgroups(
        driver, f"/knet/test/{name}"))
    node = kubelet.nodes[NODE]
    await node.find_adoptions()
    client = api.client(f"system:node:{NODE}")
    kubelet.api, kubelet.api_ready = client, True
    kubelet.recorder.start(client)
    kubelet.pods = Informer(client, "v1", "pods", field_selector=f"spec.nodeName={NODE}")
    kubelet.pods.add_handler(on_add=kubelet._on_pod, on_update=lambda old, new: kubelet._on_pod(new),
                             on_delete=kubelet._on_pod_deleted)
    tasks = [asyncio.create_task(kubelet.pods.run()), asyncio.create_task(kubelet._status_writer(client)),
             asyncio.create_task(kubelet._release_unclaimed())]
    try:
        yield KubeletOnFakes(kubelet, node, api, rt, driver)
    finally:
        if not dies:
            await kubelet.shutdown()
        for worker in node.workers.values():
            if worker.task is not None:
                worker.task.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *(w.task for w in node.workers.values() if w.task), return_exceptions=True)
        await kubelet.recorder.flush()
