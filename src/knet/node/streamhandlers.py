"""The kubelet's port-forward and attach endpoints (the apiserver's pods/portforward and
pods/attach reach them; exec is in knet.node.server).

/portForward/NS/POD?port=N speaks upstream's WebSocket port-forward framing for one port
(subprotocol portforward.k8s.io): channel 0 carries data, channel 1 error text, and the first
message the kubelet sends on each channel is the port (2 bytes, little endian). knet adds the
v5 close message (255, 0) by which the apiserver says the client's side of the connection ended.
The connection is made as containerd's port-forward makes it: to localhost:N inside the pod's
network namespace (a hostNetwork pod's is the node's own), so a server that listens on
127.0.0.1 in the pod is reachable and NetworkPolicy does not apply.

/attach/NS/POD/CONTAINER: a container with `stdin: true` or `tty: true` has a stdio holder
(knet.node.attachio): the session is relayed to it (stdin, output as written, resize). Any other
container's stdin is closed: the session streams what it writes from now on (its log file,
followed) on the stdout channel until it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import WSMsgType, web

from knet.node import attachio, crilog

if TYPE_CHECKING:
    from knet.node.agent import Kubelet
    from knet.node.podworker import PodWorker

CLONE_NEWNET = 0x40000000
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
DATA, ERROR, CLOSE = 0, 1, 255
T = TypeVar("T")


def pod_netns(worker: PodWorker) -> str | None:
    """The network namespace a port-forward connects in: the pod's own (/proc/PAUSE/ns/net),
    None for the node's (a hostNetwork pod that runs processes); OSError when the pod has none
    (a simulated pod: nothing of it listens anywhere)."""
    sandbox = worker.sandbox
    if sandbox is None:
        raise OSError("pod sandbox is not running")
    if sandbox.pid is not None and sandbox.new_net:
        return f"/proc/{sandbox.pid}/ns/net"
    if (worker.pod.get("spec") or {}).get("hostNetwork") and worker.runs_processes:
        return None
    raise OSError("the pod is simulated: it has no network namespace to forward into")


def _connect(netns: str | None, port: int, timeout: float) -> socket.socket:
    """A TCP connection to 127.0.0.1:port made inside `netns` (this thread enters it; the
    socket stays in the namespace it was created in)."""
    if netns is None:
        return socket.create_connection(("127.0.0.1", port), timeout)
    libc = ctypes.CDLL(None, use_errno=True)
    target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"entering {netns}: {os.strerror(err)}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout)
        finally:
            libc.setns(own, CLONE_NEWNET)  # this thread ends right after either way
    finally:
        os.close(target)
        os.close(own)


async def _in_own_thread(fn: Callable[[], T]) -> T:
    """fn() in a thread of its own that ends after it: a thread that changed namespace is
    never reused for anything else."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting coroutine
            error = exc
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_exception(error))
            return
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(result))

    threading.Thread(target=run, name="portforward-connect", daemon=True).start()
    return await fut


