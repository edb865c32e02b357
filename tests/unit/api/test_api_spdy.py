"""SPDY/3.1 framing (knet.api.spdy), the server session (knet.api.spdysession) and the pure parts
of the exec/port-forward relay (knet.api.spdyrelay). The golden byte strings were captured from
kubectl 1.29 (client-go through moby/spdystream, Go's zlib) talking to a capture server:
`echo hi | kubectl exec -i p -- cat` and two connections through `kubectl port-forward pod/p
18997:8080`."""

from __future__ import annotations

import asyncio
import json
import zlib

import pytest

from knet.api import spdy, spdyrelay
from knet.api.spdysession import Session

# error, stdin, stdout, stderr streams (v4 exec with -i), then "hi\n" on stdin and its FIN.
KUBECTL_EXEC = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ff"
    "ff800300010000001700000003000000000000c22e555c92929907000000ffff80030001000000190000000500000000"
    "0000c22ac5565c92925f5a02000000ffff800300010000001500000007000000000000c229975a5404000000ffff0000"
    "00030000000368690a0000000301000000")
# Two forwarded connections: each an error stream (half-closed at once) and a data stream.
KUBECTL_PORTFORWARD = bytes.fromhex(
    "800300010000003e0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c60"
    "616061c0c0c0c0590489c64c50f2663400000000ffff0000000101000000800300010000001c00000003000000000000"
    "826ac61445350e543225a29b06000000ffff0000000300000012474554202f20485454502f312e300d0a0d0a00000003"
    "01000000800300010000001400000005000000000000a2c4624300000000ffff00000005010000008003000100000016"
    "00000007000000000000c26ab121711603000000ffff0000000700000001780000000701000000")


def test_dictionary_is_spdy3s():
    # zlib names a preset dictionary by its Adler-32: kubectl's first header block says 0xe3c6a7c2.
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2 == int.from_bytes(KUBECTL_EXEC[20:24], "big")


def test_decodes_kubectls_exec_frames():
    assert spdy.Decoder().feed(KUBECTL_EXEC) == [
        spdy.SynStream(1, {"streamtype": ["error"]}),
        spdy.SynStream(3, {"streamtype": ["stdin"]}),
        spdy.SynStream(5, {"streamtype": ["stdout"]}),
        spdy.SynStream(7, {"streamtype": ["stderr"]}),
        spdy.DataFrame(3, b"hi\n"),
        spdy.DataFrame(3, b"", fin=True),
    ]


def test_decodes_kubectls_portforward_frames_fed_byte_by_byte():
    decoder = spdy.Decoder()
    frames = [f for i in range(len(KUBECTL_PORTFORWARD)) for f in decoder.feed(KUBECTL_PORTFORWARD[i:i + 1])]
    assert frames == [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}),
        spdy.DataFrame(1, b"", fin=True),
        spdy.SynStream(3, {"requestid": ["0"], "streamtype": ["data"], "port": ["8080"]}),
        spdy.DataFrame(3, b"GET / HTTP/1.0\r\n\r\n"),
        spdy.DataFrame(3, b"", fin=True),
        spdy.SynStream(5, {"streamtype": ["error"], "port": ["8080"], "requestid": ["1"]}),
        spdy.DataFrame(5, b"", fin=True),
        spdy.SynStream(7, {"requestid": ["1"], "streamtype": ["data"], "port": ["8080"]}),
        spdy.DataFrame(7, b"x"),
        spdy.DataFrame(7, b"", fin=True),
    ]


@pytest.mark.parametrize("frame, wire", [
    # Layouts of draft-mbelshe-httpbis-spdy-00 section 2.6 (spdystream write.go).
    (spdy.Ping(1), "80030006" "00000004" "00000001"),
    (spdy.RstStream(3, spdy.CANCEL), "80030003" "00000008" "00000003" "00000005"),
    (spdy.GoAway(7, spdy.GOAWAY_OK), "80030007" "00000008" "00000007" "00000000"),
    (spdy.WindowUpdate(5, 65536), "80030009" "00000008" "00000005" "00010000"),
    (spdy.Settings([(0, 7, 65536)]), "80030004" "0000000c" "00000001" "00000007" "00010000"),
    (spdy.DataFrame(5, b"", fin=True), "00000005" "01000000"),
    (spdy.DataFrame(3, b"hi\n"), "00000003" "00000003" "68690a"),
])
def test_encodes_frames_as_the_spec_lays_them_out(frame, wire):
    data = spdy.Encoder().encode(frame)
    assert data.hex() == wire
    assert spdy.Decoder().feed(data) == [frame]


