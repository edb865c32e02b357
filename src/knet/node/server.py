"""The kubelet's HTTP API (docs/contracts.md section 4): container logs and exec, each request
authenticated by client certificate and authorized by the apiserver (node/apiauth.py).

Exec speaks Kubernetes' WebSocket channel protocol (v5.channel.k8s.io / v4.channel.k8s.io):
every binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize,
255 close in v5); the final Status goes on channel 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pty
import ssl
import struct
import subprocess
import termios
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from knet.api import podlogoptions
from knet.api.auth import user_from_peercert
from knet.node import apiauth, crilog, diagnostics, dnsconfig, lifecycle, streamhandlers
from knet.node.attachio import frame_bytes

if TYPE_CHECKING:
    from knet.node.agent import Kubelet
    from knet.node.podworker import PodWorker

log = logging.getLogger(__name__)
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def exec_status(exit_code: int | None, error: str | None = None) -> dict[str, Any]:
    """The metav1.Status kubelet sends on the error channel when a command ends. Pure."""
    if error is not None:
        return {"metadata": {}, "status": "Failure", "message": error, "reason": "InternalError"}
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def _find(kubelet: Kubelet, request: web.Request) -> tuple[PodWorker, str]:
    ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
    worker = kubelet.find_worker(ns, pod)
    if worker is None:
        raise web.HTTPNotFound(text=f'pod "{pod}" not found in namespace "{ns}"')
    if container not in worker.all_runs():
        raise web.HTTPBadRequest(text=f"container {container} is not valid for pod {pod}")
    return worker, container


async def container_logs(request: web.Request) -> web.StreamResponse:
    """containerLogs: the container's CRI log file read as the kubelet's ReadLogs does (crilog),
    stdout and stderr both to the response."""
    kubelet: Kubelet = request.app["kubelet"]
    query = dict(request.query)
    if query.get("tail"):  # the kubelet's backwards compatibility: tail=N (or "all")
        query["tailLines"] = query["tail"]
        if query["tail"] == "all":
            del query["tailLines"]
    try:
        options = podlogoptions.from_query(query)
    except ValueError:
        raise web.HTTPBadRequest(text='{"message": "Unable to decode query."}') from None
    if podlogoptions.validate(options):
        raise web.HTTPUnprocessableEntity(text='{"message": "Invalid request."}')
    worker, container = _find(kubelet, request)
    run = worker.all_runs()[container]
    previous, follow = options.previous, options.follow and not options.previous
    index = run.log_index - 1 if previous else run.log_index
    if previous and (run.record.restart_count == 0 or index < 0):
        raise web.HTTPBadRequest(text=f'previous terminated container "{container}" in pod "{worker.name}" not found')
    path = worker.log_path(container, index)
    opts = options.log_options()
    opts.follow = follow
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)

    pending: list[bytes] = []
    size = 0

    async def flush() -> None:
        nonlocal size
        if pending:
            data = b"".join(pending)
            pending.clear()
            size = 0
            await resp.write(data)

    async def write(_stream: str, data: bytes) -> None:  # in chunks of up to 64 KiB, not a chunk a line
        nonlocal size
        pending.append(data)
        size += len(data)
        if size >= 65536:
            await flush()

    def running() -> bool:
        return run.process is not None and run.process.returncode is None and run.log_index == index

    try:
        with open(path, "rb") as f:
            await crilog.read_logs(f, opts, write, running, flush=flush)
    except FileNotFoundError:
        pass
    except ConnectionError:
        return resp
    await resp.write_eof()
    return resp


async def exec_handler(request: web.Request) -> web.StreamResponse:
    kubelet: Kubelet = request.app["kubelet"]
    worker, container = _find(kubelet, request)
    command = request.query.getall("command", [])
    if not command:
        raise web.HTTPBadRequest(text="you must specify at least 1 command")
    want_stdin = request.query.get("stdin") in ("true", "1")
    tty = request.query.get("tty") in ("true", "1")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    run = worker.all_runs()[container]
    if run.process is None or run.process.returncode is not None:
        # Includes simulated containers: there is no process whose namespaces a command could join.
        reason = "is simulated (no process)" if not worker.runs_processes else "is not running"
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exec_status(None, f"container {container} {reason}"))
                            .encode())
        await ws.close()
        return ws
    # `/agnhost connect ...` in an agnhost container is knet's agnhost (upstream's NetworkPolicy
    # tests probe so); any other command runs as given.
    size, early = await _initial_size(ws) if tty else (None, None)
    argv = lifecycle.exec_argv(worker, run, command, tty=tty, size=size)
    env = lifecycle.exec_env(run.env, dnsconfig.pod_hostname(worker.pod), tty)  # the container's own env
    try:
        if tty:
            code = await _exec_tty(ws, argv, env, want_stdin, v5, size, early)
        else:
            code = await _exec_pipes(ws, argv, env, want_stdin, v5)
        status = exec_status(code)
    except (OSError, subprocess.SubprocessError) as exc:
        status = exec_status(None, f"failed to exec in container: {exc}")
    if not ws.closed:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        await ws.close()
    return ws


async def _exec_pipes(ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], want_stdin: bool,
                      v5: bool) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)

    async def pump(stream: asyncio.StreamReader, channel: int) -> None:
        while chunk := await stream.read(65536):
            await ws.send_bytes(bytes([channel]) + chunk)

    async def feed() -> None:
        async for msg in ws:
            if not (data := frame_bytes(msg)):
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and proc.stdin is not None:
                if payload:
                    proc.stdin.write(payload)
                    with contextlib.suppress(ConnectionError):
                        await proc.stdin.drain()
            elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]) and proc.stdin is not None:
                proc.stdin.close()
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()

    feeder = asyncio.create_task(feed()) if want_stdin else None
    await asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
    code = await proc.wait()
    if feeder is not None:
        feeder.cancel()
    return code


async def _initial_size(ws: web.WebSocketResponse, wait: float = 0.25) -> tuple[tuple[int, int] | None, Any]:
    """kubectl sends the terminal's size (channel 4) first: ((rows, cols), None) so that the
    command starts at that size; else (None, the message that came instead, to be handled)."""
    try:
        msg = await asyncio.wait_for(ws.receive(), wait)
    except TimeoutError:
        return None, None
    if msg.type == WSMsgType.BINARY and msg.data[:1] == bytes([RESIZE]):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            size = json.loads(msg.data[1:])
            return (int(size["Height"]), int(size["Width"])), None
        return None, None
    return None, msg


async def _exec_tty(ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], want_stdin: bool,
                    v5: bool, size: tuple[int, int] | None = None, early: Any = None) -> int:
    master, slave = pty.openpty()
    if size:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    # `setsid --ctty` makes the pty (its stdin) the controlling terminal of a new session, as a
    # container runtime does for `kubectl exec -t`; `--wait` hands back the command's exit code.
    proc = await asyncio.create_subprocess_exec("setsid", "--wait", "--ctty", *argv, env=env, stdin=slave,
                                                stdout=slave, stderr=slave)
    os.close(slave)
    loop = asyncio.get_running_loop()
    out_queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        out_queue.put_nowait(data)
        if not data:
            loop.remove_reader(master)

    loop.add_reader(master, readable)

    async def pump() -> None:
        while data := await out_queue.get():
            await ws.send_bytes(bytes([STDOUT]) + data)

    async def messages():
        if early is not None:
            yield early
        async for msg in ws:
            yield msg

    async def feed() -> None:
        async for msg in messages():
            if not (data := frame_bytes(msg)):
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and payload:
                os.write(master, payload)
            elif channel == RESIZE:
                with contextlib.suppress(ValueError, KeyError, OSError):
                    size = json.loads(payload)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size["Height"], size["Width"], 0, 0))

    feeder = asyncio.create_task(feed())
    pumper = asyncio.create_task(pump())
    code = await proc.wait()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(pumper, 1.0)
    loop.remove_reader(master)
    os.close(master)
    feeder.cancel()
    return code


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def list_pods(request: web.Request) -> web.Response:
    kubelet: Kubelet = request.app["kubelet"]
    items = [w.pod for n in kubelet.nodes.values() for w in n.workers.values()]
    return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": items})


async def containers(request: web.Request) -> web.Response:
    """What `knet crictl` lists: every container of this process's node(s)."""
    kubelet: Kubelet = request.app["kubelet"]
    rows = []
    for node in kubelet.nodes.values():
        for w in node.workers.values():
            for run in w.runs.values():
                rec = run.record
                rows.append({"id": rec.container_id, "image": rec.image, "created": run.created_at or w.created_at,
                             "state": rec.state, "name": rec.name, "attempt": rec.restart_count,
                             "podId": w.sandbox.id if w.sandbox else "", "pod": w.name, "namespace": w.namespace,
                             "node": node.name, "podCreated": w.created_at,
                             "podState": "Ready" if w.sandbox and not w.stopped.is_set() else "NotReady"})
    return web.json_response({"containers": rows})


