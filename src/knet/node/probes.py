"""Container probes (startup, readiness, liveness) run for real against the pod.

httpGet and tcpSocket connect to the pod's IP (the kubelet lives in the node's network
namespace, so pod IPs are directly reachable), exec runs the command inside the pod's
namespaces. On a simulated pod (no process) every probe kind succeeds: there is nothing to
probe, and the pod is reported as a healthy workload would be.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from knet.node import dnsconfig, lifecycle

if TYPE_CHECKING:
    from knet.node.podworker import ContainerRun, PodWorker

Obj = dict[str, Any]


STARTUP_REPROBE_SECONDS = 1.0


def resolve_port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in container ports")


async def http_get(host: str, probe: Obj, container: Obj, timeout: float) -> tuple[bool, str]:
    spec = probe["httpGet"]
    port = resolve_port(spec["port"], container)
    host = spec.get("host") or host
    path = spec.get("path") or "/"
    headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in spec.get("httpHeaders") or [])
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        return False, f'Get "http://{host}:{port}{path}": dial tcp {host}:{port}: {_why(exc)}'
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.29\r\n"
                     f"Accept: */*\r\n{headers}Connection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        code = int(parts[1]) if len(parts) > 1 else 0
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"
    except (TimeoutError, OSError, ValueError) as exc:
        return False, f'Get "http://{host}:{port}{path}": {_why(exc)}'
    finally:
        writer.close()


async def tcp_socket(host: str, probe: Obj, container: Obj, timeout: float) -> tuple[bool, str]:
    port = resolve_port(probe["tcpSocket"]["port"], container)
    host = probe["tcpSocket"].get("host") or host
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        return False, f"dial tcp {host}:{port}: {_why(exc)}"
    writer.close()
    return True, ""


async def exec_probe(prefix: list[str], probe: Obj, timeout: float,
                     env: dict[str, str] | None = None) -> tuple[bool, str]:
    command = probe["exec"].get("command") or []
    proc = await asyncio.create_subprocess_exec(*prefix, *command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"command timed out after {timeout:g}s"
    return proc.returncode == 0, out.decode(errors="replace").strip()


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "i/o timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    return str(exc) or type(exc).__name__


async def run_probe(worker: PodWorker, run: ContainerRun, probe: Obj) -> tuple[bool, str]:
    if run.process is None:
        return True, ""  # simulated container
    timeout = float(probe.get("timeoutSeconds") or 1)
    host = worker.sandbox.ip if worker.sandbox else "127.0.0.1"
    if "httpGet" in probe:
        return await http_get(host, probe, run.spec, timeout)
    if "tcpSocket" in probe:
        return await tcp_socket(host, probe, run.spec, timeout)
    if "exec" in probe:
        # with the container's env, as the runtime's ExecSync runs it
        env = lifecycle.exec_env(run.env, dnsconfig.pod_hostname(worker.pod))
        return await exec_probe(worker.exec_prefix(run), probe, timeout, env)
    return True, ""


async def _probe_loop(worker: PodWorker, run: ContainerRun, kind: str, started_gate: asyncio.Event,
                      adopted: bool = False) -> None:
    probe = run.spec[f"{kind}Probe"]
    rec = run.record
    title = kind.capitalize()
    period = float(probe.get("periodSeconds") or 10)
    success_threshold = int(probe.get("successThreshold") or 1)
    failure_threshold = int(probe.get("failureThreshold") or 3)
    if kind != "startup":
        await started_gate.wait()
    if not adopted:  # an adopted container's initial delay passed under the previous kubelet
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
    successes = failures = 0
    # knet's workloads are Python programs that need about a second to listen, where the images
    # they stand for start in milliseconds; a readiness probe that raced that start would leave
    # the pod unready for a whole period (10 s for CoreDNS). Until the container's first success,
    # within its first period, a failed readiness probe is retried after STARTUP_REPROBE_SECONDS.
    reprobe_until = time.monotonic() + period if kind == "readiness" else 0.0
    while True:
        t0 = time.monotonic()
        ok, output = await run_probe(worker, run, probe)
        if ok:
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
            await worker.event("Warning", "Unhealthy", f"{title} probe failed: {output}",
                               f"spec.containers{{{rec.name}}}")
        if kind == "startup":
            if successes >= success_threshold:
                rec.started = True
                if "readinessProbe" not in run.spec:
                    rec.ready = True
                started_gate.set()
                worker.changed()
                return
            if failures >= failure_threshold:
                await worker.kill_container(run, _grace(worker), f"Container {rec.name} failed startup probe, "
                                            "will be restarted")
                return
        elif kind == "readiness":
            ready = successes >= success_threshold or (rec.ready and failures < failure_threshold)
            if ready != rec.ready:
                rec.ready = ready
                worker.changed()
        elif kind == "liveness" and failures >= failure_threshold:
            await worker.kill_container(run, _grace(worker), f"Container {rec.name} failed liveness probe, "
                                        "will be restarted")
            return
        interval = period
        if not ok and successes == 0 and not rec.ready and time.monotonic() < reprobe_until:
            interval = min(period, STARTUP_REPROBE_SECONDS)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))


def _grace(worker: PodWorker) -> float:
    return float(worker.pod["spec"].get("terminationGracePeriodSeconds", 30))


def start_probes(worker: PodWorker, run: ContainerRun, adopted: bool = False) -> list[asyncio.Task]:
    """adopted: a running container a restarted kubelet took over (its probes resume from its
    recorded state: a container that had started is not startup-probed again)."""
    gate = asyncio.Event()
    skip_startup = adopted and run.record.started
    if "startupProbe" not in run.spec or skip_startup:
        gate.set()
    tasks = []
    for kind in ("startup", "readiness", "liveness"):
        if f"{kind}Probe" in run.spec and not (kind == "startup" and skip_startup):
            tasks.append(asyncio.create_task(_probe_loop(worker, run, kind, gate, adopted)))
    return tasks


__all__ = ["run_probe", "start_probes", "resolve_port"]
