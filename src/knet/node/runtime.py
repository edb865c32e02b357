"""Pod runtimes: where a pod's sandbox and container processes come from.

RealRuntime: a pause process per pod holding its network, UTS and IPC namespaces, CNI for its
network, each container a runc container (knet.node.oci builds its spec) joined to those
namespaces with its own mount and PID namespaces. SimRuntime: addresses from the podCIDR in
Python, no processes (except for static pods, which run as host processes there).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from knet.net import cni, spawn
from knet.node import attachio, checkpoint, crilogwriter, oci, podshm
from knet.node.cbuild import build_c_helper
from knet.node.runc import AdoptedProcess, ContainerProcess, RealRunc, RuncCli, process_start_time

Obj = dict[str, Any]
PAUSE = Path(__file__).with_name("pause.py")
DEFAULT_PATH = oci.DEFAULT_PATH


def new_id() -> str:
    return secrets.token_hex(32)


@dataclass
class Sandbox:
    id: str
    ip: str
    pid: int | None = None           # the pause process (None: no namespaces of its own)
    new_net: bool = False
    new_pid: bool = False            # the pause holds a PID namespace its containers share
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    # The pod's binds (its /etc files and volumes) that every container's spec gets (runc).
    mounts: list[tuple[str, str, bool]] = field(default_factory=list, repr=False)
    pid_start: int | None = None     # the pause's start time (an adopted sandbox is killed by pid)

    def enter_argv(self) -> list[str]:
        """argv prefix joining the pod's namespaces (empty: run as a plain host process)."""
        if self.pid is None:
            return []
        argv = ["nsenter", f"--target={self.pid}", "--mount"]
        if self.new_net:
            argv += ["--net", "--uts"]
        return [*argv, "--"]


class SandboxError(RuntimeError):
    pass


_PAUSE_ARGV: list[str] | None = None


def pause_argv(build_dir: Path | None = None) -> list[str]:
    """The compiled pause (pause.c, built once per source version into build_dir; ~1 ms to
    start), else pause.py."""
    global _PAUSE_ARGV
    if _PAUSE_ARGV is None:
        _PAUSE_ARGV = (_build_pause(build_dir) if build_dir else None) or [sys.executable, "-I", "-S", str(PAUSE)]
    return _PAUSE_ARGV


def pause_build_dir(root_dir: str) -> Path:
    """The cluster's own bin dir (ROOT/NAME/bin for a root-dir ROOT/NAME/nodes/NODE, so that
    deleting the cluster removes it), else ROOT-DIR/bin."""
    root = Path(root_dir)
    return root.parent.parent / "bin" if root.parent.name == "nodes" else root / "bin"


def _build_pause(build_dir: Path) -> list[str] | None:
    return build_c_helper(PAUSE.with_suffix(".c"), "knet-pause", build_dir)


def host_process_env(hostname: str) -> dict[str, str]:
    """The environment a container that is a host process starts from (before its own env), and
    that a process run in it (exec, hooks, probes) starts from too."""
    env = {"PATH": f"{DEFAULT_PATH}:{os.environ.get('PATH', '')}", "HOME": "/root", "HOSTNAME": hostname}
    if os.environ.get("PYTHONPATH"):
        # knet's own workloads (the control plane's static pods, kube-proxy, CoreDNS) run the
        # kubelet's knet: the same code when it comes from a PYTHONPATH (a development tree).
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


async def spawn_container(sandbox: Sandbox, argv: list[str], env: dict[str, str], log_path: Path,
                          hostname: str, build_dir: Path | None = None) -> asyncio.subprocess.Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**host_process_env(hostname), **env}
    # The process is the CRI log writer (crilogwriter), which starts the command once its stdin
    # closes: after the caller moved it into the container's cgroup (the pod worker does so right
    # after this returns, before yielding to the loop), so that the command starts there.
    proc = await asyncio.create_subprocess_exec(
        *crilogwriter.argv(build_dir, log_path, gate=True), *sandbox.enter_argv(), *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env=full_env, cwd="/", start_new_session=True)
    if proc.stdin is not None:
        asyncio.get_running_loop().call_soon(proc.stdin.close)
    return proc


