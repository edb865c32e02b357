"""A kubelet's supervisor (systemd's Restart=always for kubelet.service): runs the kubelet as its
child and starts it again when it dies, with back-off; SIGTERM/SIGINT stop the kubelet and the
supervisor without a restart, so `knet down` never fights a restart loop.

`python -m knet.node.supervise [--state FILE] (--argv-file FILE | -- ARGV...)`. --state: a file
this supervisor keeps as "CHILD_PID RESTARTS" (the child's pid as seen in this supervisor's PID
namespace). --argv-file: the child's argv as a JSON list (so that `ps` in the node shows the
kubelet's command line once, on the kubelet). Its own process is titled `knet-supervise
--state=… --argv-file=…` (what it is, rather than `python3 -m knet.node.supervise …`). Stdlib
and setproctitle only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # a child that ran this long starts the back-off afresh
TITLE = "knet-supervise"


def restart_delay(failures: int) -> float:
    """Delay before the next start after `failures` quick deaths in a row (0: at once)."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (failures - 1))


def _write_state(path: str | None, pid: int, restarts: int) -> None:
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{pid} {restarts}\n")
    os.replace(tmp, path)


def supervise(argv: list[str], state: str | None = None) -> int:
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failures = restarts = 0
    code = 0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        _write_state(state, child.pid, restarts)
        code = child.wait()
        if stopping:
            break
        failures = 0 if time.monotonic() - started > STABLE_AFTER else failures + 1
        delay = restart_delay(failures)
        print(f"supervise: {argv[0]} exited ({code}); restarting in {delay:.1f}s", file=sys.stderr, flush=True)
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)
        restarts += 1
    return code if code >= 0 else 128 - code


def main() -> None:
    parser = argparse.ArgumentParser(prog="knet.node.supervise")
    parser.add_argument("--state")
    parser.add_argument("--argv-file")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if args.argv_file:
        with open(args.argv_file) as f:
            argv = [str(a) for a in json.load(f)]
    if not argv:
        parser.error("nothing to supervise")
    from knet.proctitle import set_title

    set_title([TITLE, *sys.argv[1:]])
    sys.exit(supervise(argv, args.state))


if __name__ == "__main__":
    main()
