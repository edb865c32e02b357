"""The classic ingress labs on `knet up` (the session cluster), with the real kubectl and curl
from the host through the ingress controller's NodePort on a node IP: find the controller's
namespace and Deployment; `kubectl create ingress` with /wear and /watch to two Services; the
default backend's 404; rewrite-target with capture groups; a path added with `kubectl patch`; an
Ingress in another namespace; TLS from a self-signed Secret checked with `curl --cacert` and SNI;
the Ingress's ADDRESS; access logs in `kubectl logs`. Attacker cases: a backend Service or TLS
Secret of another namespace is not served, a huge Host header and a climbing path stay out."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e

CONTROLLER_NS, CONTROLLER = "ingress-nginx", "ingress-nginx-controller"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.45"
APPS = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {image}
        args: {args}
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, targetPort: 8080}}]
"""
REWRITE = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  namespace: {ns}
  annotations: {{nginx.ingress.kubernetes.io/rewrite-target: /$2}}
spec:
  ingressClassName: nginx
  rules:
  - host: rewrite.example.com
    http:
      paths:
      - {{path: /api(/|$)(.*), pathType: ImplementationSpecific, backend: {{service: {{name: echo, port: {{number: 8080}}}}}}}}
"""


def app(name: str, ns: str, args: list[str]) -> str:
    return APPS.format(name=name, ns=ns, image=AGNHOST, args=json.dumps(args))


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True, text=True, timeout=15)


@pytest.fixture(scope="module")
def lab(knet_cluster, tmp_path_factory):
    assert shutil.which("curl") and shutil.which("openssl"), "needs curl and openssl"
    c = knet_cluster
    ns, other = f"ing-{int(time.time())}", f"ing2-{int(time.time())}"
    for n in (ns, other):
        c.kubectl("create", "namespace", n)
    c.kubectl("apply", "-f", "-", input="\n---\n".join([
        app("wear", ns, ["serve-hostname", "--http", "--port=8080"]),
        app("watch", ns, ["serve-hostname", "--http", "--port=8080"]),
        app("echo", ns, ["netexec", "--http-port=8080"]),
        app("video", other, ["serve-hostname", "--http", "--port=8080"])]))
    c.kubectl("-n", CONTROLLER_NS, "rollout", "status", f"deployment/{CONTROLLER}", "--timeout=120s", timeout=130)
    for n, name in ((ns, "wear"), (ns, "watch"), (ns, "echo"), (other, "video")):
        c.kubectl("-n", n, "rollout", "status", f"deployment/{name}", "--timeout=90s", timeout=100)
    svc = json.loads(c.kubectl("-n", CONTROLLER_NS, "get", "service", CONTROLLER, "-o", "json").stdout)
    ports = {p["name"]: p["nodePort"] for p in svc["spec"]["ports"]}
    node_ip = next(n["ip"] for n in c.config["nodes"] if n["name"] == "node01")
    try:
        yield c, ns, other, node_ip, ports["http"], ports["https"], tmp_path_factory.mktemp("tls")
    finally:
        for n in (ns, other):
            c.kubectl("delete", "namespace", n, "--wait=false", check=False)


def get(lab, path: str, host: str | None = None) -> tuple[int, str]:
    _, _, _, ip, port, _, _ = lab
    r = curl("--path-as-is", "-w", "\n%{http_code}", *(["-H", f"Host: {host}"] if host else []), f"http://{ip}:{port}{path}")
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def eventually(c, what, fn, timeout=30):
    return c.wait_for(what, fn, timeout=timeout, interval=0.3)


def test_the_classic_ingress_lab(lab):
    c, ns, _, node_ip, _, _, _ = lab
    # find the controller: its namespace, Deployment and IngressClass
    deployments = c.kubectl("get", "deployments", "--all-namespaces").stdout
    assert any(line.split()[:2] == [CONTROLLER_NS, CONTROLLER] for line in deployments.splitlines())
    classes = c.kubectl("get", "ingressclass").stdout.splitlines()
    assert classes[1].split()[:3] == ["nginx", "k8s.io/ingress-nginx", "<none>"]
    # two paths to two Services
    c.kubectl("-n", ns, "create", "ingress", "shop", "--rule=/wear*=wear:8080", "--rule=/watch*=watch:8080")
    eventually(c, "/wear served", lambda: get(lab, "/wear")[0] == 200)
    assert get(lab, "/wear")[1].startswith("wear-") and get(lab, "/watch/movies")[1].startswith("watch-")
    # the default backend's 404
    code, body = get(lab, "/eat")
    assert code == 404 and "<h1>404 Not Found</h1>" in body
    # a new path added with kubectl patch
    c.kubectl("-n", ns, "patch", "ingress", "shop", "--type=json", "-p", json.dumps([{
        "op": "add", "path": "/spec/rules/0/http/paths/-",
        "value": {"path": "/eat", "pathType": "Prefix", "backend": {"service": {"name": "watch",
                                                                                 "port": {"number": 8080}}}}}]))
    eventually(c, "/eat served", lambda: get(lab, "/eat")[1].startswith("watch-"))
    # a climbing path is routed as what it resolves to; a huge Host header is refused
    assert get(lab, "/nothing/../wear")[1].startswith("wear-")
    assert get(lab, "/wear/%2e%2e/%2e%2e/%2e%2e/etc/passwd")[0] == 400
    assert get(lab, "/wear", host="a" * 20000 + ".example.com")[0] in (400, 431)
    # the address (the node running the controller) and describe with its backends
    row = eventually(c, "ADDRESS set", lambda: (r := c.kubectl("-n", ns, "get", "ingress", "shop", "--no-headers")
                                                .stdout.split()) and r[3] != "80" and r)
    assert row[:3] == ["shop", "nginx", "*"]
    nodes = {n["ip"] for n in c.config["nodes"]}
    assert set(row[3].split(",")) <= nodes
    described = c.kubectl("-n", ns, "describe", "ingress", "shop").stdout
    wear_ip = json.loads(c.kubectl("-n", ns, "get", "pods", "-l", "app=wear", "-o", "json").stdout)["items"][0][
        "status"]["podIP"]
    assert "/wear" in described and f"wear:8080 ({wear_ip}:8080)" in described and "/eat" in described
    # access logs
    logs = c.kubectl("-n", CONTROLLER_NS, "logs", f"deployment/{CONTROLLER}").stdout
    assert '"GET /wear HTTP/1.1" 200' in logs and f"[{ns}-wear-8080]" in logs and '"GET /eat HTTP/1.1" 404' in logs
    assert node_ip


def test_rewrite_target_and_another_namespace(lab):
    c, ns, other, _, _, _, _ = lab
    c.kubectl("apply", "-f", "-", input=REWRITE.format(ns=ns))
    eventually(c, "rewrite served", lambda: get(lab, "/api/hostname", "rewrite.example.com")[1].startswith("echo-"))
    assert get(lab, "/API/echo?msg=rewritten", "rewrite.example.com") == (200, "rewritten")
    # an Ingress in another namespace routes to its own namespace's Services only
    c.kubectl("-n", other, "create", "ingress", "video", "--rule=video.example.com/*=video:8080",
              "--rule=steal.example.com/*=wear:8080")
    eventually(c, "video served", lambda: get(lab, "/", "video.example.com")[1].startswith("video-"))
    code, body = get(lab, "/", "steal.example.com")
    assert code == 503 and "wear-" not in body  # no Service wear in that namespace


def test_tls_with_a_self_signed_secret(lab):
    c, ns, other, ip, _, https, tmp = lab
    key, crt = tmp / "tls.key", tmp / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(crt), "-subj", "/CN=secure.example.com",
                    "-addext", "subjectAltName=DNS:secure.example.com"], check=True, capture_output=True)
    c.kubectl("-n", ns, "create", "secret", "tls", "secure-cert", f"--cert={crt}", f"--key={key}")
    c.kubectl("-n", ns, "create", "ingress", "secure", "--class=nginx",
              "--rule=secure.example.com/*=wear:8080,tls=secure-cert")

    def https_get(host: str) -> subprocess.CompletedProcess[str]:
        return curl("--cacert", str(crt), "--resolve", f"{host}:{https}:{ip}", f"https://{host}:{https}/")
    eventually(c, "TLS served", lambda: https_get("secure.example.com").stdout.startswith("wear-"))
    # plain HTTP to a TLS host is redirected (ssl-redirect, on by default)
    r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: secure.example.com",
             f"http://{ip}:{lab[4]}/x")
    assert r.stdout == "308 https://secure.example.com/x"
    # another name gets the controller's fake certificate, which our CA did not sign
    assert https_get("video.example.com").returncode == 60
    # an Ingress of another namespace naming the Secret does not get it (Secrets are namespaced)
    c.kubectl("-n", other, "create", "ingress", "stolen", "--rule=stolen.example.com/*=video:8080,tls=secure-cert")
    eventually(c, "stolen host routed", lambda: curl("-k", "--resolve", f"stolen.example.com:{https}:{ip}",
                                                     f"https://stolen.example.com:{https}/").stdout.startswith("video-"))
    r = curl("-kv", "--resolve", f"stolen.example.com:{https}:{ip}", f"https://stolen.example.com:{https}/")
    assert "CN=Kubernetes Ingress Controller Fake Certificate" in r.stderr and "secure.example.com" not in r.stderr


def test_trace_follows_a_request_through_the_controller(lab):
    """`knet trace` from the host (the controller's NodePort) and from a pod (its ClusterIP): the
    controller pod reached, the Ingress rule that matched, the backend pod; the 404 curl gets."""
    c, ns, _, node_ip, http_port, _, _ = lab
    c.kubectl("-n", ns, "create", "ingress", "traced", "--class=nginx", "--rule=trace.example/wear*=wear:8080")
    eventually(c, "trace.example served", lambda: get(lab, "/wear", "trace.example")[0] == 200)
    wear = json.loads(c.kubectl("-n", ns, "get", "pods", "-l", "app=wear", "-o", "json").stdout)["items"][0]
    ctrl = json.loads(c.kubectl("-n", CONTROLLER_NS, "get", "pods", "-o", "json").stdout)["items"]
    p = c.knet("trace", "--name", c.name, "host", f"http://{node_ip}:{http_port}/wear/shirts", "--host",
               "trace.example", "-o", "json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["verdict"] == "delivered", got["reason"]
    assert got["controller"] in {f"{CONTROLLER_NS}/{x['metadata']['name']}" for x in ctrl}
    route = got["route"]
    assert (route["kind"], route["route"], route["host"], route["path"], route["path_type"]) == (
        "Ingress", f"{ns}/traced", "trace.example", "/wear", "Prefix")
    assert route["backend"] == {"namespace": ns, "service": "wear", "port": 8080}
    assert got["back"][0]["paths"][0]["endpoint_pod"] == f"{ns}/{wear['metadata']['name']}"
    assert got["back"][0]["paths"][0]["endpoint"] == f"{wear['status']['podIP']}:8080"
    # from a pod, a path no rule matches: the default backend's 404, as curl gets it
    p = c.knet("trace", "--name", c.name, f"{ns}/{wear['metadata']['name']}", "http://trace.example/nothing")
    assert p.returncode == 0, p.stderr
    assert f"Service {CONTROLLER_NS}/{CONTROLLER}'s ClusterIP" in p.stdout
    assert p.stdout.splitlines()[-1] == ("verdict: no rule of the controller matches host trace.example path "
                                         "/nothing: the default backend answers 404 Not Found (HTTP 404)"), p.stdout
    assert get(lab, "/nothing", "trace.example")[0] == 404
