"""The Gateway API's serving side: the CRD manifest (valid CRDs, the committed file current, the
schema refusing what upstream's does), the status written (gatewaystatus), the per-Gateway
LoadBalancer Service (gatewaycontroller) and the proxy serving a Gateway port on loopback in
front of real aiohttp backends (redirect, header filters, rewrite, weights, 404/500)."""

from __future__ import annotations

import asyncio
import pathlib
import socket

import aiohttp
import yaml
from aiohttp import web
from tests.unit.ingress.tls_helpers import self_signed

from knet.api.crd.structural import validate_object
from knet.api.resources import crds as crd_resource
from knet.ingress import gateway, gatewaycrds, gatewaystatus
from knet.ingress.gatewaycontroller import (
    GatewayListeners,
    gateway_service,
    owned_services,
    pod_ports,
    service_addresses,
    service_name,
)
from knet.ingress.proxy import Proxy, Snapshot

MANIFEST = pathlib.Path(__file__).parents[3] / "deploy" / "gateway-api" / "standard-install.yaml"


def test_the_manifest_is_current_and_its_crds_valid():
    assert MANIFEST.read_text() == gatewaycrds.manifest_yaml()
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert [(d["spec"]["names"]["kind"], [v["name"] for v in d["spec"]["versions"]]) for d in docs] == [
        ("GatewayClass", ["v1", "v1beta1"]), ("Gateway", ["v1", "v1beta1"]), ("HTTPRoute", ["v1", "v1beta1"]),
        ("GRPCRoute", ["v1"]), ("ReferenceGrant", ["v1beta1"])]
    for d in docs:
        crd_resource.defaults(d)
        assert crd_resource.validate(d, None) == [], d["metadata"]["name"]


