"""A node's pod cgroups: what the kubelet's pod container manager and the runtime do with them.

The pod cgroup is made when the sandbox is, the sandbox (pause) process goes into
`pod<uid>/<sandbox id>`, each container's cgroup `pod<uid>/<container id>` is made with its
limits before the container starts and the runtime starts its processes inside it (runc: in a
child `runc` cgroup, which runc removes when the container exits, so that the container's OOM
count stays readable); a container killed by SIGKILL whose cgroup counted an OOM kill is reported
OOMKilled; the pod cgroup goes (its leftover processes killed) when the sandbox does.

`NodeCgroups.none()` is the node without cgroups (the simulated dataplane, a host without
cgroupfs): nothing is made and the node has no stats.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from knet.node import cgroups
from knet.node.cgroups import CgroupDriver, Resources, Usage

log = logging.getLogger(__name__)
MIN_RATE_WINDOW = 1.0  # seconds between the two reads a CPU rate is computed from, at least
Obj = dict[str, Any]


@dataclass
class Sample:
    """A cgroup's usage at a time (what the kubelet's summary reports, cadvisor's stats)."""

    usage: Usage
    timestamp: float     # wall time (seconds)


class NodeCgroups:
    def __init__(self, driver: CgroupDriver | None, root: str, pids_limit: int | None = None) -> None:
        self.driver = driver
        self.root = root
        self.pids_limit = pids_limit
        self._parents_made = False
        self._burstable_requests: dict[str, int] = {}  # pod uid -> its CPU request (millicores)
        # The previous sample per cgroup, for usageNanoCores (the rate between two reads).
        self._last: dict[str, Sample] = {}
        self._oom_events: dict[str, int] = {}  # container cgroup -> its OOM eventfd (cgroup v1)

    @classmethod
    def none(cls) -> NodeCgroups:
        return cls(None, "")

    @property
    def enabled(self) -> bool:
        return self.driver is not None

    # -- layout ----------------------------------------------------------------------------
    def pod_path(self, pod: Obj) -> str:
        return cgroups.pod_cgroup(self.root, pod)

    def container_path(self, pod: Obj, container_id: str) -> str:
        return cgroups.cgroups_path(self.root, pod, container_id)

    # -- lifecycle -------------------------------------------------------------------------
    def _ensure_parents(self) -> None:
        if self._parents_made or self.driver is None:
            return
        # The QoS parents as the kubelet's QoS container manager makes them: BestEffort pods
        # share the minimum CPU weight, Burstable ones the sum of their requests.
        self.driver.create(cgroups.kubepods(self.root), Resources())
        self.driver.create(cgroups.qos_parent(self.root, cgroups.BEST_EFFORT), Resources(cpu_shares=cgroups.MIN_SHARES))
        self._parents_made = True
        self._update_burstable()

    def create_pod(self, pod: Obj) -> None:
        if self.driver is None:
            return
        self._ensure_parents()
        self.driver.create(self.pod_path(pod), cgroups.pod_resources(pod, self.pids_limit))
        if cgroups.pod_qos(pod) == cgroups.BURSTABLE:
            self._burstable_requests[pod["metadata"]["uid"]] = cgroups.pod_cpu_request(pod)
            self._update_burstable()

    def _update_burstable(self) -> None:
        """The burstable parent's CPU weight: the sum of its pods' requests, as the kubelet's QoS
        container manager keeps it (BestEffort stays at the minimum, Guaranteed pods sit in
        kubepods itself)."""
        if self.driver is None:
            return
        shares = cgroups.milli_cpu_to_shares(sum(self._burstable_requests.values()))
        self.driver.create(cgroups.qos_parent(self.root, cgroups.BURSTABLE), Resources(cpu_shares=shares))

    def place_sandbox(self, pod: Obj, sandbox_id: str, pid: int) -> None:
        if self.driver is None:
            return
        path = f"{self.pod_path(pod)}/{sandbox_id}"
        self.driver.create(path, Resources())
        self.driver.add_process(path, pid)

    def create_container(self, pod: Obj, container: Obj, container_id: str) -> str | None:
        """The container's cgroup with the container's limits, made before it starts; its path.
        The runtime starts the container's processes in it (runc: in a child cgroup of it, see
        runtime.RUNC_CGROUP), or `add_process` moves a started one there."""
        if self.driver is None:
            return None
        path = self.container_path(pod, container_id)
        self.driver.create(path, cgroups.container_resources(container))
        self.watch_oom(pod, container_id)
        return path

    def watch_oom(self, pod: Obj, container_id: str) -> None:
        """Arm the container cgroup's OOM notification (cgroup v1), also for a container a previous
        kubelet started and this one adopted."""
        if self.driver is None:
            return
        path = self.container_path(pod, container_id)
        if path in self._oom_events or not self.driver.exists(path):
            return
        notifier = self.driver.oom_notifier(path)
        if notifier is not None:
            self._oom_events[path] = notifier

    def add_process(self, path: str, pid: int) -> None:
        """A just-started process (and so every child it makes later) into the cgroup `path`."""
        if self.driver is None:
            return
        try:
            self.driver.add_process(path, pid)
        except ProcessLookupError:
            pass  # it has already exited (`sh -c "exit 42"`): nothing left to limit

    def oom_killed(self, pod: Obj, container_id: str) -> bool:
        """Whether the kernel's OOM killer struck in this container instance's cgroup (a new one per
        start, so any count is a rise)."""
        if self.driver is None:
            return False
        path = self.container_path(pod, container_id)
        return self.driver.oom_kills(path) > 0 or _signalled(self._oom_events.get(path))

    def remove_container(self, pod: Obj, container_id: str) -> None:
        if self.driver is None:
            return
        path = self.container_path(pod, container_id)
        cgroups.kill_all(self.driver, path)
        self.driver.remove(path)
        notifier = self._oom_events.pop(path, None)
        if notifier is not None:
            os.close(notifier)
        self._last.pop(path, None)

    async def remove_pod(self, pod: Obj) -> None:
        """The pod cgroup and everything under it; processes left in it are killed first."""
        if self.driver is None:
            return
        path = self.pod_path(pod)
        for _ in range(50):
            cgroups.kill_all(self.driver, path)
            if self.driver.remove(path):
                break
            await asyncio.sleep(0.1)  # killed processes leave their cgroup when reaped
        else:
            log.warning("pod cgroup %s could not be removed", path)
        for key in [k for k in self._last if k.startswith(path + "/") or k == path]:
            del self._last[key]
        for key in [k for k in self._oom_events if k.startswith(path + "/")]:
            os.close(self._oom_events.pop(key))
        if self._burstable_requests.pop(pod["metadata"]["uid"], None) is not None:
            self._update_burstable()

    # -- stats -----------------------------------------------------------------------------
    def sample(self, path: str) -> tuple[Sample, float | None] | None:
        """(this read, CPU cores used since the previous read of the same cgroup, if any)."""
        if self.driver is None:
            return None
        usage = self.driver.usage(path)
        if usage is None:
            return None
        now = Sample(usage, time.time())
        before = self._last.get(path)
        if before is None or now.timestamp - before.timestamp >= MIN_RATE_WINDOW:
            self._last[path] = now  # reads closer together keep measuring from the older sample
        rate = cpu_rate(before, now) if before is not None else None
        return now, rate

    def node_path(self) -> str:
        return cgroups.kubepods(self.root)


