"""`knet trace` through a Gateway API Gateway: from the host (the Gateway's LoadBalancer address) or
a pod (its Service's ClusterIP) to the controller pod's port for that Gateway, through the
HTTPRoutes as the controller routes them (knet.ingress.gateway.compile_all/decide), to the backend
pod; on the two-node cluster of tests/unit/trace/cluster.py with the rules knet's kube-proxy renders,
in both proxy modes. The Gateway's Service is the one the controller makes
(gatewaycontroller.gateway_service); the route cases follow the upstream conformance tests the
e2e ports (HTTPRouteSimpleSameNamespace, HTTPRouteWeight, HTTPRouteRewritePath,
HTTPRouteRequestHeaderModifier, HTTPRouteRedirectPath, HTTPRouteReferenceGrant,
HTTPRouteHostnameIntersection)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from tests.unit.proxy.proxy_objects import endpoint_slice, ep
from tests.unit.trace.test_trace_ingress import (
    CONTROLLER_IP,
    HOST_IP,
    LAB,
    MODES,
    POOL,
    backend,
    cluster,
    controller_objects,
)

from knet.ingress import gateway, gatewaycontroller, manifests
from knet.trace import gatewayroutes, http, lb, routes
from knet.trace.view import TraceError, resolve

GW_IP = "192.168.0.210"
GW_CLUSTER_IP = "10.96.0.60"
CLASS = {"kind": "GatewayClass", "metadata": {"name": "knet"},
         "spec": {"controllerName": gateway.CONTROLLER_NAME}}


def gw(listeners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "Gateway", "metadata": {"namespace": "x", "name": "gw"},
            "spec": {"gatewayClassName": "knet", "listeners": listeners or [
                {"name": "web", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}


def route(name: str, rules: list[dict[str, Any]], hostnames: tuple[str, ...] = ("shop.example",),
          ns: str = "x") -> dict[str, Any]:
    return {"kind": "HTTPRoute", "metadata": {"namespace": ns, "name": name,
                                              "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "x"}], "hostnames": list(hostnames), "rules": rules}}


def ref(name: str, weight: int | None = None, ns: str | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"name": name, "port": 80}
    if weight is not None:
        r["weight"] = weight
    if ns:
        r["namespace"] = ns
    return r


SHOP = route("shop", [
    {"backendRefs": [ref("wear")]},
    {"matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
     "backendRefs": [ref("wear", 30), ref("watch", 70)]},
    {"matches": [{"path": {"type": "Exact", "value": "/x"}}, {"path": {"type": "PathPrefix", "value": "/api"}}],
     "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/v2"}}},
                 {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Env", "value": "prod"}]}}],
     "backendRefs": [ref("watch")]},
    {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
     "filters": [{"type": "RequestRedirect", "requestRedirect": {
         "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}, "statusCode": 301}}]},
])
# a backend in another namespace: refused (500) until that namespace grants it
CROSS = route("cross", [{"backendRefs": [ref("web", ns="y")]}], hostnames=("cross.example",))
WEB = [{"kind": "Service", "metadata": {"namespace": "y", "name": "web"},
        "spec": {"clusterIP": "10.96.0.70", "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}},
       endpoint_slice("web", [ep("10.244.2.4", "node02", ready=True)], ns="y")]
GRANT = {"kind": "ReferenceGrant", "metadata": {"namespace": "y", "name": "from-x"},
         "spec": {"from": [{"group": gateway.GROUP, "kind": "HTTPRoute", "namespace": "x"}],
                  "to": [{"group": "", "kind": "Service", "name": "web"}]}}
NAMESPACES = [{"kind": "Namespace", "metadata": {"name": n}} for n in ("x", "y")]


def gateway_service(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Gateway's LoadBalancer Service as the controller creates it (its first pod port is
    20000), holding GW_IP, and its EndpointSlice: the controller pod on that port."""
    compiled = gateway.compile_all([o for o in objs if o["kind"] == "GatewayClass"],
                                   [o for o in objs if o["kind"] == "Gateway"], [], [], [], [])
    ctrl_svc = next(o for o in controller_objects() if o["kind"] == "Service")
    svc = gatewaycontroller.gateway_service(compiled.gateways["x/gw"], None, set(), manifests.NAMESPACE,
                                            ctrl_svc["spec"]["selector"])
    svc["spec"]["clusterIP"] = GW_CLUSTER_IP
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": GW_IP, "ipMode": "VIP"}]}}
    ports = [{"name": p["name"], "port": p["targetPort"], "protocol": "TCP"} for p in svc["spec"]["ports"]]
    sl = endpoint_slice(svc["metadata"]["name"], [ep(CONTROLLER_IP, "node01", ready=True)], ns=manifests.NAMESPACE,
                        ports=ports)
    return [svc, sl]


