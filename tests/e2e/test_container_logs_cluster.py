"""Container logs on a real cluster (runc containers) as on a kubeadm node with containerd: the
files under /var/log/pods (and /var/log/containers) hold CRI records (`<RFC3339Nano> <stream> <F|P>
<text>`, stdout and stderr apart, a line over 16 KiB split into P records); `crictl logs` in the
node reads them with its flags (-f follows); and the container's log writer keeps stamping what the container
prints while its kubelet is dead and restarting."""

from __future__ import annotations

import os
import re
import secrets
import signal
import time

import pytest
import yaml

from knet.cluster.processes import component_of, proc_cmdline
from knet.node import crilog

from .cluster_namespaces import cluster_namespace, wait_running

pytestmark = pytest.mark.e2e
RECORD = re.compile(r"^(\S+) (stdout|stderr) ([FP]) (.*)$")
SCRIPT = ("head -c 20000 /dev/zero | tr '\\0' x; echo; i=0; "
          "while :; do i=$((i+1)); echo out $i; echo err $i >&2; sleep 0.5; done")


def ok(cluster, node: str, script: str) -> str:
    p = cluster.ssh(node, "sh", "-c", script, timeout=30)
    assert p.returncode == 0, (script, p.stdout, p.stderr)
    return p.stdout


def _kubelet_pids(cluster, node: str) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and component_of(argv := proc_cmdline(int(e))) == "kubelet"
            and f"--root-dir={cluster.state_dir / cluster.name / 'nodes' / node}" in argv]


