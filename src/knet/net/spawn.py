"""Child processes started from the event loop without stalling it.

Every knet component runs on uvloop, whose `create_subprocess_exec` starts a child with fork()
and then waits, on the loop's thread, until the child has called exec. In a kubelet of ~60 MB
that wait took 3 ms on a quiet machine and 10-15 ms on a busy one, once per pause, CNI plugin
and runc shim of every pod: the whole node's pods stalled meanwhile (profiled in
docs/performance.md). `spawn` starts the child with subprocess.Popen instead (vfork: the
parent waits only while the child execs, ~0.2 ms) and waits for its exit through a pidfd that
the loop polls, so nothing else of the kubelet waits for a child.

`Child` offers what the node uses of asyncio.subprocess.Process: pid, returncode, wait(),
communicate(), stdout/stderr as StreamReaders, send_signal/terminate/kill. Without pidfds
(Linux < 5.3) `spawn` falls back to asyncio.create_subprocess_exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT


class _PipeReader(asyncio.StreamReaderProtocol):
    """A StreamReader's protocol that lets go of its pipe at EOF (uvloop keeps a read pipe
    open after EOF until it is closed; asyncio closes it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._pipe_transport = transport
        super().connection_made(transport)

    def eof_received(self) -> bool:
        super().eof_received()
        self._pipe_transport.close()
        return False


class Child:
    """A started child process, reaped through its pidfd."""

    def __init__(self, popen: subprocess.Popen, pidfd: int, stdin_fd: int | None,
                 stdout: asyncio.StreamReader | None, stderr: asyncio.StreamReader | None) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdout = stdout
        self.stderr = stderr
        self._stdin_fd = stdin_fd
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._pidfd = pidfd
        # The callback holds this object (and so the Popen) until the child is reaped: a
        # collected Popen would be put on subprocess's list of children to reap behind our back.
        self._loop.add_reader(pidfd, self._reap)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return  # not exited yet
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        code = os.waitstatus_to_exitcode(status)  # -N for a signal, as asyncio's returncode
        self._popen.returncode = code
        if self._stdin_fd is not None:  # never written (no communicate): nobody reads it now
            os.close(self._stdin_fd)
            self._stdin_fd = None
        if not self._exited.done():
            self._exited.set_result(code)

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self._exited.done():
            raise ProcessLookupError(self.pid)  # as asyncio's once the child is gone
        os.kill(self.pid, sig)  # not reaped yet, so the pid is still this child's

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    async def _write_stdin(self, data: bytes) -> None:
        fd, self._stdin_fd = self._stdin_fd, None
        if fd is None:
            return
        try:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    ready = self._loop.create_future()
                    self._loop.add_writer(fd, ready.set_result, None)
                    try:
                        await ready
                    finally:
                        self._loop.remove_writer(fd)
                except BrokenPipeError:
                    break  # the child does not read its input: as communicate(), not an error
        finally:
            os.close(fd)

    async def communicate(self, input: bytes | None = None) -> tuple[bytes | None, bytes | None]:
        """Write `input` to stdin (then close it), read stdout and stderr to their end, wait."""

        async def read(stream: asyncio.StreamReader | None) -> bytes | None:
            return None if stream is None else await stream.read()

        _, out, err = await asyncio.gather(self._write_stdin(input or b""), read(self.stdout), read(self.stderr))
        await self.wait()
        return out, err


async def spawn(argv: Sequence[str], *, stdin: Any = None, stdout: Any = None, stderr: Any = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None,
                start_new_session: bool = False) -> Child | asyncio.subprocess.Process:
    """Start argv (its program must be a path or on PATH) as asyncio.create_subprocess_exec
    would, without blocking the loop while the child starts. stdin/stdout/stderr: None
    (inherit), PIPE, DEVNULL, STDOUT (stderr only), a file object or an fd."""
    if not hasattr(os, "pidfd_open"):
        return await asyncio.create_subprocess_exec(*argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                                                    cwd=cwd, start_new_session=start_new_session)
    loop = asyncio.get_running_loop()
    to_close: list[int] = []
    parent: dict[str, int] = {}
    child_ends: dict[str, Any] = {}
    try:
        for name, spec in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if spec == PIPE:
                r, w = os.pipe2(os.O_CLOEXEC)
                mine, theirs = (w, r) if name == "stdin" else (r, w)
                parent[name] = mine
                child_ends[name] = theirs
                to_close.append(theirs)
            else:
                child_ends[name] = spec
        popen = subprocess.Popen(list(argv), stdin=child_ends["stdin"], stdout=child_ends["stdout"],
                                 stderr=child_ends["stderr"], env=dict(env) if env is not None else None, cwd=cwd,
                                 start_new_session=start_new_session)
    except BaseException:
        for fd in (*to_close, *parent.values()):
            os.close(fd)
        raise
    for fd in to_close:
        os.close(fd)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:
        # No pidfds after all (seccomp, an old kernel behind a new libc): wait in a thread.
        pidfd = -1
    readers: dict[str, asyncio.StreamReader] = {}
    for name in ("stdout", "stderr"):
        if name in parent:
            reader = asyncio.StreamReader(limit=2**20)
            pipe = open(parent.pop(name), "rb", buffering=0)  # noqa: SIM115 -- the transport owns it
            await loop.connect_read_pipe(lambda r=reader: _PipeReader(r), pipe)
            readers[name] = reader
    stdin_fd = parent.pop("stdin", None)
    if stdin_fd is not None:
        os.set_blocking(stdin_fd, False)
    if pidfd < 0:
        return _ThreadWaited(popen, stdin_fd, readers.get("stdout"), readers.get("stderr"))
    return Child(popen, pidfd, stdin_fd, readers.get("stdout"), readers.get("stderr"))


class _ThreadWaited(Child):
    """A Child waited for by a thread (no pidfd)."""

    def __init__(self, popen: subprocess.Popen, stdin_fd: int | None, stdout: asyncio.StreamReader | None,
                 stderr: asyncio.StreamReader | None) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdout, self.stderr = stdout, stderr
        self._stdin_fd = stdin_fd
        self._loop = asyncio.get_running_loop()
        self._exited = self._loop.create_future()
        self._waiter = self._loop.create_task(self._wait_thread())

    async def _wait_thread(self) -> None:
        code = await asyncio.to_thread(self._popen.wait)
        with contextlib.suppress(asyncio.InvalidStateError):
            self._exited.set_result(code)
