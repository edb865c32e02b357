"""Container lifecycle hooks (postStart, preStop) and commands run in a running container, as
the kubelet runs them (pkg/kubelet/lifecycle/handlers.go, kuberuntime_container.go).

- postStart runs right after the container started; the container is reported Running only once
  it completed. A failing postStart is a `FailedPostStartHook` event ("PostStartHook failed"), and
  the container is killed (then restarted by its restartPolicy).
- preStop runs after the `Killing` event and before SIGTERM, within the grace period: the time it
  took is taken off the grace period (at least MINIMUM_GRACE_SECONDS remain for SIGTERM). A
  failing preStop is a `FailedPreStopHook` event ("PreStopHook failed"); SIGTERM follows anyway.
- Actions: `exec` (in the container, as `kubectl exec`, with the container's env), `httpGet`
  (to the pod IP or `host`, a port number or name, HTTP or HTTPS without certificate checks; any
  answer counts as success, only a failed request fails, as upstream), `sleep` (K8s 1.30+).

The pure parts (parsing, URLs, grace accounting, exec env) come first; the runners follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knet.node import workloads
from knet.node.runtime import host_process_env

if TYPE_CHECKING:
    from knet.node.podworker import ContainerRun, PodWorker

log = logging.getLogger(__name__)
Obj = dict[str, Any]

MINIMUM_GRACE_SECONDS = 2   # kuberuntime's minimumGracePeriodInSeconds: SIGTERM always gets this much
USER_AGENT = "kube-lifecycle/1.29"


class HookError(RuntimeError):
    pass


@dataclass(frozen=True)
class ExecAction:
    command: list[str]


@dataclass(frozen=True)
class HttpAction:
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SleepAction:
    seconds: int


Action = ExecAction | HttpAction | SleepAction


def resolve_port(port: int | str, container: Obj) -> int:
    """A number, or the name of one of the container's ports (probe.ResolveContainerPort)."""
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise HookError(f"couldn't find port: {port} in {container.get('name', '')}")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(http_get: Obj, container: Obj, pod_ip: str) -> str:
    """NewRequestForHTTPGetAction's URL: scheme lower-cased (default http), host or the pod IP,
    the port, the path as given (its query kept)."""
    scheme = str(http_get.get("scheme") or "HTTP").lower()
    host = http_get.get("host") or pod_ip
    if not host:
        raise HookError("failed to find networking container: the pod has no IP")
    port = resolve_port(http_get["port"], container)
    path = str(http_get.get("path") or "")
    if path and not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{_host_port(host, port)}{path}"


def parse_action(handler: Obj, container: Obj, pod_ip: str) -> Action:
    if "exec" in handler:
        return ExecAction([str(c) for c in (handler["exec"] or {}).get("command") or []])
    if "httpGet" in handler:
        spec = handler["httpGet"]
        headers = [(str(h["name"]), str(h.get("value", ""))) for h in spec.get("httpHeaders") or []]
        return HttpAction(http_url(spec, container, pod_ip), headers)
    if "sleep" in handler:
        return SleepAction(int((handler["sleep"] or {}).get("seconds") or 0))
    if "tcpSocket" in handler:  # deprecated in hooks and never run by the kubelet
        raise HookError("tcpSocket lifecycle handlers are not supported")
    raise HookError("invalid handler: no action given")


def hook(container: Obj, kind: str) -> Obj | None:
    """The container's postStart or preStop handler, if any."""
    return ((container.get("lifecycle") or {}).get(kind)) or None


def grace_after_pre_stop(grace: float, hook_seconds: float) -> float:
    """killContainer: the preStop hook's whole seconds are taken off the grace period, and the
    container always gets MINIMUM_GRACE_SECONDS for SIGTERM."""
    return max(grace - int(hook_seconds), MINIMUM_GRACE_SECONDS)


def exec_env(container_env: dict[str, str], hostname: str, tty: bool = False) -> dict[str, str]:
    """The env of a process run in a running container (`kubectl exec`, exec hooks and probes):
    the container's own (containerd's exec starts from the container's process spec; the base
    is what spawn_container gives a container), plus TERM=xterm with a terminal."""
    env = {**host_process_env(hostname), **container_env}
    if tty:
        env["TERM"] = "xterm"
    return env


def exec_argv(worker: PodWorker, run: ContainerRun, command: list[str], *, tty: bool = False,
              size: tuple[int, int] | None = None) -> list[str]:
    """argv running COMMAND in the container (what `kubectl exec` runs: `runc exec` on the real
    dataplane, with TERM=xterm on a terminal of its own when tty)."""
    prefix = worker.exec_prefix(run, {"TERM": "xterm"} if tty else None, tty=tty, size=size)
    return [*prefix, *workloads.exec_argv(run.spec, command)]


