"""pods/exec, pods/attach and pods/portforward over SPDY/3.1, as kubectl <= 1.29 (and newer
ones falling back) speaks them: the HTTP upgrade with X-Stream-Protocol-Version negotiation,
then streams the client opens, told apart by their `streamType` header. The apiserver ends the
SPDY session here and talks to the kubelet over its WebSocket channel protocol (the leg
knet.api.relay already dials): one WebSocket per exec/attach, one per forwarded connection.

Upstream facts followed (k8s.io/apimachinery/pkg/util/httpstream, kubelet's
cri/streaming/remotecommand and portforward, client-go/tools/remotecommand and portforward):
- the handshake answers 101 with `Connection: Upgrade`, `Upgrade: SPDY/3.1` and the chosen
  `X-Stream-Protocol-Version` (the client's first offer the server knows); none in common is 403
  `unable to upgrade: unable to negotiate protocol: client supports [...], server accepts [...]`
  with `X-Accepted-Stream-Protocol-Versions`; none offered is 400;
- exec/attach: the client opens error, then stdin/stdout/stderr as asked (no stderr with a TTY),
  then resize with a TTY; the server waits for all of them, runs the command, and on the error
  stream writes (v4) the metav1.Status JSON whose NonZeroExitCode cause kubectl turns into
  `command terminated with exit code N`, or (v1-v3) only a failure's message;
- port-forward: per connection an error and a data stream with the same `port` and `requestID`
  headers; a stream without a valid port (1-65535) or with another streamType is reset; a
  failure's text goes on the error stream; both streams close when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from knet.api.spdysession import Session, Stream
from knet.api.wsportforward import kubelet_port_frames

log = logging.getLogger(__name__)

# What the kubelet's SPDY server accepts (remotecommandconsts.SupportedStreamingProtocols;
# v5 is WebSocket-only), and the port-forward protocol.
EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("portforward.k8s.io",)
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"  # port-forward's SPDY inside WebSocket (kubectl 1.31+)
STREAM_CREATION_TIMEOUT = 30.0  # kubelet's default streamCreationTimeout
# WebSocket channel bytes on the kubelet leg (knet.node.server).
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def wants_spdy(headers) -> bool:
    connection = [t.strip().lower() for t in headers.get("Connection", "").split(",")]
    return "upgrade" in connection and "spdy/3.1" in headers.get("Upgrade", "").lower()


@dataclass
class HandshakeError(Exception):
    status: int
    text: str
    accepted: tuple[str, ...] = ()

    def response(self) -> web.Response:
        headers = [("X-Content-Type-Options", "nosniff")]
        headers += [("X-Accepted-Stream-Protocol-Versions", p) for p in self.accepted]
        resp = web.Response(status=self.status, text=self.text + "\n", charset="utf-8", content_type="text/plain")
        for k, v in headers:
            resp.headers.add(k, v)
        return resp


def negotiate(offered: list[str], server: tuple[str, ...]) -> str:
    """httpstream.Handshake: the first protocol the client offers (headers may repeat and hold
    comma-separated lists) that the server accepts. Pure."""
    client = [p.strip() for h in offered for p in h.split(",") if p.strip()]
    if not client:
        raise HandshakeError(400, "unable to upgrade: X-Stream-Protocol-Version is required")
    for proto in client:
        if proto in server:
            return proto
    raise HandshakeError(403, f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(client)}], "
                              f"server accepts [{' '.join(server)}]", server)


class _Feed:
    """What aiohttp's connection feeds once the request was upgraded (its set_parser slot)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.session.data_received(data)
        return False, b""

    def feed_eof(self) -> None:
        self.session.eof_received()


class _Upgraded(web.StreamResponse):
    """The 101 answer: once sent, the connection is the SPDY session's, which closes it."""

    async def write_eof(self, data: bytes = b"") -> None:
        return None


async def upgrade(request: web.Request, protocol: str,
                  on_stream: Callable[[Stream], bool]) -> tuple[Session, web.StreamResponse]:
    """Answer 101 and hand the connection's bytes to a new SPDY server session."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    proto = request.protocol

    async def drain() -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await proto._drain_helper()  # aiohttp's flow control for its transport

    session = Session(transport.write, drain, on_stream)
    # The parser is swapped before the 101 leaves: the client sends frames only after it.
    proto.set_parser(_Feed(session))  # type: ignore[arg-type]
    resp = _Upgraded(status=101, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                          "X-Stream-Protocol-Version": protocol})
    await resp.prepare(request)
    return session, resp


def finish(request: web.Request, session: Session, resp: web.StreamResponse) -> web.StreamResponse:
    """GOAWAY, close the connection; the handler's answer (the 101 already sent)."""
    session.close()
    if request.transport is not None:
        request.transport.close()
    return resp


