"""Pod and container cgroups as the kubelet's cgroupfs driver lays them out, on cgroup v1 or v2.

Pure part: QoS class (upstream's ComputePodQOS), the kubelet's and runc's resource conversions
(MilliCPUToShares, MilliCPUToQuota, shares -> cpu.weight), the layout
(`<cgroup-root>/kubepods[/burstable|/besteffort]/pod<uid>/<container id>`), the OCI
`linux.resources` of a container, and parsers of the usage files (cpu.stat, memory.stat,
memory.events, memory.oom_control).

Side effects sit behind `CgroupDriver` with two real sides, `V1Driver` (one hierarchy per
controller set: cpu, cpuacct, memory, pids; co-mounted `cpu,cpuacct` as well) and `V2Driver`
(the unified hierarchy), chosen by `detect()` from /proc/self/mountinfo. Both work on plain
directories too, which is how the unit tests drive them over a fake cgroupfs in a tmp dir.

Unlike a real node, whose kubelet uses `--cgroup-root=/`, a knet node's cgroup root is
`/knet/<cluster>/<node>` (`cgroup_root()`), so that clusters and nodes sharing one host never
share a cgroup and `knet down` removes every one of them (`remove_tree`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from knet.scheduler.quantity import parse_quantity

Obj = dict[str, Any]

# pkg/kubelet/cm/helpers_linux.go
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
MILLI_CPU_TO_CPU = 1000
QUOTA_PERIOD = 100000      # 100 ms, the kubelet's default --cpu-cfs-quota-period
MIN_QUOTA_PERIOD = 1000

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
_QOS_RESOURCES = ("cpu", "memory")


# -- QoS (pkg/apis/core/helper/qos ComputePodQOS) ---------------------------------------------
def _positive(resources: Obj | None) -> dict[str, Decimal]:
    out = {}
    for name, value in (resources or {}).items():
        if name in _QOS_RESOURCES:
            q = parse_quantity(value)
            if q > 0:
                out[name] = q
    return out


def compute_pod_qos(pod: Obj, *, pod_level_resources: bool = False) -> str:
    """upstream's ComputePodQOS: BestEffort without any cpu/memory request or limit, Guaranteed
    when every container limits cpu and memory and the summed requests equal the summed limits,
    else Burstable. `pod_level_resources`: the PodLevelResources feature gate (off in 1.32)."""
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True

    def add(into: dict[str, Decimal], found: dict[str, Decimal]) -> None:
        for name, q in found.items():
            into[name] = into.get(name, Decimal(0)) + q

    pod_resources = spec.get("resources")
    if pod_level_resources and pod_resources and (pod_resources.get("requests") or pod_resources.get("limits")):
        add(requests, _positive(pod_resources.get("requests")))
        if pod_resources.get("limits"):
            found = _positive(pod_resources.get("limits"))
            add(limits, found)
            if set(found) != set(_QOS_RESOURCES):
                guaranteed = False
    else:
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            res = c.get("resources") or {}
            add(requests, _positive(res.get("requests")))
            found = _positive(res.get("limits"))
            add(limits, found)
            if set(found) != set(_QOS_RESOURCES):
                guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and any(limits.get(n) != q for n, q in requests.items()):
        guaranteed = False
    return GUARANTEED if guaranteed and len(requests) == len(limits) else BURSTABLE


def pod_qos(pod: Obj) -> str:
    """GetPodQOS: status.qosClass when the apiserver set it, else computed."""
    return (pod.get("status") or {}).get("qosClass") or compute_pod_qos(pod)


# -- conversions (pkg/kubelet/cm/helpers_linux.go, runc libcontainer/cgroups) ------------------
def milli_cpu_to_shares(milli_cpu: int) -> int:
    if milli_cpu == 0:
        return MIN_SHARES  # the kernel's value for "no request" would be 1024; 2 means none
    shares = milli_cpu * SHARES_PER_CPU // MILLI_CPU_TO_CPU
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def milli_cpu_to_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    """cfs_quota_us for a CPU limit; 0 means no limit."""
    if milli_cpu == 0:
        return 0
    return max(MIN_QUOTA_PERIOD, milli_cpu * period // MILLI_CPU_TO_CPU)


def shares_to_weight(shares: int) -> int:
    """cpu.shares -> cgroup v2 cpu.weight, runc 1.1's ConvertCPUSharesToCgroupV2Value (Debian 12's
    runc; the kubelet's getCPUWeight is the same line). runc >= 1.3 uses a quadratic fit instead."""
    if shares == 0:
        return 0
    if shares >= MAX_SHARES:
        return 10000
    return 1 + (shares - 2) * 9999 // 262142


