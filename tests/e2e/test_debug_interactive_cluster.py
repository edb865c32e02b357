"""`kubectl debug -it` (interactive ephemeral, node and copy debugging over kubectl attach).

NOT collected on the `debug` branch (no test_ prefix): it needs the `stdin` branch's containers
with stdin/tty and the kubelet's attach (tests/e2e/test_attach_stdin_cluster.py's Terminal).
After both are merged, rename it to tests/e2e/test_debug_interactive_cluster.py. It was run
against a tree of `debug` merged with main (stdin merged there) and passed."""

from __future__ import annotations

import json
import secrets

import pytest

from .cluster_namespaces import cluster_namespace, wait_running
from .test_attach_stdin_cluster import Terminal

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(knet_cluster):
    with cluster_namespace(knet_cluster, f"debug-it-{secrets.token_hex(3)}") as name:
        yield name


def _web(cluster, ns: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns},
           "spec": {"nodeName": "node01", "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    wait_running(cluster, ns, "web")


def test_debug_it_is_a_shell_in_the_targets_pid_namespace(knet_cluster, ns):
    _web(knet_cluster, ns)
    # busybox without a command runs its CMD, sh; kubectl attaches once it runs.
    term = Terminal(knet_cluster, "debug", "-it", "web", "-n", ns, "--image=busybox", "--target=app", "-c", "shell")
    try:
        term.read_until("If you don't see a command prompt, try pressing enter.")
        term.type("ps -o pid,args | grep -c 'sleep 3600'; tty\r")
        term.read_until("1\r\n")
        term.read_until("/dev/pts/")
        term.type("exit\r")
        code, out = term.wait()
    finally:
        term.close()
    assert code == 0, out
    obj = json.loads(knet_cluster.kubectl("get", "pod", "web", "-n", ns, "-o", "json").stdout)
    [ec] = obj["spec"]["ephemeralContainers"]
    assert ec["stdin"] is True and ec["tty"] is True
    status = knet_cluster.wait_for("shell terminated", lambda: next(
        (s for s in json.loads(knet_cluster.kubectl("get", "pod", "web", "-n", ns, "-o", "json").stdout)["status"]
         .get("ephemeralContainerStatuses") or [] if "terminated" in s["state"]), None), timeout=30)
    assert status["restartCount"] == 0


def test_debug_it_node_is_a_shell_on_the_node(knet_cluster, ns):
    term = Terminal(knet_cluster, "debug", "-it", "node/node01", "-n", ns, "--image=busybox", "--",
                    "chroot", "/host", "sh")
    try:
        term.read_until("If you don't see a command prompt, try pressing enter.")
        term.type("echo on-$(hostname)\r")
        term.read_until("on-node01\r\n")
        term.type("exit\r")
        code, out = term.wait()
    finally:
        term.close()
    assert code == 0, out
