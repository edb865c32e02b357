"""Containers that take stdin (issue #16 item 3): `kubectl run -it --rm`, `kubectl attach -it`
and `-i` with typed or piped input, as on a kubeadm cluster (containerd): a `stdin: true`
container's stdin stays open between attachers, `stdinOnce` closes it after the first one, a
`tty: true` container runs on a terminal whose output also goes to its log; stdin sent to a
container without `stdin: true` never arrives; attaching needs `create` on pods/attach."""

from __future__ import annotations

import fcntl
import os
import pty
import secrets
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

import pytest
import yaml

from .cluster_namespaces import cluster_namespace, wait_running
from .test_kubelet_restart_cluster import _kubelet_pids
from .test_spdy_streaming_cluster import KUBECTL_129

pytestmark = pytest.mark.e2e


class Terminal:
    """kubectl on a pseudo-terminal of the test's, as a user types at it."""

    def __init__(self, cluster, *args: str, kubectl: str = "kubectl") -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen([kubectl, "--context", cluster.context, *args], env=cluster.env,
                                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def read_until(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {self.seen.decode(errors='replace')!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: kubectl ended
                data = b""
            assert data, f"kubectl ended before {text!r}: {self.seen.decode(errors='replace')!r}"
            self.seen += data
        return self.seen.decode(errors="replace")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 60.0) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None or select.select([self.master], [], [], 0)[0]:
            assert time.monotonic() < deadline, f"kubectl did not end: {self.seen.decode(errors='replace')!r}"
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data and self.proc.poll() is not None:
                    break
                self.seen += data
        os.close(self.master)
        return self.proc.returncode, self.seen.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def ns(knet_cluster):
    with cluster_namespace(knet_cluster, f"attach-{secrets.token_hex(3)}") as name:
        yield name


def _pod(name: str, ns: str, command: list[str], **container) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                           "spec": {"terminationGracePeriodSeconds": 0, "restartPolicy": "Never",
                                    "containers": [{"name": "main", "image": "busybox:1.36", "command": command,
                                                    **container}]}})


def _apply(cluster, manifest: str) -> None:
    subprocess.run(["kubectl", "--context", cluster.context, "apply", "-f", "-"], input=manifest, env=cluster.env,
                   text=True, check=True, capture_output=True, timeout=30)


def _require(kubectl: str) -> None:
    if not os.access(shutil.which(kubectl) or kubectl, os.X_OK):
        raise AssertionError(f"{kubectl} is missing: this test needs kubectl 1.29 (SPDY) from the Google Cloud SDK")


