"""Detached processes with pid files, found again by pid file or by state-dir command line, and stopped."""

from __future__ import annotations

import subprocess
import sys
import time

from knet.cluster import processes
from knet.cluster.down import processes_of, remove_tree
from knet.cluster.paths import ClusterPaths


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_spawn_records_and_stop_kills(tmp_path):
    paths = ClusterPaths(tmp_path / "c1")
    record = processes.spawn("sleeper", [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"],
                             pids_dir=paths.pids, logs_dir=paths.logs)
    try:
        assert record.alive
        assert processes.read_records(paths.pids) == [record]
        assert wait_until(lambda: (paths.logs / "sleeper.log").read_text() == "hi\n")
    finally:
        processes.stop([record], grace_seconds=2)
    assert not record.alive


def test_a_reused_pid_is_not_ours(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = processes.proc_start_time(proc.pid)
        stranger = processes.ProcessRecord("x", proc.pid, (start or 0) + 1)
        assert not stranger.alive
        processes.stop([stranger], grace_seconds=0.2)
        assert proc.poll() is None  # untouched
    finally:
        proc.kill()
        proc.wait()


def test_processes_naming_the_state_dir_are_found(tmp_path):
    paths = ClusterPaths(tmp_path / "c2")
    marker_arg = f"--data-dir={paths.root}/data"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker_arg])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"--data-dir={tmp_path}/c22"])
    try:
        # until exec() the child still shows pytest's command line
        assert wait_until(lambda: proc.pid in {r.pid for r in processes_of(paths)})
        assert wait_until(lambda: f"--data-dir={tmp_path}/c22" in " ".join(processes.proc_cmdline(other.pid)))
        assert other.pid not in {r.pid for r in processes_of(paths)}
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()


def test_remove_tree(tmp_path):
    root = tmp_path / "state"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    (root / "link").symlink_to(tmp_path)  # a symlink is removed, never followed
    remove_tree(root)
    assert not root.exists()
    assert tmp_path.exists()


def test_components_are_told_apart_by_title_or_knet_command():
    # Retitled as kubeadm's binaries (knet.proctitle), as proc_cmdline reads their titles back.
    assert processes.component_of(["kube-apiserver", "--secure-port=6443"]) == "apiserver"
    assert processes.component_of(["/usr/bin/kubelet", "--hostname-override=node01"]) == "kubelet"
    assert processes.component_of(["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"]) \
        == "kube-proxy"
    assert processes.component_of(["/coredns", "-conf", "/etc/coredns/Corefile"]) == "dns"
    assert processes.component_of(["/usr/local/bin/knet-cni-agent", "--ipalloc-range=10.244.0.0/16"]) == "cni-agent"
    # Before the title is set, or run by hand.
    assert processes.component_of([sys.executable, "/usr/bin/knet", "as-binary", "kube-controller-manager",
                                   "--v=2"]) == "controller-manager"
    assert processes.component_of(["/usr/bin/knet", "as-binary", "/usr/bin/kubelet", "--v=2"]) == "kubelet"
    assert processes.component_of(["/usr/bin/knet", "as-binary", "--image=registry.k8s.io/kube-apiserver:v1.29.0",
                                   "kube-apiserver", "--v=2"]) == "apiserver"
    assert processes.component_of(["/usr/bin/knet", "kubelet", "--hostname-override=node01"]) == "kubelet"
    assert processes.component_of([sys.executable, "/usr/bin/knet", "scheduler", "--v=2"]) == "scheduler"
    # Not components: a binary's name further on is an argument, not the program.
    assert processes.component_of(["/usr/bin/sleep", "60"]) is None
    assert processes.component_of(["tail", "-f", "/var/log/kube-proxy"]) is None
    assert processes.component_of(["knet-supervise", "--state=/s/nodes/node01/kubelet.supervisor",
                                   "--argv-file=/s/nodes/node01/kubelet.argv"]) is None
    assert processes.component_of(["/usr/bin/knet", "as-binary"]) is None
