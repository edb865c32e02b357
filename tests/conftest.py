"""Root pytest fixtures shared by every suite.

`apiserver` (session scope): a real `knet apiserver` subprocess for API tests. It makes a
cluster CA and certificates in a temporary directory (knet.cluster.pki), starts
`knet apiserver` on a free 127.0.0.1 port with a SQLite store there, waits for /readyz and
stops it at the end of the session (also when tests fail). It yields an `ApiServerUnderTest`:

    def test_something(apiserver, namespace):
        apiserver.url           # "https://127.0.0.1:PORT"
        apiserver.kubeconfig    # admin kubeconfig (client certificate CN=kubernetes-admin, O=system:masters)
        apiserver.ca_file       # the cluster CA certificate (PEM)
        apiserver.token_file    # --token-auth-file CSV; apiserver.token is a valid bearer token in it
        apiserver.pki_dir       # ca.crt/ca.key, apiserver-kubelet-client.*, sa.key/sa.pub
        apiserver.data_dir      # where the SQLite store lives
        p = apiserver.kubectl("get", "pods", "-n", namespace)   # CompletedProcess, text, no check
        p.stdout, p.stderr, p.returncode
        apiserver.kubectl_ok("get", "ns")                       # same, but asserts success, returns stdout
        apiserver.client()      # a kubernetes.client.ApiClient configured for it (official package)

`namespace` (function scope): a fresh namespace `t-<random>` created before the test and
deleted after it (without waiting for the termination to finish).

Other engineers' api tests use these as they are. A test that needs its own apiserver (e.g.
restarts, kill -9) uses the `apiserver_factory` fixture: `apiserver_factory(extra_args=[...],
env={...})` returns a started ApiServerUnderTest in a fresh directory, stopped after the test
(`.stop(kill=True)` / `.start()` restart it on the same data).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
ADMIN_TOKEN = "knet-test-admin-token"
# The installed `knet` entry point, else the same CLI through this interpreter.
KNET = [shutil.which("knet")] if shutil.which("knet") else [sys.executable, "-c", "from knet.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ApiServerUnderTest:
    root: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def kubeconfig(self) -> str:
        return str(self.root / "admin.conf")

    @property
    def ca_file(self) -> str:
        return str(self.pki_dir / "ca.crt")

    @property
    def token_file(self) -> str:
        return str(self.root / "tokens.csv")

    @property
    def token(self) -> str:
        return ADMIN_TOKEN

    @property
    def log_file(self) -> Path:
        return self.root / "apiserver.log"

    def command(self) -> list[str]:
        pki = self.pki_dir
        return [
            *KNET, "apiserver",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}", "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.96.0.0/12", "--service-node-port-range=30000-32767",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={self.token_file}",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--data-dir={self.data_dir}", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # The suite's node agents are simulated: reach their kubelets where they register.
            "--kubelet-endpoint-annotation=true", *self.extra_args,
        ]

    def prepare(self) -> None:
        from knet.cluster.pki import (
            create_control_plane_pki,
            kubeconfig,
            load_cert_key,
            write_file,
            write_kubeconfig,
        )

        pki = create_control_plane_pki(self.pki_dir)
        write_kubeconfig(self.kubeconfig, kubeconfig(
            cluster_name="kubernetes", server=self.url, ca_pem=pki.ca().cert_pem, user="kubernetes-admin",
            client=load_cert_key(self.pki_dir, "admin")))
        write_file(self.token_file, f'{ADMIN_TOKEN},admin-by-token,1000,"system:masters"\n', 0o600)

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.log_file, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        deadline = time.monotonic() + timeout
        import urllib.request

        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"knet apiserver exited ({self.process.returncode}):\n{self.log_file.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"knet apiserver not ready after {timeout}s:\n{self.log_file.read_text()[-4000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill() if kill else self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, f"--kubeconfig={self.kubeconfig}", *args], input=input, text=True,
                              capture_output=True, timeout=timeout)

    def kubectl_ok(self, *args: str, input: str | None = None, timeout: float = 30) -> str:
        p = self.kubectl(*args, input=input, timeout=timeout)
        assert p.returncode == 0, f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}"
        return p.stdout

    def client(self):
        import kubernetes

        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        cfg.ssl_ca_cert = self.ca_file
        cfg.cert_file = str(self.pki_dir / "admin.crt")
        cfg.key_file = str(self.pki_dir / "admin.key")
        return kubernetes.client.ApiClient(cfg)


def start_apiserver(root: Path, extra_args: list[str] | None = None, env: dict | None = None) -> ApiServerUnderTest:
    server = ApiServerUnderTest(Path(root), free_port(), list(extra_args or []), dict(env or {}))
    server.prepare()
    server.start()
    return server


@pytest.fixture
def apiserver_factory(tmp_path):
    started: list[ApiServerUnderTest] = []

    def make(extra_args: list[str] | None = None, env: dict | None = None) -> ApiServerUnderTest:
        server = start_apiserver(tmp_path / f"apiserver{len(started)}", extra_args, env)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop(kill=True)


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory):
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    server = ApiServerUnderTest(tmp_path_factory.mktemp("apiserver"), free_port())
    server.prepare()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace(apiserver):
    name = f"t-{uuid.uuid4().hex[:8]}"
    apiserver.kubectl_ok("create", "namespace", name)
    try:
        yield name
    finally:
        apiserver.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true), a skipped test is a failure: CI has root and every tool the tests use, so
    a skip there means a missing install step, and must not pass silently."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must have everything the tests need: {reason}"
