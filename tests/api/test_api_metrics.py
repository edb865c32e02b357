"""metrics.k8s.io/v1beta1 as `kubectl top` reads it, against an apiserver that scrapes its kubelets
every second (--metric-resolution=1s) and a simulated node agent (which has no cgroups: a node
without metrics). Real figures are the e2e suite's (tests/e2e/test_resources_cluster.py)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from node_agents import sim_kubelet, wait_for

pytestmark = pytest.mark.api


def _kubelet_get(root, apiserver, cert: tuple[str, str] | None) -> tuple[int, str]:
    endpoint = (root / "node" / "kubelet-endpoint").read_text().strip()
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(*cert)
    try:
        with urllib.request.urlopen(f"{endpoint}/stats/summary", context=ctx, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_api_discovery_shapes_and_a_node_without_metrics(apiserver_factory, tmp_path):
    from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key

    api = apiserver_factory(["--metric-resolution=1s"])
    resources = api.kubectl_ok("api-resources", "--api-group=metrics.k8s.io", "-o", "wide")
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert rows["nodes"][1:] == ["metrics.k8s.io/v1beta1", "false", "NodeMetrics", "get,list"], resources
    assert rows["pods"][1:] == ["metrics.k8s.io/v1beta1", "true", "PodMetrics", "get,list"], resources

    (tmp_path / "agent").mkdir()
    with sim_kubelet(api, tmp_path / "agent", "simnode", kubeconfig=api.kubeconfig, pod_cidr="10.244.3.0/24",
                     taint="", static_pods={}):
        wait_for("simnode Ready", lambda: "Ready" in api.kubectl("get", "node", "simnode").stdout)
        wait_for("simnode's kubelet endpoint", lambda: (tmp_path / "agent" / "node" / "kubelet-endpoint").exists())
        # The kubelet's Summary API: nodes/stats, which the apiserver's kubelet client holds...
        pki = api.pki_dir
        code, body = _kubelet_get(tmp_path / "agent", api, (str(pki / "apiserver-kubelet-client.crt"),
                                                             str(pki / "apiserver-kubelet-client.key")))
        assert code == 200, body
        summary = json.loads(body)
        # ... and a simulated node has no cgroups: its name and start time, no cpu, no memory, no pods.
        assert summary["node"]["nodeName"] == "simnode" and "startTime" in summary["node"]
        assert "cpu" not in summary["node"] and "memory" not in summary["node"] and summary["pods"] == []
        # A user without nodes/stats is refused, as the kubelet's webhook authorizer words it.
        bob = write_cert_key(tmp_path / "bob", "bob", issue_cert(load_cert_key(pki, "ca"), "bob", client=True))
        code, body = _kubelet_get(tmp_path / "agent", api, (str(bob[0]), str(bob[1])))
        assert (code, body) == (403, "Forbidden (user=bob, verb=get, resource=nodes, subresource=stats)")

        listed = json.loads(api.kubectl_ok("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"))
        assert listed == {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
                          "items": []}
        pods = json.loads(api.kubectl_ok("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"))
        assert pods["kind"] == "PodMetricsList" and pods["items"] == []

        # What kubectl says when there are no metrics (its own messages, as against metrics-server).
        top = api.kubectl("top", "nodes")
        assert top.returncode == 1 and top.stderr.strip() == "error: metrics not available yet", top.stderr
        top = api.kubectl("top", "node", "simnode")
        assert top.returncode == 1 and 'nodemetrics.metrics.k8s.io "simnode" not found' in top.stderr, top.stderr
        top = api.kubectl("top", "pod", "nope", "-n", "default")
        assert top.returncode == 1 and 'podmetrics.metrics.k8s.io "default/nope" not found' in top.stderr, top.stderr

        # Read-only: no watch, no writes.
        watch = api.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes?watch=true")
        assert watch.returncode != 0 and "does not allow this method" in watch.stderr, watch.stderr
        create = api.kubectl("create", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", "-f", "-",
                             input='{"kind":"NodeMetrics","apiVersion":"metrics.k8s.io/v1beta1","metadata":{"name":"x"}}')
        assert create.returncode != 0 and "does not allow this method" in create.stderr, create.stderr
