"""knet.net.spawn: children started and reaped without blocking the loop, on asyncio's loop and on
uvloop (every knet component runs on uvloop), behaving as asyncio.subprocess.Process does."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import uvloop

from knet.net import spawn


def run_on(loop_kind: str, coro_fn):
    if loop_kind == "uvloop":
        return uvloop.run(coro_fn())
    return asyncio.run(coro_fn())


LOOPS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_exit_code_and_output(loop_kind):
    async def main():
        proc = await spawn.spawn(["/bin/sh", "-c", "cat; echo err >&2; exit 3"], stdin=spawn.PIPE,
                                 stdout=spawn.PIPE, stderr=spawn.PIPE)
        assert isinstance(proc, spawn.Child)
        out, err = await proc.communicate(b"in" * 100_000)  # more than a pipe holds
        return out, err, proc.returncode, await proc.wait()

    out, err, code, waited = run_on(loop_kind, main)
    assert out == b"in" * 100_000
    assert err == b"err\n"
    assert code == waited == 3


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_stderr_to_stdout_and_env_cwd(loop_kind, tmp_path):
    async def main():
        proc = await spawn.spawn(["/bin/sh", "-c", 'echo "$X $(pwd)"; echo e >&2'], stdin=spawn.DEVNULL,
                                 stdout=spawn.PIPE, stderr=spawn.STDOUT, env={"X": "y", "PATH": "/bin:/usr/bin"},
                                 cwd=str(tmp_path))
        out, _ = await proc.communicate()
        return out

    assert run_on(loop_kind, main) == f"y {tmp_path}\ne\n".encode()


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_readline_then_keeps_running_and_signal(loop_kind):
    """The pause's pattern: read one line, the child goes on; a signal ends it (-N as asyncio)."""
    async def main():
        proc = await spawn.spawn(["/bin/sh", "-c", "echo ok; exec sleep 30"], stdout=spawn.PIPE,
                                 start_new_session=True)
        line = await proc.stdout.readline()
        await asyncio.sleep(0.05)
        alive = proc.returncode
        assert os.getsid(proc.pid) == proc.pid  # its own session
        proc.send_signal(signal.SIGKILL)
        code = await proc.wait()
        with pytest.raises(ProcessLookupError):
            proc.kill()
        return line, alive, code

    line, alive, code = run_on(loop_kind, main)
    assert line == b"ok\n"
    assert alive is None
    assert code == -signal.SIGKILL


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_output_to_a_file_and_missing_program(loop_kind, tmp_path):
    async def main():
        with open(tmp_path / "log", "ab", buffering=0) as log:
            proc = await spawn.spawn(["/bin/echo", "logged"], stdin=spawn.DEVNULL, stdout=log, stderr=log)
        code = await proc.wait()
        with pytest.raises(FileNotFoundError):
            await spawn.spawn(["/nonexistent/program"])
        return code

    assert run_on(loop_kind, main) == 0
    assert (tmp_path / "log").read_text() == "logged\n"


def test_no_file_descriptor_leaks():
    async def main():
        await (await spawn.spawn(["/bin/echo"], stdout=spawn.PIPE)).communicate()  # the loop's one-time fds
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            proc = await spawn.spawn(["/bin/sh", "-c", "echo hi; cat >/dev/null"], stdin=spawn.PIPE,
                                     stdout=spawn.PIPE, stderr=spawn.PIPE)
            await proc.communicate(b"x")
        proc = await spawn.spawn(["/bin/true"], stdin=spawn.PIPE)  # stdin never written
        await proc.wait()
        await asyncio.sleep(0.01)
        return before, len(os.listdir("/proc/self/fd"))

    before, after = uvloop.run(main())
    assert after <= before
