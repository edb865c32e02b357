"""`knet proxy render` without -f reads Services and EndpointSlices from a live apiserver (made
with the real kubectl), and prints what kube-proxy on that node would program."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.api


def test_render_from_live_cluster(apiserver, namespace):  # noqa: ANN001
    apiserver.kubectl_ok("-n", namespace, "create", "service", "nodeport", "web", "--tcp=80:8080")
    cluster_ip = apiserver.kubectl_ok("-n", namespace, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    node_port = apiserver.kubectl_ok("-n", namespace, "get", "svc", "web", "-o",
                                     "jsonpath={.spec.ports[0].nodePort}")
    slice_yaml = f"""
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-manual
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- addresses: [10.244.1.7]
  nodeName: node01
  conditions: {{ready: true}}
ports:
- {{name: 80-8080, port: 8080, protocol: TCP}}
"""
    apiserver.kubectl_ok("apply", "-f", "-", input=slice_yaml)
    for mode, expect in (("iptables", f"-d {cluster_ip} --dport 80 -j KUBE-SVC-"),
                         ("nftables", f"add element ip kube-proxy service-ips {{ {cluster_ip} . tcp . 80 : goto")):
        out = subprocess.run([sys.executable, "-c", "from knet.cli.main import main; main()", "proxy", "render", "--mode", mode,
                              "--node", "node01", "--node-ip", "172.30.0.3", "--cluster-cidr", "10.244.0.0/16",
                              "--kubeconfig", str(apiserver.kubeconfig)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert expect in out.stdout
        assert "10.244.1.7:8080" in out.stdout
        assert node_port in out.stdout
