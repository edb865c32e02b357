"""Kubeconfig and in-cluster configuration loading."""

from __future__ import annotations

import base64

import pytest
import yaml

from knet.client import ConfigError
from knet.client.config import config_from_kubeconfig, config_in_cluster, load_config, ssl_context
from knet.client.paths import resource_path


def write_kubeconfig(tmp_path, user: dict) -> str:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@knet",
        "clusters": [{"name": "knet", "cluster": {"server": "https://127.0.0.1:6443/",
                                                   "certificate-authority-data": base64.b64encode(b"CA").decode()}}],
        "contexts": [{"name": "admin@knet", "context": {"cluster": "knet", "user": "admin", "namespace": "dev"}}],
        "users": [{"name": "admin", "user": user}],
    }
    path = tmp_path / "admin.conf"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_kubeconfig_inline_data_and_token(tmp_path):
    cfg = config_from_kubeconfig(write_kubeconfig(tmp_path, {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(), "token": "abc"}))
    assert cfg.server == "https://127.0.0.1:6443"
    assert (cfg.ca_data, cfg.client_cert_data, cfg.client_key_data) == (b"CA", b"CERT", b"KEY")
    assert cfg.bearer_token() == "abc" and cfg.namespace == "dev"


def test_kubeconfig_file_paths_relative_to_the_file(tmp_path, monkeypatch):
    (tmp_path / "tok").write_text("from-file\n")
    (tmp_path / "c.crt").write_bytes(b"CERT")
    path = write_kubeconfig(tmp_path, {"client-certificate": "c.crt", "tokenFile": "tok"})
    monkeypatch.setenv("KUBECONFIG", path)
    cfg = load_config()
    assert cfg.client_cert_data == b"CERT" and cfg.bearer_token() == "from-file"


def test_in_cluster(tmp_path):
    (tmp_path / "token").write_text("jwt")
    (tmp_path / "namespace").write_text("kube-system")
    cfg = config_in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert cfg.server == "https://10.96.0.1:443"
    assert cfg.bearer_token() == "jwt" and cfg.namespace == "kube-system"
    with pytest.raises(ConfigError):
        config_in_cluster(tmp_path, {})


def test_plain_http_has_no_tls_context():
    from knet.client import ClientConfig
    assert ssl_context(ClientConfig(server="http://127.0.0.1:8080")) is None


@pytest.mark.parametrize(("args", "kwargs", "path"), [
    pytest.param(("v1", "pods"), {"namespace": "default"}, "/api/v1/namespaces/default/pods", id="core-ns"),
    pytest.param(("v1", "nodes"), {"name": "node01"}, "/api/v1/nodes/node01", id="cluster-scoped"),
    pytest.param(("apps/v1", "deployments"), {}, "/apis/apps/v1/deployments", id="group-all-ns"),
    pytest.param(("v1", "pods"), {"namespace": "a", "name": "p", "subresource": "binding"},
                 "/api/v1/namespaces/a/pods/p/binding", id="subresource"),
    pytest.param(("v1", "namespaces"), {"namespace": "x", "name": "x"}, "/api/v1/namespaces/x", id="namespace"),
])
def test_resource_path(args, kwargs, path):
    assert resource_path(*args, **kwargs) == path


def test_token_file_is_reread_each_period_and_on_reset(tmp_path):
    from knet.client.config import TokenFile

    path = tmp_path / "token"
    path.write_text("one\n")
    now = [0.0]
    source = TokenFile(str(path), period=60.0, clock=lambda: now[0])
    assert source.token() == "one"
    path.write_text("two")
    now[0] = 59.0
    assert source.token() == "one"      # cached for a minute, as client-go
    now[0] = 60.0
    assert source.token() == "two"
    path.write_text("three")
    assert source.reset() is True and source.token() == "three"  # after a 401: at once
    assert source.reset() is False
    path.unlink()
    now[0] = 500.0
    assert source.token() == "three"    # an unreadable file keeps the last token
