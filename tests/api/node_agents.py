"""API-suite helpers for tests that run knet components beside the suite's apiserver: the knet
command line, polling until a condition holds, and a sim node agent (`knet kubelet
--dataplane=sim`) whose static pods run as host processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The installed `knet` entry point, else the same CLI through this interpreter.
KNET = [shutil.which("knet")] if shutil.which("knet") else [sys.executable, "-c", "from knet.cli.main import main; main()"]


def wait_for(what: str, fn, timeout: float = 30.0, interval: float = 0.2):
    """fn()'s first truthy answer; an exception counts as "not yet" (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 -- keep polling; report the last failure
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def host_static_pod(name: str, containers: dict[str, str]) -> str:
    """A static pod manifest in namespace default on the host network; `containers` maps each
    container's name to the shell script it runs (in image busybox)."""
    lines = ["apiVersion: v1", "kind: Pod", f"metadata: {{name: {name}, namespace: default}}", "spec:",
             "  hostNetwork: true", "  containers:"]
    for container, script in containers.items():
        lines += [f"  - name: {container}", "    image: busybox", f"    command: [\"sh\", \"-c\", \"{script}\"]"]
    return "\n".join(lines) + "\n"


@contextmanager
def sim_kubelet(apiserver, root: Path, node: str, *, kubeconfig: str, pod_cidr: str, taint: str,
                static_pods: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`knet kubelet --dataplane=sim` as node `node` under `root`, serving its API on a free
    127.0.0.1 port with a certificate of the cluster CA and trusting the cluster CA for clients;
    `static_pods` maps each static pod's name to its manifest. On exit: the agent stopped, its Node
    and its mirror pods (`<name>-<node>`) deleted."""
    from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key

    (root / "manifests").mkdir()
    for name, manifest in static_pods.items():
        (root / "manifests" / f"{name}.yaml").write_text(manifest)
    crt, key = write_cert_key(root / "pki", "kubelet", issue_cert(
        load_cert_key(apiserver.pki_dir, "ca"), node, ip_addresses=["127.0.0.1"], server=True))
    with open(root / "kubelet.log", "wb") as log:
        proc = subprocess.Popen([*KNET, "kubelet", f"--hostname-override={node}", "--node-ip=127.0.0.1",
                                 f"--kubeconfig={kubeconfig}", f"--root-dir={root / 'node'}",
                                 f"--pod-manifest-path={root / 'manifests'}", "--dataplane=sim",
                                 f"--pod-cidr={pod_cidr}", "--address=127.0.0.1", "--port=0",
                                 f"--tls-cert-file={crt}", f"--tls-private-key-file={key}",
                                 f"--client-ca-file={apiserver.ca_file}", f"--register-with-taints={taint}"],
                                stdout=log, stderr=log, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        apiserver.kubectl("delete", "node", node, "--wait=false")
        for name in static_pods:
            apiserver.kubectl("delete", "pod", f"{name}-{node}", "--force", "--grace-period=0", "--wait=false")