@pytest.fixture(scope="module")
def ticker(knet_cluster):
    with cluster_namespace(knet_cluster, f"clogs-{secrets.token_hex(3)}") as ns:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker", "namespace": ns},
               "spec": {"nodeName": "node01", "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", SCRIPT]}]}}
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        wait_running(knet_cluster, ns, "ticker")
        uid = knet_cluster.kubectl("get", "pod", "ticker", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
        knet_cluster.wait_for("a few lines", lambda: "out 3\n" in knet_cluster.kubectl(
            "logs", "ticker", "-n", ns, check=False).stdout, timeout=30, interval=0.5)
        yield ns, f"/var/log/pods/{ns}_ticker_{uid}/main/0.log"


def _records(text: str) -> list[tuple[crilog.Stamp, str, str, str]]:
    out = []
    for line in text.splitlines():
        m = RECORD.match(line)
        assert m, line[:200]
        out.append((crilog.parse_time(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return out


def test_the_node_holds_cri_records(knet_cluster, ticker):
    ns, path = ticker
    records = _records(ok(knet_cluster, "node01", f"cat {path}"))
    # The 20000-byte line: one P record of 16 KiB, then the rest in an F record.
    # Each stream in its own order (two pipes: across them, the order of reads decides).
    stdout = [(t, x) for _, s, t, x in records if s == "stdout"]
    assert [(t, len(x)) for t, x in stdout[:2]] == [("P", 16384), ("F", 20000 - 16384)]
    assert stdout[2:5] == [("F", f"out {i}") for i in (1, 2, 3)]
    assert [(t, x) for _, s, t, x in records if s == "stderr"][:3] == [("F", f"err {i}") for i in (1, 2, 3)]
    stamps = [s.ns for s, _, _, x in records if x.startswith("out ")]
    assert all(0.3e9 < b - a < 2e9 for a, b in zip(stamps, stamps[1:], strict=False))  # stamped as printed
    # /var/log/containers' link is the same file, as a log shipper tails it.
    link = ok(knet_cluster, "node01", f"ls /var/log/containers/ticker_{ns}_main-*.log").strip()
    inodes = ok(knet_cluster, "node01", f"stat -L -c %d:%i {link} {path}").split()
    assert len(inodes) == 2 and inodes[0] == inodes[1], inodes


def test_crictl_logs_flags(knet_cluster, ticker):
    ns, _ = ticker
    cid = ok(knet_cluster, "node01", f"crictl ps -q --name '^main$' --pod $(crictl pods -q --name '^ticker$' --namespace {ns})").split()[0]
    lines = ok(knet_cluster, "node01", f"crictl logs --tail 4 --timestamps {cid} 2>&1").splitlines()
    assert len(lines) == 4 and {line.split(" ", 1)[1].split()[0] for line in lines} == {"out", "err"}
    for line in lines:
        assert len(line.split()[0]) == len("2026-12-05T06:49:55.271636792Z")  # RFC3339NanoFixed
        crilog.parse_time(line.split()[0])
    only_out = ok(knet_cluster, "node01", f"crictl logs --tail 4 {cid} 2>/dev/null").splitlines()
    assert len(only_out) == 2 and all(line.startswith("out ") for line in only_out)  # stderr went to stderr
    recent = ok(knet_cluster, "node01", f"crictl logs --since 2s {cid} 2>&1").splitlines()
    everything = ok(knet_cluster, "node01", f"crictl logs {cid} 2>&1").splitlines()
    last = max(int(line.split()[1]) for line in everything if line.startswith("out "))
    assert recent and len(recent) < len(everything) and "out 1" not in recent, recent
    assert all(int(line.split()[1]) >= last - 6 for line in recent), (last, recent)  # ~2 lines a second
    limited = ok(knet_cluster, "node01", f"crictl logs --limit-bytes 5 --tail 1 {cid} 2>&1")
    assert len(limited) == 5 and limited[:4] in ("out ", "err "), limited
    # -f: the last record, then the lines as the ticker prints them (2 a second) until ^C.
    followed = ok(knet_cluster, "node01", f"timeout -s INT 2 crictl logs -f --tail 1 {cid} 2>/dev/null; echo rc=$?")
    *lines, rc = followed.splitlines()
    numbers = [int(line.split()[1]) for line in lines]
    assert rc == "rc=124" and len(numbers) >= 3, followed  # timeout's code: it was still following
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), followed


def test_the_writer_keeps_stamping_while_the_kubelet_is_down(knet_cluster, ticker):
    ns, path = ticker
    old = _kubelet_pids(knet_cluster, "node01")
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    killed = time.time()
    knet_cluster.wait_for("a new kubelet of node01", lambda: [p for p in _kubelet_pids(knet_cluster, "node01")
                                                              if p not in old], timeout=20, interval=0.1)
    knet_cluster.wait_for("kubectl logs through the new kubelet", lambda: "out" in knet_cluster.kubectl(
        "logs", "ticker", "-n", ns, "--since=1s", check=False).stdout, timeout=30, interval=0.5)
    records = _records(ok(knet_cluster, "node01", f"cat {path}"))
    outs = [s.ns / 1e9 for s, _, _, x in records if x.startswith("out ")]
    # Lines printed around the kill were written and stamped when printed: no hole in the times.
    around = [t for t in outs if killed - 2 < t < killed + 2]
    assert len(around) >= 6, around
    assert max(b - a for a, b in zip(outs, outs[1:], strict=False)) < 2.0
    # and the container was not restarted
    restarts = knet_cluster.kubectl("get", "pod", "ticker", "-n", ns, "-o",
                                    "jsonpath={.status.containerStatuses[0].restartCount}").stdout
    assert restarts == "0"


def test_follow_ends_with_the_container_and_previous_is_the_last_run(knet_cluster):
    """runc containers: `kubectl logs -f` returns once the container has exited, with every line it
    printed (the writer drains the pipes before the exit is reported); after a restart, --previous
    is the last run's log."""
    with cluster_namespace(knet_cluster, f"clogs2-{secrets.token_hex(3)}") as ns:
        script = "echo run $(cat /proc/sys/kernel/random/uuid); for i in 1 2 3; do echo line $i; sleep 0.5; done; exit 1"
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crasher", "namespace": ns},
               "spec": {"nodeName": "node01", "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]}}
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        wait_running(knet_cluster, ns, "crasher")
        started = time.monotonic()
        followed = knet_cluster.kubectl("logs", "-f", "crasher", "-n", ns, timeout=30)
        assert followed.returncode == 0 and time.monotonic() - started < 15
        lines = followed.stdout.splitlines()
        assert lines[0].startswith("run ") and lines[1:] == ["line 1", "line 2", "line 3"], lines

        def restarted():
            return knet_cluster.kubectl("get", "pod", "crasher", "-n", ns, "-o",
                                        "jsonpath={.status.containerStatuses[0].restartCount}", check=False).stdout >= "1"

        knet_cluster.wait_for("crasher restarted", restarted, timeout=60, interval=0.5)
        previous = knet_cluster.kubectl("logs", "--previous", "crasher", "-n", ns).stdout.splitlines()
        current = knet_cluster.kubectl("logs", "crasher", "-n", ns).stdout.splitlines()
        assert previous[1:] == ["line 1", "line 2", "line 3"] and previous[0].startswith("run ")
        assert current and current[0].startswith("run ") and current[0] != previous[0]