def _milli(value: Any) -> int:
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def _bytes(value: Any) -> int:
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


@dataclass(frozen=True)
class Resources:
    """A cgroup's settings; None leaves the kernel's default (no limit)."""

    cpu_shares: int | None = None
    cpu_quota: int | None = None     # with cpu_period
    cpu_period: int | None = None
    memory_limit: int | None = None
    pids_limit: int | None = None


def container_resources(container: Obj) -> Resources:
    """kuberuntime's calculateLinuxResources: shares from the CPU request (the limit when only a
    limit is given), quota from the CPU limit, the memory limit as it is."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    cpu_request = requests.get("cpu", limits.get("cpu"))
    shares = milli_cpu_to_shares(_milli(cpu_request)) if cpu_request is not None else MIN_SHARES
    quota = period = None
    if limits.get("cpu") is not None and _milli(limits["cpu"]):
        quota, period = milli_cpu_to_quota(_milli(limits["cpu"])), QUOTA_PERIOD
    memory = _bytes(limits["memory"]) if limits.get("memory") is not None and _bytes(limits["memory"]) else None
    return Resources(cpu_shares=shares, cpu_quota=quota, cpu_period=period, memory_limit=memory)


def _pod_totals(pod: Obj, section: str, resource: str) -> tuple[int, bool]:
    """(PodRequests/PodLimits for one resource: max(sum of containers, largest init container),
    whether every container declares it)."""
    spec = pod.get("spec") or {}
    conv = _milli if resource == "cpu" else _bytes
    total, declared = 0, True
    for c in spec.get("containers") or []:
        value = ((c.get("resources") or {}).get(section) or {}).get(resource)
        if value is None and section == "requests":
            value = ((c.get("resources") or {}).get("limits") or {}).get(resource)
        if value is None or not conv(value):
            declared = False
        else:
            total += conv(value)
    for c in spec.get("initContainers") or []:
        value = ((c.get("resources") or {}).get(section) or {}).get(resource)
        if value is not None:
            total = max(total, conv(value))
    return total, declared


def pod_cpu_request(pod: Obj) -> int:
    """The pod's CPU request in millicores (PodRequests: containers summed, the largest init
    container if larger; a container's limit stands for a missing request)."""
    return _pod_totals(pod, "requests", "cpu")[0]


def pod_resources(pod: Obj, pids_limit: int | None = None) -> Resources:
    """The pod cgroup's settings (ResourceConfigForPod): CPU shares from the summed requests (2 for
    BestEffort); quota and memory limit from the summed limits when every container sets them;
    the kubelet's --pod-max-pids."""
    qos = pod_qos(pod)
    pids = pids_limit if pids_limit and pids_limit > 0 else None
    if qos == BEST_EFFORT:
        return Resources(cpu_shares=MIN_SHARES, pids_limit=pids)
    cpu_request, _ = _pod_totals(pod, "requests", "cpu")
    cpu_limit, cpu_declared = _pod_totals(pod, "limits", "cpu")
    mem_limit, mem_declared = _pod_totals(pod, "limits", "memory")
    quota = period = memory = None
    if cpu_declared and cpu_limit:
        quota, period = milli_cpu_to_quota(cpu_limit), QUOTA_PERIOD
    if mem_declared and mem_limit:
        memory = mem_limit
    return Resources(cpu_shares=milli_cpu_to_shares(cpu_request), cpu_quota=quota, cpu_period=period,
                     memory_limit=memory, pids_limit=pids)


def oci_resources(container: Obj) -> Obj:
    """The OCI runtime spec's `linux.resources` for a container (what containerd hands runc)."""
    r = container_resources(container)
    out: Obj = {}
    cpu: Obj = {}
    if r.cpu_shares is not None:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota is not None:
        cpu["quota"], cpu["period"] = r.cpu_quota, r.cpu_period
    if cpu:
        out["cpu"] = cpu
    if r.memory_limit is not None:
        out["memory"] = {"limit": r.memory_limit}
    if r.pids_limit is not None:
        out["pids"] = {"limit": r.pids_limit}
    return out


