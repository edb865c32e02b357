"""Processes `knet up` starts and `knet down` stops.

Each process runs in its own session (setsid) so it outlives `knet up`, logs to STATE/logs/ and
has a pid file STATE/pids/NAME.pid holding "PID STARTTIME"; the start time (field 22 of
/proc/PID/stat) guards against killing an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from knet import proctitle


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_time: int

    @property
    def alive(self) -> bool:
        return proc_start_time(self.pid) == self.start_time


def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return int(fields[19])


# knet's components as `knet COMMAND …` (before knet.cli.binary retitles them, or run by hand).
KNET_COMMANDS = ("apiserver", "controller-manager", "scheduler", "kubelet", "kube-proxy", "dns",
                 "cni-agent", "netpol-controller")


def component_of(argv: list[str]) -> str | None:
    """The knet command a process runs ("apiserver", "kubelet", ...), whether it shows as
    kubeadm's binary (`kube-apiserver …`, `/usr/bin/kubelet …`: its title, see knet.proctitle)
    or as `knet [as-binary BINARY] COMMAND …` (after the interpreter)."""
    if argv and proctitle.command_of(argv[0]):
        return proctitle.command_of(argv[0])
    if "as-binary" in argv[1:3]:
        binary = [a for a in argv[argv.index("as-binary") + 1:] if not a.startswith("--image")][:1]
        return proctitle.command_of(binary[0]) if binary else None
    return next((a for a in argv[1:4] if a in KNET_COMMANDS), None)


def proc_cmdline(pid: int) -> list[str]:
    """The words of a process's command line, also of a retitled one (knet.proctitle)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return proctitle.cmdline_words(raw)


def spawn(name: str, argv: list[str], *, pids_dir: Path, logs_dir: Path,
          env: dict[str, str] | None = None) -> ProcessRecord:
    """Start argv detached (new session, stdin /dev/null, output to logs/NAME.log)."""
    pids_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    with open(logs_dir / f"{name}.log", "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=env, close_fds=True,
        )
    start = proc_start_time(proc.pid) or 0
    record = ProcessRecord(name, proc.pid, start)
    (pids_dir / f"{name}.pid").write_text(f"{proc.pid} {start}\n")
    # Popen objects would warn about un-reaped children at exit; the child belongs to its own
    # session now and is reaped by init once we are gone.
    proc.returncode = 0
    return record


def read_records(pids_dir: Path) -> list[ProcessRecord]:
    records = []
    if not pids_dir.is_dir():
        return records
    for pid_file in sorted(pids_dir.glob("*.pid")):
        try:
            pid_text, start_text = pid_file.read_text().split()[:2]
            records.append(ProcessRecord(pid_file.stem, int(pid_text), int(start_text)))
        except (ValueError, OSError):
            continue
    return records


def stop(records: list[ProcessRecord], *, grace_seconds: float = 3.0) -> None:
    """SIGTERM each live process's session, then SIGKILL what is left after the grace period."""
    live = [r for r in records if r.alive]
    for r in live:
        _signal_group(r.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while live and time.monotonic() < deadline:
        _reap(live)
        live = [r for r in live if r.alive]
        if live:
            time.sleep(0.05)
    for r in live:
        _signal_group(r.pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_seconds
    while live and time.monotonic() < deadline:
        _reap(live)
        live = [r for r in live if r.alive]
        if live:
            time.sleep(0.02)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # spawn() made each process a session (and group) leader
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(records: list[ProcessRecord]) -> None:
    # Only when `knet up` and `knet down` run in one process (tests, benchmarks) are these our
    # children; otherwise waitpid says so and init reaps them.
    for r in records:
        try:
            os.waitpid(r.pid, os.WNOHANG)
        except ChildProcessError:
            pass
