"""kill -9 of the apiserver loses no acknowledged write; allocations are rebuilt from storage."""

from __future__ import annotations

import concurrent.futures
import json

import pytest
from raw_http import post

pytestmark = pytest.mark.api


def test_kill_9_loses_no_acknowledged_write(apiserver_factory):
    server = apiserver_factory()
    path = "/api/v1/namespaces/default/configmaps"
    acked: list[str] = []

    def create(i: int) -> None:
        if post(server, path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"d{i}"},
                               "data": {"i": str(i)}}) == 201:
            acked.append(f"d{i}")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(create, i) for i in range(400)]
        # Kill while writes are in flight.
        while len(acked) < 150:
            pass
        server.stop(kill=True)
        for f in futures:
            f.result()
    assert len(acked) >= 150
    server.start()
    stored = {c["metadata"]["name"] for c in json.loads(server.kubectl_ok("get", "--raw", path))["items"]}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:5]}"


def test_allocations_survive_a_restart(apiserver_factory):
    server = apiserver_factory()
    svc = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: NodePort\n"
           "  clusterIP: 10.96.7.7\n  ports: [{{port: 80, nodePort: 31234}}]\n")
    server.kubectl_ok("-n", "default", "create", "-f", "-", input=svc.format(name="first"))
    server.stop(kill=True)
    server.start()
    p = server.kubectl("-n", "default", "create", "-f", "-", input=svc.format(name="second"))
    assert "provided IP is already allocated" in p.stderr
    assert "provided port is already allocated" in p.stderr
    out = json.loads(server.kubectl_ok("-n", "default", "get", "svc", "first", "-o", "json"))
    assert (out["spec"]["clusterIP"], out["spec"]["ports"][0]["nodePort"]) == ("10.96.7.7", 31234)
    # default/kubernetes is still there, unchanged, with the first address.
    k = json.loads(server.kubectl_ok("-n", "default", "get", "svc", "kubernetes", "-o", "json"))
    assert k["spec"]["clusterIP"] == "10.96.0.1"
