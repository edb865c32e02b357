"""e2e fixtures: a real knet cluster (nodes are network namespaces, kernel rules, real traffic).

`knet_cluster` (session scope): `knet up --nodes 3 --dataplane real` (controlplane, node01,
node02) in a private state dir and kubeconfig; always torn down with `knet down` at the end,
also when tests fail. It is a `knet.cluster.testing.ClusterUnderTest`:

    def test_something(knet_cluster):
        knet_cluster.kubectl("get", "nodes")                 # real kubectl, --context knet-NAME
        knet_cluster.ssh("node01", "iptables", "--list")     # `knet ssh NAME node01 -- ...`
        knet_cluster.config["nodes"]                         # the resolved cluster.yaml
        knet_cluster.wait_for("what", lambda: ..., timeout=10)
        knet_cluster.env                                     # KNET_STATE_DIR + KUBECONFIG for subprocesses

Set KNET_E2E_PROXY_MODE=nftables to run the session cluster in nftables mode. Tests that need
their own cluster use `ClusterUnderTest.up(...)` as a context manager.
Skipped (not failed) where root or network namespaces are missing.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from knet.cluster.host import real_dataplane_problem
from knet.cluster.testing import ClusterUnderTest


def real_mode_problem() -> str | None:
    if shutil.which("kubectl") is None:
        return "needs the real kubectl"
    return real_dataplane_problem()


def _ready_dns_endpoints(cluster: ClusterUnderTest) -> int:
    out = cluster.kubectl("get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns",
                          "-o", "json").stdout
    return len({addr for eps in json.loads(out)["items"] for ep in eps.get("endpoints") or []
                if (ep.get("conditions") or {}).get("ready") for addr in ep["addresses"]})


@pytest.fixture(scope="session")
def knet_cluster():
    problem = real_mode_problem()
    if problem:
        pytest.skip(f"real dataplane unavailable: {problem}")
    cluster = ClusterUnderTest.up(nodes=3, dataplane="real",
                                  proxy_mode=os.environ.get("KNET_E2E_PROXY_MODE") or None)
    try:
        # `knet up` returns once one CoreDNS pod is Ready; DNS tests need both of them.
        cluster.wait_for("both CoreDNS pods Ready behind kube-dns", lambda: _ready_dns_endpoints(cluster) >= 2,
                         timeout=40, interval=0.2)
        yield cluster
    finally:
        cluster.down()