# -- exec and attach ---------------------------------------------------------------------------
def expected_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[str]:
    """The stream types a client opens for these options (remotecommand createStreams). Pure."""
    want = {"error"}
    if stdin:
        want.add("stdin")
    if stdout:
        want.add("stdout")
    if stderr and not tty:
        want.add("stderr")
    if tty:
        want.add("resize")
    return want


def status_for_protocol(status: dict, protocol: str) -> bytes:
    """What goes on the SPDY error stream: v4 the Status JSON; older protocols only a
    failure's message as text. Pure."""
    if protocol == "v4.channel.k8s.io":
        return json.dumps(status).encode()
    if status.get("status") == "Success":
        return b""
    return (status.get("message") or "error executing remote command").encode()


class ResizeDecoder:
    """The resize stream is a run of JSON objects ({"Width":..,"Height":..}) as Go's json
    Encoder writes them; each whole object is returned once it arrived. Pure."""

    def __init__(self) -> None:
        self._buf = ""
        self._json = json.JSONDecoder()

    def feed(self, data: bytes) -> list[dict]:
        self._buf += data.decode("utf-8", "replace")
        out = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return out
            try:
                obj, end = self._json.raw_decode(text)
            except json.JSONDecodeError:
                self._buf = text
                return out
            self._buf = text[end:]
            if isinstance(obj, dict):
                out.append(obj)


