"""The server side of a SPDY/3.1 session, as spdystream runs it for kube-apiserver and the
kubelet: the client opens every stream (odd ids, increasing); each accepted stream gets a
SYN_REPLY before any data; a DATA frame with FIN half-closes a direction; PINGs from the client
are echoed; GOAWAY ends the session. No flow control (see knet.api.spdy).

I/O stays outside: the owner feeds received bytes to data_received()/eof_received() and gives
a `write` (bytes, synchronous, in order) and a `drain` (waits while the transport is full).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from knet.api import spdy

log = logging.getLogger(__name__)
CHUNK = 32 * 1024  # bytes per DATA frame we send


class Stream:
    """One client-opened stream: read() what the client sends (b"" once it half-closed or the
    session ended), write() to it, close() our direction."""

    def __init__(self, session: Session, frame: spdy.SynStream) -> None:
        self.session = session
        self.id = frame.stream_id
        self.headers = frame.headers
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.was_reset = False
        if frame.fin:
            self._remote_fin()

    def header(self, name: str) -> str:
        """The first value of a header ("" if absent); names are lowercase on the wire."""
        return (self.headers.get(name.lower()) or [""])[0]

    def _remote_fin(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self._chunks.put_nowait(b"")

    async def read(self) -> bytes:
        if self._chunks.empty() and self.remote_closed:
            return b""
        data = await self._chunks.get()
        if not data:
            self._chunks.put_nowait(b"")  # later reads see the end too
        return data

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.was_reset or self.session.closed:
            return
        for i in range(0, len(data), CHUNK):
            self.session.send(spdy.DataFrame(self.id, data[i:i + CHUNK]))
            await self.session.drain()

    def close(self) -> None:
        """Half-close: an empty DATA frame with FIN."""
        if not (self.local_closed or self.was_reset or self.session.closed):
            self.local_closed = True
            self.session.send(spdy.DataFrame(self.id, b"", fin=True))

    def reset(self, status: int = spdy.CANCEL) -> None:
        if not (self.was_reset or self.session.closed):
            self.was_reset = True
            self.session.send(spdy.RstStream(self.id, status))
        self._remote_fin()


class Session:
    """on_stream(stream) decides on each new stream: return True to accept it (SYN_REPLY is
    sent), False to refuse it (RST_STREAM CANCEL, as spdystream's Stream.Reset)."""

    def __init__(self, write: Callable[[bytes], None], drain: Callable[[], Awaitable[None]],
                 on_stream: Callable[[Stream], bool]) -> None:
        self._write = write
        self._drain = drain
        self._on_stream = on_stream
        self._encoder = spdy.Encoder()
        self._decoder = spdy.Decoder()
        self.streams: dict[int, Stream] = {}
        self.last_stream_id = 0
        self.closed = False
        self.done = asyncio.Event()  # the client went away or the session was closed

    # -- outgoing -------------------------------------------------------------------------------
    def send(self, frame: spdy.Frame) -> None:
        # Encoding and writing happen together: header blocks share one zlib stream, so the
        # frames must leave in the order they were compressed.
        if not self.closed:
            self._write(self._encoder.encode(frame))

    async def drain(self) -> None:
        if not self.closed:
            await self._drain()

    def close(self, status: int = spdy.GOAWAY_OK) -> None:
        """GOAWAY naming the last stream we took; the owner closes the transport after."""
        if not self.closed:
            self.send(spdy.GoAway(self.last_stream_id, status))
            self.closed = True
        self._end_streams()

    def _end_streams(self) -> None:
        for stream in self.streams.values():
            stream._remote_fin()
        self.done.set()

    # -- incoming -------------------------------------------------------------------------------
    def eof_received(self) -> None:
        self.closed = True
        self._end_streams()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            frames = self._decoder.feed(data)
        except spdy.SpdyError as exc:
            log.info("SPDY session: %s", exc)
            self.close(spdy.GOAWAY_PROTOCOL_ERROR)
            return
        for frame in frames:
            self._handle(frame)

    def _handle(self, frame: spdy.Frame) -> None:
        match frame:
            case spdy.SynStream():
                sid = frame.stream_id
                # Client streams are odd and increase (spdystream's validateStreamId).
                if sid % 2 == 0 or sid <= self.last_stream_id:
                    self.send(spdy.RstStream(sid, spdy.PROTOCOL_ERROR))
                    return
                self.last_stream_id = sid
                stream = Stream(self, frame)
                if not self._on_stream(stream):
                    self.send(spdy.RstStream(sid, spdy.CANCEL))
                    return
                self.streams[sid] = stream
                self.send(spdy.SynReply(sid))
            case spdy.DataFrame():
                stream = self.streams.get(frame.stream_id)
                if stream is None or stream.remote_closed:
                    return  # a stream we refused, reset or that was finished: dropped, as spdystream
                if frame.data:
                    stream._chunks.put_nowait(frame.data)
                if frame.fin:
                    stream._remote_fin()
            case spdy.RstStream():
                stream = self.streams.pop(frame.stream_id, None)
                if stream is not None:
                    stream.was_reset = True
                    stream._remote_fin()
            case spdy.Ping():
                if frame.id % 2 == 1:  # the client's ping (ours would be even): echo it
                    self.send(frame)
            case spdy.GoAway():
                self.closed = True
                self._end_streams()
            case spdy.HeadersFrame() | spdy.SynReply() | spdy.Settings() | spdy.WindowUpdate():
                pass  # nothing a client may ask of us here; no flow control (as spdystream)


__all__ = ["Session", "Stream"]
