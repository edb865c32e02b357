"""What kube-apiserver publishes about itself, read with the real kubectl (issue #15 item 5):
the ConfigMaps kube-system/extension-apiserver-authentication and
kube-apiserver-legacy-service-account-token-tracking, and /version with the version a cluster's
kubelet gives it from its image's tag (`knet as-binary --image=…`, KNET_KUBERNETES_VERSION)."""

from __future__ import annotations

import datetime
import json

import pytest

pytestmark = pytest.mark.api


def test_extension_apiserver_authentication_holds_the_client_ca(apiserver):
    out = apiserver.kubectl_ok("get", "cm", "-n", "kube-system", "extension-apiserver-authentication", "-o", "json")
    data = json.loads(out)["data"]
    with open(apiserver.ca_file) as f:
        assert data == {"client-ca-file": f.read()}


def test_legacy_token_tracking_since_is_a_date(apiserver):
    since = apiserver.kubectl_ok("get", "cm", "-n", "kube-system",
                                 "kube-apiserver-legacy-service-account-token-tracking",
                                 "-o", "jsonpath={.data.since}")
    day = datetime.date.fromisoformat(since)
    assert day <= datetime.datetime.now(datetime.UTC).date()


def test_an_edited_authentication_configmap_is_put_back(apiserver_factory):
    server = apiserver_factory()
    server.kubectl_ok("patch", "cm", "-n", "kube-system", "extension-apiserver-authentication", "--type=merge",
                      "-p", '{"data": {"client-ca-file": "forged"}}')
    server.stop()
    server.start()
    out = server.kubectl_ok("get", "cm", "-n", "kube-system", "extension-apiserver-authentication",
                            "-o", "jsonpath={.data.client-ca-file}")
    assert out.startswith("-----BEGIN CERTIFICATE-----")


def test_kubectl_version_shows_the_images_version(apiserver_factory):
    server = apiserver_factory(env={"KNET_KUBERNETES_VERSION": "v1.29.0"})
    out = json.loads(server.kubectl_ok("version", "-o", "json"))
    assert out["serverVersion"]["gitVersion"] == "v1.29.0"
    assert (out["serverVersion"]["major"], out["serverVersion"]["minor"]) == ("1", "29")