async def serve_exec(request: web.Request, protocol: str, upstream: aiohttp.ClientWebSocketResponse,
                     want: set[str]) -> web.StreamResponse:
    """Relay one exec or attach session between the SPDY client and the kubelet's WebSocket."""
    streams: dict[str, Stream] = {}
    ready = asyncio.Event()

    def on_stream(stream: Stream) -> bool:
        kind = stream.header("streamType")
        if kind not in want or kind in streams:
            log.info("exec: unexpected stream type %r", kind)
            return True  # upstream accepts and ignores it
        streams[kind] = stream
        if set(streams) >= want:
            ready.set()
        return True

    session, resp = await upgrade(request, protocol, on_stream)
    try:
        waiter = asyncio.ensure_future(ready.wait())
        ended = asyncio.ensure_future(session.done.wait())
        await asyncio.wait({waiter, ended}, timeout=STREAM_CREATION_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        ended.cancel()
        if not ready.is_set():
            return finish(request, session, resp)
        await _relay_exec(session, streams, upstream, protocol)
    finally:
        await upstream.close()
    return finish(request, session, resp)


async def _relay_exec(session: Session, streams: dict[str, Stream], upstream: aiohttp.ClientWebSocketResponse,
                      protocol: str) -> None:
    async def client_stdin() -> None:
        stream = streams["stdin"]
        while data := await stream.read():
            await upstream.send_bytes(bytes([STDIN]) + data)
        if not stream.was_reset and not session.closed:
            await upstream.send_bytes(bytes([CLOSE, STDIN]))  # v5: stdin ended

    async def client_resize() -> None:
        stream, decoder = streams["resize"], ResizeDecoder()
        while data := await stream.read():
            for size in decoder.feed(data):
                await upstream.send_bytes(bytes([RESIZE]) + json.dumps(size).encode())

    async def kubelet_output() -> None:
        async for msg in upstream:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
                continue
            channel, payload = msg.data[0], msg.data[1:]
            target = {STDOUT: "stdout", STDERR: "stderr"}.get(channel)
            if target is not None and target in streams:
                await streams[target].write(payload)
            elif channel == ERROR and "error" in streams:
                try:
                    status = json.loads(payload)
                except ValueError:
                    status = {"status": "Failure", "message": payload.decode("utf-8", "replace")}
                await streams["error"].write(status_for_protocol(status, protocol))

    helpers = [asyncio.ensure_future(c()) for name, c in (("stdin", client_stdin), ("resize", client_resize))
               if name in streams]
    output = asyncio.ensure_future(kubelet_output())
    ended = asyncio.ensure_future(session.done.wait())
    try:
        # The command's end (the kubelet closes) or the client's (it went away) ends the session.
        await asyncio.wait({output, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*helpers, output, ended):
            t.cancel()
    for kind in ("stdout", "stderr", "error"):
        if kind in streams:
            streams[kind].close()
    await session.drain()


# -- port-forward ------------------------------------------------------------------------------
def stream_port(stream: Stream) -> int | None:
    """The `port` header as a port number, None if absent or not 1-65535. Pure."""
    text = stream.header("port")
    if not text.isdigit():
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


Dial = Callable[[int], Awaitable[aiohttp.ClientWebSocketResponse]]


async def serve_portforward(request: web.Request, dial: Dial, pod_label: str, tunnel: bool = False
                            ) -> web.StreamResponse:
    """Relay a port-forward session: each (error, data) pair of streams with the same requestID
    is one TCP connection to the pod's port, through its own WebSocket to the kubelet. tunnel:
    the session comes inside a WebSocket (TUNNEL_PROTOCOL), not an HTTP upgrade to SPDY."""
    pairs: dict[str, dict[str, Stream]] = {}
    tasks: set[asyncio.Task] = set()

    def on_stream(stream: Stream) -> bool:
        kind = stream.header("streamType")
        if stream_port(stream) is None or kind not in ("error", "data"):
            return False  # reset, as the kubelet's httpStreamReceived refuses it
        # Clients before requestID (kubectl < 1.6) paired streams by id: error n, data n+2.
        rid = stream.header("requestID") or str(stream.id if kind == "error" else stream.id - 2)
        pair = pairs.setdefault(rid, {})
        if kind in pair:
            return False
        pair[kind] = stream
        if len(pair) == 2:
            del pairs[rid]
            task = asyncio.ensure_future(_forward(pair["data"], pair["error"], dial, pod_label))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            task = asyncio.ensure_future(_pair_timeout(pairs, rid, stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return True

    if tunnel:
        return await _tunnel(request, on_stream, tasks)
    session, resp = await upgrade(request, PORTFORWARD_PROTOCOLS[0], on_stream)
    try:
        await session.done.wait()
    finally:
        for t in list(tasks):
            t.cancel()
    return finish(request, session, resp)


async def _tunnel(request: web.Request, on_stream: Callable[[Stream], bool], tasks: set[asyncio.Task]
                  ) -> web.StreamResponse:
    """The same SPDY session carried in WebSocket binary messages (kubectl 1.31+, subprotocol
    SPDY/3.1+portforward.k8s.io; client-go's tunneling dialer): each message is a run of the
    connection's bytes, in order, both ways."""
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=0, autoping=True)
    await ws.prepare(request)
    out: asyncio.Queue[bytes] = asyncio.Queue()

    async def drain() -> None:
        await out.join()

    session = Session(out.put_nowait, drain, on_stream)

    async def send() -> None:
        while True:
            data = await out.get()
            try:
                await ws.send_bytes(data)
            finally:
                out.task_done()

    sender = asyncio.ensure_future(send())
    try:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                session.data_received(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break
        session.eof_received()
    finally:
        for t in (*tasks, sender):
            t.cancel()
        session.close()
        await ws.close()
    return ws


async def _pair_timeout(pairs: dict[str, dict[str, Stream]], rid: str, stream: Stream) -> None:
    await asyncio.sleep(STREAM_CREATION_TIMEOUT)
    pair = pairs.get(rid)
    if pair is not None and len(pair) < 2:
        del pairs[rid]
        if "error" in pair:
            await pair["error"].write(b"timed out waiting for streams")
            pair["error"].close()
        for s in pair.values():
            s.reset()


async def _forward(data: Stream, error: Stream, dial: Dial, pod_label: str) -> None:
    port = stream_port(data) or 0
    upstream: aiohttp.ClientWebSocketResponse | None = None
    try:
        try:
            upstream = await dial(port)
        except Exception as exc:  # noqa: BLE001 -- the kubelet cannot be reached or refused
            await error.write(f"error forwarding port {port} to pod {pod_label}: {exc}".encode())
            return

        async def client_to_pod() -> None:
            while chunk := await data.read():
                await upstream.send_bytes(bytes([0]) + chunk)
            if not data.was_reset:
                await upstream.send_bytes(bytes([CLOSE, 0]))  # the client's side ended

        async def pod_to_client() -> None:
            async for channel, payload in kubelet_port_frames(upstream):
                if channel == 0:
                    await data.write(payload)
                elif channel == 1:
                    await error.write(payload)

        sender = asyncio.ensure_future(client_to_pod())
        try:
            await pod_to_client()
        finally:
            sender.cancel()
    finally:
        if upstream is not None:
            await upstream.close()
        data.close()
        error.close()


__all__ = ["EXEC_PROTOCOLS", "HandshakeError", "PORTFORWARD_PROTOCOLS", "TUNNEL_PROTOCOL", "ResizeDecoder", "expected_streams",
           "negotiate", "serve_exec", "serve_portforward", "status_for_protocol", "wants_spdy"]
