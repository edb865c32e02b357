"""The Gateway API on `knet up` (the session cluster), with the real kubectl and curl from the
host (issue #18 item 3): `kubectl apply -f deploy/gateway-api/standard-install.yaml`, a
GatewayClass of knet's controller, a Gateway that becomes Programmed with an address
(`kubectl wait --for=condition=Programmed`), and HTTPRoutes whose traffic goes through the
Gateway's LoadBalancer address to agnhost pods. Cases ported from the upstream conformance
suite's core HTTPRoute tests: HTTPRouteSimpleSameNamespace, HTTPRouteHostnameIntersection (a
host the route does not name is 404), HTTPRouteHeaderMatching, HTTPRouteWeight (both backends
answer), HTTPRouteRequestHeaderModifier with HTTPRouteRewritePath, HTTPRouteRedirectPath,
HTTPRouteHTTPSListener (an HTTPS listener with a TLS Secret, checked with `curl --cacert`),
HTTPRouteCrossNamespace / HTTPRouteReferenceGrant (refused with RefNotPermitted and 500 until a
ReferenceGrant exists), HTTPRouteInvalidParentRefNotMatchingSectionName; `knet trace` through the Gateway; the status conditions
(a GRPCRoute, which knet does not serve, is not Accepted);
a Gateway invalid per the CRD schema is refused (422) as on any cluster."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e

MANIFEST = pathlib.Path(__file__).parents[2] / "deploy" / "gateway-api" / "standard-install.yaml"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.45"
CLASS = "knet-e2e"


def deployment(name: str, ns: str, args: list[str]) -> str:
    return f"""
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
      - {{name: app, image: {AGNHOST}, args: {json.dumps(args)}, ports: [{{containerPort: 8080}}],
         readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, targetPort: 8080}}]
"""


def objects(ns: str, web: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {CLASS}}}
spec: {{controllerName: knet.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {CLASS}
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
  - {{name: https, port: 443, protocol: HTTPS, hostname: secure.example.com,
     tls: {{certificateRefs: [{{name: secure-cert}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: secure, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [secure.example.com]
  rules: [{{backendRefs: [{{name: v2, port: 8080}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs: [{{name: v1, port: 8080}}]
  - matches: [{{headers: [{{name: version, value: two}}]}}]
    backendRefs: [{{name: v2, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /split}}}}]
    backendRefs: [{{name: v1, port: 8080, weight: 50}}, {{name: v2, port: 8080, weight: 50}}]
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    filters:
    - {{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}}}
    - {{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: X-Env, value: prod}}]}}}}
    backendRefs: [{{name: echo, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}},
               statusCode: 301}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: cross, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [cross.example.com]
  rules: [{{backendRefs: [{{name: web, namespace: {web}, port: 8080}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: v1, port: 8080}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: wrong-section, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, sectionName: nonexistent}}]
  rules: [{{backendRefs: [{{name: v1, port: 8080}}]}}]
"""


def curl(*args: str) -> tuple[int, str, str]:
    """(status, body, headers) of one request from the host."""
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "-D", "-", "-w", "\n%{http_code}", *args],
                       capture_output=True, text=True, timeout=15)
    out, _, code = r.stdout.rpartition("\n")
    head, _, body = out.partition("\n\n")  # text mode: the \r\n are \n
    return int(code or 0), body, head


def conditions(c, kind: str, name: str, ns: str, parent: bool = False) -> dict[str, tuple[str, str]]:
    obj = json.loads(c.kubectl("-n", ns, "get", kind, name, "-o", "json").stdout)
    status = obj.get("status") or {}
    conds = (status.get("parents") or [{}])[0].get("conditions") if parent else status.get("conditions")
    return {x["type"]: (x["status"], x["reason"]) for x in conds or []}