# -- layout -------------------------------------------------------------------------------
def cgroup_root(cluster: str, node: str) -> str:
    """A knet node's --cgroup-root (a real node's is `/`)."""
    return f"/knet/{cluster}/{node}"


def kubepods(root: str) -> str:
    return f"{root.rstrip('/')}/kubepods"


def qos_parent(root: str, qos: str) -> str:
    """Guaranteed pods sit directly under kubepods, the others under kubepods/<qos>."""
    base = kubepods(root)
    return base if qos == GUARANTEED else f"{base}/{qos.lower()}"


def pod_cgroup(root: str, pod: Obj) -> str:
    return f"{qos_parent(root, pod_qos(pod))}/pod{pod['metadata']['uid']}"


def cgroups_path(root: str, pod: Obj, container_id: str) -> str:
    """The container's cgroup (the OCI spec's `linux.cgroupsPath`, absolute from each hierarchy)."""
    return f"{pod_cgroup(root, pod)}/{container_id}"


# -- parsing ------------------------------------------------------------------------------
def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat, memory.events, memory.oom_control)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def working_set(usage: int, stat: dict[str, int], v2: bool) -> int:
    """cadvisor's working set: usage minus inactive file pages (total_inactive_file on v1,
    inactive_file on v2), never below zero."""
    inactive = stat.get("inactive_file", 0) if v2 else stat.get("total_inactive_file", 0)
    return max(0, usage - inactive)


@dataclass(frozen=True)
class Usage:
    cpu_ns: int               # cumulative CPU time (usageCoreNanoSeconds)
    memory_usage: int         # usageBytes
    working_set: int          # workingSetBytes
    rss: int = 0
    page_faults: int = 0
    major_page_faults: int = 0


# -- drivers --------------------------------------------------------------------------------
class CgroupDriver(Protocol):
    version: int

    def create(self, path: str, resources: Resources) -> None: ...

    def add_process(self, path: str, pid: int) -> None: ...

    def usage(self, path: str) -> Usage | None: ...

    def oom_kills(self, path: str) -> int: ...

    def pids(self, path: str) -> list[int]: ...

    def oom_notifier(self, path: str) -> int | None: ...

    def remove(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def _rmdir_tree(top: Path) -> bool:
    """rmdir bottom-up; a cgroup's control files cannot be unlinked (rmdir takes them), the plain
    files of a fake tree can."""
    if not top.is_dir():
        return True
    for dirpath, _, filenames in os.walk(top, topdown=False):
        for name in filenames:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dirpath, name))
        try:
            os.rmdir(dirpath)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                return False
    return True


