"""etcd locked down as kubeadm runs it (TLS, client-certificate authentication, etcd's own CA),
the store and `knet apiserver --etcd-servers=https://…` reaching it with the apiserver's
certificate, and /readyz, /livez, /healthz telling when etcd is down and when it is back."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from etcd_process import ETCD, EtcdProcess, free_port

from knet.api.storage import open_store
from knet.api.storage.etcd import EtcdTLS
from knet.cluster.pki import create_control_plane_pki, create_etcd_pki

pytestmark = pytest.mark.api

class TlsEtcd(EtcdProcess):
    """etcd with kubeadm's TLS flags (manifests.etcd_command's set) on free loopback ports."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.pki = create_etcd_pki(root / "pki", node_name="controlplane", node_ips=["127.0.0.1"])
        self.metrics_port = free_port()

    def tls(self) -> EtcdTLS:
        return EtcdTLS(str(self.pki.crt("ca")), str(self.pki.apiserver_client_crt), str(self.pki.apiserver_client_key))

    def argv(self) -> list[str]:
        d, peer = self.pki.etcd_dir, f"https://127.0.0.1:{self.peer_port}"
        return [ETCD, f"--advertise-client-urls=https://{self.endpoint}", f"--cert-file={d / 'server.crt'}",
                "--client-cert-auth=true", f"--data-dir={self.root / 'data'}",
                f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=controlplane={peer}",
                f"--key-file={d / 'server.key'}", f"--listen-client-urls=https://{self.endpoint}",
                f"--listen-metrics-urls=http://127.0.0.1:{self.metrics_port}", f"--listen-peer-urls={peer}",
                "--name=controlplane", f"--peer-cert-file={d / 'peer.crt'}", "--peer-client-cert-auth=true",
                f"--peer-key-file={d / 'peer.key'}", f"--peer-trusted-ca-file={d / 'ca.crt'}",
                f"--trusted-ca-file={d / 'ca.crt'}"]

    def health_url(self) -> str:
        # kubeadm's probes use the plain-HTTP metrics listener on loopback
        return f"http://127.0.0.1:{self.metrics_port}/health"


@pytest.fixture
def etcd(tmp_path):
    assert Path(ETCD).exists(), "etcd is not installed (scripts/install.sh installs etcd-server)"
    server = TlsEtcd(tmp_path / "etcd")
    try:
        server.start()
        yield server
    finally:
        server.stop()


RANGE_ALL = json.dumps({"key": "AA==", "range_end": "AA=="}).encode()  # every key


def range_all(url: str, context: ssl.SSLContext | None = None) -> dict:
    req = urllib.request.Request(url + "/v3/kv/range", data=RANGE_ALL, method="POST")
    with urllib.request.urlopen(req, timeout=5, context=context) as r:
        return json.loads(r.read())


def client_context(etcd: TlsEtcd, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(etcd.pki.crt("ca")))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def test_etcd_answers_only_clients_with_a_certificate_of_its_ca(etcd, tmp_path):
    store = open_store(f"etcd://{etcd.endpoint}/registry", etcd.tls())
    try:
        await store.create("secrets", "default", "s", {"metadata": {"name": "s", "namespace": "default"},
                                                         "data": {"password": "aHVudGVyMg=="}})
    finally:
        await store.close()
    # Plain HTTP on the client port: no answer at all.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        range_all(f"http://{etcd.endpoint}")
    # HTTPS without a client certificate: the handshake is refused.
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        range_all(f"https://{etcd.endpoint}", client_context(etcd))
    # A certificate of the cluster CA (a kubelet's, an admin's) is not one of etcd's CA.
    cluster = create_control_plane_pki(tmp_path / "cluster-pki")
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        range_all(f"https://{etcd.endpoint}", client_context(etcd, cluster.admin_crt, cluster.admin_key))
    # The apiserver's etcd client certificate reads the Secret.
    got = range_all(f"https://{etcd.endpoint}", client_context(
        etcd, etcd.pki.apiserver_client_crt, etcd.pki.apiserver_client_key))
    assert got["count"] == "1"


async def test_the_store_over_tls_reads_its_writes_and_follows_etcd(etcd):
    url = f"etcd://{etcd.endpoint}/registry"
    first, second = open_store(url, etcd.tls()), open_store(url, etcd.tls())
    try:
        a = await first.create("configmaps", "ns", "a", {"metadata": {"name": "a", "namespace": "ns"}})
        b = await first.update("configmaps", "ns", "a", {"metadata": {"name": "a", "namespace": "ns"}, "x": 1},
                               expected_revision=a.revision)
        assert first.get("configmaps", "ns", "a").revision == b.revision
        await second.check_health(2.0)
        deadline = time.monotonic() + 10
        while (e := second.get("configmaps", "ns", "a")) is None or e.revision != b.revision:
            assert time.monotonic() < deadline, "the second store never saw the update through its TLS watch"
            import asyncio

            await asyncio.sleep(0.05)
        assert second.connection_error() is None
    finally:
        await first.close()
        await second.close()