def test_header_blocks_share_one_zlib_stream_per_direction():
    enc, dec = spdy.Encoder(), spdy.Decoder()
    frames = [spdy.SynReply(1), spdy.SynReply(3, {"streamtype": ["stdout"]}, fin=True),
              spdy.HeadersFrame(3, {"x": ["a", "b"]}), spdy.SynStream(2, {"a": ["1"]}, associated_to=1, priority=3,
                                                                      unidirectional=True)]
    wire = b"".join(enc.encode(f) for f in frames)
    # The first block opens the zlib stream with the dictionary's id, as Go's writer does.
    assert wire[12:18] == KUBECTL_EXEC[18:24]
    assert dec.feed(wire) == frames
    # A second decoder that missed the first block cannot read the second.
    late = spdy.Decoder()
    with pytest.raises(spdy.SpdyError):
        late.feed(enc.encode(spdy.SynReply(5, {"streamtype": ["stdout"]})))


def test_refuses_what_breaks_the_protocol():
    with pytest.raises(spdy.SpdyError) as err:
        spdy.Decoder().feed(bytes.fromhex("80020006000000040000000 1".replace(" ", "")))
    assert err.value.status == spdy.UNSUPPORTED_VERSION
    # A header block that inflates past 1 MiB (a few KiB on the wire).
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=spdy.DICTIONARY)
    bomb = z.compress(spdy.header_block({"x": ["a" * (2 << 20)]})) + z.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 8192
    frame = spdy._control(spdy.SYN_REPLY, 0, (1).to_bytes(4, "big") + bomb)
    with pytest.raises(spdy.SpdyError, match="larger than 1 MiB"):
        spdy.Decoder().feed(frame)
    with pytest.raises(spdy.SpdyError, match="bad header name"):
        spdy.parse_header_block(b"\x00\x00\x00\x01\x00\x00\x00\x01X\x00\x00\x00\x00")
    with pytest.raises(spdy.SpdyError, match="truncated"):
        spdy.parse_header_block(b"\x00\x00\x00\x02\x00\x00\x00\x01x\x00\x00\x00\x00")
    with pytest.raises(spdy.SpdyError, match="too short"):
        spdy.Decoder().feed(spdy._control(spdy.PING, 0, b"\x00"))
    with pytest.raises(spdy.SpdyError, match="too large"):
        spdy.Decoder(max_frame=1024).feed(bytes.fromhex("00000001" "00010000"))
    # Unknown control frame types are skipped, the frames after them read.
    assert spdy.Decoder().feed(spdy._control(0x55, 0, b"abc") + spdy.Encoder().encode(spdy.Ping(3))) == [spdy.Ping(3)]


# -- the session ---------------------------------------------------------------------------------
class Client:
    """The client side of a session under test: encodes what it sends, decodes what it got."""

    def __init__(self, accept=lambda stream: True) -> None:
        self.enc, self.dec = spdy.Encoder(), spdy.Decoder()
        self.received: list[spdy.Frame] = []
        self.streams = []

        async def drain() -> None:
            pass

        def on_stream(stream):
            self.streams.append(stream)
            return accept(stream)

        self.session = Session(lambda data: self.received.extend(self.dec.feed(data)), drain, on_stream)

    def send(self, *frames: spdy.Frame) -> list[spdy.Frame]:
        before = len(self.received)
        self.session.data_received(b"".join(self.enc.encode(f) for f in frames))
        return self.received[before:]


def test_session_replies_to_streams_echoes_pings_and_polices_ids():
    async def run():
        c = Client(accept=lambda s: s.header("streamType") != "bogus")
        assert c.send(spdy.SynStream(1, {"streamtype": ["error"]})) == [spdy.SynReply(1)]
        assert c.send(spdy.SynStream(3, {"streamtype": ["bogus"]})) == [spdy.RstStream(3, spdy.CANCEL)]
        assert c.send(spdy.SynStream(2)) == [spdy.RstStream(2, spdy.PROTOCOL_ERROR)]  # even: a server's id
        assert c.send(spdy.SynStream(1)) == [spdy.RstStream(1, spdy.PROTOCOL_ERROR)]  # not increasing
        assert c.send(spdy.Ping(5)) == [spdy.Ping(5)]
        assert c.send(spdy.Ping(6)) == []  # an answer to a ping of ours: nothing to say
        assert c.send(spdy.WindowUpdate(1, 100), spdy.Settings([(0, 7, 1)])) == []  # no flow control
        stream = c.streams[0]
        assert c.send(spdy.DataFrame(1, b"abc"), spdy.DataFrame(1, b"", fin=True), spdy.DataFrame(3, b"refused")) == []
        assert await stream.read() == b"abc"
        assert await stream.read() == b""
        assert await stream.read() == b""
        await stream.write(b"x" * 70000)  # past SPDY's 64 KiB window: nobody sends WINDOW_UPDATE
        stream.close()
        assert c.received[-4:] == [spdy.DataFrame(1, b"x" * 32768), spdy.DataFrame(1, b"x" * 32768),
                                   spdy.DataFrame(1, b"x" * 4464), spdy.DataFrame(1, b"", fin=True)]
        c.send(spdy.SynStream(7, {"streamtype": ["stdout"]}))
        c.send(spdy.GoAway(7))
        assert c.session.done.is_set() and await c.streams[-1].read() == b""

    asyncio.run(run())