@pytest.mark.parametrize("kubectl", ["kubectl", KUBECTL_129], ids=["websocket", "spdy"])
def test_run_it_rm_is_a_shell_and_deletes_the_pod(knet_cluster, ns, kubectl):
    _require(kubectl)
    term = Terminal(knet_cluster, "run", "-it", "--rm", "debug", "-n", ns, "--image=busybox",
                    "--restart=Never", "--", "sh", kubectl=kubectl)
    try:
        term.read_until("If you don't see a command prompt, try pressing enter.")
        term.type("echo typed-$((6*7)) > /tmp/f; cat /tmp/f; tty\r")
        out = term.read_until("typed-42\r\n")
        term.read_until("/dev/pts/")  # the container's own terminal
        term.type("exit\r")
        code, out = term.wait()
    finally:
        term.close()
    assert code == 0, out
    assert 'pod "debug" deleted' in out, out
    gone = knet_cluster.kubectl("get", "pod", "debug", "-n", ns, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr, gone


def test_attach_it_detach_and_attach_again(knet_cluster, ns):
    _apply(knet_cluster, _pod("shell", ns, ["sh"], stdin=True, tty=True))
    wait_running(knet_cluster, ns, "shell")
    first = Terminal(knet_cluster, "attach", "-it", "shell", "-n", ns)
    try:
        first.read_until("If you don't see a command prompt, try pressing enter.")
        first.type("KEPT=still-here; echo first-$((2+3))\r")
        first.read_until("first-5\r\n")
    finally:
        first.close()  # the user's terminal goes away: the session ends, the container runs on
    time.sleep(1)
    phase = knet_cluster.kubectl("get", "pod", "shell", "-n", ns, "-o",
                                 "jsonpath={.status.phase} {.status.containerStatuses[0].restartCount}").stdout
    assert phase == "Running 0", phase
    second = Terminal(knet_cluster, "attach", "-it", "shell", "-n", ns)
    try:
        second.read_until("If you don't see a command prompt, try pressing enter.")
        second.type("echo $KEPT; stty size\r")
        second.read_until("still-here\r\n")
        second.read_until("40 120")  # kubectl sized the container's terminal as its own
    finally:
        second.close()
    # A terminal's output is the container's log too (as containerd's shim writes it).
    logs = knet_cluster.kubectl("logs", "shell", "-n", ns).stdout
    assert "first-5" in logs and "still-here" in logs, logs


@pytest.mark.parametrize("kubectl", ["kubectl", KUBECTL_129], ids=["websocket", "spdy"])
def test_attach_i_piped_stdin_once(knet_cluster, ns, kubectl):
    # stdinOnce without a terminal: the end of the attacher's stdin is the container's, and the
    # output goes on until the container ends (containerd's Attach). kubectl 1.29 speaks SPDY.
    _require(kubectl)
    _apply(knet_cluster, _pod("reader", ns, ["sh", "-c", 'while read l; do echo "got:$l"; done; echo "stdin closed"'],
                              stdin=True, stdinOnce=True))
    wait_running(knet_cluster, ns, "reader")
    done = subprocess.run([kubectl, "--context", knet_cluster.context, "attach", "-i", "reader", "-n", ns],
                          input="alpha\nbeta\n", env=knet_cluster.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    assert done.stdout.splitlines()[-3:] == ["got:alpha", "got:beta", "stdin closed"], done
    knet_cluster.wait_for("reader Succeeded", lambda: knet_cluster.kubectl(
        "get", "pod", "reader", "-n", ns, "-o", "jsonpath={.status.phase}").stdout == "Succeeded", timeout=30)


def test_attach_i_piped_stdin_stays_open_without_stdin_once(knet_cluster, ns):
    # Without stdinOnce the end of an attacher's stdin ends its session only: the container's
    # stdin stays open and the next attacher writes to the same shell.
    _apply(knet_cluster, _pod("keeper", ns, ["sh"], stdin=True))
    wait_running(knet_cluster, ns, "keeper")
    for line in ("X=persisted; echo first:$X\n", "echo second:$X\n"):
        done = subprocess.run(["kubectl", "--context", knet_cluster.context, "attach", "-i", "keeper", "-n", ns],
                              input=line, env=knet_cluster.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
    knet_cluster.wait_for("both lines in the log", lambda: "first:persisted\nsecond:persisted\n" in knet_cluster.kubectl(
        "logs", "keeper", "-n", ns).stdout, timeout=20, interval=0.5)
    phase = knet_cluster.kubectl("get", "pod", "keeper", "-n", ns, "-o",
                                 "jsonpath={.status.phase} {.status.containerStatuses[0].restartCount}").stdout
    assert phase == "Running 0", phase


def test_attach_i_to_a_container_without_stdin_delivers_nothing(knet_cluster, ns):
    # containerd drops an attacher's stdin when the container has none (its stdin is closed):
    # the output streams, the input never arrives.
    _apply(knet_cluster, _pod("closed", ns, ["sh", "-c", 'while true; do if read l; then echo "got:$l"; fi; '
                                             'echo tick; sleep 0.3; done']))
    wait_running(knet_cluster, ns, "closed")
    proc = subprocess.Popen(["kubectl", "--context", knet_cluster.context, "attach", "-i", "closed", "-n", ns],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=knet_cluster.env,
                            text=True)
    proc.stdin.write("secret\n")
    proc.stdin.flush()
    time.sleep(3)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert out.count("tick") >= 3, (out, err)
    assert "got:" not in out, (out, err)
    # -t to a container without a terminal: kubectl's own refusal, then the output as above.
    term = Terminal(knet_cluster, "attach", "-it", "closed", "-n", ns)
    try:
        text = term.read_until("tick")
        assert "error: Unable to use a TTY - container main did not allocate one" in text, text
    finally:
        term.close()


def test_attach_needs_create_on_pods_attach(knet_cluster, ns):
    _apply(knet_cluster, _pod("guarded", ns, ["sh"], stdin=True, tty=True))
    wait_running(knet_cluster, ns, "guarded")
    knet_cluster.kubectl("create", "role", "pod-viewer", "--verb=get,list,watch", "--resource=pods", "-n", ns)
    knet_cluster.kubectl("create", "rolebinding", "eve-views", "--role=pod-viewer", "--user=eve", "-n", ns)
    denied = subprocess.run(["kubectl", "--context", knet_cluster.context, "attach", "-i", "guarded", "-n", ns,
                             "--as=eve"], input="touch /tmp/pwned\n", env=knet_cluster.env, capture_output=True,
                            text=True, timeout=60)
    assert denied.returncode == 1, denied
    assert f'User "eve" cannot create resource "pods/attach" in API group "" in the namespace "{ns}"' \
        in denied.stderr, denied.stderr
    probe = knet_cluster.kubectl("exec", "guarded", "-n", ns, "--", "sh", "-c", "test -e /tmp/pwned && echo yes || echo no")
    assert probe.stdout.strip() == "no"


def test_stdin_outlives_a_kubelet_restart(knet_cluster, ns):
    # The holder, like containerd's shim, is not the kubelet's: a kubelet killed with SIGKILL
    # comes back, re-adopts the container and attaches to the same open stdin and terminal.
    c = knet_cluster
    manifest = yaml.safe_load(_pod("survivor", ns, ["sh"], stdin=True, tty=True))
    manifest["spec"]["nodeName"] = "node01"
    _apply(c, yaml.safe_dump(manifest))
    wait_running(c, ns, "survivor")
    before = c.kubectl("get", "pod", "survivor", "-n", ns, "-o", "jsonpath={.status.containerStatuses[0].containerID}").stdout
    first = Terminal(c, "attach", "-it", "survivor", "-n", ns)
    try:
        first.read_until("If you don't see a command prompt, try pressing enter.")
        first.type("KEPT=across-restart; echo set-$((1+1))\r")
        first.read_until("set-2\r\n")
    finally:
        first.close()
    old = _kubelet_pids(c, "node01")
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    c.wait_for("a new kubelet of node01", lambda: [p for p in _kubelet_pids(c, "node01") if p not in old],
               timeout=15, interval=0.1)

    def attach_again() -> str:
        term = Terminal(c, "attach", "-it", "survivor", "-n", ns)
        try:
            term.read_until("If you don't see a command prompt, try pressing enter.", timeout=10)
            term.type("echo kept:$KEPT\r")
            return term.read_until("kept:across-restart\r\n", timeout=10)
        finally:
            term.close()

    c.wait_for("attach through the new kubelet", attach_again, timeout=30, interval=1)
    after = c.kubectl("get", "pod", "survivor", "-n", ns, "-o",
                      "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
    assert after.stdout == f"{before} 0", after.stdout


def test_attach_to_an_unknown_container_is_a_bad_request(knet_cluster, ns):
    # kubectl checks the container itself; the API refuses as kube-apiserver's streamLocation,
    # here through the `kubernetes` client's WebSocket attach.
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    _apply(knet_cluster, _pod("known", ns, ["sh"], stdin=True))
    wait_running(knet_cluster, ns, "known")
    core = client.CoreV1Api(config.new_client_from_config(str(knet_cluster.kubeconfig), context=knet_cluster.context))
    with pytest.raises(ApiException) as refused:
        stream(core.connect_get_namespaced_pod_attach, "known", ns, container="nope", stdin=True, stdout=True,
               tty=False)
    assert "400" in str(refused.value) and "container nope is not valid for pod known" in str(refused.value), \
        str(refused.value)
    # The known container, through the same client: its stdin arrives.
    ws = stream(core.connect_get_namespaced_pod_attach, "known", ns, container="main", stdin=True, stdout=True,
                stderr=True, tty=False, _preload_content=False)
    try:
        ws.write_stdin("echo via-client-$((3*3))\n")
        seen = ""
        deadline = time.monotonic() + 20
        while "via-client-9" not in seen and time.monotonic() < deadline:
            ws.update(timeout=1)
            seen += ws.read_stdout() if ws.peek_stdout() else ""
        assert "via-client-9" in seen, seen
    finally:
        ws.close()