def get(server, path: str) -> tuple[int, str]:
    """GET as the admin: anonymous users may read /healthz, /livez and /readyz but not the
    single checks under them (system:public-info-viewer vs system:monitoring), as upstream."""
    ctx = ssl.create_default_context(cafile=server.ca_file)
    ctx.load_cert_chain(str(server.pki_dir / "admin.crt"), str(server.pki_dir / "admin.key"))
    try:
        with urllib.request.urlopen(f"{server.url}{path}", context=ctx, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(what: str, check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


HOOKS = ("[+]poststarthook/start-system-namespaces-controller ok\n"
         "[+]poststarthook/start-service-ip-repair-controllers ok\n"
         "[+]poststarthook/bootstrap-controller ok\n")


def test_readyz_reports_etcd_down_then_back(apiserver_factory, etcd):
    server = apiserver_factory([
        f"--etcd-servers=https://{etcd.endpoint}", f"--etcd-cafile={etcd.pki.crt('ca')}",
        f"--etcd-certfile={etcd.pki.apiserver_client_crt}", f"--etcd-keyfile={etcd.pki.apiserver_client_key}"])
    server.kubectl_ok("create", "configmap", "before", "--from-literal=k=v")
    assert get(server, "/readyz?verbose") == (200, (
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]informer-sync ok\n" + HOOKS
        + "[+]shutdown ok\nreadyz check passed\n"))
    assert get(server, "/livez?verbose") == (200, "[+]ping ok\n[+]log ok\n[+]etcd ok\n" + HOOKS + "livez check passed\n")
    assert get(server, "/readyz") == (200, "ok")

    etcd.stop()
    status, body = wait_for("/readyz to fail", lambda: (r := get(server, "/readyz?verbose"))[0] == 500 and r)
    assert status == 500
    assert "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[-]etcd-readiness failed: reason withheld\n" in body
    assert body.endswith("[+]shutdown ok\nreadyz check failed\n")
    # Without ?verbose too: a failure is always told in full (upstream).
    assert get(server, "/readyz")[1] == body
    livez = get(server, "/livez")
    assert livez[0] == 500 and "[-]etcd failed: reason withheld\n" in livez[1] and livez[1].endswith("livez check failed\n")
    assert get(server, "/healthz")[0] == 500
    assert get(server, "/livez/ping") == (200, "ok")
    etcd_alone = get(server, "/readyz/etcd")
    assert etcd_alone[0] == 500 and etcd_alone[1].startswith("internal server error: ")
    # `knet status` names the failing checks.
    from knet.cluster.paths import ClusterPaths
    from knet.cluster.status import _api_health

    assert _api_health(ClusterPaths(server.root), server.url) == "not ready (etcd, etcd-readiness)"
    excluded = get(server, "/readyz?verbose&exclude=etcd&exclude=etcd-readiness")
    assert excluded[0] == 200 and "[+]etcd excluded: ok\n[+]etcd-readiness excluded: ok\n" in excluded[1]

    etcd.start()  # same data, same ports
    wait_for("/readyz to pass again", lambda: get(server, "/readyz") == (200, "ok"), timeout=30)
    assert get(server, "/livez") == (200, "ok")
    assert _api_health(ClusterPaths(server.root), server.url) == "ok"
    assert server.kubectl_ok("get", "configmap", "before", "-o", "jsonpath={.data.k}") == "v"
    server.kubectl_ok("create", "configmap", "after")


def test_apiserver_etcd_flags_must_agree(apiserver_factory, etcd, tmp_path):
    """https:// servers without certificates, or certificates for http://, are usage errors."""
    import os
    import sys

    base = [sys.executable, "-c", "from knet.cli.main import main; main()", "apiserver", "--allow-insecure-http",
            "--secure-port=1"]
    env = {**os.environ}
    bad = [
        [f"--etcd-servers=https://{etcd.endpoint}"],
        [f"--etcd-servers=http://{etcd.endpoint}", f"--etcd-cafile={etcd.pki.crt('ca')}"],
        [f"--etcd-servers=https://{etcd.endpoint}", f"--etcd-certfile={etcd.pki.apiserver_client_crt}"],
        [f"--etcd-servers=https://{etcd.endpoint},http://127.0.0.1:1", f"--etcd-cafile={etcd.pki.crt('ca')}"],
    ]
    for args in bad:
        p = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert "Error:" in p.stderr
