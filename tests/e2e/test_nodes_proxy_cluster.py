"""nodes/proxy on `knet up` (the session cluster), as on a kubeadm cluster: `kubectl get --raw
/api/v1/nodes/node01/proxy/...` reaches node01's kubelet at its InternalIP with the apiserver's
kubelet client certificate; the kubelet authorizes that identity by SubjectAccessReview and
answers /healthz, /pods, /stats/summary, /metrics, /configz and /logs/ (the node's own
/var/log). A user without nodes/proxy gets 403."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e

NODE = "node01"


def test_node_proxy_reaches_the_kubelet(knet_cluster):
    c = knet_cluster

    def raw(path: str) -> str:
        return c.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy{path}").stdout

    assert raw("/healthz") == "ok"
    pods = json.loads(raw("/pods"))
    assert pods["kind"] == "PodList" and pods["items"]
    assert {p["spec"].get("nodeName") for p in pods["items"]} == {NODE}
    assert any(p["metadata"]["name"].startswith("kube-proxy-") for p in pods["items"])
    assert json.loads(raw("/stats/summary"))["node"]["nodeName"] == NODE
    metrics = raw("/metrics").splitlines()
    assert f'kubelet_node_name{{node="{NODE}"}} 1' in metrics
    running = next(int(line.split()[-1]) for line in metrics if line.startswith("kubelet_running_pods "))
    assert running >= 2  # kube-proxy and knet-net at least
    config = json.loads(raw("/configz"))["kubeletconfig"]
    dns = json.loads(c.kubectl("get", "svc", "-n", "kube-system", "kube-dns", "-o", "json").stdout)["spec"]["clusterIP"]
    assert config["clusterDNS"] == [dns] and config["authorization"]["mode"] == "Webhook"
    # The kubelet's port named explicitly, with or without https: the same kubelet.
    port = json.loads(c.kubectl("get", "node", NODE, "-o", "json").stdout)["status"]["daemonEndpoints"][
        "kubeletEndpoint"]["Port"]
    assert c.kubectl("get", "--raw", f"/api/v1/nodes/https:{NODE}:{port}/proxy/healthz").stdout == "ok"


def test_node_logs_are_the_nodes_var_log(knet_cluster):
    c = knet_cluster
    listing = c.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/logs/").stdout
    names = set(re.findall(r'<a href="[^"]*">([^<]*)</a>', listing))
    on_node = set(c.ssh(NODE, "ls", "-A", "/var/log").stdout.split())
    assert {n.rstrip("/") for n in names} == on_node
    assert {"pods/", "containers/"} <= names
    # /var/log/pods holds the node's pods' log dirs (namespace_pod_uid), kube-proxy's among them.
    pods = c.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/logs/pods/").stdout
    assert re.search(r'<a href="kube-system_kube-proxy-[a-z0-9]+_[0-9a-f-]+/?">', pods), pods


def test_node_proxy_needs_rbac(knet_cluster):
    denied = knet_cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/stats/summary", "--as=eve",
                                  check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (f'Error from server (Forbidden): nodes "{NODE}" is forbidden: User "eve" cannot '
                                     'get resource "nodes/proxy" in API group "" at the cluster scope')