@pytest.fixture(scope="module")
def gw(knet_cluster, tmp_path_factory):
    c = knet_cluster
    stamp = int(time.time())
    ns, web = f"gw-{stamp}", f"gw-web-{stamp}"
    tls = tmp_path_factory.mktemp("gw-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout",
                    str(tls / "tls.key"), "-out", str(tls / "tls.crt"), "-subj", "/CN=secure.example.com",
                    "-addext", "subjectAltName=DNS:secure.example.com"], check=True, capture_output=True)
    c.kubectl("apply", "-f", str(MANIFEST))
    c.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/gateways.gateway.networking.k8s.io",
              "crd/httproutes.gateway.networking.k8s.io", "crd/gatewayclasses.gateway.networking.k8s.io",
              "crd/grpcroutes.gateway.networking.k8s.io", "crd/referencegrants.gateway.networking.k8s.io",
              timeout=40)
    for n in (ns, web):
        c.kubectl("create", "namespace", n)
    c.kubectl("-n", ns, "create", "secret", "tls", "secure-cert", f"--cert={tls / 'tls.crt'}",
              f"--key={tls / 'tls.key'}")
    c.kubectl("apply", "-f", "-", input="\n---\n".join([
        deployment("v1", ns, ["serve-hostname", "--http", "--port=8080"]),
        deployment("v2", ns, ["serve-hostname", "--http", "--port=8080"]),
        deployment("echo", ns, ["netexec", "--http-port=8080"]),
        deployment("web", web, ["serve-hostname", "--http", "--port=8080"]),
        objects(ns, web)]))
    try:
        yield c, ns, web, tls / "tls.crt"
    finally:
        for n in (ns, web):
            c.kubectl("delete", "namespace", n, "--wait=false", check=False)
        c.kubectl("delete", "gatewayclass", CLASS, "--wait=false", check=False)