def run(mode: str, frm: str, to: str, *extra: dict[str, Any], host: str = "", path: str = "",
        all_paths: bool = False, seed: int = 0, gw_obj: dict[str, Any] | None = None) -> http.HttpTrace:
    g = gw_obj or gw()
    gw_objs = [CLASS, g, *NAMESPACES, SHOP, CROSS, *WEB, *extra]
    everything = [*controller_objects(), *LAB, *gateway_service([CLASS, g]), *gw_objs]
    view, dp = cluster(mode, *[o for o in everything if o["kind"] in ("Pod", "Service", "EndpointSlice")])
    objs = gatewayroutes.GatewayObjects.of(everything)
    src = lb.host_place(HOST_IP) if lb.is_host(frm) else resolve(view, frm)
    target = http.http_target(to, host, path)
    if target.connect.startswith("gateway/"):
        connect, port, why = http.gateway_address(view, src, objs, manifests.NAMESPACE,
                                                  target.connect.removeprefix("gateway/"), target.request.scheme)
    else:
        connect = lb.resolve_target(view, target.connect, src)
        port, why = target.port or 80, connect.describe()
    rng = random.Random(seed)

    def router_for(pod: dict[str, Any], pod_port: int) -> routes.Router | None:
        opts = routes.controller_options(pod)
        assert opts is not None and opts.publish_service
        return gatewayroutes.GatewayRouter.for_pod_port(objs, opts.publish_service.partition("/")[0], pod_port,
                                                        pick=rng.randrange)
    result = http.trace_http(view, dp, src, target.request, connect, port, router_for, connect_why=why, pool=POOL,
                             all_paths=all_paths, rng=rng)
    text = http.text(view, result, all_paths=all_paths)
    assert text.splitlines()[-1] == f"verdict: {result.reason}" + (f" (HTTP {result.status})" if result.status else "")
    data = json.loads(json.dumps(http.data(result, all_paths=all_paths)))
    assert data["verdict"] == result.verdict and set(data) == {
        "request", "connect", "front", "controller", "controller_node", "route", "endpoints", "back", "verdict",
        "status", "reason"}
    result.text = text  # type: ignore[attr-defined]
    result.json = data  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("mode", MODES)
def test_host_through_the_gateway_address_to_the_backend_pod(mode: str) -> None:
    # HTTPRouteSimpleSameNamespace
    t = run(mode, "host", f"http://{GW_IP}/shirts", host="shop.example")
    assert t.front.target.ip == GW_IP and t.front.path.endpoint == f"{CONTROLLER_IP}:20000"
    assert t.controller == f"{manifests.NAMESPACE}/ingress-nginx-controller-abc"
    m = t.route
    assert m is not None and (m.kind, m.gateway, m.listener, m.route, m.rule, m.match, m.host, m.path_type, m.path) == (
        "HTTPRoute", "x/gw", "web", "x/shop", 0, 0, "shop.example", "PathPrefix", "/")
    assert m.backend == routes.BackendRef("x", "wear", 80) and t.endpoints == ["10.244.2.4:80"]
    assert t.back[0].path.endpoint_pod == "x/c"
    assert (t.verdict, t.status) == ("delivered", 0)
    assert "Gateway x/gw port 80, listener web" in t.text  # type: ignore[attr-defined]
    assert t.json["route"]["gateway"] == "x/gw" and t.json["route"]["route"] == "x/shop"  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", MODES)
