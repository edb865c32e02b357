"""The WebSocket channel protocol of pods/portforward (kubelet portforward/websocket.go):
ports parsing, subprotocol choice, binary and base64 framing."""

from __future__ import annotations

import pytest

from knet.api import wsportforward as pf
from knet.api.errors import ApiError


def test_parse_ports():
    assert pf.parse_ports(["8080"]) == [8080]
    assert pf.parse_ports(["80,443", "8080"]) == [80, 443, 8080]
    for values, message in ((["x"], 'unable to parse "x" as a port'), (["70000"], 'unable to parse "70000" as a port'),
                            (["0"], 'port "0" must be > 0'), ([], 'query parameter "ports" is required'),
                            (["80,"], 'unable to parse "" as a port')):
        with pytest.raises(ApiError) as refused:
            pf.parse_ports(values)
        assert (refused.value.code, refused.value.message) == (400, message)


def test_choose_protocol():
    assert pf.choose_protocol([]) == ""
    assert pf.choose_protocol(["v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    assert pf.choose_protocol(["nope", "v4.base64.channel.k8s.io"]) == "v4.base64.channel.k8s.io"
    with pytest.raises(ApiError):
        pf.choose_protocol(["SPDY/3.1"])


def test_framing():
    assert pf.encode(2, b"\x50\x00", False) == b"\x02\x50\x00"
    assert pf.encode(1, b"hi", True) == "1aGk="
    assert pf.decode(b"\x00GET") == (0, b"GET")
    assert pf.decode("0R0VU") == (0, b"GET")
    assert pf.decode(b"") is None and pf.decode("") is None
