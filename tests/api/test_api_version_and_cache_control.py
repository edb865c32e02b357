"""`GET /version/` (kr8s asks it first) answers as /version, and every answer carries
kube-apiserver's `Cache-Control: no-cache, private` (genericapifilters.WithCacheControl):
plain, error, streamed (watch) and upgrade refusals alike."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.api


def _get(apiserver, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    req = urllib.request.Request(apiserver.url + path, headers={"Authorization": f"Bearer {apiserver.token}",
                                                                **(headers or {})})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read(200 if "watch" in path else -1)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_version_with_a_trailing_slash(apiserver):
    status, _, body = _get(apiserver, "/version/")
    assert status == 200 and json.loads(body) == json.loads(_get(apiserver, "/version")[2])
    assert json.loads(body)["major"] == "1"


@pytest.mark.parametrize("path", ["/version", "/version/", "/healthz", "/api/v1/namespaces", "/api/v1/nope",
                                  "/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=true",
                                  "/api/v1/namespaces?watch=true&timeoutSeconds=1"])
def test_every_answer_says_no_cache_private(apiserver, path):
    status, headers, _ = _get(apiserver, path)
    assert status in (200, 400, 404)
    assert headers.get("Cache-Control") == "no-cache, private", (path, status, headers)
