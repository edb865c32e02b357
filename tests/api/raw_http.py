"""A raw HTTPS POST to a test apiserver, for tests that kill servers mid-request."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request


def post(server, path: str, obj: dict) -> int:
    ctx = ssl.create_default_context(cafile=server.ca_file)
    req = urllib.request.Request(server.url + path, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # the server died mid-request: not acknowledged
