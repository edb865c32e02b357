"""Request-header (front-proxy) authentication on a real apiserver started with kubeadm's flags
(--requestheader-client-ca-file=front-proxy-ca.crt, --requestheader-allowed-names=front-proxy-client,
X-Remote-User/X-Remote-Group/X-Remote-Extra-), asked with curl as a front proxy asks it.

Upstream's behaviour (k8s.io/apiserver headerrequest + x509 verifier, union authenticator):
the front-proxy client's certificate makes the request the user X-Remote-User names, with that
user's permissions; the same headers on a cluster-CA certificate (the admin's) or on no
certificate mean nothing; a front-proxy CA certificate with a CN not allowed is refused (401)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import KNET, start_apiserver  # noqa: E402
from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key  # noqa: E402

pytestmark = pytest.mark.api

PROXY_HEADERS = ["X-Remote-User: alice", "X-Remote-Group: devs", "X-Remote-Group: qa",
                 "X-Remote-Extra-Acme.com%2Fteam: blue"]
REVIEW = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})


def kubeadm_flags(pki: Path) -> list[str]:
    return [f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--requestheader-allowed-names=front-proxy-client",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if shutil.which("curl") is None:
        raise RuntimeError("curl is needed (apt-get install curl)")
    root = tmp_path_factory.mktemp("frontproxy")
    # The PKI is made before the flags naming it: prepare() runs in start_apiserver, so the
    # paths are known in advance (root/apiserver/pki).
    api = start_apiserver(root / "apiserver", kubeadm_flags(root / "apiserver" / "pki"))
    ca = load_cert_key(api.pki_dir, "front-proxy-ca")
    write_cert_key(api.pki_dir, "fp-mallory", issue_cert(ca, "mallory", organizations=["system:masters"], client=True))
    try:
        yield api
    finally:
        api.stop()


def curl(api, path: str, cert: str | None, headers=(), method: str = "GET", body: str | None = None):
    """(HTTP status, parsed JSON body) of curl's request with client certificate NAME.crt."""
    args = ["curl", "-sS", "--cacert", api.ca_file, "-X", method, "-w", "\n%{http_code}"]
    if cert:
        args += ["--cert", str(api.pki_dir / f"{cert}.crt"), "--key", str(api.pki_dir / f"{cert}.key")]
    for h in headers:
        args += ["-H", h]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", body]
    out = subprocess.run([*args, f"{api.url}{path}"], capture_output=True, text=True, timeout=30, check=True).stdout
    text, _, code = out.rpartition("\n")
    return int(code), json.loads(text) if text.strip().startswith("{") else text


def whoami(api, cert, headers=()):
    code, body = curl(api, "/apis/authentication.k8s.io/v1/selfsubjectreviews", cert, headers, "POST", REVIEW)
    return code, (body.get("status") or {}).get("userInfo") if isinstance(body, dict) else body


def test_the_front_proxy_is_trusted_for_the_user_it_names(server):
    code, info = whoami(server, "front-proxy-client", PROXY_HEADERS)
    assert code == 201, info
    assert info == {"username": "alice", "groups": ["devs", "qa", "system:authenticated"],
                    "extra": {"acme.com/team": ["blue"]}}


def test_the_named_user_has_her_permissions_not_the_proxys(server):
    path = "/api/v1/namespaces/default/configmaps"
    code, body = curl(server, path, "front-proxy-client", PROXY_HEADERS)
    assert code == 403, body
    assert body["message"] == ('configmaps is forbidden: User "alice" cannot list resource "configmaps" '
                               'in API group "" in the namespace "default"')
    server.kubectl_ok("create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice", "-n", "default")
    try:
        code, body = curl(server, path, "front-proxy-client", PROXY_HEADERS)
        assert code == 200 and body["kind"] == "ConfigMapList", body
        # ... and only hers: view does not create
        code, body = curl(server, path, "front-proxy-client", PROXY_HEADERS, "POST",
                          json.dumps({"metadata": {"name": "x"}}))
        assert code == 403 and 'User "alice" cannot create' in body["message"], body
    finally:
        server.kubectl_ok("delete", "rolebinding", "alice-view", "-n", "default")


def test_headers_on_a_cluster_ca_certificate_are_ignored(server):
    code, info = whoami(server, "admin", PROXY_HEADERS)
    assert code == 201 and info["username"] == "kubernetes-admin", info
    assert "devs" not in info["groups"] and "extra" not in info


def test_headers_without_a_certificate_are_ignored(server):
    code, body = curl(server, "/api/v1/namespaces/default/configmaps", None, PROXY_HEADERS)
    assert code == 403 and 'User "system:anonymous"' in body["message"], body
    code, body = curl(server, "/api/v1/namespaces/default/configmaps", None,
                      [*PROXY_HEADERS, "Authorization: Bearer knet-test-admin-token"])
    assert code == 200, body  # the token's user (system:masters), not alice


def test_a_front_proxy_ca_certificate_with_another_cn_is_refused(server):
    code, body = curl(server, "/api/v1/namespaces/default/configmaps", "fp-mallory", PROXY_HEADERS)
    assert code == 401 and body["reason"] == "Unauthorized", body
    # nor is its own subject a user (CN mallory, O system:masters): it is no cluster-CA certificate
    code, body = curl(server, "/api/v1/namespaces/default/configmaps", "fp-mallory")
    assert code == 401, body


def test_the_front_proxy_without_a_user_header_is_refused(server):
    code, body = curl(server, "/api/v1/namespaces/default/configmaps", "front-proxy-client", ["X-Remote-Group: devs"])
    assert code == 401, body


def test_authentication_configmap_publishes_the_request_header_settings(server):
    out = server.kubectl_ok("get", "cm", "-n", "kube-system", "extension-apiserver-authentication", "-o", "json")
    data = json.loads(out)["data"]
    assert data["client-ca-file"] == Path(server.ca_file).read_text()
    assert data["requestheader-client-ca-file"] == (server.pki_dir / "front-proxy-ca.crt").read_text()
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]


def test_a_proxy_client_certificate_without_its_key_is_refused(server):
    pki = server.pki_dir
    p = subprocess.run([*KNET, "apiserver", f"--tls-cert-file={pki / 'apiserver.crt'}",
                        f"--tls-private-key-file={pki / 'apiserver.key'}", "--storage=memory:",
                        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                        f"--proxy-client-key-file={pki / 'admin.key'}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--proxy-client-cert-file" in p.stderr, p.stderr