def _schema(kind: str) -> dict:
    for d in yaml.safe_load_all(MANIFEST.read_text()):
        if d["spec"]["names"]["kind"] == kind:
            return d["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def test_the_schema_refuses_what_upstreams_does():
    gw = _schema("Gateway")
    good = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "spec": {
        "gatewayClassName": "knet", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    assert validate_object(good, gw) == []
    bad = {"spec": {"gatewayClassName": "knet", "listeners": [
        {"name": "Bad_Name", "port": 70000, "protocol": "HTTP", "hostname": "UPPER.example.com"},
        {"name": "dup", "port": 80, "protocol": "HTTP"}, {"name": "dup", "port": 81, "protocol": "HTTP"}]}}
    fields = sorted(e.field for e in validate_object(bad, gw))
    assert fields == ["spec.listeners[0].hostname", "spec.listeners[0].name", "spec.listeners[0].port",
                      "spec.listeners[2]"]
    assert [e.field for e in validate_object({"spec": {"gatewayClassName": "knet", "listeners": []}}, gw)] == [
        "spec.listeners"]
    route = _schema("HTTPRoute")
    bad_route = {"spec": {"rules": [{"matches": [{"path": {"type": "Prefix", "value": "/"}, "method": "FETCH"}],
                                     "backendRefs": [{"name": "s", "port": 8080, "weight": -1}],
                                     "filters": [{"type": "RequestRedirect",
                                                  "requestRedirect": {"statusCode": 307}}]}]}}
    assert sorted(e.field for e in validate_object(bad_route, route)) == [
        "spec.rules[0].backendRefs[0].weight", "spec.rules[0].filters[0].requestRedirect.statusCode",
        "spec.rules[0].matches[0].method", "spec.rules[0].matches[0].path.type"]
    grant = _schema("ReferenceGrant")
    assert sorted(e.field for e in validate_object({"spec": {"from": [], "to": [{"group": ""}]}}, grant)) == [
        "spec.from", "spec.to[0].kind"]


def _state(listeners, name="web", ns="apps", addresses=None):
    gw = {"metadata": {"namespace": ns, "name": name, "generation": 2},
          "spec": {"gatewayClassName": "knet", "listeners": listeners}}
    classes = [{"metadata": {"name": "knet"}, "spec": {"controllerName": gateway.CONTROLLER_NAME}}]
    return gateway.compile_all(classes, [gw], [], [], [], [], addresses=addresses or {}).gateways[f"{ns}/{name}"]


def test_status_keeps_transition_times_and_marks_generation():
    state = _state([{"name": "http", "port": 80, "protocol": "HTTP"}], addresses={"apps/web": ["10.0.0.9"]})
    first = gatewaystatus.gateway_status(state, ["10.0.0.9"], "2026-01-01T00:00:00Z")
    assert first["addresses"] == [{"type": "IPAddress", "value": "10.0.0.9"}]
    assert [(c["type"], c["status"], c["reason"], c["observedGeneration"]) for c in first["conditions"]] == [
        ("Accepted", "True", "Accepted", 2), ("Programmed", "True", "Programmed", 2)]
    assert first["listeners"][0]["attachedRoutes"] == 0
    assert first["listeners"][0]["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    state.obj["status"] = first
    again = gatewaystatus.gateway_status(state, ["10.0.0.9"], "2026-01-01T00:05:00Z")
    assert again == first  # unchanged: nothing to write
    lost = _state([{"name": "http", "port": 80, "protocol": "HTTP"}])
    lost.obj["status"] = first
    later = gatewaystatus.gateway_status(lost, [], "2026-01-01T00:09:00Z")
    programmed = next(c for c in later["conditions"] if c["type"] == "Programmed")
    accepted = next(c for c in later["conditions"] if c["type"] == "Accepted")
    assert (programmed["status"], programmed["lastTransitionTime"]) == ("False", "2026-01-01T00:09:00Z")
    assert accepted["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_route_status_keeps_other_controllers_parents():
    other = {"controllerName": "example.com/other", "parentRef": {"name": "theirs"}, "conditions": []}
    route = {"metadata": {"namespace": "apps", "name": "r", "generation": 3}, "status": {"parents": [other]}}
    parents = [gateway.ParentState({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "web"},
                                   [gateway.Cond("Accepted", True, "Accepted")])]
    status = gatewaystatus.route_status(route, parents, "2026-01-01T00:00:00Z")
    assert status["parents"][0] == other
    assert status["parents"][1]["controllerName"] == gateway.CONTROLLER_NAME
    assert status["parents"][1]["conditions"][0]["observedGeneration"] == 3


def test_gateway_service_keeps_and_allocates_pod_ports():
    state = _state([{"name": "a", "port": 80, "protocol": "HTTP"}, {"name": "b", "port": 8080, "protocol": "HTTP"},
                    {"name": "t", "port": 443, "protocol": "HTTPS"}])
    used = {20000}
    existing = {"spec": {"ports": [{"port": 8080, "targetPort": 20005}]}}
    svc = gateway_service(state, existing, used, "ingress-nginx", {"app": "ctl"})
    assert svc["metadata"]["name"] == "gw-apps-web" and svc["metadata"]["namespace"] == "ingress-nginx"
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["selector"] == {"app": "ctl"}
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 20001), (8080, 20005)]
    owned = owned_services([svc, {"metadata": {"namespace": "other", "name": "x", "annotations": {
        "knet.io/gateway": "a/b"}}}], "ingress-nginx")
    assert list(owned) == ["apps/web"]
    assert pod_ports(owned) == {20001: ("apps/web", 80), 20005: ("apps/web", 8080)}
    assert service_addresses({"status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}}}) == [
        "192.168.1.240"]
    long = service_name("a-very-long-namespace-name-for-testing/" + "g" * 60)
    assert len(long) <= 63 and long.startswith("gw-a-very-long")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _backend(name: str) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"backend": name, "path": request.path_qs, "host": request.headers.get("Host"),
                                  "headers": dict(request.headers)}, headers={"X-Backend": name, "X-Drop": "1"})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


ROUTE = """
metadata: {name: r, namespace: apps, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new},
               statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Env, value: prod}], remove: [X-Secret]}}
    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-Via, value: knet}], remove: [X-Drop]}}
    backendRefs: [{name: one, port: 80, weight: 1}, {name: two, port: 80, weight: 1}]
  - matches: [{path: {type: Exact, value: /broken}}]
    backendRefs: [{name: missing, port: 80}]
"""


async def test_the_proxy_serves_a_gateway_port():
    (r1, p1), (r2, p2) = await _backend("one"), await _backend("two")
    services = [{"metadata": {"namespace": "apps", "name": n}, "spec": {"ports": [{"port": 80}]}}
                for n in ("one", "two")]
    classes = [{"metadata": {"name": "knet"}, "spec": {"controllerName": gateway.CONTROLLER_NAME}}]
    gw = {"metadata": {"namespace": "apps", "name": "web"}, "spec": {"gatewayClassName": "knet", "listeners": [
        {"name": "http", "port": 80, "protocol": "HTTP"}]}}
    c = gateway.compile_all(classes, [gw], [yaml.safe_load(ROUTE)], [], [], services,
                            addresses={"apps/web": ["10.0.0.1"]})
    one, two = gateway.Backend("apps", "one", 80), gateway.Backend("apps", "two", 80)
    pod_port = _free_port()
    proxy = Proxy()
    await proxy.start()
    proxy.swap(Snapshot(endpoints={one: [("127.0.0.1", p1)], two: [("127.0.0.1", p2)]},
                        gateways={pod_port: c.tables[("apps/web", 80)]}))
    listeners = GatewayListeners(proxy, "127.0.0.1")
    await listeners.reconcile({pod_port: "http"})
    base = f"http://127.0.0.1:{pod_port}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/old/x?q=1", allow_redirects=False, headers={"Host": "h.example"}) as r:
                assert (r.status, r.headers["Location"]) == (301, "http://h.example/new/x?q=1")
            seen = set()
            for _ in range(40):  # 50/50: both answer (all 40 from one: p = 2**-39)
                async with s.get(base + "/api/v1/items?a=b", headers={"X-Secret": "s", "Host": "h.example"}) as r:
                    assert r.status == 200
                    body = await r.json()
                    assert body["path"] == "/v1/items?a=b"
                    assert body["headers"]["X-Env"] == "prod" and "X-Secret" not in body["headers"]
                    assert r.headers["X-Via"] == "knet" and "X-Drop" not in r.headers
                    seen.add(body["backend"])
            assert seen == {"one", "two"}
            async with s.get(base + "/broken") as r:
                assert r.status == 500
            async with s.get(base + "/nothing-here") as r:
                assert r.status == 404
        await listeners.reconcile({})  # the Gateway went away: its port closes
        async with aiohttp.ClientSession() as s:
            try:
                async with s.get(base + "/api/x") as r:
                    raise AssertionError(f"still served: {r.status}")
            except aiohttp.ClientConnectionError:
                pass
    finally:
        await listeners.close()
        await proxy.close()
        await r1.cleanup()
        await r2.cleanup()
    await asyncio.sleep(0)