def signal_process(proc: asyncio.subprocess.Process | ContainerProcess, sig: int) -> None:
    if hasattr(proc, "container_id"):  # a runc container: `runc kill`, never the runc process
        proc.send_signal(sig)
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


class PodRuntime(Protocol):
    """What a node agent needs from a dataplane; RealRuntime and SimRuntime implement it. The
    node and its pod workers ask it what differs between dataplanes (the capability flags and
    queries below) rather than which dataplane it is."""

    name: str

    # A restarted kubelet re-adopts this runtime's pods: workers checkpoint them, and the
    # kubelet finds them again (adoptable_pods) and cleans up what it does not adopt.
    checkpoints: bool
    # Each container has a root filesystem of its own holding nothing of the host but the pod's
    # binds: every volume is bound (a hostPath at its own path too) and /etc/hostname is the pod's.
    private_root_filesystem: bool
    # Containers get the Services' env vars (FOO_SERVICE_HOST...): the kubelet watches Services.
    needs_service_env: bool
    # The pods' configMap/secret volumes are files that follow their objects (a refresh loop).
    refreshes_volumes: bool
    # The pod network comes from a CNI plugin whose config the network add-on writes, so it can
    # become ready (or stop being) at any time: the kubelet watches network_ready().
    network_from_plugin: bool

    def runs_processes(self, pod: Obj, static: bool) -> bool: ...

    def well_known_hosts(self) -> dict[str, str]:
        """Names every pod's /etc/hosts gets besides its own (the node machines' names)."""
        ...

    def process_start_time(self, pid: int) -> int | None:
        """The start time of a process of this runtime (what a checkpoint records against pid reuse)."""
        ...

    def adoptable_pods(self) -> dict[str, checkpoint.PodCheckpoint]:
        """uid -> checkpoint of the pods a previous kubelet of this node left running."""
        ...

    def adopt_container(self, c: checkpoint.ContainerCheckpoint, exit_file: Path) -> ContainerProcess | None:
        """The still running container a checkpoint names (None: it has ended meanwhile; its
        exit code is in exit_file)."""
        ...

    async def clean_containers(self, keep: frozenset[str] = frozenset()) -> int:
        """Delete the containers a previous kubelet left behind but `keep`'s; how many went."""
        ...

    def clean_orphans(self, ipam_dir: str, keep: dict[str, checkpoint.PodCheckpoint] | None = None) -> int:
        """Stop the sandboxes a previous kubelet left behind but `keep`'s; how many processes went."""
        ...

    async def release_sandbox(self, cp: checkpoint.PodCheckpoint) -> None:
        """An adoptable pod this node no longer runs: its containers, sandbox and address go."""
        ...

    def network_ready(self) -> bool: ...

    def set_pod_cidr(self, cidr: str) -> None:
        """The node's Node got (another) spec.podCIDR."""
        ...

    async def create_sandbox(self, pod: Obj, hostname: str, mounts: list[tuple[str, str, bool]],
                             node_ip: str) -> Sandbox: ...

    async def remove_sandbox(self, sandbox: Sandbox, pod: Obj) -> None: ...

    # True: start_container starts the processes in the given cgroup; False: the caller moves
    # the started process there.
    starts_in_cgroup: bool

    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, argv: list[str],
                              env: dict[str, str], log_path: Path, hostname: str, container_id: str,
                              bundle_dir: Path, cgroup: str | None = None, *,
                              mounts: list[tuple[str, str, bool]] | None = None,
                              pid_target: str | None = None
                              ) -> asyncio.subprocess.Process | ContainerProcess:
        """mounts: the binds instead of the sandbox's (an ephemeral container's own volume mounts
        added); pid_target: the ID of a running container of the pod whose PID namespace this one
        joins (an ephemeral container's targetContainerName)."""
        ...

    def exec_prefix(self, sandbox: Sandbox, container_id: str, env: dict[str, str] | None = None,
                    tty: bool = False, size: tuple[int, int] | None = None) -> list[str]: ...


