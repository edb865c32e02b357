"""The stdio holder of a container with `stdin: true` or `tty: true`: what containerd's shim
does for such a container, as a small program between the container's shim and `runc run`.

    python -I -S stdioholder.py [--stdin] [--tty] [--stdin-once] SOCKET -- RUNC_ARGV...

It starts `runc run` (RUNC_ARGV) and outlives the kubelet (it runs in the shim's session):
- stdin: the container's stdin is a pipe whose write end the holder keeps, so it stays open
  between attachers (runc copies it to the container); without --stdin it is /dev/null.
- tty: runc runs on a pseudo-terminal of the holder's (its controlling terminal): runc creates
  the container's terminal (`terminal: true` in config.json) and relays between the two, as it
  does in the foreground; a resize of the holder's terminal reaches runc as SIGWINCH and runc
  sizes the container's terminal to it.
- output: what the container writes (stdout and stderr, or the terminal) goes to the holder's
  own stdout/stderr (the shim's: the container's log) and to every attacher.
- attachers connect to the unix socket SOCKET (in the bundle, mode 0600: only the kubelet) and
  speak frames (`frame`): channel 0 stdin, 4 resize ("ROWS COLS"), 254 hello ({"stdin": bool}:
  whether this attacher brings stdin), 255 its stdin ended; the holder sends 1 stdout, 2 stderr.
  With --stdin-once the container's stdin is closed after the first attacher with stdin is done,
  as containerd does: at the end of its stdin without a terminal, when it detaches with one (the
  terminal is then hung up).
- when the container has ended and its output is drained, the attachers are disconnected and
  the holder exits with runc's exit code.

Standard library only, started with -I -S: it must start fast and must not depend on the
kubelet's environment (it runs on after the kubelet is gone).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field

HEADER = struct.Struct(">BI")
STDIN, STDOUT, STDERR, RESIZE, HELLO, CLOSE_STDIN = 0, 1, 2, 4, 254, 255
SOCKET_NAME = "attach.sock"
DEFAULT_SIZE = (24, 80)  # a terminal nobody sized yet: what a console starts at
MAX_PENDING = 8 << 20    # an attacher this far behind is dropped rather than slowing the container
DRAIN_SECONDS = 1.0      # output still arriving after runc ended (a descendant holding the pipe)


def frame(channel: int, data: bytes = b"") -> bytes:
    return HEADER.pack(channel, len(data)) + data


class FrameReader:
    """Frames out of a byte stream, fed in pieces. Pure."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= HEADER.size:
            channel, length = HEADER.unpack_from(self.buffer)
            end = HEADER.size + length
            if len(self.buffer) < end:
                break
            frames.append((channel, bytes(self.buffer[HEADER.size:end])))
            del self.buffer[:end]
        return frames


@dataclass
class Options:
    socket: str
    runc_argv: list[str]
    stdin: bool = False
    tty: bool = False
    stdin_once: bool = False


def parse_args(argv: list[str]) -> Options:
    """Options from the command line (ValueError: not a holder command line). Pure."""
    if "--" not in argv:
        raise ValueError("usage: stdioholder.py [--stdin] [--tty] [--stdin-once] SOCKET -- RUNC_ARGV...")
    cut = argv.index("--")
    head, runc_argv = argv[:cut], argv[cut + 1:]
    flags = {a for a in head if a.startswith("--")}
    positional = [a for a in head if not a.startswith("--")]
    unknown = flags - {"--stdin", "--tty", "--stdin-once"}
    if unknown or len(positional) != 1 or not runc_argv:
        raise ValueError(f"bad holder arguments: {argv!r}")
    return Options(positional[0], runc_argv, "--stdin" in flags, "--tty" in flags, "--stdin-once" in flags)


def holder_args(socket_path: str, stdin: bool, tty: bool, stdin_once: bool) -> list[str]:
    """The holder's arguments before `--` and runc's argv. Pure."""
    return [*(["--stdin"] if stdin else []), *(["--tty"] if tty else []),
            *(["--stdin-once"] if stdin_once else []), socket_path, "--"]


