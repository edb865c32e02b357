"""One pod's life on a node: sandbox, containers, restarts with back-off, probes, termination."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knet.node import checkpoint, dnsconfig, ephemeral, lifecycle, netready, oci, podenv, probes, volumes
from knet.node.runtime import Sandbox, new_id, signal_process
from knet.node.status import ContainerRecord, compute_pod_status, now_rfc3339
from knet.node.workloads import container_argv

if TYPE_CHECKING:
    from knet.node.podhost import PodHost

log = logging.getLogger(__name__)
Obj = dict[str, Any]

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0
NEVER_STARTED = "1970-01-01T00:00:00Z"  # containerd's startedAt of a container that failed to start


def backoff_delay(crashes: int) -> float:
    """kubelet's CrashLoopBackOff: the first restart is immediate, then 10s, 20s, ... 5m."""
    if crashes <= 1:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (crashes - 2))


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


@dataclass(frozen=True)
class ExitedInstance:
    """A container's previous instance, which the runtime keeps until the next restart (as the
    kubelet's container GC keeps one dead container per container: `crictl ps -a` lists it)."""
    container_id: str
    attempt: int
    created_at: float
    log_index: int
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    reason: str


@dataclass
class ContainerRun:
    spec: Obj
    record: ContainerRecord
    process: asyncio.subprocess.Process | None = None
    crashes: int = 0
    log_index: int = 0
    probe_tasks: list[asyncio.Task] = field(default_factory=list)
    killing_reason: str = ""
    created_at: float = 0.0         # wall time the current instance was started (crictl CREATED)
    env: dict[str, str] = field(default_factory=dict)  # the current instance's env (exec and hooks run with it)
    adopted: bool = False           # process: a running container a previous kubelet started
    shim_start: int | None = None   # the start time of process's pid (the checkpoint's guard)
    previous: ExitedInstance | None = None  # the instance before the current one (crictl ps -a)


