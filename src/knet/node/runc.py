"""The `runc` command line, behind a small interface (RuncCli) with a fake for unit tests.

A container runs as `runc run --bundle DIR ID` in the foreground, a child of the kubelet: its
stdout/stderr are the container's (runc hands its own descriptors to the container process,
so they go to the log file), it exits with the container's exit code (128+N for a signal), and
it removes the container when the process ends. Signals go through `runc kill` (killing the
runc process itself would orphan the container); `runc exec` runs a command in a running
container; `runc delete --force` removes what a dead kubelet left behind. Every command takes
`--root STATE`: this node's own state directory, so that clusters and nodes never see each
other's containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from knet.net import spawn
from knet.node import crilogwriter
from knet.node.attachio import Stdio, holder_argv

log = logging.getLogger(__name__)

RUNC = "runc"


class RuncError(RuntimeError):
    pass


class StartError(OSError):
    """The runtime could not start the container's process (a command missing in its root
    filesystem, a mount that fails): the kubelet's RunContainerError, containerd's StartError."""


# runc's own messages (not the container's output) go to this file of the bundle, one JSON
# object a line: an `error` one is why `runc run` failed to start the container.
RUNC_LOG = "runc.log"


def start_error(log_text: str) -> str | None:
    """The message of runc's last error in its JSON log (None: runc reported no error)."""
    message = None
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            message = str(entry["msg"])
    return message


class ContainerProcess(Protocol):
    """What the pod worker holds of a running container (asyncio.subprocess.Process-like)."""

    pid: int
    container_id: str

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...


class RuncCli(Protocol):
    async def run(self, container_id: str, bundle: Path, log_path: Path,
                  stdio: Stdio | None = None) -> ContainerProcess: ...

    async def kill(self, container_id: str, sig: int) -> bool: ...

    def exec_argv(self, container_id: str, env: dict[str, str] | None = None, tty: bool = False,
                  size: tuple[int, int] | None = None) -> list[str]: ...

    async def delete(self, container_id: str) -> None: ...

    async def list(self) -> list[str]: ...


def available() -> bool:
    return shutil.which(RUNC) is not None


# The shim (containerd-shim's job, in a shell): `runc run` in its own session, outliving the
# kubelet; when the container ends it writes the exit code to the bundle's `exit` file (a kubelet
# restarted meanwhile reads it there) and exits with it. Signals go through `runc kill`.
EXIT_FILE = "exit"
_SHIM = '"$@"; code=$?; echo "$code" > "$0.tmp" && mv -f "$0.tmp" "$0"; exit "$code"'


def shim_argv(exit_file: Path, runc_argv: list[str]) -> list[str]:
    return ["/bin/sh", "-c", _SHIM, str(exit_file), *runc_argv]