async def stats_summary(request: web.Request) -> web.Response:
    """GET /stats/summary (nodes/stats): the Summary API from the node's cgroups."""
    from knet.node import summary

    kubelet: Kubelet = request.app["kubelet"]
    node = kubelet.nodes.get(_node_of(kubelet, request))
    if node is None:
        raise web.HTTPNotFound(text="no node")
    return web.json_response(summary.summary(node, request.app["started"]))


def _self_signed(kubelet: Kubelet) -> tuple[str, str]:
    """Like kubelet without --tls-cert-file: a self-signed serving certificate in the root dir."""
    from knet.cluster.pki import create_ca, issue_cert

    directory = os.path.join(kubelet.cfg.root_dir, "pki")
    crt, key = os.path.join(directory, "kubelet-self.crt"), os.path.join(directory, "kubelet-self.key")
    if not (os.path.exists(crt) and os.path.exists(key)):
        os.makedirs(directory, exist_ok=True)
        name = kubelet.cfg.hostname_override or "knet-kubelet"
        leaf = issue_cert(create_ca(f"{name}-ca"), name, dns_names=[name, "localhost"],
                          ip_addresses=sorted({"127.0.0.1", kubelet.cfg.node_ip or "127.0.0.1"}), server=True)
        with open(key, "wb") as f:
            os.chmod(key, 0o600)
            f.write(leaf.key_pem)
        with open(crt, "wb") as f:
            f.write(leaf.cert_pem)
    return crt, key