class PodWorker:
    def __init__(self, host: PodHost, pod: Obj, *, static: bool = False) -> None:
        self.host = host
        self.pod = pod
        self.static = static
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.key = f"{meta.get('namespace', 'default')}/{meta['name']}"
        self.dir = host.pods_dir / self.uid
        self.sandbox: Sandbox | None = None
        self.start_time = now_rfc3339()
        self.created_at = time.time()
        self.runs: dict[str, ContainerRun] = {
            c["name"]: ContainerRun(c, ContainerRecord(c["name"], c.get("image", "")))
            for c in pod["spec"].get("containers") or []
        }
        self.init_runs: list[ContainerRun] = [
            ContainerRun(c, ContainerRecord(c["name"], c.get("image", ""), reason="PodInitializing"))
            for c in pod["spec"].get("initContainers") or []
        ]
        if self.init_runs:
            for run in self.runs.values():
                run.record.reason = "PodInitializing"
        # kubectl debug's containers, by name, as the pod gains them (knet.node.ephemeral).
        self.ephemeral_runs: dict[str, ContainerRun] = {}
        self._ephemeral_tasks: set[asyncio.Task] = set()
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self.delete_requested = False
        self.deleted = False
        self.reported_ready: str | None = None  # the Ready condition status of our last status write
        self.message = ""
        self.reason = ""
        self.task: asyncio.Task | None = None
        self.runs_processes = host.runtime.runs_processes(pod, static)
        self._pause_start: int | None = None

    # -- identity -------------------------------------------------------------------------
    @property
    def namespace(self) -> str:
        return self.pod["metadata"].get("namespace", "default")

    @property
    def name(self) -> str:
        return self.pod["metadata"]["name"]

    @property
    def node_name(self) -> str:
        return self.host.node_name

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.key}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.delete_requested:
            self.delete_requested = True
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            asyncio.create_task(self.terminate(int(grace) if grace is not None else None, delete_object=True))
        self.start_ephemeral_containers()

    def start_ephemeral_containers(self, adopted: list[ContainerRun] | None = None) -> None:
        """Start the ephemeral containers the pod gained since the last look (and follow those
        `adopted` from a previous kubelet), each once: once its sandbox exists, even while init
        containers run, as upstream's kubelet."""
        if self.sandbox is None or self.stopping.is_set() or self.delete_requested:
            return
        runs = list(adopted or [])
        for spec in ephemeral.new_specs(self.pod, set(self.ephemeral_runs)):
            run = ContainerRun(spec, ContainerRecord(spec["name"], spec.get("image", "")))
            self.ephemeral_runs[spec["name"]] = run
            runs.append(run)
        for run in runs:
            task = asyncio.create_task(ephemeral.run(self, run), name=f"pod {self.key} ephemeral {run.record.name}")
            self._ephemeral_tasks.add(task)
            task.add_done_callback(self._ephemeral_tasks.discard)

    # -- status ----------------------------------------------------------------------------
    def all_runs(self) -> dict[str, ContainerRun]:
        return {**{r.record.name: r for r in self.init_runs}, **self.runs, **self.ephemeral_runs}

    def records(self) -> list[ContainerRecord]:
        return [run.record for run in self.runs.values()]

    def status(self) -> Obj:
        status = compute_pod_status(
            self.pod, self.records(), host_ip=self.host.node_ip,
            pod_ip=self.sandbox.ip if self.sandbox else None, start_time=self.start_time,
            sandbox_ready=self.sandbox is not None and not self.stopping.is_set(),
            message=self.message, reason=self.reason, init_records=[r.record for r in self.init_runs])
        if self.ephemeral_runs:
            status["ephemeralContainerStatuses"] = [ephemeral.status_dict(r.record)
                                                    for r in self.ephemeral_runs.values()]
        return status

    def changed(self) -> None:
        self.save_checkpoint()
        self.host.status_changed(self)

    # -- checkpoint and re-adoption (a restarted kubelet keeps the pod running) -----------------
    def _checkpointed(self) -> bool:
        return self.runs_processes and self.host.runtime.checkpoints

    def save_checkpoint(self) -> None:
        sandbox = self.sandbox
        if not self._checkpointed() or sandbox is None or sandbox.pid is None or self.stopping.is_set():
            return
        if self._pause_start is None:
            self._pause_start = self.host.runtime.process_start_time(sandbox.pid)
        containers = {}
        for name, run in {**self.runs, **self.ephemeral_runs}.items():
            rec = run.record
            if not rec.container_id:
                continue
            proc = run.process
            containers[name] = checkpoint.ContainerCheckpoint(
                container_id=rec.container_id, restart_count=rec.restart_count, log_index=run.log_index,
                started_at=rec.started_at, created_at=run.created_at, crashes=run.crashes, ready=rec.ready,
                started=rec.started,
                shim_pid=proc.pid if proc is not None and rec.state == "running" else None,
                shim_start=run.shim_start if proc is not None and rec.state == "running" else None,
                exit_file=str(getattr(proc, "exit_file", "") or ""), last_state=rec.last_state or None,
                terminated=rec.state_dict()["terminated"] if name in self.ephemeral_runs and rec.state == "terminated"
                else None)
        cp = checkpoint.PodCheckpoint(
            uid=self.uid, sandbox_id=sandbox.id, ip=sandbox.ip, pause_pid=sandbox.pid, pause_start=self._pause_start,
            new_net=sandbox.new_net, new_pid=sandbox.new_pid, start_time=self.start_time, mounts=list(sandbox.mounts),
            containers=containers,
            init_done=all(r.record.ran and r.record.exit_code == 0 for r in self.init_runs))
        try:
            checkpoint.save(self.dir, cp)
        except OSError as exc:
            log.warning("pod %s: checkpoint: %s", self.key, exc)

    def adopt(self, cp: checkpoint.PodCheckpoint) -> None:
        """Take over the sandbox and containers a previous kubelet of this node left running
        (their IPs, container IDs, restart counts, start times and logs stay as they were). A
        container that ended meanwhile is taken as exited with the code its shim wrote; the
        container loop then goes on per restartPolicy."""
        self.sandbox = Sandbox(id=cp.sandbox_id, ip=cp.ip, pid=cp.pause_pid, new_net=cp.new_net,
                               new_pid=cp.new_pid, mounts=list(cp.mounts), pid_start=cp.pause_start)
        self._pause_start = cp.pause_start
        self.start_time = cp.start_time
        for run in self.init_runs:
            rec = run.record
            rec.state, rec.reason, rec.exit_code, rec.ran, rec.ready = "terminated", "Completed", 0, True, True
        for spec in ephemeral.new_specs(self.pod, set()):
            if spec["name"] in cp.containers:  # started by the previous kubelet: never again
                self.ephemeral_runs[spec["name"]] = ContainerRun(spec, ContainerRecord(spec["name"],
                                                                                       spec.get("image", "")))
        for name, run in {**self.runs, **self.ephemeral_runs}.items():
            c = cp.containers.get(name)
            if c is None:
                continue
            rec = run.record
            rec.container_id, rec.restart_count, rec.started_at = c.container_id, c.restart_count, c.started_at
            rec.last_state = c.last_state or {}
            run.log_index, run.created_at, run.crashes = c.log_index, c.created_at, c.crashes
            exit_file = Path(c.exit_file) if c.exit_file else self.dir / "containers" / name / "exit"
            adopted = self.host.runtime.adopt_container(c, exit_file)
            if adopted is not None:
                run.process = adopted
                run.shim_start, run.adopted = c.shim_start, True
                rec.state, rec.reason, rec.message = "running", "", ""
                rec.started = c.started
                rec.ready = c.ready
                if self.host.cgroups is not None:
                    self.host.cgroups.watch_oom(self.pod, c.container_id)  # the old kubelet's watch went with it
            elif c.terminated is not None:  # an ephemeral container that had ended: as it was
                ephemeral.restore_terminated(rec, c.terminated)
            else:
                code = checkpoint.read_exit_code(str(exit_file))
                rec.exit_code = 137 if code is None else code
                rec.state, rec.ran, rec.ready, rec.started = "terminated", True, False, False
                rec.reason = "Completed" if rec.exit_code == 0 else "Error"
                rec.finished_at = now_rfc3339()
                policy = self.pod["spec"].get("restartPolicy") or "Always"
                if should_restart(policy, rec.exit_code) and name in self.runs:
                    rec.last_state = rec.state_dict()
        if self.host.cgroups is not None:
            with contextlib.suppress(OSError):
                self.host.cgroups.create_pod(self.pod)  # the node's bookkeeping (burstable shares)

    async def event(self, event_type: str, reason: str, message: str, field_path: str | None = None) -> None:
        await self.host.event(self.pod, event_type, reason, message, field_path)

    # -- lifecycle ---------------------------------------------------------------------------
    async def _run(self) -> None:
        adoption = self.host.take_adoption(self.uid) if self._checkpointed() else None
        if adoption is not None:
            self.adopt(adoption)
            self.changed()
            self.start_ephemeral_containers([r for r in self.ephemeral_runs.values() if r.adopted])
            await asyncio.gather(*(self._container_loop(run) for run in self.runs.values()))
            return
        if not await self._wait_for_network():
            return
        try:
            await self._create_sandbox()
        except volumes.VolumeError as exc:  # e.g. kube-root-ca.crt not published yet: wait and retry
            log.info("pod %s: %s", self.key, exc)
            await self.event("Warning", "FailedMount", str(exc))
            self.changed()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            if not self.stopping.is_set():
                self.host.retry_pod(self)
            return
        except Exception as exc:  # noqa: BLE001 -- reported on the pod, retried
            log.warning("pod %s: sandbox: %s", self.key, exc)
            self.message = str(exc)
            await self.event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            self.changed()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 2.0)
            if not self.stopping.is_set():
                self.host.retry_pod(self)
            return
        self.message = ""
        self.start_ephemeral_containers()
        if self.init_runs:
            # Otherwise the containers' first start follows at once and reports (Running, and
            # Ready without a readiness probe): one status write per pod instead of a
            # ContainerCreating write just before it, as the kubelet's status manager batches.
            self.changed()
        for run in self.init_runs:  # one after the other, each to a successful exit
            await self._container_loop(run, init=True)
            if run.record.exit_code != 0 or self.stopping.is_set():
                return
            run.record.ready = True
            self.changed()
        await asyncio.gather(*(self._container_loop(run) for run in self.runs.values()))

    async def _wait_for_network(self) -> bool:
        """Until the node's pod network is ready (the add-on wrote its CNI config), a pod that is
        not hostNetwork waits with the kubelet's NetworkNotReady event; False if it was stopped."""
        first = True
        while (error := netready.pod_network_error(self.pod, self.host.network_ready())) is not None:
            await self.event("Warning", netready.REASON, error)
            if first:  # the pod shows Pending/ContainerCreating on its node meanwhile
                self.changed()
                first = False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), netready.RETRY_SECONDS)
            if self.stopping.is_set():
                return False
        return True

    async def _create_sandbox(self) -> None:
        hostname = dnsconfig.pod_hostname(self.pod)
        mounts: list[tuple[str, str, bool]] = []
        if self.runs_processes:  # a simulated pod has no files: no directory (30,000 of them at scale)
            self.dir.mkdir(parents=True, exist_ok=True)
            pod, paths = await self.host.materialise_volumes(self.pod, self.dir, static=self.static)
            # runc: a container's root filesystem holds only its binds, so nothing of the
            # cluster's directory needs hiding and a hostPath at its own path is bound too.
            private_root = self.host.runtime.private_root_filesystem
            mounts = volumes.bind_mounts(pod, paths, bind_all=private_root)
            resolv = self.dir / "resolv.conf"
            resolv.write_text(dnsconfig.resolv_conf(
                self.pod, cluster_dns=self.host.cluster_dns, cluster_domain=self.host.cluster_domain,
                host_resolv=_read("/etc/resolv.conf")))
            mounts.insert(0, (str(resolv), "/etc/resolv.conf", False))
            if not self.pod["spec"].get("hostNetwork"):
                hosts = self.dir / "etc-hosts"
                hosts.touch()
                mounts.insert(1, (str(hosts), "/etc/hosts", False))
                if private_root:
                    etc_hostname = self.dir / "etc-hostname"
                    etc_hostname.write_text(hostname + "\n")
                    mounts.insert(2, (str(etc_hostname), "/etc/hostname", False))
        cgroups = self.host.cgroups if self.runs_processes else None
        if cgroups is not None:
            cgroups.create_pod(self.pod)
        self.sandbox = await self.host.runtime.create_sandbox(self.pod, hostname, mounts, self.host.node_ip)
        if cgroups is not None and self.sandbox.pid is not None:
            try:
                # In a thread: moving a process into a v1 cgroup waits for an RCU grace period
                # (10-20 ms), which would hold up every other pod of the node on the loop.
                await asyncio.to_thread(cgroups.place_sandbox, self.pod, self.sandbox.id, self.sandbox.pid)
            except OSError:
                await self._remove_sandbox()
                self.sandbox = None
                raise
        if self.runs_processes and not self.pod["spec"].get("hostNetwork"):
            # Written in place: the sandbox has bind-mounted this very inode.
            with open(self.dir / "etc-hosts", "w") as f:
                f.write(dnsconfig.hosts_file(self.pod, self.sandbox.ip, cluster_domain=self.host.cluster_domain,
                                             extra=self.host.well_known_hosts))
        # The pod's IP is reported as soon as its sandbox has one (upstream's status shows podIP
        # while init containers run): the network policy controller learns it before any
        # container listens or dials (knet.netpol's guard of pending isolated pods lifts on it).
        self.host.status_changed(self)

    async def container_config(self, run: ContainerRun) -> tuple[dict[str, str], list[str], list[str]]:
        """What a container starts with: its environment (env sources fetched), command and args,
        and the runAsNonRoot check; LookupError/ValueError is a CreateContainerConfigError."""
        await self.host.fetch_env_sources(self.namespace, run.spec)
        env = run.env = self._env(run.spec)
        command, args = podenv.command_and_args(run.spec, env)
        oci.verify_run_as_non_root(self.pod, run.spec)
        return env, command, args

    async def config_error(self, run: ContainerRun, exc: Exception, field_path: str) -> None:
        rec = run.record
        rec.state, rec.reason, rec.message = "waiting", "CreateContainerConfigError", str(exc)
        self.changed()
        await self.event("Warning", "Failed", f"Error: {exc}", field_path)

    def _env(self, container: Obj) -> dict[str, str]:
        pod = dict(self.pod)
        pod["status"] = dict(pod.get("status") or {}, podIP=self.sandbox.ip if self.sandbox else "",
                             podIPs=[{"ip": self.sandbox.ip}] if self.sandbox else [])
        return podenv.container_env(
            pod, container, node_name=self.host.node_name, host_ip=self.host.node_ip,
            services=self.host.services(), config_map_data=self.host.config_map_data,
            secret_data=self.host.secret_data)

    def log_path(self, container: str, index: int) -> Path:
        return self.dir / "logs" / container / f"{index}.log"

    async def _container_loop(self, run: ContainerRun, init: bool = False) -> None:
        rec = run.record
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        if init:  # init containers are retried until they succeed, unless the pod never restarts
            policy = "Never" if policy == "Never" else "OnFailure"
        field_path = f"spec.{'initContainers' if init else 'containers'}{{{rec.name}}}"
        while not self.stopping.is_set():
            adopted = run.process if run.adopted else None
            run.adopted = False
            if adopted is not None:
                # Started by a previous kubelet and still running: wait for it again, as it was.
                started_mono = time.monotonic()
                self.changed()
                run.probe_tasks = probes.start_probes(self, run, adopted=True)
            else:
                if rec.ran:
                    if not should_restart(policy, rec.exit_code or 0):
                        return
                    delay = backoff_delay(run.crashes)
                    if delay:
                        rec.state, rec.reason = "waiting", "CrashLoopBackOff"
                        rec.message = (f"back-off {int(delay)}s restarting failed container={rec.name} "
                                       f"pod={self.name}_{self.namespace}({self.uid})")
                        self.changed()
                        await self.event("Warning", "BackOff", f"Back-off restarting failed container {rec.name} in pod "
                                         f"{self.name}_{self.namespace}({self.uid})", field_path)
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self.stopping.wait(), delay)
                        if self.stopping.is_set():
                            return
                    rec.restart_count += 1
                try:
                    env, command, args = await self.container_config(run)
                except (LookupError, ValueError) as exc:
                    await self.config_error(run, exc, field_path)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), 2.0)
                    continue
                image = run.spec.get("image", "")
                await self.event("Normal", "Pulled", f'Container image "{image}" already present on machine', field_path)
                if rec.container_id and rec.ran:
                    ended = rec.last_state.get("terminated") or {}
                    run.previous = ExitedInstance(
                        rec.container_id, max(rec.restart_count - 1, 0), run.created_at, run.log_index,
                        rec.started_at, rec.finished_at, rec.exit_code, ended.get("reason") or rec.reason)
                rec.container_id = new_id()
                run.created_at = time.time()
                rec.ready = False
                await self.event("Normal", "Created", f"Created container {rec.name}", field_path)
                if self.runs_processes:
                    run.log_index = rec.restart_count
                    try:
                        await self.start_process(run, command, args, env)
                    except (OSError, ValueError) as exc:
                        # a container that will be restarted waits in RunContainerError with
                        # its StartError as its last state
                        self.start_error(run, exc)
                        if should_restart(policy, rec.exit_code) and not self.stopping.is_set():
                            rec.last_state = rec.state_dict()
                            rec.state, rec.reason = "waiting", "RunContainerError"
                        run.crashes += 1
                        self.changed()
                        await self.event("Warning", "Failed", f"Error: {exc}", field_path)
                        continue
                rec.state, rec.reason, rec.message = "running", "", ""
                rec.started_at = now_rfc3339()
                rec.started = "startupProbe" not in run.spec
                rec.ready = "readinessProbe" not in run.spec and rec.started
                started_mono = time.monotonic()
                await self.event("Normal", "Started", f"Started container {rec.name}", field_path)
                await lifecycle.run_post_start(self, run, field_path)  # Running once it completed; a failed one kills
                self.changed()
                run.probe_tasks = probes.start_probes(self, run)
                if run.process is None:
                    if init:  # simulated: an init container completes at once
                        rec.state, rec.exit_code, rec.reason, rec.ran = "terminated", 0, "Completed", True
                        rec.finished_at = now_rfc3339()
                        return
                    await self.stopping.wait()  # simulated: runs until the pod goes away
                    return
            assert run.process is not None
            exit_code = await run.process.wait()
            for task in run.probe_tasks:
                task.cancel()
            run.probe_tasks = []
            sig = -exit_code if exit_code < 0 else None
            rec.exit_code = 128 + sig if sig else exit_code
            rec.signal = None
            rec.finished_at = now_rfc3339()
            rec.state, rec.ready, rec.started, rec.ran = "terminated", False, False, True
            rec.reason = "Completed" if rec.exit_code == 0 else "Error"
            rec.message = ""
            if self.runs_processes and self.host.cgroups.enabled:
                # As containerd: an OOM kill in the container's cgroup makes its exit OOMKilled
                # (the kernel's SIGKILL: exit code 137).
                if rec.exit_code != 0 and self.host.cgroups.oom_killed(self.pod, rec.container_id):
                    rec.reason = "OOMKilled"
                self.host.cgroups.remove_container(self.pod, rec.container_id)
            if time.monotonic() - started_mono > BACKOFF_RESET_AFTER:
                run.crashes = 0
            run.crashes += 1
            if not self.stopping.is_set() and should_restart(policy, rec.exit_code):
                rec.last_state = rec.state_dict()
            run.process = None
            self.changed()

    async def start_process(self, run: ContainerRun, command: list[str], args: list[str], env: dict[str, str],
                            **runtime_options: Any) -> None:
        """Start the container's process in its cgroup (the runtime's start_container); raises
        OSError/ValueError when the runtime cannot (see start_error)."""
        rec = run.record
        cgroup = self._container_cgroup(run)
        run.process = await self.host.runtime.start_container(
            self.sandbox, self.pod, run.spec, container_argv(run.spec, command, args), env,
            self.log_path(rec.name, run.log_index), dnsconfig.pod_hostname(self.pod), rec.container_id,
            self.dir / "containers" / rec.name, cgroup, **runtime_options)
        self._join_cgroup(run, cgroup)
        run.shim_start = self.host.runtime.process_start_time(run.process.pid) if run.process is not None else None

    @staticmethod
    def start_error(run: ContainerRun, exc: Exception) -> None:
        """As the kubelet over containerd: an attempt the runtime could not start ends StartError
        (exit code 128, never started, the runtime's message)."""
        rec = run.record
        rec.ran, rec.exit_code, rec.started, rec.ready = True, 128, False, False
        rec.started_at, rec.finished_at = NEVER_STARTED, now_rfc3339()
        rec.state, rec.reason, rec.message = "terminated", "StartError", str(exc)

    def _container_cgroup(self, run: ContainerRun) -> str | None:
        """The container's cgroup, made with its limits before it starts (None: no cgroups).
        It outlives the container's processes, so its OOM count is still there to read when the
        container has exited (runc removes the cgroup it put the processes in)."""
        if not self.runs_processes or not self.host.cgroups.enabled:
            return None
        return self.host.cgroups.create_container(self.pod, run.spec, run.record.container_id)

    def _join_cgroup(self, run: ContainerRun, cgroup: str | None) -> None:
        """A runtime that cannot start a process in a cgroup (a static pod's host process on the
        simulated dataplane) gets its process moved there right after it started (its children
        follow). A process that cannot be placed is killed: it would run without its limits."""
        if cgroup is None or run.process is None or self.host.runtime.starts_in_cgroup:
            return
        try:
            self.host.cgroups.add_process(cgroup, run.process.pid)
        except OSError:
            signal_process(run.process, signal.SIGKILL)
            run.process = None
            raise

    async def _remove_sandbox(self) -> None:
        """The sandbox, then the pod's cgroup (any process left in it is killed)."""
        if self._checkpointed():
            checkpoint.remove(self.dir)
        if self.sandbox is not None:
            await self.host.runtime.remove_sandbox(self.sandbox, self.pod)
        if self.runs_processes:
            await self.host.cgroups.remove_pod(self.pod)

    def field_path(self, run: ContainerRun) -> str:
        """The container's fieldPath in its events, by the list it is in (as the kubelet's
        ref.GetPartialReference: spec.initContainers/containers/ephemeralContainers{NAME})."""
        name = run.record.name
        if self.ephemeral_runs.get(name) is run:
            return ephemeral.field_path(name)
        if any(r is run for r in self.init_runs):
            return f"spec.initContainers{{{name}}}"
        return f"spec.containers{{{name}}}"

    async def kill_container(self, run: ContainerRun, grace: float, reason_message: str) -> None:
        proc = run.process
        field_path = self.field_path(run)
        if proc is None or proc.returncode is not None:
            if not self.runs_processes and run.record.state == "running":  # simulated container
                await self.event("Normal", "Killing", reason_message, field_path)
            return
        await self.event("Normal", "Killing", reason_message, field_path)
        grace = await lifecycle.run_pre_stop(self, run, grace)  # before SIGTERM, within the grace period
        signal_process(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
        except TimeoutError:
            signal_process(proc, signal.SIGKILL)
            await proc.wait()

    async def terminate(self, grace: int | None, *, delete_object: bool) -> None:
        """Graceful stop: SIGTERM, grace period, SIGKILL; sandbox down; then the pod object goes."""
        if self.stopping.is_set():  # already stopping or stopped (e.g. a completed pod)
            await self.stopped.wait()
            if delete_object and not self.deleted:
                self.deleted = True
                await self.host.pod_terminated(self)
            return
        self.stopping.set()
        if grace is None:
            grace = int(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        await asyncio.gather(*(self.kill_container(run, max(grace, 0), f"Stopping container {run.record.name}")
                               for run in self.all_runs().values()))
        for run in self.all_runs().values():
            for task in run.probe_tasks:
                task.cancel()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 5)
        await self._remove_sandbox()
        self.stopped.set()
        if delete_object and not self.deleted:
            self.deleted = True
            await self.host.pod_terminated(self)

    async def teardown_if_finished(self) -> None:
        """A pod that has completed (Succeeded/Failed) gives its sandbox back."""
        status = self.status()
        if status["phase"] in ("Succeeded", "Failed") and self.sandbox is not None and not self.stopping.is_set():
            self.stopping.set()
            await self._remove_sandbox()
            self.stopped.set()

    def exec_prefix(self, run: ContainerRun | None = None, env: dict[str, str] | None = None,
                    tty: bool = False, size: tuple[int, int] | None = None) -> list[str]:
        """argv prefix running a command in `run`'s container (default: the first container
        that has a process), with `env` added to the container's environment; tty: on a
        terminal of its own (the caller's stdin must be one)."""
        if self.sandbox is None:
            raise LookupError("pod sandbox is not running")
        if run is None:
            run = next((r for r in self.all_runs().values() if r.process is not None), None)
            if run is None:
                raise LookupError("no container is running")
        return self.host.runtime.exec_prefix(self.sandbox, run.record.container_id, env, tty, size)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