def test_session_answers_a_broken_frame_with_goaway():
    c = Client()
    c.send(spdy.SynStream(1))
    c.session.data_received(bytes.fromhex("8002000100000000"))
    assert c.received[-1] == spdy.GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)
    assert c.session.closed and c.session.done.is_set()


# -- relay logic ---------------------------------------------------------------------------------
@pytest.mark.parametrize("client, server, expected", [
    # After apimachinery's httpstream TestHandshake table.
    (["v4.channel.k8s.io"], spdyrelay.EXEC_PROTOCOLS, "v4.channel.k8s.io"),
    (["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"], spdyrelay.EXEC_PROTOCOLS, "v4.channel.k8s.io"),
    (["v2.channel.k8s.io, v3.channel.k8s.io"], spdyrelay.EXEC_PROTOCOLS, "v2.channel.k8s.io"),
    (["channel.k8s.io"], spdyrelay.EXEC_PROTOCOLS, "channel.k8s.io"),
    (["portforward.k8s.io"], spdyrelay.PORTFORWARD_PROTOCOLS, "portforward.k8s.io"),
])
def test_negotiate_picks_the_clients_first_known_protocol(client, server, expected):
    assert spdyrelay.negotiate(client, server) == expected


def test_negotiate_refuses_as_the_kubelet():
    with pytest.raises(spdyrelay.HandshakeError) as err:
        spdyrelay.negotiate(["v9.channel.k8s.io", "bogus"], spdyrelay.EXEC_PROTOCOLS)
    assert (err.value.status, err.value.text, err.value.accepted) == (
        403, "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io bogus], "
             "server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]",
        spdyrelay.EXEC_PROTOCOLS)
    with pytest.raises(spdyrelay.HandshakeError) as err:
        spdyrelay.negotiate([" , "], spdyrelay.EXEC_PROTOCOLS)
    assert (err.value.status, err.value.text) == (400, "unable to upgrade: X-Stream-Protocol-Version is required")


@pytest.mark.parametrize("stdin, stdout, stderr, tty, streams", [
    (False, True, True, False, {"error", "stdout", "stderr"}),
    (True, True, True, False, {"error", "stdin", "stdout", "stderr"}),
    (True, True, True, True, {"error", "stdin", "stdout", "resize"}),  # a terminal has no stderr
    (False, False, True, False, {"error", "stderr"}),
])
def test_expected_streams(stdin, stdout, stderr, tty, streams):
    assert spdyrelay.expected_streams(stdin, stdout, stderr, tty) == streams


def test_error_stream_carries_the_status_v4_and_a_message_before():
    failed = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
              "message": "command terminated with non-zero exit code: exit status 3",
              "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    assert json.loads(spdyrelay.status_for_protocol(failed, "v4.channel.k8s.io")) == failed
    assert spdyrelay.status_for_protocol(failed, "v3.channel.k8s.io") == failed["message"].encode()
    assert spdyrelay.status_for_protocol({"metadata": {}, "status": "Success"}, "v2.channel.k8s.io") == b""


def test_resize_objects_arrive_whole_across_frames():
    d = spdyrelay.ResizeDecoder()
    assert d.feed(b'{"Width":80,"Hei') == []
    assert d.feed(b'ght":24}\n{"Width":100,"Height":40}\n{') == [{"Width": 80, "Height": 24},
                                                               {"Width": 100, "Height": 40}]
    assert d.feed(b'"Width":1,"Height":2}') == [{"Width": 1, "Height": 2}]


@pytest.mark.parametrize("value, port", [("8080", 8080), ("1", 1), ("65535", 65535), ("0", None), ("65536", None),
                                         ("-1", None), ("", None), ("80a", None)])
def test_port_header(value, port):
    from knet.api.spdysession import Stream

    class FakeSession:
        pass

    stream = Stream(FakeSession(), spdy.SynStream(1, {"port": [value]} if value else {}))  # type: ignore[arg-type]
    assert spdyrelay.stream_port(stream) == port