# runc's own cgroup under a container's: runc makes it, puts the processes there and removes it
# when the container exits; the limits and the OOM count are the container's cgroup's.
RUNC_CGROUP = "runc"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def host_layout() -> oci.HostLayout:
    """What of this host a container sees: the system directories that exist, the interpreter's
    prefix (and any site-packages outside it) and the directory holding the kubelet's knet
    package, so that knet's workloads run the kubelet's own code (as PYTHONPATH did)."""
    import site

    import knet

    system = tuple(d for d in SYSTEM_DIRS if os.path.isdir(d))
    source = str(Path(knet.__file__).resolve().parent.parent)
    wanted = [sys.base_prefix, sys.prefix, *site.getsitepackages(), source]
    runtime: list[str] = []
    for path in (str(Path(p).resolve()) for p in wanted if os.path.isdir(p)):
        covered = [*system, *runtime]
        if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in covered):
            runtime.append(path)
    bin_dir = str(Path(sys.executable).parent)
    all_caps = oci.ALL_CAPABILITIES
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        all_caps = oci.capability_names(int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16))
    return oci.HostLayout(system_dirs=system, runtime_dirs=tuple(runtime), python_path=source,
                          extra_path=(bin_dir,) if bin_dir not in oci.DEFAULT_PATH.split(":") else (),
                          all_capabilities=all_caps)


def _mount_points(mounts: list[tuple[str, str, bool]], layout: oci.HostLayout,
                  bundle_dir: Path) -> tuple[list[tuple[str, str, bool]], dict[str, str]]:
    """The pod's binds made mountable in a container: a source missing on the host (a hostPath
    such as /lib/modules on a machine without modules) shows an empty directory, as the one
    containerd would create, without writing to the host; a destination inside a read-only
    system dir that the host lacks (/etc/coredns) gets a placeholder in a layer of that dir."""
    out = []
    for src, dst, ro in mounts:
        if not os.path.exists(src):
            src = str(bundle_dir / "empty")
            os.makedirs(src, exist_ok=True)
        out.append((src, dst, ro))
    overlays: dict[str, str] = {}
    for system_dir, targets in oci.missing_mount_points(out, layout.system_dirs, os.path.exists).items():
        layer = bundle_dir / "layers" / system_dir.strip("/").replace("/", "_")
        for target in targets:
            placeholder = layer / os.path.relpath(target, system_dir)
            source = next(s for s, d, _ in out if d == target)
            if os.path.isdir(source):
                placeholder.mkdir(parents=True, exist_ok=True)
            else:
                placeholder.parent.mkdir(parents=True, exist_ok=True)
                placeholder.touch()
        overlays[system_dir] = str(layer)
    return out, overlays


