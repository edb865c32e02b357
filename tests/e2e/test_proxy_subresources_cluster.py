"""pods/proxy and services/proxy on `knet up` (the session cluster): the apiserver forwards to
the pod, or to a ready endpoint of the Service's port, as kube-apiserver does; `kubectl proxy`
reaches a Service through it; a user without the right gets 403; a Service without ready
endpoints is a 503."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

WORKLOAD = """
apiVersion: v1
kind: Pod
metadata: {{name: echo, namespace: {ns}, labels: {{app: echo}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080"]
    ports: [{{containerPort: 8080, name: http}}]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {ns}}}
spec:
  selector: {{app: echo}}
  ports: [{{name: web, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody, namespace: {ns}}}
spec:
  selector: {{app: nobody}}
  ports: [{{name: web, port: 80}}]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pod_and_service_proxy(knet_cluster):
    c = knet_cluster
    ns = f"proxy-{int(time.time())}"
    c.kubectl("create", "namespace", ns)
    try:
        c.kubectl("apply", "-f", "-", input=WORKLOAD.format(ns=ns))
        c.wait_for("echo ready", lambda: all(s.get("ready") for s in json.loads(c.kubectl(
            "get", "pod", "echo", "-n", ns, "-o", "json").stdout)["status"].get("containerStatuses") or [{}]),
            timeout=60, interval=0.5)
        base = f"/api/v1/namespaces/{ns}"
        # the pod by name and port, and by its first container port
        assert c.kubectl("get", "--raw", f"{base}/pods/echo:8080/proxy/hostname").stdout == "echo"
        assert c.kubectl("get", "--raw", f"{base}/pods/echo/proxy/hostname").stdout == "echo"
        # the Service by port name and by number, once its endpoint is ready
        c.wait_for("the Service's endpoint", lambda: c.kubectl(
            "get", "--raw", f"{base}/services/echo:web/proxy/hostname", check=False).stdout == "echo", timeout=30)
        assert c.kubectl("get", "--raw", f"{base}/services/echo:80/proxy/hostname").stdout == "echo"
        # a query string and a POST body go through
        echoed = c.kubectl("get", "--raw", f"{base}/pods/echo:8080/proxy/echo?msg=knet").stdout
        assert echoed == "knet"
        # no ready endpoint: 503 as upstream
        down = c.kubectl("get", "--raw", f"{base}/services/nobody:web/proxy/", check=False)
        assert down.returncode == 1 and 'no endpoints available for service "nobody"' in down.stderr, down.stderr
        # an attacker without pods/proxy or services/proxy: 403
        for path in (f"{base}/pods/echo:8080/proxy/hostname", f"{base}/services/echo:web/proxy/hostname"):
            denied = c.kubectl("get", "--raw", path, "--as=eve", check=False)
            assert denied.returncode == 1 and "Forbidden" in denied.stderr, denied.stderr
        # kubectl proxy, then a Service through it, as the docs show
        port = _free_port()
        proxy = subprocess.Popen(["kubectl", "--context", c.context, "proxy", f"--port={port}"], env=c.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}{base}/services/echo:web/proxy/hostname"

            def fetch() -> str:
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as r:
                    return r.read().decode()
                return ""

            assert c.wait_for("kubectl proxy to the Service", fetch, timeout=20) == "echo"
        finally:
            proxy.terminate()
            proxy.wait(10)
    finally:
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
