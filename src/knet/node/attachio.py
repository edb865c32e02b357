"""The kubelet's side of a container's stdin and terminal: which containers get a stdio holder
(knet.node.stdioholder, started by the shim in front of `runc run`), how the holder is started,
and an attach session relayed between the kubelet's /attach WebSocket and the holder's socket.

As containerd's CRI attach (internal/cri/io/container_io.go Attach), with the terminal setting
the container's own (the kubelet takes `tty` from the container spec, not the request):
- the attacher's stdin reaches the container only if the container has `stdin: true` (else it is
  dropped, and the session lasts until the container ends or the client leaves);
- the end of the attacher's stdin (v5's close of channel 0) closes the container's stdin when
  `stdinOnce` and no terminal (output then flows until the container ends); otherwise it ends
  the session and the container runs on;
- the container's stdout (the terminal) goes to channel 1, stderr to 2 (none with a terminal);
  resize messages (channel 4) size the terminal;
- the container ending ends the session (Success on the error channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from knet.node import stdioholder
from knet.node.stdioholder import FrameReader, frame

HOLDER = Path(stdioholder.__file__)
SOCKET_NAME = stdioholder.SOCKET_NAME
# The kubelet's WebSocket channels (knet.node.server).
WS_STDIN, WS_STDOUT, WS_STDERR, WS_RESIZE, WS_CLOSE = 0, 1, 2, 4, 255


def frame_bytes(msg: Any) -> bytes:
    """A WebSocket message's bytes: text frames carry data too (upstream's wsstream reads
    either; the Python client writes str stdin as text). Empty for anything else."""
    if msg.type == WSMsgType.TEXT:
        return msg.data.encode()
    return msg.data if msg.type == WSMsgType.BINARY else b""


@dataclass(frozen=True)
class Stdio:
    stdin: bool
    tty: bool
    stdin_once: bool


def container_stdio(container: dict[str, Any]) -> Stdio | None:
    """What a container asks of its stdio (None: closed stdin, no terminal: no holder). Pure."""
    stdin, tty = bool(container.get("stdin")), bool(container.get("tty"))
    if not (stdin or tty):
        return None
    return Stdio(stdin, tty, stdin and bool(container.get("stdinOnce")))


def holder_argv(stdio: Stdio, python: str | None = None) -> list[str]:
    """The argv prefix (runc's argv follows) running the holder, its socket in its working
    directory (the bundle: a relative name, as a bundle's path can outgrow sun_path). Pure."""
    return [python or sys.executable, "-I", "-S", str(HOLDER),
            *stdioholder.holder_args(SOCKET_NAME, stdio.stdin, stdio.tty, stdio.stdin_once)]


def socket_path(bundle_dir: Path) -> Path:
    return bundle_dir / SOCKET_NAME


async def connect(bundle_dir: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the holder of the container whose bundle is bundle_dir, made through a
    descriptor of the directory (its path may be longer than a socket address takes)."""
    fd = os.open(bundle_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{fd}/{SOCKET_NAME}")
    finally:
        os.close(fd)


def resize_payload(message: bytes) -> bytes | None:
    """kubectl's resize message ({"Width": W, "Height": H}) as the holder's "ROWS COLS". Pure."""
    try:
        size = json.loads(message)
        rows, cols = int(size["Height"]), int(size["Width"])
    except (ValueError, KeyError, TypeError):
        return None
    return f"{rows} {cols}".encode() if rows > 0 and cols > 0 else None


@dataclass(frozen=True)
class Streams:
    """What an attach request asks for (query stdin/stdout/stderr) against what the container
    has. Pure."""
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    stdin_once: bool

    @classmethod
    def of(cls, query: Any, stdio: Stdio) -> Streams:
        def flag(name: str) -> bool:
            return str(query.get(name, "")).lower() in ("true", "1")
        return cls(stdin=flag("stdin") and stdio.stdin, stdout=flag("stdout"),
                   stderr=flag("stderr") and not stdio.tty, tty=stdio.tty, stdin_once=stdio.stdin_once)

    def stdin_end_ends_session(self) -> bool:
        """containerd: stdinOnce without a terminal keeps the output until the container ends;
        otherwise nobody writes stdin any more and the attach ends."""
        return not (self.stdin_once and not self.tty)


async def relay(ws: web.WebSocketResponse, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                streams: Streams, v5: bool) -> None:
    """One attach session, until the container ends, the client leaves or its stdin ends
    (Streams.stdin_end_ends_session)."""
    writer.write(frame(stdioholder.HELLO, json.dumps({"stdin": streams.stdin}).encode()))
    await writer.drain()

    async def from_container() -> None:
        frames = FrameReader()
        while data := await reader.read(65536):
            for channel, payload in frames.feed(data):
                if channel == stdioholder.STDOUT and streams.stdout:
                    await ws.send_bytes(bytes([WS_STDOUT]) + payload)
                elif channel == stdioholder.STDERR and streams.stderr:
                    await ws.send_bytes(bytes([WS_STDERR]) + payload)

    async def from_client() -> None:
        async for msg in ws:
            if not (data := frame_bytes(msg)):
                continue
            channel, payload = data[0], data[1:]
            if channel == WS_STDIN and streams.stdin and payload:
                writer.write(frame(stdioholder.STDIN, payload))
                await writer.drain()
            elif channel == WS_RESIZE and streams.tty:
                size = resize_payload(payload)
                if size is not None:
                    writer.write(frame(stdioholder.RESIZE, size))
                    await writer.drain()
            elif channel == WS_CLOSE and v5 and payload[:1] == bytes([WS_STDIN]) and streams.stdin:
                writer.write(frame(stdioholder.CLOSE_STDIN))
                await writer.drain()
                if streams.stdin_end_ends_session():
                    return

    output = asyncio.ensure_future(from_container())
    client = asyncio.ensure_future(from_client())
    try:
        await asyncio.wait({output, client}, return_when=asyncio.FIRST_COMPLETED)
    except (ConnectionError, OSError):
        pass
    finally:
        for task in (output, client):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


__all__ = ["Stdio", "Streams", "connect", "container_stdio", "holder_argv", "relay", "socket_path"]
