"""A pod's ephemeral containers on its node (`kubectl debug`), as the kubelet runs them: each
one the pod gains (pods/ephemeralcontainers) is started once in the pod's sandbox, even while
init containers run, and never restarted (one whose config cannot be made yet, e.g. a missing
ConfigMap key, is retried until it can: it was never created); it may join its targetContainerName's PID namespace;
its status is in status.ephemeralContainerStatuses (never ready, no restart count)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knet.node.runtime import new_id
from knet.node.status import ContainerRecord, now_rfc3339

if TYPE_CHECKING:
    from knet.node.podworker import ContainerRun, PodWorker

Obj = dict[str, Any]
CONFIG_RETRY_SECONDS = 2.0  # as a pod's own containers (PodWorker._container_loop)


def field_path(name: str) -> str:
    return f"spec.ephemeralContainers{{{name}}}"


def new_specs(pod: Obj, known: set[str]) -> list[Obj]:
    """The pod's ephemeral containers this node has not started yet."""
    return [c for c in (pod.get("spec") or {}).get("ephemeralContainers") or []
            if isinstance(c, dict) and c.get("name") and c["name"] not in known]


def status_dict(rec: ContainerRecord) -> Obj:
    """An ephemeralContainerStatuses entry: never ready, never restarted; `started` is left out
    (the kubelet's prober, which sets it, does not look at ephemeral containers)."""
    status = rec.status_dict()
    status.pop("started", None)
    status["ready"] = False
    return status


def restore_terminated(rec: ContainerRecord, terminated: Obj) -> None:
    """A record's terminated state from its checkpoint (ContainerRecord.state_dict's fields)."""
    rec.state, rec.ran, rec.ready, rec.started = "terminated", True, False, False
    rec.exit_code = int(terminated.get("exitCode") or 0)
    rec.reason = str(terminated.get("reason") or "")
    rec.message = str(terminated.get("message") or "")
    rec.signal = terminated.get("signal")
    rec.started_at, rec.finished_at = terminated.get("startedAt"), terminated.get("finishedAt")


def volume_source(pod: Obj, pod_dir: Path, volume_name: str) -> str | None:
    """Where a pod volume's files are on the node (volumes.materialise's layout): a hostPath's
    own path, else the pod's volume directory."""
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if vol.get("name") == volume_name:
            if "hostPath" in vol:
                return str(vol["hostPath"].get("path") or "")
            return str(pod_dir / "volumes" / volume_name)
    return None


def container_mounts(pod: Obj, pod_dir: Path, sandbox_mounts: list[tuple[str, str, bool]],
                     container: Obj) -> list[tuple[str, str, bool]]:
    """The sandbox's binds (every container's) plus the ephemeral container's own volume mounts
    (validation refused subPath), parents first."""
    mounts = {dst: (src, dst, ro) for src, dst, ro in sandbox_mounts}
    for vm in container.get("volumeMounts") or []:
        src = volume_source(pod, pod_dir, vm.get("name", ""))
        if src and vm.get("mountPath"):
            mounts[vm["mountPath"]] = (src, vm["mountPath"], bool(vm.get("readOnly")))
    return sorted(mounts.values(), key=lambda m: m[1].count("/"))


async def run(worker: PodWorker, run: ContainerRun) -> None:
    """Start one ephemeral container and follow it to its end (or take over the one a previous
    kubelet started: run.adopted)."""
    rec = run.record
    path = field_path(rec.name)
    if not run.adopted:
        if not await _start(worker, run, path):
            return
    run.adopted = False
    if run.process is None:  # simulated: runs until the pod goes away
        await worker.stopping.wait()
        return
    exit_code = await run.process.wait()
    sig = -exit_code if exit_code < 0 else None
    rec.exit_code = 128 + sig if sig else exit_code
    rec.finished_at = now_rfc3339()
    rec.state, rec.ready, rec.started, rec.ran = "terminated", False, False, True
    rec.reason = "Completed" if rec.exit_code == 0 else "Error"
    rec.message = ""
    cgroups = worker.host.cgroups
    if worker.runs_processes and cgroups.enabled:
        if rec.exit_code != 0 and cgroups.oom_killed(worker.pod, rec.container_id):
            rec.reason = "OOMKilled"
        cgroups.remove_container(worker.pod, rec.container_id)
    run.process = None
    worker.changed()


async def _start(worker: PodWorker, run: ContainerRun, path: str) -> bool:
    rec = run.record
    while True:
        try:
            env, command, args = await worker.container_config(run)
            break
        except (LookupError, ValueError) as exc:
            # As upstream's kubelet: a container that could not be configured (a missing
            # ConfigMap, key or Secret) was never created, so the next pod sync tries again; it
            # waits in CreateContainerConfigError meanwhile. Only a created one never restarts.
            await worker.config_error(run, exc, path)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(worker.stopping.wait(), CONFIG_RETRY_SECONDS)
            if worker.stopping.is_set():
                return False
    await worker.event("Normal", "Pulled", f'Container image "{run.spec.get("image", "")}" already present on machine',
                       path)
    rec.container_id = new_id()
    run.created_at = time.time()
    await worker.event("Normal", "Created", f"Created container {rec.name}", path)
    if worker.runs_processes:
        try:
            await worker.start_process(
                run, command, args, env, pid_target=_target_id(worker, run.spec),
                mounts=container_mounts(worker.pod, worker.dir, worker.sandbox.mounts, run.spec))
        except (OSError, ValueError) as exc:
            worker.start_error(run, exc)
            worker.changed()
            await worker.event("Warning", "Failed", f"Error: {exc}", path)
            return False
    rec.state, rec.reason, rec.message = "running", "", ""
    rec.started_at = now_rfc3339()
    rec.started = True
    await worker.event("Normal", "Started", f"Started container {rec.name}", path)
    worker.changed()
    return True


def _target_id(worker: PodWorker, spec: Obj) -> str | None:
    """The container ID of targetContainerName's running instance (None: no target)."""
    target = spec.get("targetContainerName")
    if not target:
        return None
    run = {**{r.record.name: r for r in worker.init_runs}, **worker.runs}.get(target)
    if run is None or run.process is None or run.process.returncode is not None:
        raise OSError(f"target container {target} is not running")
    return run.record.container_id


async def stop_all(tasks: set[asyncio.Task]) -> None:
    for task in list(tasks):
        task.cancel()
    for task in list(tasks):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
