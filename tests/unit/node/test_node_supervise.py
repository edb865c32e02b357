"""The kubelet's supervisor (systemd's Restart=always): a killed kubelet is started again with
back-off; SIGTERM (knet down) stops it for good."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from knet.cluster.processes import proc_start_time as process_start_time
from knet.node.supervise import restart_delay


def test_supervisor_back_off():
    assert restart_delay(0) == 0 and restart_delay(1) == 0.5 and restart_delay(2) == 1.0
    assert restart_delay(20) == 10.0


def test_supervisor_restarts_a_killed_child_and_stops_on_sigterm(tmp_path):
    state = tmp_path / "state"
    argv_file = tmp_path / "argv"
    argv_file.write_text('["sleep", "60"]')  # as knet up writes the kubelet's: `ps` shows it once
    sup = subprocess.Popen([sys.executable, "-m", "knet.node.supervise", "--state", str(state),
                            f"--argv-file={argv_file}"], env={**os.environ})
    try:
        deadline = time.monotonic() + 30  # generous: the unit suite runs in parallel on 2 cores
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        first = int(state.read_text().split()[0])
        os.kill(first, 9)
        while time.monotonic() < deadline:
            pid, restarts = map(int, state.read_text().split())
            if pid != first:
                break
            time.sleep(0.05)
        assert pid != first and restarts == 1 and process_start_time(pid) is not None
        sup.terminate()  # knet down: the child stops and is not started again
        code = sup.wait(timeout=10)
        assert code == 143, code
        time.sleep(0.2)
        assert process_start_time(pid) is None
        assert int(state.read_text().split()[0]) == pid
    finally:
        sup.kill()
        sup.wait()
