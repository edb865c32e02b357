"""The process that writes a container's log file: containerd's per-container shim job of
stamping each line the container prints (knet.node.crilog's format), one per container, in the
container's session, so that it keeps writing across a kubelet restart.

`argv(build_dir, log_path)` is the prefix that wraps the container's command (the runc shim, or a
host process): the compiled crilog.c (built once per source version, as pause.c is), else this
module run as a script (same argv, same output). Why a process per container, in C: measured
(README, container logs), the C writer takes 0.17 MiB PSS (1.3 MiB RSS, nearly all shared libc
pages), no CPU while idle and ~1 us a line; this Python twin 13 MiB PSS (21 MiB RSS) and ~8 us a
line: ~190 MiB over knet's ~15 own containers per cluster, against 2.5 MiB. A writer inside the
kubelet would cost nothing extra but would die with the kubelet (what containers print while it
restarts would block or be lost), as containerd keeps its shim apart from containerd itself.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script (-I -S): knet from this file's own tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from knet.node import crilog  # noqa: E402

SOURCE = Path(__file__).with_name("crilog.c")
DRAIN_SECONDS = 2.0  # how long a background process still holding the pipes gets after the command ended
GATE_SECONDS = 5.0
_ARGV: dict[str, list[str]] = {}


def _build(build_dir: Path) -> list[str] | None:
    from knet.node.cbuild import build_c_helper

    return build_c_helper(SOURCE, "knet-crilog", build_dir)


def writer_argv(build_dir: Path | None) -> list[str]:
    """The writer's own argv (LOGFILE MAXLEN COMMAND... follow)."""
    build_dir = build_dir or Path.home() / ".cache" / "knet" / "bin"  # a runtime that has no dir of its own
    key = str(build_dir)
    if key not in _ARGV:
        _ARGV[key] = _build(build_dir) or [sys.executable, "-I", "-S", __file__]
    return _ARGV[key]


def argv(build_dir: Path | None, log_path: Path, max_line: int = crilog.MAX_LINE, gate: bool = False) -> list[str]:
    """The prefix running a command with its output written to log_path in the CRI format.
    gate: the command starts only once the writer's stdin closes (see crilog.c)."""
    return [*writer_argv(build_dir), *(["-g"] if gate else []), str(log_path), str(max_line)]


def main(args: list[str]) -> int:
    """The Python twin of crilog.c (used where no C compiler exists)."""
    gate = args[:1] == ["-g"]
    args = args[1:] if gate else args
    if len(args) < 3:
        sys.stderr.write("usage: crilogwriter [-g] LOGFILE MAXLEN COMMAND [ARG]...\n")
        return 2
    path, max_line, command = args[0], int(args[1]) or crilog.MAX_LINE, args[2:]
    log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    if gate:
        if select.select([0], [], [], GATE_SECONDS)[0]:
            os.read(0, 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            os.write(2, f"crilog: exec {command[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    os.close(out_w)
    os.close(err_w)
    streams = {out_r: [crilog.STDOUT, b""], err_r: [crilog.STDERR, b""]}

    def emit(name: str, records: list[tuple[str, bytes]]) -> None:
        for tag, text in records:
            os.write(log, crilog.encode(crilog.Stamp.now(), name, tag, text))

    import time

    status, deadline = None, None
    while streams:
        timeout = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
        if deadline is not None and timeout == 0:
            break
        ready, _, _ = select.select(list(streams), [], [], timeout)
        for fd in ready:
            name, pending = streams[fd]
            data = os.read(fd, 65536)
            records, streams[fd][1] = crilog.split_output(pending, data, max_line, eof=not data)
            emit(name, records)
            if not data:
                os.close(fd)
                del streams[fd]
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, deadline = st, time.monotonic() + DRAIN_SECONDS
    for name, pending in streams.values():
        emit(name, crilog.split_output(pending, b"", max_line, eof=True)[0])
    if status is None:
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL) if sig not in (signal.SIGKILL, signal.SIGSTOP) else None
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
