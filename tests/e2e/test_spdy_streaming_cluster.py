"""kubectl 1.29 (SPDY/3.1) on `knet up --dataplane real`: exec and cp into a runc container,
attach to one, and port-forward to a server that listens on 127.0.0.1 inside its pod (reachable
only because the kubelet connects from within the pod's network namespace, as containerd does)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
import urllib.request

import pytest
import yaml

from .cluster_namespaces import busybox_pod, cluster_namespace, wait_running

pytestmark = pytest.mark.e2e
KUBECTL_129 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29"


def kubectl129(cluster, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(cluster, *args), env=cluster.env, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 30), **kw)


def _argv(cluster, *args: str) -> list[str]:
    if not os.access(KUBECTL_129, os.X_OK):
        raise AssertionError(f"{KUBECTL_129} is missing: these tests need kubectl 1.29 (SPDY) from the Google Cloud SDK")
    return [KUBECTL_129, "--context", cluster.context, *args]


@pytest.fixture(scope="module")
def ns(knet_cluster):
    with cluster_namespace(knet_cluster, f"spdy-{secrets.token_hex(3)}") as name:
        shell = busybox_pod("shell", name)
        ticker = busybox_pod("ticker", name)
        ticker["spec"]["containers"][0]["command"] = [
            "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
        web = busybox_pod("web", name)
        web["spec"]["containers"][0]["command"] = [
            "sh", "-c", "mkdir -p /tmp/www && echo hello from the pod > /tmp/www/index.html && cd /tmp/www && "
                        "exec python3 -m http.server 8080 --bind 127.0.0.1"]
        for pod in (shell, ticker, web):
            knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        for pod in ("shell", "ticker", "web"):
            wait_running(knet_cluster, name, pod)
        yield name


def test_exec_and_cp(knet_cluster, ns, tmp_path):
    p = kubectl129(knet_cluster, "exec", "-n", ns, "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (p.returncode, p.stdout, p.stderr) == (7, "out\n", "err\ncommand terminated with exit code 7\n")
    p = kubectl129(knet_cluster, "exec", "-i", "-n", ns, "shell", "--", "wc", "-c", input="x" * 200000)
    assert (p.returncode, p.stdout.strip()) == (0, "200000"), p.stderr
    src = tmp_path / "up.txt"
    src.write_text("up\n" * 5000)
    p = kubectl129(knet_cluster, "cp", str(src), f"{ns}/shell:/tmp/up.txt")
    assert p.returncode == 0, p.stderr
    p = kubectl129(knet_cluster, "cp", f"{ns}/shell:/tmp/up.txt", str(tmp_path / "down.txt"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "down.txt").read_text() == src.read_text()


def test_attach(knet_cluster, ns):
    proc = subprocess.Popen(_argv(knet_cluster, "attach", "-n", ns, "ticker"), env=knet_cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    ticks = [int(n) for n in re.findall(r"^tick (\d+)$", out, re.M)]
    assert len(ticks) >= 5 and ticks == list(range(ticks[0], ticks[0] + len(ticks))), (out, err)


def test_port_forward_reaches_localhost_in_the_pod(knet_cluster, ns):
    proc = subprocess.Popen(_argv(knet_cluster, "port-forward", "-n", ns, "pod/web", ":8080"), env=knet_cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/index.html", timeout=10) as r:
                assert r.read() == b"hello from the pod\n"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