class V1Driver:
    """cgroup v1: one directory per hierarchy, `mounts` maps each controller to its mount point."""

    version = 1

    def __init__(self, mounts: dict[str, str], others: list[str] | tuple[str, ...] = ()) -> None:
        self.mounts = {k: Path(v) for k, v in mounts.items()}
        # every other hierarchy (cpuset, blkio, name=systemd, a hybrid host's cgroup2...): runc
        # makes a container's cgroup in all of them, so removing a cgroup covers them too
        self.others = sorted({Path(p) for p in others} - set(self._dirs()))

    def _dirs(self) -> list[Path]:
        return sorted({p for c, p in self.mounts.items() if c in ("cpu", "cpuacct", "memory", "pids")})

    def _at(self, controller: str, path: str) -> Path | None:
        mount = self.mounts.get(controller)
        return mount / path.strip("/") if mount is not None else None

    def create(self, path: str, resources: Resources) -> None:
        for d in self._dirs():
            (d / path.strip("/")).mkdir(parents=True, exist_ok=True)
        r = resources
        cpu = self._at("cpu", path)
        if cpu is not None:
            if r.cpu_shares is not None:
                _write(cpu / "cpu.shares", r.cpu_shares)
            if r.cpu_quota is not None:
                _write(cpu / "cpu.cfs_period_us", r.cpu_period or QUOTA_PERIOD)
                _write(cpu / "cpu.cfs_quota_us", r.cpu_quota)
        mem = self._at("memory", path)
        if mem is not None and r.memory_limit is not None:
            _write(mem / "memory.limit_in_bytes", r.memory_limit)
        pids = self._at("pids", path)
        if pids is not None and r.pids_limit is not None:
            _write(pids / "pids.max", r.pids_limit)

    def add_process(self, path: str, pid: int) -> None:
        for d in self._dirs():
            _write(d / path.strip("/") / "cgroup.procs", pid)

    def usage(self, path: str) -> Usage | None:
        acct, mem = self._at("cpuacct", path), self._at("memory", path)
        if acct is None or mem is None or not mem.is_dir():
            return None
        cpu_ns = _read_int(acct / "cpuacct.usage")
        usage = _read_int(mem / "memory.usage_in_bytes")
        if cpu_ns is None or usage is None:
            return None
        stat = parse_flat_keyed(_read(mem / "memory.stat") or "")
        return Usage(cpu_ns=cpu_ns, memory_usage=usage, working_set=working_set(usage, stat, v2=False),
                     rss=stat.get("total_rss", 0), page_faults=stat.get("total_pgfault", 0),
                     major_page_faults=stat.get("total_pgmajfault", 0))

    def oom_kills(self, path: str) -> int:
        """memory.oom_control's `oom_kill` (Linux >= 4.13), else memory.failcnt as a hint."""
        mem = self._at("memory", path)
        if mem is None:
            return 0
        control = parse_flat_keyed(_read(mem / "memory.oom_control") or "")
        if "oom_kill" in control:
            return control["oom_kill"]
        return _read_int(mem / "memory.failcnt") or 0

    def pids(self, path: str) -> list[int]:
        found: set[int] = set()
        for d in self._dirs():
            top = d / path.strip("/")
            for dirpath, _, _ in os.walk(top):
                for line in (_read(Path(dirpath) / "cgroup.procs") or "").split():
                    found.add(int(line))
        return sorted(found)

    def oom_notifier(self, path: str) -> int | None:
        """An eventfd the kernel signals when the memcg at `path` (or one below it) runs out of
        memory: cgroup.event_control on memory.oom_control, containerd's v1 OOM watch. v1 counts
        an OOM kill only in the victim's own memcg (`oom_kill`), which runc removes with the
        container; the notification is the limited cgroup's, which stays."""
        mem = self._at("memory", path)
        if mem is None:
            return None
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            control = os.open(mem / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _write(mem / "cgroup.event_control", f"{efd} {control}")
            finally:
                os.close(control)
        except OSError:
            os.close(efd)
            return None
        return efd

    def remove(self, path: str) -> bool:
        return all([_rmdir_tree(d / path.strip("/")) for d in [*self._dirs(), *self.others]])

    def exists(self, path: str) -> bool:
        return any((d / path.strip("/")).is_dir() for d in self._dirs())


class V2Driver:
    """cgroup v2: one tree; controllers are enabled down the path in cgroup.subtree_control."""

    version = 2

    def __init__(self, mount: str) -> None:
        self.mount = Path(mount)

    def create(self, path: str, resources: Resources) -> None:
        parts = [p for p in path.strip("/").split("/") if p]
        current = self.mount
        for part in parts:
            available = set((_read(current / "cgroup.controllers") or "").split())
            wanted = [c for c in ("cpu", "memory", "pids") if c in available]
            enabled = set((_read(current / "cgroup.subtree_control") or "").split())
            missing = [c for c in wanted if c not in enabled]
            if missing:
                with contextlib.suppress(OSError):
                    _write(current / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            current = current / part
            current.mkdir(exist_ok=True)
        r = resources
        if r.cpu_shares is not None:
            _write(current / "cpu.weight", shares_to_weight(r.cpu_shares))
        if r.cpu_quota is not None:
            _write(current / "cpu.max", f"{r.cpu_quota} {r.cpu_period or QUOTA_PERIOD}")
        if r.memory_limit is not None:
            _write(current / "memory.max", r.memory_limit)
        if r.pids_limit is not None:
            _write(current / "pids.max", r.pids_limit)

    def add_process(self, path: str, pid: int) -> None:
        _write(self.mount / path.strip("/") / "cgroup.procs", pid)

    def usage(self, path: str) -> Usage | None:
        d = self.mount / path.strip("/")
        cpu = parse_flat_keyed(_read(d / "cpu.stat") or "")
        usage = _read_int(d / "memory.current")
        if "usage_usec" not in cpu or usage is None:
            return None
        stat = parse_flat_keyed(_read(d / "memory.stat") or "")
        return Usage(cpu_ns=cpu["usage_usec"] * 1000, memory_usage=usage, working_set=working_set(usage, stat, v2=True),
                     rss=stat.get("anon", 0), page_faults=stat.get("pgfault", 0),
                     major_page_faults=stat.get("pgmajfault", 0))

    def oom_kills(self, path: str) -> int:
        return parse_flat_keyed(_read(self.mount / path.strip("/") / "memory.events") or "").get("oom_kill", 0)

    def pids(self, path: str) -> list[int]:
        found: set[int] = set()
        for dirpath, _, _ in os.walk(self.mount / path.strip("/")):
            for line in (_read(Path(dirpath) / "cgroup.procs") or "").split():
                found.add(int(line))
        return sorted(found)

    def oom_notifier(self, path: str) -> int | None:
        return None  # memory.events is hierarchical: the container's cgroup counts its children's kills

    def remove(self, path: str) -> bool:
        return _rmdir_tree(self.mount / path.strip("/"))

    def exists(self, path: str) -> bool:
        return (self.mount / path.strip("/")).is_dir()


# -- detection ---------------------------------------------------------------------------
def parse_mountinfo(text: str) -> tuple[dict[str, str], str | None]:
    """(v1 controller -> mount point, the cgroup2 mount point) from /proc/self/mountinfo, the
    mounts of the whole hierarchies only (root `/`)."""
    v1: dict[str, str] = {}
    v2 = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or fields[3] != "/":
            continue
        fstype, options = tail[0], tail[2].split(",")
        mount_point = fields[4].encode().decode("unicode_escape")
        if fstype == "cgroup2" and v2 is None:
            v2 = mount_point
        elif fstype == "cgroup":
            for opt in options:
                if opt in ("cpu", "cpuacct", "memory", "pids", "cpuset", "devices", "freezer", "blkio"):
                    v1.setdefault(opt, mount_point)
    return v1, v2


def hierarchy_mount_points(mountinfo: str) -> list[str]:
    """The mount point of every whole cgroup hierarchy in a mountinfo text: each v1 one (named
    ones such as name=systemd too) and cgroup2. runc makes a container's cgroup in all of them,
    the drivers manage only the controllers they set."""
    points = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and tail and tail[0] in ("cgroup", "cgroup2") and fields[3] == "/":
            points.append(fields[4].encode().decode("unicode_escape"))
    return sorted(set(points))


def detect(mountinfo: str | None = None) -> CgroupDriver | None:
    """V1Driver when the memory controller is on a v1 hierarchy (hybrid hosts too: their
    `unified` mount has no controllers), V2Driver on a unified host, None without cgroupfs."""
    if mountinfo is None:
        mountinfo = _read(Path("/proc/self/mountinfo")) or ""
    v1, v2 = parse_mountinfo(mountinfo)
    if "memory" in v1 and "cpu" in v1:
        return V1Driver(v1, hierarchy_mount_points(mountinfo))
    if v2 is not None and "memory" in (_read(Path(v2) / "cgroup.controllers") or "").split():
        return V2Driver(v2)
    return None


def kill_all(driver: CgroupDriver, path: str) -> int:
    """SIGKILL every process left in a cgroup tree (the kubelet's tryKillingCgroupProcesses)."""
    pids = driver.pids(path)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_cluster(cluster: str, driver: CgroupDriver | None = None) -> bool:
    """`knet down`: the cluster's whole cgroup tree (its node machines are gone by then). True
    when there was one and it is gone."""
    driver = driver or detect()
    path = f"/knet/{cluster}"
    if driver is None or not driver.exists(path):
        return False
    kill_all(driver, path)
    removed = driver.remove(path)
    _remove_if_empty(driver, "/knet")
    return removed


def _remove_if_empty(driver: CgroupDriver, path: str) -> None:
    """rmdir `path` in every hierarchy, which the kernel refuses while another cluster's cgroup
    is below it: the last cluster to go takes knet's top cgroup with it (the first one made it)."""
    if isinstance(driver, V1Driver):
        tops = [*driver._dirs(), *driver.others]
    elif isinstance(driver, V2Driver):
        tops = [driver.mount]
    else:
        return
    for top in tops:
        with contextlib.suppress(OSError):
            os.rmdir(top / path.strip("/"))
