"""ConfigMaps kube-apiserver publishes about itself in kube-system (issue #15 item 5).

- `extension-apiserver-authentication`: the cluster's authentication trust, which extension API
  servers and webhooks read (upstream: the clusterauthenticationtrust controller). Keys as upstream
  writes them: `client-ca-file` (the PEM of --client-ca-file) and, only when the apiserver has a
  request-header configuration (--requestheader-client-ca-file, knet.api.requestheader),
  `requestheader-*` (the CA PEM and JSON lists of names/headers); without one, only
  `client-ca-file`, as upstream.
- `kube-apiserver-legacy-service-account-token-tracking`: `since` = the date (UTC, YYYY-MM-DD)
  the apiserver began tracking the use of legacy service-account tokens (upstream: the
  legacytokentracking controller creates it once and never changes it).

Pure builders; the Bootstrapper writes them.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field

NAMESPACE = "kube-system"
AUTHENTICATION_CONFIGMAP = "extension-apiserver-authentication"
LEGACY_TOKEN_TRACKING_CONFIGMAP = "kube-apiserver-legacy-service-account-token-tracking"


@dataclass(frozen=True)
class AuthenticationInfo:
    client_ca: str = ""  # PEM
    requestheader_client_ca: str = ""  # PEM
    requestheader_username_headers: list[str] = field(default_factory=list)
    requestheader_group_headers: list[str] = field(default_factory=list)
    requestheader_extra_headers_prefix: list[str] = field(default_factory=list)
    requestheader_allowed_names: list[str] = field(default_factory=list)


def authentication_data(info: AuthenticationInfo) -> dict[str, str]:
    data = {}
    if info.client_ca:
        data["client-ca-file"] = info.client_ca
    if info.requestheader_client_ca:
        data["requestheader-client-ca-file"] = info.requestheader_client_ca
    for key, values in (("requestheader-username-headers", info.requestheader_username_headers),
                        ("requestheader-group-headers", info.requestheader_group_headers),
                        ("requestheader-extra-headers-prefix", info.requestheader_extra_headers_prefix),
                        ("requestheader-allowed-names", info.requestheader_allowed_names)):
        if values:
            data[key] = json.dumps(values)
    return data


def configmap(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data}


def authentication_configmap(info: AuthenticationInfo) -> dict:
    return configmap(AUTHENTICATION_CONFIGMAP, authentication_data(info))


def legacy_token_tracking_configmap(now: datetime.datetime) -> dict:
    return configmap(LEGACY_TOKEN_TRACKING_CONFIGMAP, {"since": now.astimezone(datetime.UTC).strftime("%Y-%m-%d")})