def parse_size(payload: bytes) -> tuple[int, int] | None:
    """A resize frame's "ROWS COLS" (None: not one). Pure."""
    try:
        rows, cols = (int(n) for n in payload.split())
    except ValueError:
        return None
    if not (0 < rows < 65536 and 0 < cols < 65536):
        return None
    return rows, cols


def exit_code(returncode: int) -> int:
    """A process's exit status as a shell reports it: 128+N for signal N. Pure."""
    return 128 - returncode if returncode < 0 else returncode


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def write_all(fd: int, data: bytes) -> None:
    """To the log (blocking): a log that fails loses output, never the container."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:
            return


@dataclass
class Attacher:
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    pending: bytearray = field(default_factory=bytearray)
    with_stdin: bool = False
    stdin_ended: bool = False


class Holder:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.sel = selectors.DefaultSelector()
        self.attachers: dict[int, Attacher] = {}
        self.outputs: dict[int, int] = {}        # fd -> channel (STDOUT/STDERR)
        self.stdin_fd: int | None = None         # where attachers' stdin goes (None: closed)
        self.stdin_pending = bytearray()
        self.terminal: int | None = None         # the pty master (tty)
        self.stdin_used = False                  # an attacher with stdin came (stdinOnce)
        self.proc: subprocess.Popen | None = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # runc's end wakes the loop (SIGCHLD through a wakeup pipe): it sleeps until something happens.
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wakeup_w)
        self.sel.register(self.wakeup_r, selectors.EVENT_READ, "wakeup")

    # -- setup ----------------------------------------------------------------------------
    def listen(self) -> None:
        try:
            os.unlink(self.opts.socket)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self.listener.bind(self.opts.socket)
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listener")

    def start(self) -> None:
        argv = self.opts.runc_argv
        if self.opts.tty:
            master, slave = pty.openpty()
            set_size(master, *DEFAULT_SIZE)
            # runc in the foreground with `terminal: true` needs a terminal of its own (its
            # controlling one, so that a resize reaches it as SIGWINCH).
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
            os.close(slave)
            os.set_blocking(master, False)
            self.terminal = master
            self.outputs[master] = STDOUT
            if self.opts.stdin:
                self.stdin_fd = master
        else:
            stdin_r, stdin_w = os.pipe() if self.opts.stdin else (os.open(os.devnull, os.O_RDONLY), None)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self.proc = subprocess.Popen(argv, stdin=stdin_r, stdout=out_w, stderr=err_w)
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
            self.outputs = {out_r: STDOUT, err_r: STDERR}
            if stdin_w is not None:
                os.set_blocking(stdin_w, False)
                self.stdin_fd = stdin_w
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "output")

    # -- the container's side -----------------------------------------------------------------
    def read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the terminal's other side is closed (runc ended)
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.close_output(fd)
            return
        channel = self.outputs[fd]
        write_all(1 if channel == STDOUT else 2, data)
        message = frame(channel, data)
        for attacher in list(self.attachers.values()):
            self.send(attacher, message)

    def close_output(self, fd: int) -> None:
        self.sel.unregister(fd)
        del self.outputs[fd]
        if fd == self.terminal:
            self.terminal = None
            self.stdin_fd = None
            self.stdin_pending.clear()
        os.close(fd)

    def write_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None:
            return
        self.stdin_pending += data
        self.flush_stdin()

    def flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        try:
            while self.stdin_pending:
                del self.stdin_pending[:os.write(fd, self.stdin_pending)]
        except BlockingIOError:
            pass
        except OSError:  # the container closed its stdin
            self.stdin_pending.clear()
        self.watch_stdin()

    def watch_stdin(self) -> None:
        """Wait for the stdin pipe to take more when bytes are pending (not for the terminal,
        which is registered for reading already: its writes are retried on the next input)."""
        fd = self.stdin_fd
        if fd is None or fd == self.terminal:
            return
        registered = fd in self.sel.get_map()
        if self.stdin_pending and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, "stdin")
        elif not self.stdin_pending and registered:
            self.sel.unregister(fd)

    def close_stdin(self) -> None:
        """stdinOnce: the container's stdin ends (EOF through the pipe; a hangup of the terminal,
        as containerd closes the console)."""
        fd = self.stdin_fd
        if fd is None:
            return
        self.flush_stdin()
        self.stdin_fd = None
        self.stdin_pending.clear()
        if fd == self.terminal:
            self.close_output(fd)
            return
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        os.close(fd)

    # -- attachers ----------------------------------------------------------------------------
    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.attachers[sock.fileno()] = Attacher(sock)
        self.sel.register(sock, selectors.EVENT_READ, "attacher")

    def send(self, attacher: Attacher, message: bytes) -> None:
        attacher.pending += message
        if len(attacher.pending) > MAX_PENDING:
            self.drop(attacher)
            return
        self.flush(attacher)

    def flush(self, attacher: Attacher) -> None:
        try:
            while attacher.pending:
                del attacher.pending[:attacher.sock.send(attacher.pending)]
        except BlockingIOError:
            pass
        except OSError:
            self.drop(attacher)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if attacher.pending else 0)
        self.sel.modify(attacher.sock, events, "attacher")

    def read_attacher(self, attacher: Attacher) -> None:
        try:
            data = attacher.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(attacher)
            return
        for channel, payload in attacher.reader.feed(data):
            if channel == HELLO:
                try:
                    attacher.with_stdin = bool(json.loads(payload or b"{}").get("stdin"))
                except (ValueError, AttributeError):
                    attacher.with_stdin = False
                if attacher.with_stdin:
                    self.stdin_used = True
            elif channel == STDIN and attacher.with_stdin and not attacher.stdin_ended:
                self.write_stdin(payload)
            elif channel == RESIZE and self.terminal is not None:
                size = parse_size(payload)
                if size is not None:
                    set_size(self.terminal, *size)
            elif channel == CLOSE_STDIN and attacher.with_stdin:
                attacher.stdin_ended = True
                if self.opts.stdin_once and not self.opts.tty:
                    self.close_stdin()

    def drop(self, attacher: Attacher) -> None:
        fd = attacher.sock.fileno()
        if self.attachers.pop(fd, None) is None:
            return
        self.sel.unregister(attacher.sock)
        attacher.sock.close()
        if attacher.with_stdin and self.opts.stdin_once:
            self.close_stdin()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        assert self.proc is not None
        ended_at: float | None = None
        while True:
            if ended_at is None and self.proc.poll() is not None:
                ended_at = time.monotonic()
            if ended_at is not None and (not self.outputs or time.monotonic() - ended_at > DRAIN_SECONDS):
                break
            timeout = None
            if self.stdin_pending and self.stdin_fd == self.terminal:
                self.flush_stdin()  # a full terminal took part of the input: the rest soon
                timeout = 0.05
            if ended_at is not None:
                timeout = 0.1
            for key, events in self.sel.select(timeout):
                kind = key.data
                if kind == "wakeup":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wakeup_r, 512)
                elif kind == "listener":
                    self.accept()
                elif kind == "output" and key.fd in self.outputs:
                    self.read_output(key.fd)
                elif kind == "stdin":
                    self.flush_stdin()
                elif kind == "attacher" and key.fd in self.attachers:
                    attacher = self.attachers[key.fd]
                    if events & selectors.EVENT_WRITE:
                        self.flush(attacher)
                    if events & selectors.EVENT_READ and key.fd in self.attachers:
                        self.read_attacher(attacher)
        self.finish()
        return exit_code(self.proc.returncode)

    def finish(self) -> None:
        """The container ended: what the attachers have not got yet goes (briefly), then they
        are disconnected, which ends their sessions."""
        self.sel.unregister(self.listener)
        self.listener.close()
        try:
            os.unlink(self.opts.socket)
        except OSError:
            pass
        deadline = time.monotonic() + 1.0
        for attacher in list(self.attachers.values()):
            attacher.sock.setblocking(True)
            attacher.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                attacher.sock.sendall(attacher.pending)
            except OSError:
                pass
            attacher.sock.close()
        self.attachers.clear()


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    holder = Holder(opts)
    holder.listen()
    holder.start()
    return holder.run()


if __name__ == "__main__":
    sys.exit(main())