async def test_an_https_gateway_port_serves_each_listeners_certificate():
    import base64
    import ssl

    from knet.ingress import certs
    (r1, p1) = await _backend("one")
    pems = {h: self_signed(h) for h in ("a.example.com", "b.example.com")}
    secrets = [{"metadata": {"namespace": "apps", "name": h.split(".")[0]}, "type": "kubernetes.io/tls",
                "data": {"tls.crt": base64.b64encode(c).decode(), "tls.key": base64.b64encode(k).decode()}}
               for h, (c, k) in pems.items()]
    classes = [{"metadata": {"name": "knet"}, "spec": {"controllerName": gateway.CONTROLLER_NAME}}]
    gw = {"metadata": {"namespace": "apps", "name": "web"}, "spec": {"gatewayClassName": "knet", "listeners": [
        {"name": h.split(".")[0], "port": 443, "protocol": "HTTPS", "hostname": h,
         "tls": {"certificateRefs": [{"name": h.split(".")[0]}]}} for h in pems]}}
    route = {"metadata": {"namespace": "apps", "name": "r"}, "spec": {
        "parentRefs": [{"name": "web"}], "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/elsewhere"}}}]}]}}
    c = gateway.compile_all(classes, [gw], [route], [], [], [{"metadata": {"namespace": "apps", "name": "one"},
                                                              "spec": {"ports": [{"port": 80}]}}],
                            addresses={"apps/web": ["10.0.0.1"]}, secrets=secrets)
    table = c.tables[("apps/web", 443)]
    pod_port = _free_port()
    proxy = Proxy()
    await proxy.start()
    proxy.swap(Snapshot(gateways={pod_port: table}, gateway_certificates={pod_port: {
        h: certs.context_from_secret(next(s for s in secrets if s["metadata"]["name"] == k.split("/")[1]))
        for h, k in table.certificates.items()}}))
    listeners = GatewayListeners(proxy, "127.0.0.1")
    await listeners.reconcile({pod_port: "https"})
    try:
        for host, (cert, _) in pems.items():
            ctx = ssl.create_default_context(cadata=cert.decode())
            async with aiohttp.ClientSession() as s, s.get(
                    f"https://127.0.0.1:{pod_port}/x", ssl=ctx, server_hostname=host, headers={"Host": host},
                    allow_redirects=False) as r:
                # the listener's own certificate verifies; the scheme of the redirect is https
                assert (r.status, r.headers["Location"]) == (302, f"https://{host}/elsewhere")
    finally:
        await listeners.close()
        await proxy.close()
        await r1.cleanup()