def _ssl_context(kubelet: Kubelet) -> ssl.SSLContext:
    cfg = kubelet.cfg
    if cfg.tls_cert_file and cfg.tls_private_key_file and os.path.exists(cfg.tls_cert_file):
        crt, key = cfg.tls_cert_file, cfg.tls_private_key_file
    else:
        crt, key = _self_signed(kubelet)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    if cfg.client_ca_file and os.path.exists(cfg.client_ca_file):
        ctx.load_verify_locations(cfg.client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _node_of(kubelet: Kubelet, request: web.Request) -> str:
    """The node a request is about: the pod's node for pod paths (a process hosting many
    simulated nodes serves them all), else the node this kubelet was started for."""
    parts = request.path.split("/")
    if len(parts) >= 4 and parts[1] in ("exec", "containerLogs", "attach", "portForward", "run"):
        worker = kubelet.find_worker(parts[2], parts[3])
        if worker is not None:
            return worker.node_name
    return kubelet.cfg.hostname_override or next(iter(kubelet.nodes), "")


def _review(kubelet: Kubelet):
    async def review(body: dict) -> dict:
        api = kubelet.api
        if api is None:
            raise RuntimeError("no connection to the API server yet")
        return await api.create("authorization.k8s.io/v1", "subjectaccessreviews", body)
    return review


@web.middleware
async def authenticate_and_authorize(request: web.Request, handler: Any) -> web.StreamResponse:
    """With a client CA (--client-ca-file), as the kubelet with anonymous auth off and webhook
    authorization: a request without a client certificate gets 401; one with a certificate
    (signed by the CA, else the TLS handshake fails) is allowed only if the apiserver's
    SubjectAccessReview says so, else 403 `Forbidden (user=..., verb=..., resource=nodes,
    subresource=...)`; 500 when the apiserver cannot be asked."""
    authorizer: apiauth.KubeletAuthorizer | None = request.app.get("authorizer")
    if authorizer is None:
        return await handler(request)
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    user = user_from_peercert(sslobj.getpeercert() if sslobj is not None else None)
    if user is None:
        return web.Response(status=401, text="Unauthorized")
    attrs = apiauth.request_attributes(user, request.method, request.path, _node_of(request.app["kubelet"], request))
    try:
        allowed = await authorizer.allowed(attrs)
    except Exception as exc:  # noqa: BLE001 -- the apiserver is down or refused the review
        log.warning("kubelet API: authorizing %s %s for %s: %s", request.method, request.path, user.name, exc)
        return web.Response(status=500, text=apiauth.error_message(attrs))
    if not allowed:
        return web.Response(status=403, text=apiauth.forbidden_message(attrs))
    return await handler(request)


async def start_server(kubelet: Kubelet) -> web.AppRunner:
    app = web.Application(middlewares=[authenticate_and_authorize])
    app["kubelet"] = kubelet
    ctx = _ssl_context(kubelet)
    app["ssl"] = ctx
    if ctx.verify_mode != ssl.CERT_NONE:
        app["authorizer"] = apiauth.KubeletAuthorizer(_review(kubelet))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", list_pods)
    app.router.add_get("/containers", containers)
    app.router.add_get("/stats/summary", stats_summary)
    app["started"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", exec_handler)
    streamhandlers.add_routes(app)  # /portForward and /attach
    diagnostics.add_routes(app, _node_of)  # /metrics, /configz, /logs/
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, kubelet.cfg.address, kubelet.cfg.port, ssl_context=ctx, reuse_address=True)
    await site.start()
    if kubelet.cfg.port == 0:
        kubelet.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("kubelet API on %s:%s", kubelet.cfg.address, kubelet.port)
    return runner


__all__ = ["exec_status", "start_server"]