def _signalled(eventfd: int | None) -> bool:
    """Whether an eventfd was signalled (read without waiting)."""
    if eventfd is None:
        return False
    try:
        return os.eventfd_read(eventfd) > 0
    except BlockingIOError:
        return False


def cpu_rate(before: Sample, after: Sample) -> float | None:
    """Cores in use between two samples (usageNanoCores / 1e9); None when time did not advance or
    the counter went back (a new cgroup under the same name)."""
    dt = after.timestamp - before.timestamp
    used = after.usage.cpu_ns - before.usage.cpu_ns
    if dt <= 0 or used < 0:
        return None
    return used / 1e9 / dt


def default_cgroup_root(root_dir: str, node: str) -> str:
    """/knet/<cluster>/<node> for a root-dir `.../<cluster>/nodes/<node>` (knet up's layout), else
    /knet/kubelet-<hash of the root-dir>/<node>: kubelets of different trees never share one."""
    import hashlib
    from pathlib import Path

    parts = Path(root_dir).resolve().parts
    if len(parts) >= 3 and parts[-2] == "nodes":
        return cgroups.cgroup_root(parts[-3], node)
    digest = hashlib.sha1(str(Path(root_dir).resolve()).encode()).hexdigest()[:8]
    return cgroups.cgroup_root(f"kubelet-{digest}", node)


def for_node(cfg: Any, node: str, root_dir: str) -> NodeCgroups:
    """A real node's cgroups (under --cgroup-root, else /knet/<cluster>/<node> with the cluster
    named by the state dir root-dir lies in); none on the simulated dataplane or without
    cgroupfs (a warning: limits are then not applied)."""
    if cfg.dataplane != "real":
        return NodeCgroups.none()
    driver = cgroups.detect()
    if driver is None:
        log.warning("no cgroup v1 memory+cpu or v2 hierarchy mounted: pod limits are not applied, no stats")
        return NodeCgroups.none()
    root = cfg.cgroup_root or default_cgroup_root(root_dir, node)
    pids = cfg.pod_max_pids if cfg.pod_max_pids > 0 else None
    node_cgroups = NodeCgroups(driver, root, pids)
    try:
        node_cgroups._ensure_parents()  # e.g. a v2 tree whose controllers cannot be delegated
    except OSError as exc:
        log.warning("cannot make the pod cgroups under %s (%s): pod limits are not applied, no stats", root, exc)
        return NodeCgroups.none()
    return node_cgroups
