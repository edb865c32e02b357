"""The ConfigMaps kube-apiserver publishes in kube-system (knet.api.authinfo) and /version
(knet.api.server.version_info). Keys and formats as upstream's clusterauthenticationtrust and
legacytokentracking controllers write them."""

from __future__ import annotations

import datetime
import json

from knet.api.authinfo import AuthenticationInfo, authentication_configmap, legacy_token_tracking_configmap
from knet.api.server import VERSION, version_info

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_without_request_header_config_only_the_client_ca_is_published():
    cm = authentication_configmap(AuthenticationInfo(client_ca=CA))
    assert cm["metadata"] == {"name": "extension-apiserver-authentication", "namespace": "kube-system"}
    assert cm["data"] == {"client-ca-file": CA}


def test_request_header_keys_are_json_lists():
    data = authentication_configmap(AuthenticationInfo(
        client_ca=CA, requestheader_client_ca=CA, requestheader_username_headers=["X-Remote-User"],
        requestheader_group_headers=["X-Remote-Group"], requestheader_extra_headers_prefix=["X-Remote-Extra-"],
        requestheader_allowed_names=["front-proxy-client"]))["data"]
    assert data["requestheader-client-ca-file"] == CA
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert data["requestheader-allowed-names"] == '["front-proxy-client"]'
    assert set(data) == {"client-ca-file", "requestheader-client-ca-file", "requestheader-username-headers",
                         "requestheader-group-headers", "requestheader-extra-headers-prefix",
                         "requestheader-allowed-names"}


def test_legacy_token_tracking_since_is_the_utc_date():
    at = datetime.datetime(2026, 12, 5, 23, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-3)))
    cm = legacy_token_tracking_configmap(at)
    assert cm["metadata"]["name"] == "kube-apiserver-legacy-service-account-token-tracking"
    assert cm["data"] == {"since": "2026-12-06"}


def test_version_is_the_clusters_kubernetes_version():
    v = version_info("v1.29.0")
    assert (v["major"], v["minor"], v["gitVersion"]) == ("1", "29", "v1.29.0")
    assert version_info("") == VERSION and version_info("not-a-version") == VERSION
