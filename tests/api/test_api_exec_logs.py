"""pods/log and pods/exec relayed by the apiserver to a real node agent (`knet kubelet
--dataplane=sim`, whose static pod runs as a host process): kubectl logs, kubectl exec over
WebSocket (v5.channel.k8s.io) with stdout, stdin and exit codes, and the errors kubectl shows."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.api

NODE = "relay-node"
KNET = [shutil.which("knet")] if shutil.which("knet") else [sys.executable, "-c", "from knet.cli.main import main; main()"]
STATIC = """
apiVersion: v1
kind: Pod
metadata: {name: echoer, namespace: default}
spec:
  hostNetwork: true
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo started; exec sleep 3600"]
  - name: second
    image: busybox
    command: ["sh", "-c", "exec sleep 3600"]
"""


def wait_for(what: str, fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def node_agent(apiserver, tmp_path_factory):
    root = tmp_path_factory.mktemp("relay-kubelet")
    (root / "manifests").mkdir()
    (root / "manifests" / "echoer.yaml").write_text(STATIC)
    from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key

    crt, key = write_cert_key(root / "pki", "kubelet", issue_cert(
        load_cert_key(apiserver.pki_dir, "ca"), NODE, ip_addresses=["127.0.0.1"], server=True))
    log = open(root / "kubelet.log", "wb")
    proc = subprocess.Popen([*KNET, "kubelet", f"--hostname-override={NODE}", "--node-ip=127.0.0.1",
                             f"--kubeconfig={apiserver.kubeconfig}", f"--root-dir={root / 'node'}",
                             f"--pod-manifest-path={root / 'manifests'}", "--dataplane=sim",
                             "--pod-cidr=10.244.77.0/24", "--address=127.0.0.1", "--port=0",
                             f"--tls-cert-file={crt}", f"--tls-private-key-file={key}",
                             f"--client-ca-file={apiserver.ca_file}",
                             "--register-with-taints=example.com/relay-only:NoSchedule"],
                            stdout=log, stderr=log, start_new_session=True)
    pod = f"echoer-{NODE}"
    try:
        wait_for("mirror pod logs", lambda: "started" in apiserver.kubectl("logs", pod, "-c", "main").stdout)
        yield pod
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        apiserver.kubectl("delete", "node", NODE, "--wait=false")
        apiserver.kubectl("delete", "pod", pod, "--force", "--grace-period=0", "--wait=false")


def test_logs_through_the_apiserver(apiserver, node_agent):
    assert apiserver.kubectl_ok("logs", node_agent, "-c", "main") == "started\n"
    # kubectl picks the first container itself; the API requires a choice for a two-container pod.
    p = apiserver.kubectl("logs", node_agent)
    assert (p.stdout, p.stderr) == ("started\n", 'Defaulted container "main" out of: main, second\n')
    p = apiserver.kubectl("get", "--raw", f"/api/v1/namespaces/default/pods/{node_agent}/log")
    assert p.returncode == 1
    assert "a container name must be specified for pod echoer-relay-node, choose one of: [main second]" in p.stderr
    assert apiserver.kubectl_ok("get", "--raw", f"/api/v1/namespaces/default/pods/{node_agent}/log?container=main"
                                "&tailLines=1") == "started\n"


def test_exec_stdout_stdin_and_exit_codes(apiserver, node_agent):
    assert apiserver.kubectl_ok("exec", node_agent, "-c", "main", "--", "echo", "hello", "world") == "hello world\n"
    assert apiserver.kubectl_ok("exec", "-i", node_agent, "-c", "main", "--", "tr", "a-z", "A-Z",
                                input="shout\n") == "SHOUT\n"
    p = apiserver.kubectl("exec", node_agent, "-c", "main", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert (p.returncode, p.stderr) == (3, "oops\ncommand terminated with exit code 3\n")
    p = apiserver.kubectl("exec", node_agent, "-c", "nope", "--", "true")
    assert p.returncode == 1 and "container nope is not valid for pod echoer-relay-node" in p.stderr