class RealRuntime:
    """Pods as namespaces on this node (the kubelet runs inside the node's namespaces), their
    containers under runc."""

    name = "real"
    starts_in_cgroup = True  # runc's linux.cgroupsPath
    checkpoints = True
    private_root_filesystem = True
    needs_service_env = True
    refreshes_volumes = True
    network_from_plugin = True

    def __init__(self, cni_bin_dir: str, cni_conf_dir: str, root_dir: str, runc: RuncCli | None = None,
                 layout: oci.HostLayout | None = None) -> None:
        self.cni_bin_dir = cni_bin_dir
        self.cni_conf_dir = cni_conf_dir
        self.root_dir = root_dir
        # Per node: another node's (or cluster's) kubelet never lists or deletes these.
        self.runc = runc if runc is not None else RealRunc(Path(root_dir) / "runc",
                                                           log_build_dir=pause_build_dir(root_dir))
        self.layout = layout if layout is not None else host_layout()
        pause_argv(pause_build_dir(root_dir))  # build the C pause now rather than on the first pod

    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, argv: list[str],
                              env: dict[str, str], log_path: Path, hostname: str, container_id: str,
                              bundle_dir: Path, cgroup: str | None = None, *,
                              mounts: list[tuple[str, str, bool]] | None = None,
                              pid_target: str | None = None) -> ContainerProcess:
        """Write the container's bundle (config.json and an empty rootfs directory) in
        bundle_dir and start it, its processes in a child cgroup of `cgroup` (the container's, with
        its limits: runc removes its own cgroup when the container exits, the container's OOM
        count stays). oci.ContainerConfigError: refused (runAsNonRoot...)."""
        import json
        import shutil

        target_pid = None
        if pid_target is not None:
            target_pid = self.container_init_pid(pid_target)
            if target_pid is None:
                from knet.node.runc import StartError

                raise StartError(f"failed to join the PID namespace of container {pid_target}: it is not running")
        shutil.rmtree(bundle_dir, ignore_errors=True)  # a previous instance's writable layer goes
        mounts, overlays = _mount_points(sandbox.mounts if mounts is None else mounts, self.layout, bundle_dir)
        spec = oci.container_spec(
            pod, container, argv=argv, env={"HOSTNAME": hostname, **env}, mounts=mounts, layout=self.layout,
            namespaces=oci.SandboxNamespaces(pause_pid=sandbox.pid, network=sandbox.new_net, pid=sandbox.new_pid,
                                             pid_target=target_pid),
            overlays=overlays, cgroups_path=f"{cgroup}/{RUNC_CGROUP}" if cgroup else None,
            dev_shm=podshm.source(pod, self._pod_dir(pod)))
        (bundle_dir / "rootfs").mkdir(parents=True, exist_ok=True)
        (bundle_dir / "rootfs" / "tmp").mkdir(mode=0o1777)
        os.chmod(bundle_dir / "rootfs" / "tmp", 0o1777)
        (bundle_dir / "config.json").write_text(json.dumps(spec, indent=1))
        return await self.runc.run(container_id, bundle_dir, log_path, stdio=attachio.container_stdio(container))

    def exec_prefix(self, sandbox: Sandbox, container_id: str, env: dict[str, str] | None = None,
                    tty: bool = False, size: tuple[int, int] | None = None) -> list[str]:
        return self.runc.exec_argv(container_id, env, tty, size)

    def container_init_pid(self, container_id: str) -> int | None:
        """The pid (in the node's PID namespace) of a running container's init process, from
        runc's state of it (None: not running)."""
        return running_init_pid(Path(self.runc.state_dir) / container_id if hasattr(self.runc, "state_dir") else None,
                                process_start_time)

    def _pod_dir(self, pod: Obj) -> Path:
        return Path(self.root_dir) / "pods" / pod["metadata"].get("uid", "static")

    def well_known_hosts(self) -> dict[str, str]:
        return _hosts_entries()

    def process_start_time(self, pid: int) -> int | None:
        return process_start_time(pid)

    def adoptable_pods(self) -> dict[str, checkpoint.PodCheckpoint]:
        """The pods a previous kubelet of this node checkpointed whose sandbox still runs: a
        restarted kubelet keeps them (PodWorker.adopt) rather than recreating them."""
        return checkpoint.adoptable(checkpoint.load_all(Path(self.root_dir) / "pods"), process_start_time)

    def adopt_container(self, c: checkpoint.ContainerCheckpoint, exit_file: Path) -> ContainerProcess | None:
        """The container's shim, if it is still the process the checkpoint names: waited for
        by polling (it is not our child), signalled through `runc kill`."""
        if c.shim_pid is None or not checkpoint.shim_alive(c, process_start_time):
            return None
        return AdoptedProcess(self.runc, c.container_id, c.shim_pid, c.shim_start or 0, exit_file)

    async def clean_containers(self, keep: frozenset[str] = frozenset()) -> int:
        """Delete every container of this node's runc state (a previous kubelet's) but `keep`'s."""
        ids = [cid for cid in await self.runc.list() if cid not in keep]
        for cid in ids:
            await self.runc.delete(cid)
        return len(ids)

    async def release_sandbox(self, cp: checkpoint.PodCheckpoint) -> None:
        """An adoptable pod that this node no longer runs (deleted, or bound elsewhere, while
        the kubelet was down): its containers, its pause (and so its network namespace) and
        its address go."""
        for c in cp.containers.values():
            await self.runc.delete(c.container_id)
        if checkpoint.sandbox_alive(cp, process_start_time) and cp.pause_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(cp.pause_pid, signal.SIGKILL)
        if cp.new_net:
            (Path(self.root_dir) / "cni" / "ipam" / cni.NETWORK_NAME / cp.ip).unlink(missing_ok=True)
        pod_dir = Path(self.root_dir) / "pods" / cp.uid
        podshm.unmount(pod_dir)
        checkpoint.remove(pod_dir)
        import shutil

        shutil.rmtree(pod_dir / "containers", ignore_errors=True)

    def runs_processes(self, pod: Obj, static: bool) -> bool:
        return True

    def clean_orphans(self, ipam_dir: str, keep: dict[str, checkpoint.PodCheckpoint] | None = None) -> int:
        """A restarted kubelet starts from nothing: stop the sandboxes (and every process in their
        mount namespaces, i.e. their containers) a previous kubelet of this node left behind, and
        release their addresses. Only inside a node machine, whose PID namespace is the node's."""
        try:
            with open("/proc/1/cmdline", "rb") as f:
                if b"node_init.py" not in f.read():
                    return 0
        except OSError:
            return 0
        keep = keep or {}
        kept_pauses = {cp.pause_pid for cp in keep.values()}
        kept_ips = {cp.ip for cp in keep.values() if cp.new_net}
        namespaces = set()
        for pid in _pids():
            if pid not in kept_pauses and _is_pause(pid):
                with contextlib.suppress(OSError):
                    namespaces.add(os.stat(f"/proc/{pid}/ns/mnt").st_ino)
        victims = []
        for pid in _pids():
            with contextlib.suppress(OSError):
                if pid != os.getpid() and os.stat(f"/proc/{pid}/ns/mnt").st_ino in namespaces:
                    victims.append(pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        network_dir = Path(ipam_dir) / cni.NETWORK_NAME
        if victims and network_dir.is_dir():
            for entry in network_dir.iterdir():
                # one file per reserved IP; keep last_reserved_ip and the adopted pods' addresses
                if entry.name[:1].isdigit() and entry.name not in kept_ips:
                    entry.unlink(missing_ok=True)
        return len(victims)

    def network_ready(self) -> bool:
        return cni.load_conflist(self.cni_conf_dir) is not None

    def set_pod_cidr(self, cidr: str) -> None:
        pass  # the CNI config and routes are the network add-on's (knet.cniagent); IPAM is the plugin's

    async def create_sandbox(self, pod: Obj, hostname: str, mounts: list[tuple[str, str, bool]],
                             node_ip: str) -> Sandbox:
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        share_pid = bool((pod.get("spec") or {}).get("shareProcessNamespace")) and \
            not (pod.get("spec") or {}).get("hostPID")
        scratch = f"{self.root_dir}/pods/{pod['metadata'].get('uid', 'static')}/overlay"
        os.makedirs(scratch, exist_ok=True)
        conflist = None
        if not host_network:
            conflist = cni.load_conflist(self.cni_conf_dir)
            if conflist is None:
                raise SandboxError("network is not ready: cni config uninitialized")
        if not (pod.get("spec") or {}).get("hostIPC"):
            try:
                podshm.mount(self._pod_dir(pod))  # the pod's /dev/shm, before anything can use it
            except OSError as exc:
                raise SandboxError(f"failed to create pod sandbox: /dev/shm: {exc}") from exc
        # The pause only holds namespaces: each runc container mounts the pod's files itself.
        proc = await spawn.spawn(
            [*pause_argv(), hostname, ("0" if host_network else "1") + ("p" if share_pid else ""), scratch],
            stdin=spawn.DEVNULL, stdout=spawn.PIPE, start_new_session=True)
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode().strip()
        if line != "ok":
            await proc.wait()
            podshm.unmount(self._pod_dir(pod))
            raise SandboxError(f"failed to create pod sandbox: {line or 'pause exited'}")
        sandbox = Sandbox(id=new_id(), ip=node_ip, pid=proc.pid, new_net=not host_network, process=proc,
                          mounts=list(mounts), new_pid=share_pid)
        if conflist is not None:
            try:
                result = await cni.add_pod(conflist, self.cni_bin_dir, sandbox.id, f"/proc/{proc.pid}/ns/net", pod)
            except cni.CniError as exc:
                proc.kill()
                await proc.wait()
                podshm.unmount(self._pod_dir(pod))
                raise SandboxError(f"failed to set up sandbox network: {exc}") from exc
            sandbox.ip = result.ip
        return sandbox

    async def remove_sandbox(self, sandbox: Sandbox, pod: Obj) -> None:
        if sandbox.new_net and sandbox.pid is not None:
            conflist = cni.load_conflist(self.cni_conf_dir)
            if conflist is not None:
                try:
                    await cni.del_pod(conflist, self.cni_bin_dir, sandbox.id, f"/proc/{sandbox.pid}/ns/net", pod)
                except cni.CniError:
                    pass  # the address is released by host-local even when the netns is gone
        if sandbox.process is not None and sandbox.process.returncode is None:
            sandbox.process.send_signal(signal.SIGKILL)
            await sandbox.process.wait()
        elif sandbox.process is None and sandbox.pid is not None and sandbox.pid_start is not None:
            # An adopted sandbox (a previous kubelet's pause, not our child): by pid, if still it.
            if process_start_time(sandbox.pid) == sandbox.pid_start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sandbox.pid, signal.SIGKILL)
        import shutil

        podshm.unmount(self._pod_dir(pod))
        # The containers' bundles (their writable layers): gone with the sandbox, as upstream.
        shutil.rmtree(f"{self.root_dir}/pods/{pod['metadata'].get('uid', 'static')}/containers", ignore_errors=True)