def test_a_pod_reaches_the_gateway_by_name_through_its_cluster_ip(mode: str) -> None:
    t = run(mode, "y/b", "gateway/x/gw", host="shop.example", path="/")
    assert t.front.target.ip == GW_CLUSTER_IP and t.front.path.endpoint == f"{CONTROLLER_IP}:20000"
    assert t.connect_why.startswith("Gateway x/gw: Service ingress-nginx/gw-x-gw's ClusterIP")
    assert t.verdict == "delivered" and t.route is not None and t.route.route == "x/shop"


def test_weighted_backends_the_chosen_one_and_all_under_all() -> None:
    chosen = set()
    for seed in range(12):
        t = run("iptables", "host", f"http://{GW_IP}/split", host="shop.example", seed=seed)
        m = t.route
        assert m is not None and [(w.backend.service if w.backend else None, w.weight) for w in m.backends] == [
            ("wear", 30), ("watch", 70)]
        picked = [w for w in m.backends if w.chosen]
        assert len(picked) == 1 and picked[0].backend == m.backend
        chosen.add(m.backend.service if m.backend else "")
        lines = [ln for ln in t.text.splitlines() if ln.startswith("  backend ")]  # type: ignore[attr-defined]
        assert lines == [f"  backend {picked[0].text()} of total weight 100"]
    assert chosen == {"wear", "watch"}
    t = run("iptables", "host", f"http://{GW_IP}/split", host="shop.example", all_paths=True)
    lines = [ln for ln in t.text.splitlines() if ln.startswith("  backend ")]  # type: ignore[attr-defined]
    assert len(lines) == 2 and "Service x/wear port 80 weight 30" in lines[0] and "weight 70" in lines[1]
    assert [w["weight"] for w in t.json["route"]["backends"]] == [30, 70]  # type: ignore[attr-defined]


def test_rewrite_and_header_modifier_filters() -> None:
    # HTTPRouteRewritePath + HTTPRouteRequestHeaderModifier: the second match of rule 2
    t = run("iptables", "host", f"http://{GW_IP}/api/x?q=1", host="shop.example")
    m = t.route
    assert m is not None and (m.route, m.rule, m.match, m.path_type, m.path) == ("x/shop", 2, 1, "PathPrefix", "/api")
    assert m.filters == ["URLRewrite path ReplaceFullPath /v2", "RequestHeaderModifier set X-Env: prod"]
    assert m.upstream_path == "/v2?q=1" and m.backend == routes.BackendRef("x", "watch", 80)
    assert t.verdict == "delivered" and ", path /v2?q=1" in t.reason
    assert "  filter URLRewrite path ReplaceFullPath /v2" in t.text  # type: ignore[attr-defined]


def test_redirect_is_the_rules_status_and_location() -> None:
    # HTTPRouteRedirectPath
    t = run("iptables", "host", f"http://{GW_IP}/old/page?x=1", host="shop.example")
    assert (t.verdict, t.status) == ("redirect", 301) and not t.back
    assert t.route is not None and t.route.location == "http://shop.example/new/page?x=1"
    assert t.route.filters == ["RequestRedirect path ReplacePrefixMatch /new, statusCode 301"]
    assert t.reason == ("the controller answers 301 to http://shop.example/new/page?x=1 (HTTPRoute x/shop rule 3's "
                        "RequestRedirect)")


