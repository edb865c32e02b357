"""The stdio holder (knet.node.stdioholder) as a real process: a shell stands in for `runc run`
(the holder treats its command as opaque), attachers connect to its socket and speak frames."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import WSMessage, WSMsgType

from knet.node import attachio, stdioholder
from knet.node.stdioholder import CLOSE_STDIN, HELLO, RESIZE, STDERR, STDIN, STDOUT, FrameReader, frame


def test_frames_round_trip_in_pieces():
    stream = frame(STDOUT, b"hello") + frame(STDIN) + frame(RESIZE, b"30 100")
    reader = FrameReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i:i + 1])
    assert got == [(STDOUT, b"hello"), (STDIN, b""), (RESIZE, b"30 100")]


@pytest.mark.parametrize(("argv", "want"), [
    (["attach.sock", "--", "runc", "run"], stdioholder.Options("attach.sock", ["runc", "run"])),
    (["--stdin", "--tty", "--stdin-once", "s", "--", "runc"], stdioholder.Options("s", ["runc"], True, True, True)),
])
def test_parse_args(argv, want):
    assert stdioholder.parse_args(argv) == want


@pytest.mark.parametrize("argv", [["s"], ["s", "--"], ["--bogus", "s", "--", "x"], ["a", "b", "--", "x"]])
def test_parse_args_refuses(argv):
    with pytest.raises(ValueError):
        stdioholder.parse_args(argv)


def test_holder_args_round_trip():
    args = stdioholder.holder_args("attach.sock", True, False, True)
    assert stdioholder.parse_args([*args, "runc", "run"]) == stdioholder.Options(
        "attach.sock", ["runc", "run"], stdin=True, stdin_once=True)


@pytest.mark.parametrize(("payload", "want"), [(b"24 80", (24, 80)), (b"0 80", None), (b"x", None), (b"1 2 3", None)])
def test_parse_size(payload, want):
    assert stdioholder.parse_size(payload) == want


def test_container_stdio_from_spec():
    assert attachio.container_stdio({"name": "c"}) is None
    assert attachio.container_stdio({"stdin": True}) == attachio.Stdio(True, False, False)
    assert attachio.container_stdio({"tty": True, "stdinOnce": True}) == attachio.Stdio(False, True, False)
    assert attachio.container_stdio({"stdin": True, "tty": True, "stdinOnce": True}) == attachio.Stdio(True, True, True)


def test_streams_follow_the_container():
    # The kubelet takes tty from the container spec; stdin only reaches a container that has one.
    q = {"stdin": "true", "stdout": "true", "stderr": "true", "tty": "false"}
    s = attachio.Streams.of(q, attachio.Stdio(stdin=False, tty=True, stdin_once=False))
    assert (s.stdin, s.stdout, s.stderr, s.tty) == (False, True, False, True)
    once = attachio.Streams.of(q, attachio.Stdio(stdin=True, tty=False, stdin_once=True))
    assert once.stdin and once.stderr and not once.stdin_end_ends_session()
    assert attachio.Streams.of(q, attachio.Stdio(True, True, True)).stdin_end_ends_session()
    assert attachio.Streams.of(q, attachio.Stdio(True, False, False)).stdin_end_ends_session()


def test_resize_payload():
    assert attachio.resize_payload(b'{"Width": 100, "Height": 30}') == b"30 100"
    assert attachio.resize_payload(b"{}") is None


STARTED: list[Holder] = []


@pytest.fixture(autouse=True)
def _end_holders():
    """A failed test leaves no holder (or its command) running."""
    yield
    while STARTED:
        holder = STARTED.pop()
        if holder.proc.poll() is None:
            with contextlib.suppress(OSError, AssertionError):
                holder.kill_command(9)
            holder.proc.kill()
            holder.proc.wait(timeout=10)


class Holder:
    def __init__(self, tmp: Path, flags: list[str], command: list[str]) -> None:
        self.path = tmp / "attach.sock"
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", stdioholder.__file__, *flags, "attach.sock", "--",
                                      *command], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        STARTED.append(self)
        deadline = time.monotonic() + 10
        while not self.path.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.communicate()
            time.sleep(0.02)

    def attach(self, stdin: bool) -> Attacher:
        return Attacher(self.path, stdin)

    def kill_command(self, sig: int) -> None:
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), sig)

    def wait(self) -> tuple[int, bytes, bytes]:
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


class Attacher:
    def __init__(self, path: Path, stdin: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.settimeout(10)
        self.reader = FrameReader()
        self.got: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
        self.sock.sendall(frame(HELLO, json.dumps({"stdin": stdin}).encode()))

    def send(self, channel: int, data: bytes = b"") -> None:
        self.sock.sendall(frame(channel, data))

    def read_until(self, channel: int, text: bytes) -> bytes:
        while text not in self.got[channel]:
            data = self.sock.recv(65536)
            assert data, f"disconnected before {text!r}: {self.got}"
            for ch, payload in self.reader.feed(data):
                self.got[ch] = self.got.get(ch, b"") + payload
        return self.got[channel]

    def read_to_end(self) -> dict[int, bytes]:
        while data := self.sock.recv(65536):
            for ch, payload in self.reader.feed(data):
                self.got[ch] = self.got.get(ch, b"") + payload
        return self.got


def test_stdin_stays_open_between_attachers(tmp_path):
    holder = Holder(tmp_path, ["--stdin"], ["sh", "-c", 'while read line; do echo "got:$line"; echo "err:$line" >&2; '
                                            'done; echo "stdin ended"; exit 3'])
    first = holder.attach(stdin=True)
    first.send(STDIN, b"one\n")
    assert b"got:one" in first.read_until(STDOUT, b"got:one")
    first.read_until(STDERR, b"err:one")
    first.send(CLOSE_STDIN)
    first.sock.close()  # without stdinOnce the container's stdin stays open for the next one
    second = holder.attach(stdin=True)
    watcher = holder.attach(stdin=False)
    watcher.send(STDIN, b"ignored\n")  # an attacher without stdin writes nothing
    second.send(STDIN, b"two\n")
    second.read_until(STDOUT, b"got:two")
    second.sock.close()
    holder.kill_command(15)  # as `runc kill` ends the container
    code, out, err = holder.wait()
    got = watcher.read_to_end()
    assert b"got:two" in got[STDOUT] and b"ignored" not in got[STDOUT] + got[STDERR]
    assert code == 128 + 15
    # What the container wrote went to the holder's own stdout/stderr (the container's log) too.
    assert out == b"got:one\ngot:two\n" and err == b"err:one\nerr:two\n"


def test_stdin_once_closes_after_the_first_attacher(tmp_path):
    holder = Holder(tmp_path, ["--stdin", "--stdin-once"], ["sh", "-c", 'cat; echo "stdin ended"; exit 3'])
    a = holder.attach(stdin=True)
    a.send(STDIN, b"only\n")
    a.read_until(STDOUT, b"only")
    a.send(CLOSE_STDIN)
    got = a.read_to_end()  # the output goes on to the end, then the holder disconnects
    assert got[STDOUT] == b"only\nstdin ended\n"
    assert holder.wait()[0] == 3


def test_terminal_echoes_and_resizes(tmp_path):
    # The command runs on the holder's terminal (as runc does, relaying to the container's).
    # Output written before an attacher came is not replayed to it (as upstream): the command
    # waits for a line first.
    holder = Holder(tmp_path, ["--stdin", "--tty"], ["sh", "-c", 'read line; stty size; echo "got:$line"; '
                                                     'read line; stty size; exit 5'])
    a = holder.attach(stdin=True)
    a.send(STDIN, b"hello\r")
    a.read_until(STDOUT, b"got:hello")
    a.send(RESIZE, b"33 101")
    time.sleep(0.2)
    a.send(STDIN, b"\r")
    got = a.read_to_end()
    assert got[STDOUT].startswith(b"hello\r\n24 80\r\n")  # echoed by the terminal; its size nobody set yet
    assert b"33 101" in got[STDOUT] and got[STDERR] == b""
    code, out, _ = holder.wait()
    assert code == 5 and b"got:hello" in out


def test_stdin_once_with_a_terminal_hangs_it_up_when_the_attacher_leaves(tmp_path):
    # containerd closes a stdinOnce terminal's stdin once the attach ends: the console goes,
    # its session gets SIGHUP (the shell ends 129).
    holder = Holder(tmp_path, ["--stdin", "--tty", "--stdin-once"], ["sh", "-c", 'read l; echo "got:$l"; read l; '
                                                                    'echo never'])
    a = holder.attach(stdin=True)
    a.send(STDIN, b"first\r")
    a.read_until(STDOUT, b"got:first")
    a.sock.close()
    with contextlib.suppress(OSError):  # too late: the container's stdin is gone (or the holder)
        later = holder.attach(stdin=True)
        later.send(STDIN, b"second\r")
    code, out, _ = holder.wait()
    assert code == 128 + 1 and b"never" not in out and b"second" not in out


def test_large_input_reaches_a_terminal_that_reads_slowly(tmp_path):
    # More than a terminal's input buffer at once: what it cannot take yet follows later.
    holder = Holder(tmp_path, ["--stdin", "--tty"], ["sh", "-c", 'read go; stty -echo -icanon; echo ready; sleep 1; '
                                                     'head -c 20000 | wc -c; exit 0'])
    a = holder.attach(stdin=True)
    a.send(STDIN, b"go\r")
    a.read_until(STDOUT, b"ready")  # not canonical any more: no line limit
    a.send(STDIN, b"x" * 20000)
    got = a.read_to_end()
    assert b"20000" in got[STDOUT], got
    assert holder.wait()[0] == 0


@pytest.mark.parametrize(("kind", "data", "want"), [
    (WSMsgType.BINARY, b"\x00ls\n", b"\x00ls\n"),
    (WSMsgType.TEXT, "\x00ls\n", b"\x00ls\n"),  # the Python client writes str stdin as a text frame
    (WSMsgType.CLOSE, 1000, b""),
    (WSMsgType.PING, b"x", b""),
])
def test_websocket_frames_carry_data_as_binary_or_text(kind, data, want):
    from knet.node.attachio import frame_bytes

    assert frame_bytes(WSMessage(kind, data, None)) == want