def test_gateway_routes_and_status(gw):
    c, ns, web, cacert = gw
    # status: the class accepted, the Gateway Programmed with an address, as users wait for it
    c.kubectl("wait", "--for=condition=Accepted", f"gatewayclass/{CLASS}", "--timeout=60s", timeout=70)
    c.kubectl("-n", ns, "wait", "--for=condition=Programmed", "gateway/gw", "--timeout=90s", timeout=100)
    row = c.kubectl("-n", ns, "get", "gateway", "gw").stdout.splitlines()
    assert row[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    _, cls, addr, programmed, _ = row[1].split()
    assert (cls, programmed) == (CLASS, "True")
    for n in ("v1", "v2", "echo"):
        c.kubectl("-n", ns, "rollout", "status", f"deployment/{n}", "--timeout=90s", timeout=100)
    c.kubectl("-n", web, "rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    url = f"http://{addr}"

    def get(path: str, host: str = "shop.example.com", *extra: str) -> tuple[int, str, str]:
        return curl("-H", f"Host: {host}", *extra, url + path)

    # HTTPRouteSimpleSameNamespace: through the Gateway's address to the backend pod
    c.wait_for("the route served", lambda: get("/")[0] == 200, timeout=30, interval=0.3)
    assert get("/")[1].startswith("v1-")
    # `knet trace` through the Gateway's address: its listener, the route's rule, the pod curl reached
    p = c.knet("trace", "--name", c.name, "host", f"http://{addr}/", "--host", "shop.example.com", "-o", "json")
    assert p.returncode == 0, p.stderr
    traced = json.loads(p.stdout)
    assert traced["verdict"] == "delivered", traced["reason"]
    r = traced["route"]
    assert (r["kind"], r["gateway"], r["listener"], r["route"], r["rule"], r["match"], r["host"]) == (
        "HTTPRoute", f"{ns}/gw", "http", f"{ns}/shop", 0, 0, "shop.example.com")
    assert r["backend"] == {"namespace": ns, "service": "v1", "port": 8080}
    assert traced["back"][0]["paths"][0]["endpoint_pod"] == f"{ns}/{get('/')[1].strip()}"
    # HTTPRouteHeaderMatching
    assert get("/", "shop.example.com", "-H", "version: two")[1].startswith("v2-")
    # HTTPRouteHostnameIntersection: a host no route names is not served
    assert get("/", "other.example.com")[0] == 404
    # HTTPRouteWeight: both backends of a 50/50 split answer
    seen = {get("/split")[1].split("-")[0] for _ in range(24)}
    assert seen == {"v1", "v2"}
    # HTTPRouteRewritePath + HTTPRouteRequestHeaderModifier: netexec sees /header and X-Env
    assert get("/api/header?key=X-Env")[:2] == (200, "prod")
    # HTTPRouteRedirectPath
    code, _, head = get("/old/page?x=1")
    assert code == 301 and "location: http://shop.example.com/new/page?x=1" in head.lower()
    # the route's status and the listener's attached routes
    assert conditions(c, "httproute", "shop", ns, parent=True) == {
        "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    gwobj = json.loads(c.kubectl("-n", ns, "get", "gateway", "gw", "-o", "json").stdout)
    assert gwobj["status"]["addresses"] == [{"type": "IPAddress", "value": addr}]
    assert [ls["attachedRoutes"] for ls in gwobj["status"]["listeners"]] == [3, 1]  # shop, cross, secure; secure
    described = c.kubectl("-n", ns, "describe", "gateway", "gw").stdout
    assert "Attached Routes:  3" in described and "Programmed" in described
    # an HTTPS listener: TLS with the Secret's certificate (checked with --cacert), then the route
    code, body, _ = curl("--cacert", str(cacert), "--resolve", f"secure.example.com:443:{addr}",
                         "https://secure.example.com/")
    assert code == 200 and body.startswith("v2-")
    # HTTPRouteInvalidParentRefNotMatchingSectionName
    assert conditions(c, "httproute", "wrong-section", ns, parent=True)["Accepted"] == ("False", "NoMatchingParent")
    # knet's listeners do not serve GRPCRoutes: one attached is not accepted
    c.wait_for("the GRPCRoute refused", lambda: conditions(c, "grpcroute", "grpc", ns, parent=True).get(
        "Accepted") == ("False", "NotAllowedByListeners"), timeout=20, interval=0.3)

    # HTTPRouteCrossNamespace without a ReferenceGrant: refused, requests get 500
    assert conditions(c, "httproute", "cross", ns, parent=True)["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert get("/", "cross.example.com")[0] == 500
    c.kubectl("apply", "-f", "-", input=f"""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: from-{ns}, namespace: {web}}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {ns}}}]
  to: [{{group: "", kind: Service, name: web}}]
""")
    c.wait_for("the granted backend served", lambda: get("/", "cross.example.com")[1].startswith("web-"),
               timeout=30, interval=0.3)
    c.wait_for("ResolvedRefs True", lambda: conditions(c, "httproute", "cross", ns, parent=True).get(
        "ResolvedRefs") == ("True", "ResolvedRefs"), timeout=20, interval=0.3)

    # refused as Kubernetes refuses it: invalid per the CRD schema
    bad = c.kubectl("-n", ns, "apply", "-f", "-", check=False, input=f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bad}}
spec:
  gatewayClassName: {CLASS}
  listeners: [{{name: http, port: 70000, protocol: HTTP}}]
""")
    assert bad.returncode != 0 and "spec.listeners[0].port" in bad.stderr and "Invalid value" in bad.stderr

    # the Gateway deleted: its Service and address go
    svcs = c.kubectl("-n", "ingress-nginx", "get", "services", "-o", "name").stdout
    assert f"service/gw-{ns}-gw" in svcs
    c.kubectl("-n", ns, "delete", "gateway", "gw")
    c.wait_for("the Gateway's Service deleted", lambda: f"service/gw-{ns}-gw" not in c.kubectl(
        "-n", "ingress-nginx", "get", "services", "-o", "name").stdout, timeout=30, interval=0.3)