def test_a_backend_of_another_namespace_is_refused_until_granted() -> None:
    # HTTPRouteReferenceGrant: 500 without the grant, the pod with it
    t = run("iptables", "host", f"http://{GW_IP}/", host="cross.example")
    assert (t.verdict, t.status) == ("server-error", 500) and not t.back
    assert t.route is not None and t.route.route == "x/cross" and t.route.backend is None
    assert t.route.backends[0].refused == "backendRef Service y/web is not permitted by any ReferenceGrant"
    assert t.reason == ("the controller answers 500 Internal Server Error: HTTPRoute x/cross rule 0: backendRef "
                        "Service y/web is not permitted by any ReferenceGrant")
    t = run("iptables", "host", f"http://{GW_IP}/", GRANT, host="cross.example")
    assert t.verdict == "delivered" and t.route is not None and t.route.backend == routes.BackendRef("y", "web", 80)
    assert t.back[0].path.endpoint_pod == "x/c"


def test_a_host_no_route_names_is_404() -> None:
    # HTTPRouteHostnameIntersection
    t = run("iptables", "host", f"http://{GW_IP}/", host="other.example")
    assert (t.verdict, t.status) == ("not-found", 404) and t.route is not None and not t.route.route
    assert t.reason == ("no HTTPRoute attached to Gateway x/gw matches host other.example path /: the controller "
                        "answers 404 Not Found")


def test_the_listener_by_hostname_and_a_route_it_does_not_allow() -> None:
    listeners = [{"name": "shop", "port": 80, "protocol": "HTTP", "hostname": "shop.example",
                  "allowedRoutes": {"namespaces": {"from": "All"}}},
                 {"name": "any", "port": 80, "protocol": "HTTP", "hostname": "*.example"}]
    t = run("iptables", "host", f"http://{GW_IP}/", host="shop.example", gw_obj=gw(listeners))
    assert t.route is not None and t.route.listener == "shop" and t.verdict == "delivered"
    # the `any` listener allows routes of its own namespace only (Same): a route of y is not served
    t = run("iptables", "host", f"http://{GW_IP}/", route("other", [{"backendRefs": [ref("web")]}],
                                                           hostnames=("a.example",), ns="y"),
            host="a.example", gw_obj=gw(listeners))
    assert t.route is not None and t.route.listener == "any" and (t.verdict, t.status) == ("not-found", 404)


def test_a_gateway_port_names_its_listener() -> None:
    listeners = [{"name": "web", "port": 80, "protocol": "HTTP"}, {"name": "alt", "port": 8080, "protocol": "HTTP"}]
    t = run("iptables", "host", "gateway/x/gw:8080", host="shop.example", gw_obj=gw(listeners))
    assert t.front.path.endpoint == f"{CONTROLLER_IP}:20001" and t.route is not None
    assert (t.route.listener, t.route.route, t.verdict) == ("alt", "x/shop", "delivered")


def test_an_unknown_gateway_is_refused() -> None:
    objs = gatewayroutes.GatewayObjects.of([CLASS, gw(), *gateway_service([CLASS, gw()])])
    assert gatewayroutes.gateway_service_key(objs, manifests.NAMESPACE, "x/gw") == "ingress-nginx/gw-x-gw"
    with pytest.raises(LookupError, match="Gateway default/nope not found"):
        gatewayroutes.gateway_service_key(objs, manifests.NAMESPACE, "nope")


def test_the_ingress_ports_still_route_ingresses() -> None:
    # the controller pod's own port 80 is not a Gateway's: no Gateway router for it
    objs = gatewayroutes.GatewayObjects.of([CLASS, gw(), *gateway_service([CLASS, gw()])])
    assert gatewayroutes.GatewayRouter.for_pod_port(objs, manifests.NAMESPACE, 80) is None
    assert gatewayroutes.GatewayRouter.for_pod_port(objs, "elsewhere", 20000) is None
    view = cluster("iptables", *backend("wear", ()))[0]
    with pytest.raises(TraceError, match="Gateway x/nope not found"):
        http.gateway_address(view, lb.host_place(HOST_IP), objs, manifests.NAMESPACE, "x/nope", "http")