# -- runners ---------------------------------------------------------------------------------
async def run_action(worker: PodWorker, run: ContainerRun, action: Action) -> None:
    """Run one hook action to its end; HookError when it failed."""
    if isinstance(action, SleepAction):
        await asyncio.sleep(action.seconds)
    elif isinstance(action, ExecAction):
        await _run_exec(worker, run, action)
    else:
        await _run_http(action)


async def _run_exec(worker: PodWorker, run: ContainerRun, action: ExecAction) -> None:
    from knet.node.dnsconfig import pod_hostname

    try:
        proc = await asyncio.create_subprocess_exec(
            *exec_argv(worker, run, action.command), env=exec_env(run.env, pod_hostname(worker.pod)),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    except (OSError, LookupError) as exc:
        raise HookError(f"Exec lifecycle hook ({action.command}) for Container {run.record.name!r} in Pod "
                        f"{worker.name}_{worker.namespace}({worker.uid}) failed - error: {exc}") from exc
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:  # a preStop past the grace period: stop what it started
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode != 0:
        raise HookError(f"Exec lifecycle hook ({action.command}) for Container {run.record.name!r} in Pod "
                        f"{worker.name}_{worker.namespace}({worker.uid}) failed - error: command "
                        f"'{' '.join(action.command)}' exited with {proc.returncode}: , "
                        f"message: {out.decode(errors='replace')!r}")


async def _run_http(action: HttpAction) -> None:
    import aiohttp

    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for name, value in action.headers:
        headers[name] = value
    try:
        async with aiohttp.ClientSession() as session, session.get(action.url, headers=headers, ssl=False) as resp:
            await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise HookError(f'Get "{action.url}": {exc}') from exc


async def run_post_start(worker: PodWorker, run: ContainerRun, field_path: str) -> bool:
    """postStart of a just started container: True when there was none or it succeeded. While it
    runs the container is reported waiting (ContainerCreating); a failed one is reported and the
    container killed."""
    handler = hook(run.spec, "postStart")
    if handler is None or run.process is None:
        return True
    rec = run.record
    saved = (rec.state, rec.reason, rec.started, rec.ready)
    rec.state, rec.reason, rec.started, rec.ready = "waiting", "ContainerCreating", False, False
    worker.changed()  # shown while the hook runs (the kubelet's sync wrote it before starting the container)
    try:
        action = parse_action(handler, run.spec, worker.sandbox.ip if worker.sandbox else "")
        hook_task = asyncio.ensure_future(run_action(worker, run, action))
        exited = asyncio.ensure_future(run.process.wait())
        done, _ = await asyncio.wait({hook_task, exited}, return_when=asyncio.FIRST_COMPLETED)
        if hook_task not in done:  # the container exited under its hook: the hook is moot
            hook_task.cancel()
            rec.state, rec.reason, rec.started, rec.ready = saved
            return True
        exited.cancel()
        hook_task.result()
    except HookError as exc:
        log.info("pod %s: %s", worker.key, exc)
        await worker.event("Warning", "FailedPostStartHook", "PostStartHook failed", field_path)
        await worker.kill_container(run, float(_grace(worker)), "FailedPostStartHook")
        return False
    rec.state, rec.reason, rec.started, rec.ready = saved
    return True


async def run_pre_stop(worker: PodWorker, run: ContainerRun, grace: float) -> float:
    """preStop before SIGTERM, for at most the grace period; returns the grace left for SIGTERM."""
    handler = hook(run.spec, "preStop")
    if handler is None or grace <= 0:
        return grace
    started = time.monotonic()
    field_path = f"spec.containers{{{run.record.name}}}"
    try:
        action = parse_action(handler, run.spec, worker.sandbox.ip if worker.sandbox else "")
        await asyncio.wait_for(run_action(worker, run, action), grace)
    except TimeoutError:
        log.info("pod %s: preStop hook of %s not completed in the grace period", worker.key, run.record.name)
    except HookError as exc:
        log.info("pod %s: %s", worker.key, exc)
        await worker.event("Warning", "FailedPreStopHook", "PreStopHook failed", field_path)
    return grace_after_pre_stop(grace, time.monotonic() - started)


def _grace(worker: PodWorker) -> int:
    return int(worker.pod["spec"].get("terminationGracePeriodSeconds", 30))