async def open_pod_port(worker: PodWorker, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sandbox_id = worker.sandbox.id if worker.sandbox else ""
    netns = pod_netns(worker)
    try:
        sock = await _in_own_thread(lambda: _connect(netns, port, 5.0))
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        where = f' inside namespace "{sandbox_id}"' if netns else ""
        raise OSError(f"failed to connect to localhost:{port}{where}, IPv4: dial tcp4 127.0.0.1:{port}: "
                      f"connect: {reason}") from None
    sock.setblocking(False)
    return await asyncio.open_connection(sock=sock)


def _worker(kubelet: Kubelet, request: web.Request) -> PodWorker:
    ns, pod = request.match_info["namespace"], request.match_info["pod"]
    worker = kubelet.find_worker(ns, pod)
    if worker is None:
        raise web.HTTPNotFound(text=f'pod "{pod}" not found in namespace "{ns}"')
    return worker


async def portforward_handler(request: web.Request) -> web.StreamResponse:
    worker = _worker(request.app["kubelet"], request)
    text = request.query.get("port", "")
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise web.HTTPBadRequest(text=f'invalid port "{text}"')
    port = int(text)
    ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    prefix = port.to_bytes(2, "little")
    await ws.send_bytes(bytes([DATA]) + prefix)
    await ws.send_bytes(bytes([ERROR]) + prefix)
    try:
        reader, writer = await open_pod_port(worker, port)
    except OSError as exc:
        sandbox_id = worker.sandbox.id if worker.sandbox else ""
        await ws.send_bytes(bytes([ERROR]) + f"error forwarding port {port} to pod {sandbox_id}, uid : {exc}".encode())
        await ws.close()
        return ws

    async def client_to_pod() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            if msg.data[0] == DATA and len(msg.data) > 1:
                writer.write(msg.data[1:])
                await writer.drain()
            elif msg.data[:2] == bytes([CLOSE, DATA]) and writer.can_write_eof():
                writer.write_eof()

    sender = asyncio.ensure_future(client_to_pod())
    try:
        while data := await reader.read(65536):
            await ws.send_bytes(bytes([DATA]) + data)
    except (ConnectionError, OSError):
        pass
    finally:
        sender.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
        await ws.close()
    return ws


async def attach_handler(request: web.Request) -> web.StreamResponse:
    from knet.node.server import ERROR as ERROR_CHANNEL
    from knet.node.server import PROTOCOLS, STDERR, STDOUT, _find, exec_status

    worker, container = _find(request.app["kubelet"], request)
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    run = worker.all_runs()[container]
    if run.process is None or run.process.returncode is not None:
        reason = "is simulated (no process)" if not worker.runs_processes else "is not running"
        status = exec_status(None, f"error attaching to container: container {container} {reason}")
        await ws.send_bytes(bytes([ERROR_CHANNEL]) + json.dumps(status).encode())
        await ws.close()
        return ws
    stdio = attachio.container_stdio(run.spec)
    bundle = worker.dir / "containers" / container
    if stdio is not None and attachio.socket_path(bundle).exists():
        try:
            reader, writer = await attachio.connect(bundle)
        except OSError as exc:
            status = exec_status(None, f"error attaching to container: {exc}")
            await ws.send_bytes(bytes([ERROR_CHANNEL]) + json.dumps(status).encode())
            await ws.close()
            return ws
        await attachio.relay(ws, reader, writer, attachio.Streams.of(request.query, stdio),
                             v5=ws.ws_protocol == "v5.channel.k8s.io")
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR_CHANNEL]) + json.dumps({"metadata": {}, "status": "Success"}).encode())
            await ws.close()
        return ws
    index = run.log_index
    path = worker.log_path(container, index)
    closed = asyncio.ensure_future(_until_closed(ws))
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)  # from now on, as a terminal attached now would see
            while not closed.done():
                line = f.readline()
                if line.endswith(b"\n"):  # a whole CRI record: its text to its stream's channel
                    with contextlib.suppress(ValueError):
                        msg = crilog.parse_cri(line)
                        await ws.send_bytes(bytes([STDOUT if msg.stream == crilog.STDOUT else STDERR]) + msg.log)
                    continue
                f.seek(-len(line), os.SEEK_CUR)  # a record still being written: read it again whole
                if run.process is None or run.process.returncode is not None or run.log_index != index:
                    break
                await asyncio.sleep(0.1)
    except FileNotFoundError:
        pass
    finally:
        closed.cancel()
    if not ws.closed:
        await ws.send_bytes(bytes([ERROR_CHANNEL]) + json.dumps({"metadata": {}, "status": "Success"}).encode())
        await ws.close()
    return ws


async def _until_closed(ws: web.WebSocketResponse) -> None:
    async for _msg in ws:  # stdin and resize have nowhere to go
        pass


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/portForward/{namespace}/{pod}", portforward_handler)
    app.router.add_route("*", "/attach/{namespace}/{pod}/{container}", attach_handler)


__all__ = ["add_routes", "open_pod_port", "pod_netns"]