class RuncProcess:
    """A container's shim, a child of this kubelet: the container's process as the pod worker
    sees it."""

    def __init__(self, cli: RealRunc, container_id: str, proc: asyncio.subprocess.Process,
                 exit_file: Path | None = None) -> None:
        self.cli = cli
        self.container_id = container_id
        self.proc = proc
        self.pid = proc.pid
        self.exit_file = exit_file
        self._signals: set[asyncio.Task] = set()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    def send_signal(self, sig: int) -> None:
        task = asyncio.get_running_loop().create_task(self._signal(sig))
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def _signal(self, sig: int) -> None:
        # Right after `runc run` starts, the container may not exist yet: try again briefly.
        for _ in range(40):
            if self.proc.returncode is not None or await self.cli.kill(self.container_id, sig):
                return
            await asyncio.sleep(0.05)
        if sig == signal.SIGKILL and self.proc.returncode is None:  # last resort: force it away
            await self.cli.delete(self.container_id)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class AdoptedProcess:
    """A container whose shim a previous kubelet started (not our child): waited for by
    polling the shim's pid (with its start time against pid reuse), its exit code then read
    from the shim's exit file."""

    POLL = 0.2

    def __init__(self, cli: RuncCli, container_id: str, pid: int, start_time: int, exit_file: Path) -> None:
        self.cli = cli
        self.container_id = container_id
        self.pid = pid
        self.start_time = start_time
        self.exit_file = exit_file
        self._code: int | None = None
        self._signals: set[asyncio.Task] = set()

    def _poll(self) -> int | None:
        if self._code is None and process_start_time(self.pid) != self.start_time:
            try:
                self._code = int(self.exit_file.read_text().strip())
            except (OSError, ValueError):
                self._code = 137  # the shim died without saying: as containerd's "unknown" exit
        return self._code

    @property
    def returncode(self) -> int | None:
        return self._poll()

    async def wait(self) -> int:
        while (code := self._poll()) is None:
            await asyncio.sleep(self.POLL)
        return code

    def send_signal(self, sig: int) -> None:
        task = asyncio.get_running_loop().create_task(self._signal(sig))
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def _signal(self, sig: int) -> None:
        if not await self.cli.kill(self.container_id, sig) and sig == signal.SIGKILL and self._poll() is None:
            await self.cli.delete(self.container_id)


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (None: gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def container_started(state: Path, start_time_of: Callable[[int], int | None]) -> bool:
    """Whether runc has started the container whose state directory is STATE: its state.json is
    saved, exec.fifo is gone (a created container's init waits on it) and the init process it
    names still runs. The last check matters: runc destroying a container whose start failed
    removes exec.fifo before the state directory, and that window must read as a failed start
    (StartError), not as a container that ran and exited."""
    if (state / "exec.fifo").exists():
        return False
    try:
        saved = json.loads((state / "state.json").read_text())
        pid, started = int(saved["init_process_pid"]), int(saved["init_process_start"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # not saved yet, or half gone
    return start_time_of(pid) == started


class RealRunc:
    def __init__(self, state_dir: str | Path, binary: str = RUNC, log_build_dir: Path | None = None) -> None:
        self.state_dir = str(state_dir)
        self.binary = binary
        self.log_build_dir = log_build_dir or Path(state_dir) / "bin"  # where crilog.c gets built

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.state_dir, *args]

    async def run(self, container_id: str, bundle: Path, log_path: Path, stdio: Stdio | None = None) -> RuncProcess:
        """stdio: the container's stdin/terminal (knet.node.attachio): `runc run` then runs under
        the stdio holder, which the shim starts in its place."""
        os.makedirs(self.state_dir, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        exit_file = bundle / EXIT_FILE
        exit_file.unlink(missing_ok=True)
        runc_log = bundle / RUNC_LOG
        runc_log.unlink(missing_ok=True)
        runc_argv = self._argv("--log", str(runc_log), "--log-format", "json", "run", "--bundle", str(bundle),
                               container_id)
        if stdio is not None:  # containerd's shim part for stdin/tty (attachio): in front of runc
            runc_argv = [*holder_argv(stdio), *runc_argv]
        # The shim's output (the container's) goes through the CRI log writer (crilogwriter),
        # which runs in the same session and outlives the kubelet as the shim does.
        proc = await spawn.spawn(
            [*crilogwriter.argv(self.log_build_dir, log_path), *shim_argv(exit_file, runc_argv)],
            stdin=spawn.DEVNULL, stdout=spawn.DEVNULL, stderr=spawn.DEVNULL, cwd=str(bundle),
            start_new_session=True)
        await self._started(container_id, proc)
        if proc.returncode is not None:  # ended already: its own exit, or runc failed to start it
            try:
                message = start_error(runc_log.read_text())
            except OSError:
                message = None
            if message is not None:
                raise StartError(message)
        return RuncProcess(self, container_id, proc, exit_file)

    async def _started(self, container_id: str, proc: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
        """Return once the container's process runs (as CRI's StartContainer does), so that
        Running is true when reported and `runc exec` finds the container: runc has saved its
        state.json and removed exec.fifo (a created container waits on it), or `runc run`
        ended (a failed start: its exit code and log tell)."""
        state = Path(self.state_dir) / container_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while proc.returncode is None and loop.time() < deadline:
            if container_started(state, process_start_time):
                return
            await asyncio.sleep(0.005)

    async def _call(self, *args: str) -> tuple[int, str]:
        proc = await spawn.spawn(self._argv(*args), stdin=spawn.DEVNULL, stdout=spawn.PIPE, stderr=spawn.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace").strip()

    async def kill(self, container_id: str, sig: int) -> bool:
        code, _ = await self._call("kill", container_id, str(int(sig)))
        return code == 0

    def exec_argv(self, container_id: str, env: dict[str, str] | None = None, tty: bool = False,
                  size: tuple[int, int] | None = None) -> list[str]:
        """argv prefix running a command (appended) in the container, with its user, env,
        capabilities and seccomp profile (runc exec starts from the container's process spec).
        tty: a terminal of the container's own (`-t`), relayed by runc to its stdin/stdout
        (which must then be a terminal; its size follows on SIGWINCH; `size`: (rows, cols) to
        start with); without it, runc relays the command's stdio through pipes."""
        extra = [arg for k, v in (env or {}).items() for arg in ("--env", f"{k}={v}")]
        argv = self._argv("exec", *(["-t"] if tty else []), *extra, container_id)
        if tty and size:
            # runc sizes the container's terminal only after the command started (a race with
            # its first `stty size`): set the client's initial size first, then become the command.
            argv += ["/bin/sh", "-c", 'stty rows "$1" cols "$2" 2>/dev/null; shift 2; exec "$@"', "sh",
                     str(size[0]), str(size[1])]
        return argv

    async def delete(self, container_id: str) -> None:
        await self._call("delete", "--force", container_id)

    async def list(self) -> list[str]:
        if not os.path.isdir(self.state_dir):
            return []
        code, out = await self._call("list", "--format", "json")
        if code != 0:
            raise RuncError(f"runc list: {out}")
        return [c["id"] for c in json.loads(out or "null") or []]


class FakeProcess:
    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.pid = 0
        self._done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.signals: list[int] = []

    @property
    def returncode(self) -> int | None:
        return self._done.result() if self._done.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._done)

    def exit(self, code: int) -> None:
        if not self._done.done():
            self._done.set_result(code)

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.exit(128 + sig)


class FakeRunc:
    """In-memory runc for unit tests: containers are futures; a signal ends one (128+N)."""

    def __init__(self) -> None:
        self.containers: dict[str, FakeProcess] = {}
        self.bundles: dict[str, dict] = {}
        self.stdio: dict[str, Stdio | None] = {}
        self.deleted: list[str] = []

    async def run(self, container_id: str, bundle: Path, log_path: Path,
                  stdio: Stdio | None = None) -> FakeProcess:
        self.stdio[container_id] = stdio
        self.bundles[container_id] = json.loads((bundle / "config.json").read_text())
        proc = FakeProcess(container_id)
        self.containers[container_id] = proc
        return proc

    async def kill(self, container_id: str, sig: int) -> bool:
        proc = self.containers.get(container_id)
        if proc is None or proc.returncode is not None:
            return False
        proc.send_signal(sig)
        return True

    def exec_argv(self, container_id: str, env: dict[str, str] | None = None, tty: bool = False,
                  size: tuple[int, int] | None = None) -> list[str]:
        return ["fake-runc", "exec", *(["-t"] if tty else []), container_id]

    async def delete(self, container_id: str) -> None:
        self.deleted.append(container_id)
        proc = self.containers.pop(container_id, None)
        if proc is not None:
            proc.exit(137)

    async def list(self) -> list[str]:
        return [cid for cid, p in self.containers.items() if p.returncode is None]