def running_init_pid(state: Path | None, start_time_of) -> int | None:
    """The init pid runc's state directory STATE names, if that process still runs (its start
    time is the one runc saved: not a reused pid)."""
    import json

    if state is None:
        return None
    try:
        saved = json.loads((state / "state.json").read_text())
        pid, started = int(saved["init_process_pid"]), int(saved["init_process_start"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if start_time_of(pid) == started else None


def _hosts_entries() -> dict[str, str]:
    """The node's /etc/hosts names (controlplane, node01, ...), written into every pod's hosts."""
    out: dict[str, str] = {}
    try:
        with open("/etc/hosts") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and "." in words[0] and not words[0].startswith("127."):
                    for name in words[1:]:
                        out.setdefault(name, words[0])
    except OSError:
        pass
    return out


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _is_pause(pid: int) -> bool:
    try:
        if os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("knet-pause"):
            return True
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return str(PAUSE).encode() in f.read()
    except OSError:
        return False


class PodCidrAllocator:
    """Pod IPs from a podCIDR for the simulated dataplane; an IP in use is never handed out."""

    def __init__(self) -> None:
        self.cidr: ipaddress.IPv4Network | None = None
        self.used: set[str] = set()
        self._next = 2

    def set_cidr(self, cidr: str) -> None:
        net = ipaddress.IPv4Network(cidr, strict=False)
        if net != self.cidr:
            self.cidr, self._next = net, 2

    def allocate(self) -> str:
        if self.cidr is None:
            raise SandboxError("network is not ready: node has no podCIDR yet")
        size = self.cidr.num_addresses
        for _ in range(size):
            offset = self._next
            self._next = self._next + 1 if self._next + 1 < size - 1 else 2
            ip = str(self.cidr.network_address + offset)
            if ip not in self.used:
                self.used.add(ip)
                return ip
        raise SandboxError(f"no free addresses left in {self.cidr}")

    def release(self, ip: str) -> None:
        self.used.discard(ip)


class SimRuntime:
    """No namespaces: addresses in Python, built-in workloads reported Running without a process.
    Static pods (the control plane) still run as host processes."""

    name = "sim"
    starts_in_cgroup = False  # static pods' host processes are moved in once started
    # Nothing outlives the kubelet but static pods' host processes, which it starts afresh.
    checkpoints = False
    private_root_filesystem = False  # a static pod's host process sees the host's files
    needs_service_env = False
    refreshes_volumes = False
    network_from_plugin = False

    def __init__(self, root_dir: str | None = None) -> None:
        self.allocator = PodCidrAllocator()
        self.log_build_dir = pause_build_dir(root_dir) if root_dir else None

    def runs_processes(self, pod: Obj, static: bool) -> bool:
        return static

    def well_known_hosts(self) -> dict[str, str]:
        return {}

    def process_start_time(self, pid: int) -> int | None:
        return process_start_time(pid)

    def adoptable_pods(self) -> dict[str, checkpoint.PodCheckpoint]:
        return {}

    def adopt_container(self, c: checkpoint.ContainerCheckpoint, exit_file: Path) -> ContainerProcess | None:
        return None

    async def clean_containers(self, keep: frozenset[str] = frozenset()) -> int:
        return 0

    def clean_orphans(self, ipam_dir: str, keep: dict[str, checkpoint.PodCheckpoint] | None = None) -> int:
        return 0

    async def release_sandbox(self, cp: checkpoint.PodCheckpoint) -> None:
        pass

    def network_ready(self) -> bool:
        return self.allocator.cidr is not None

    def set_pod_cidr(self, cidr: str) -> None:
        self.allocator.set_cidr(cidr)

    async def create_sandbox(self, pod: Obj, hostname: str, mounts: list[tuple[str, str, bool]],
                             node_ip: str) -> Sandbox:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return Sandbox(id=new_id(), ip=node_ip)
        return Sandbox(id=new_id(), ip=self.allocator.allocate())

    async def remove_sandbox(self, sandbox: Sandbox, pod: Obj) -> None:
        if not (pod.get("spec") or {}).get("hostNetwork"):
            self.allocator.release(sandbox.ip)

    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, argv: list[str],
                              env: dict[str, str], log_path: Path, hostname: str, container_id: str,
                              bundle_dir: Path, cgroup: str | None = None, *,
                              mounts: list[tuple[str, str, bool]] | None = None,
                              pid_target: str | None = None) -> asyncio.subprocess.Process:
        """A static pod's container: a host process (the simulated dataplane has no runc)."""
        return await spawn_container(sandbox, argv, env, log_path, hostname, self.log_build_dir)

    def exec_prefix(self, sandbox: Sandbox, container_id: str, env: dict[str, str] | None = None,
                    tty: bool = False, size: tuple[int, int] | None = None) -> list[str]:
        return sandbox.enter_argv()


def for_dataplane(cfg: Any, root_dir: str) -> PodRuntime:
    """The node's runtime, chosen once from the kubelet's --dataplane: runc containers in pod
    sandboxes (real), or the simulation (sim). Nothing else looks at the dataplane's name."""
    if cfg.dataplane == "sim":
        return SimRuntime(root_dir)
    return RealRuntime(cfg.cni_bin_dir, cfg.cni_conf_dir, root_dir)
