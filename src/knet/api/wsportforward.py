"""pods/portforward over a plain WebSocket with Kubernetes' channel protocol, as the kubelet's
portforward/websocket.go serves it and kr8s, the Python `kubernetes` client and
@kubernetes/client-node speak it (kubectl uses SPDY or SPDY tunnelled in a WebSocket instead,
spdyrelay.py).

`?ports=A,B` (repeatable): port i gets channels 2i (data, both ways) and 2i+1 (errors, to the
client). Each channel's first message is the port (2 bytes, little endian). Binary frames are
channel byte + payload (subprotocols v4.channel.k8s.io, channel.k8s.io or none); text frames of
v4.base64.channel.k8s.io are a channel digit + base64 payload. Every port is one connection to
the pod, through its own WebSocket to the kubelet's /portForward (`dial`); the session ends
when the client closes or every pod connection has ended."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from knet.api.errors import ApiError

BINARY_PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")
BASE64_PROTOCOLS = ("v4.base64.channel.k8s.io", "base64.channel.k8s.io")
Dial = Callable[[int], Awaitable[aiohttp.ClientWebSocketResponse]]


def parse_ports(values: list[str]) -> list[int]:
    """The `ports` query values ("8080", "80,443"), as the kubelet's NewV4Options parses them. Pure."""
    ports = []
    for value in values:
        for text in value.split(","):
            text = text.strip()
            if not text.isdigit() or int(text) > 65535:
                raise ApiError(400, "BadRequest", f'unable to parse "{text}" as a port')
            if int(text) == 0:
                raise ApiError(400, "BadRequest", f'port "{text}" must be > 0')
            ports.append(int(text))
    if not ports:
        raise ApiError(400, "BadRequest", 'query parameter "ports" is required')
    return ports


def choose_protocol(offered: list[str]) -> str:
    """The first offered subprotocol the server speaks ("" when none was offered). Pure."""
    if not offered:
        return ""
    for p in offered:
        if p in BINARY_PROTOCOLS or p in BASE64_PROTOCOLS:
            return p
    raise ApiError(400, "BadRequest", f"unsupported WebSocket subprotocols {offered}")


def encode(channel: int, payload: bytes, base64_frames: bool) -> bytes | str:
    """One message of `channel` as the chosen protocol frames it. Pure."""
    if base64_frames:
        return str(channel) + base64.b64encode(payload).decode()
    return bytes([channel]) + payload


def decode(message: bytes | str) -> tuple[int, bytes] | None:
    """(channel, payload) of a client message; None for an empty one. Pure."""
    if isinstance(message, str):
        if not message or not message[0].isdigit():
            return None
        return int(message[0]), base64.b64decode(message[1:])
    if not message:
        return None
    return message[0], bytes(message[1:])


async def kubelet_port_frames(upstream: aiohttp.ClientWebSocketResponse) -> AsyncIterator[tuple[int, bytes]]:
    """The kubelet leg of a port-forward as (channel, payload): binary messages only, each
    channel's first message without the port it starts with (2 bytes, little-endian), empty
    payloads skipped; ends when the WebSocket closes."""
    seen: set[int] = set()
    async for msg in upstream:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
            continue
        channel, payload = msg.data[0], msg.data[1:]
        if channel not in seen:
            seen.add(channel)
            payload = payload[2:]
        if payload:
            yield channel, payload


async def serve(request: web.Request, ports: list[int], offered: list[str], dial: Dial,
                pod_label: str) -> web.WebSocketResponse:
    protocol = choose_protocol(offered)
    b64 = protocol in BASE64_PROTOCOLS
    ws = web.WebSocketResponse(protocols=[protocol] if protocol else (), max_msg_size=0, autoping=True)
    await ws.prepare(request)

    async def send(channel: int, payload: bytes) -> None:
        frame = encode(channel, payload, b64)
        await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))

    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await send(2 * i, prefix)
        await send(2 * i + 1, prefix)

    upstreams: list[aiohttp.ClientWebSocketResponse | None] = []
    for i, port in enumerate(ports):
        try:
            upstreams.append(await dial(port))
        except Exception as exc:  # noqa: BLE001 -- the kubelet cannot be reached or refused
            upstreams.append(None)
            await send(2 * i + 1, f"error forwarding port {port} to pod {pod_label}: {exc}".encode())

    async def pod_to_client(i: int, upstream: aiohttp.ClientWebSocketResponse) -> None:
        async for channel, payload in kubelet_port_frames(upstream):
            if channel in (0, 1):
                await send(2 * i + channel, payload)

    async def client_to_pods() -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            framed = decode(msg.data)
            if framed is None:
                continue
            channel, payload = framed
            i = channel // 2
            if channel % 2 == 0 and i < len(upstreams) and upstreams[i] is not None and payload:
                await upstreams[i].send_bytes(bytes([0]) + payload)

    readers = [asyncio.ensure_future(pod_to_client(i, u)) for i, u in enumerate(upstreams) if u is not None]
    writer = asyncio.ensure_future(client_to_pods())
    try:
        pods_done = asyncio.gather(*readers) if readers else asyncio.sleep(0)
        await asyncio.wait({writer, asyncio.ensure_future(pods_done)}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        writer.cancel()
        for t in readers:
            t.cancel()
        for u in upstreams:
            if u is not None:
                await u.close()
        await ws.close()
    return ws
