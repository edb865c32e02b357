"""Every long-running component stops on SIGTERM (knet.cli.runtime.run_component), also as the
PID 1 of its own PID namespace, where the kernel drops signals the process has no handler for:
as a container's process under runc, `kubectl delete pod` must not wait out the grace period."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

COMPONENT = ("import asyncio, sys\n"
             "from knet.cli.runtime import run_component\n"
             "async def serve():\n"
             "    print('serving', flush=True)\n"
             "    await asyncio.sleep(120)\n"
             "run_component(serve())\n"
             "print('stopped', flush=True)\n")


def _stop(argv: list[str]) -> tuple[int, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "serving\n"
        if argv[0] == "unshare":  # signal the namespace's init, as runc's kill does, not unshare
            children = [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
            os.kill(children[0], signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_stops_a_component():
    assert _stop([sys.executable, "-c", COMPONENT]) == (0, "stopped\n")


def test_sigterm_stops_a_component_that_is_its_pid_namespaces_init():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("needs root and util-linux unshare (as CI has)")
    assert _stop(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", COMPONENT]) == (0, "stopped\n")
