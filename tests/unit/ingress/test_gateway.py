"""The Gateway API compile and request decision (knet.ingress.gateway) against tables ported from
the upstream conformance suite (kubernetes-sigs/gateway-api conformance/tests/*.go and their
YAML; the base Gateways same-namespace / all-namespaces / backend-namespaces and the infra-,
app- and web-backend Services are conformance/base/manifests.yaml's)."""

from __future__ import annotations

import yaml

from knet.ingress import gateway
from knet.ingress.gateway import Backend, compile_all, decide

INFRA = "gateway-conformance-infra"
WEB = "gateway-conformance-web-backend"
APP = "gateway-conformance-app-backend"


def _svc(ns: str, name: str, port: int = 8080) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"ports": [{"port": port, "targetPort": 3000}]}}


def _ns(name: str, labels: dict) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def _gw(name: str, listeners: list[dict], ns: str = INFRA, cls: str = "knet") -> dict:
    return {"metadata": {"namespace": ns, "name": name, "generation": 1},
            "spec": {"gatewayClassName": cls, "listeners": listeners}}


def _http(allowed: dict | None = None, name: str = "http", port: int = 80, **kw) -> dict:
    return {"name": name, "port": port, "protocol": "HTTP",
            "allowedRoutes": {"namespaces": allowed or {"from": "Same"}}, **kw}


CLASSES = [{"metadata": {"name": "knet"}, "spec": {"controllerName": gateway.CONTROLLER_NAME}},
           {"metadata": {"name": "other"}, "spec": {"controllerName": "example.com/other"}}]
BASE_GATEWAYS = [
    _gw("same-namespace", [_http()]),
    _gw("all-namespaces", [_http({"from": "All"})]),
    _gw("backend-namespaces", [_http({"from": "Selector", "selector": {
        "matchLabels": {"gateway-conformance": "backend"}}})]),
]
NAMESPACES = [_ns(INFRA, {"gateway-conformance": "infra"}), _ns(APP, {"gateway-conformance": "backend"}),
              _ns(WEB, {"gateway-conformance": "backend"})]
SERVICES = [_svc(INFRA, "infra-backend-v1"), _svc(INFRA, "infra-backend-v2"), _svc(INFRA, "infra-backend-v3"),
            _svc(APP, "app-backend-v1"), _svc(APP, "app-backend-v2"), _svc(WEB, "web-backend")]
V1, V2, V3 = (Backend(INFRA, f"infra-backend-v{i}", 8080) for i in (1, 2, 3))


def world(docs: str, gateways: list[dict] | None = None, grants_extra: list[dict] = ()):
    objs = [o for o in yaml.safe_load_all(docs) if o]
    routes = [o for o in objs if o["kind"] == "HTTPRoute"]
    for i, r in enumerate(routes):
        r["metadata"].setdefault("creationTimestamp", f"2026-01-01T00:00:{i:02d}Z")
        r["metadata"].setdefault("generation", 1)
    grants = [o for o in objs if o["kind"] == "ReferenceGrant"] + list(grants_extra)
    extra = [o for o in objs if o["kind"] == "Gateway"]
    return compile_all(CLASSES, (gateways or BASE_GATEWAYS) + extra, routes, grants, NAMESPACES, SERVICES,
                       addresses={"x": []})


def ask(c, path: str, host: str = "example.com", headers: dict | None = None, method: str = "GET",
        gw: str = f"{INFRA}/same-namespace", port: int = 80, pick: int = 0):
    table = c.tables.get((gw, port))
    hdrs = [("Host", host)] + list((headers or {}).items())
    return decide(table, method, path, hdrs, lambda n: pick % n)


def parent_conditions(c, route: str) -> dict[str, tuple[bool, str]]:
    [parent] = c.routes[route]
    return {cond.type: (cond.status, cond.reason) for cond in parent.conditions}


# HTTPRouteSimpleSameNamespace (httproute-simple-same-namespace.go)
def test_simple_same_namespace():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: gateway-conformance-infra-test, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules: [{{backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}]
""")
    assert ask(c, "/").backend == V1
    assert parent_conditions(c, f"{INFRA}/gateway-conformance-infra-test") == {
        "Accepted": (True, "Accepted"), "ResolvedRefs": (True, "ResolvedRefs")}
    gw = c.gateways[f"{INFRA}/same-namespace"]
    assert [len(ls.attached) for ls in gw.listeners] == [1]
    # served on the Gateway it attached to, not on the others
    assert ask(c, "/", gw=f"{INFRA}/all-namespaces").status == 404


MATCHING = f"""
kind: HTTPRoute
metadata: {{name: matching, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}, {{headers: [{{name: version, value: one}}]}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}, {{headers: [{{name: version, value: two}}]}}]
    backendRefs: [{{name: infra-backend-v2, port: 8080}}]
"""


# HTTPRouteMatching (httproute-matching.go)
def test_matching():
    c = world(MATCHING)
    for path, headers, want in [("/", {}, V1), ("/example", {}, V1), ("/", {"Version": "one"}, V1),
                                ("/v2", {}, V2), ("/v2/example", {}, V2), ("/", {"Version": "two"}, V2),
                                ("/v2/", {}, V2), ("/v2example", {}, V1), ("/foo/v2/example", {}, V1)]:
        assert ask(c, path, headers=headers).backend == want, (path, headers)


# HTTPRoutePathMatchOrder (httproute-path-match-order.go)
def test_path_match_order():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: path-matching-order, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - {{matches: [{{path: {{type: Exact, value: /match}}}}], backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}
  - {{matches: [{{path: {{type: Exact, value: /match/exact}}}}], backendRefs: [{{name: infra-backend-v2, port: 8080}}]}}
  - {{matches: [{{path: {{type: Exact, value: /match/exact/one}}}}],
     backendRefs: [{{name: infra-backend-v3, port: 8080}}]}}
  - {{matches: [{{path: {{type: PathPrefix, value: /match/}}}}], backendRefs: [{{name: infra-backend-v3, port: 8080}}]}}
  - {{matches: [{{path: {{type: PathPrefix, value: /match/prefix/}}}}],
     backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}
  - {{matches: [{{path: {{type: PathPrefix, value: /match/prefix/one}}}}],
     backendRefs: [{{name: infra-backend-v2, port: 8080}}]}}
""")
    for path, want in [("/match/exact/one", V3), ("/match/exact", V2), ("/match", V1),
                       ("/match/prefix/one/any", V2), ("/match/prefix/any", V1), ("/match/any", V3)]:
        assert ask(c, path).backend == want, path


# HTTPRouteHeaderMatching (httproute-header-matching.go)
def test_header_matching():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: header-matching, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - {{matches: [{{headers: [{{name: version, value: one}}]}}], backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}
  - {{matches: [{{headers: [{{name: version, value: two}}]}}], backendRefs: [{{name: infra-backend-v2, port: 8080}}]}}
  - matches: [{{headers: [{{name: version, value: two}}, {{name: color, value: orange}}]}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{headers: [{{name: color, value: blue}}]}}, {{headers: [{{name: color, value: green}}]}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{headers: [{{name: color, value: red}}]}}, {{headers: [{{name: color, value: yellow}}]}}]
    backendRefs: [{{name: infra-backend-v2, port: 8080}}]
""")
    for headers, want in [({"Version": "one"}, V1), ({"Version": "two"}, V2),
                          ({"Version": "two", "Color": "orange"}, V1), ({"Version": "two", "Color": "blue"}, V2),
                          ({"Color": "orange"}, 404), ({"Some-Other-Header": "one"}, 404),
                          ({"Color": "blue"}, V1), ({"Color": "green"}, V1), ({"Color": "red"}, V2),
                          ({"Color": "yellow"}, V2), ({"Color": "purple"}, 404)]:
        d = ask(c, "/", headers=headers)
        assert (d.status if want == 404 else d.backend) == want, headers


# HTTPRouteQueryParamMatching and HTTPRouteMethodMatching (httproute-query-param-matching.go,
# httproute-method-matching.go), the core of their tables
def test_query_and_method_matching():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: query-param-matching, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - {{matches: [{{queryParams: [{{name: animal, value: whale}}]}}], backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}
  - {{matches: [{{queryParams: [{{name: animal, value: dolphin}}]}}],
     backendRefs: [{{name: infra-backend-v2, port: 8080}}]}}
  - matches: [{{queryParams: [{{name: animal, value: dolphin}}, {{name: color, value: blue}}]}},
              {{queryParams: [{{name: ANIMAL, value: Whale}}]}}]
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
  - {{matches: [{{path: {{value: /m}}, method: POST}}], backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}
  - {{matches: [{{path: {{value: /m}}, method: GET}}], backendRefs: [{{name: infra-backend-v2, port: 8080}}]}}
""")
    for path, want in [("/?animal=whale", V1), ("/?animal=dolphin", V2), ("/?animal=dolphin&color=blue", V3),
                       ("/?ANIMAL=Whale", V3), ("/?animal=dolphin&color=yellow", V2), ("/?color=blue", 404),
                       ("/?animal=phant", 404), ("/?animal=whale&animal=dolphin", V1)]:
        d = ask(c, path)
        assert (d.status if want == 404 else d.backend) == want, path
    assert ask(c, "/m", method="POST").backend == V1
    assert ask(c, "/m", method="GET").backend == V2
    assert ask(c, "/m", method="HEAD").status == 404


# HTTPRouteHostnameIntersection (httproute-hostname-intersection.go)
def test_hostname_intersection():
    gws = BASE_GATEWAYS + [
        _gw("httproute-hostname-intersection", [
            _http(name="listener-1", hostname="very.specific.com"), _http(name="listener-2", hostname="*.wildcard.io"),
            _http(name="listener-3", hostname="*.anotherwildcard.io")]),
        _gw("httproute-hostname-intersection-all", [_http(name="listener-1")])]

    def route(name, hostnames, prefix, backend, parent="httproute-hostname-intersection"):
        return (f"---\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {INFRA}}}\nspec:\n"
                f"  parentRefs: [{{name: {parent}, namespace: {INFRA}}}]\n  hostnames: {hostnames}\n"
                f"  rules: [{{matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}], "
                f"backendRefs: [{{name: {backend}, port: 8080}}]}}]\n")
    c = world(route("specific-host-matches-listener-specific-host",
                    '[non.matching.com, "*.nonmatchingwildcard.io", very.specific.com]', "/s1", "infra-backend-v1")
              + route("specific-host-matches-listener-wildcard-host",
                      "[non.matching.com, wildcard.io, foo.wildcard.io, bar.wildcard.io, foo.bar.wildcard.io]",
                      "/s2", "infra-backend-v2")
              + route("wildcard-host-matches-listener-specific-host", '[non.matching.com, "*.specific.com"]',
                      "/s3", "infra-backend-v3")
              + route("wildcard-host-matches-listener-wildcard-host", '["*.anotherwildcard.io"]', "/s4",
                      "infra-backend-v1")
              + route("no-intersecting-hosts", "[specific.but.wrong.com, wildcard.io]", "/s5", "infra-backend-v2")
              + "---\nkind: HTTPRoute\nmetadata: {name: httproute-hostname-intersection-all, namespace: "
                f"{INFRA}}}\nspec:\n  parentRefs: [{{name: httproute-hostname-intersection-all}}]\n"
                "  hostnames: [first.com, sub.first.com, second.com, sub.second.com]\n"
                "  rules: [{backendRefs: [{name: infra-backend-v2, port: 8080}]}]\n", gws)
    gw = f"{INFRA}/httproute-hostname-intersection"
    for host, path, want in [
            ("very.specific.com", "/s1", V1), ("very.specific.com:1234", "/s1", V1), ("non.matching.com", "/s1", 404),
            ("foo.nonmatchingwildcard.io", "/s1", 404), ("foo.wildcard.io", "/s1", 404),
            ("very.specific.com", "/non-matching-prefix", 404),
            ("foo.wildcard.io", "/s2", V2), ("bar.wildcard.io", "/s2", V2), ("foo.bar.wildcard.io", "/s2", V2),
            ("non.matching.com", "/s2", 404), ("wildcard.io", "/s2", 404), ("very.specific.com", "/s2", 404),
            ("foo.wildcard.io", "/non-matching-prefix", 404),
            ("very.specific.com", "/s3", V3), ("non.matching.com", "/s3", 404), ("foo.specific.com", "/s3", 404),
            ("foo.wildcard.io", "/s3", 404),
            ("foo.anotherwildcard.io", "/s4", V1), ("bar.anotherwildcard.io", "/s4", V1),
            ("foo.bar.anotherwildcard.io", "/s4", V1), ("anotherwildcard.io", "/s4", 404),
            ("foo.wildcard.io", "/s4", 404), ("very.specific.com", "/s4", 404),
            ("specific.but.wrong.com", "/s5", 404), ("wildcard.io", "/s5", 404)]:
        d = ask(c, path, host=host, gw=gw)
        assert (d.status if want == 404 else d.backend) == want, (host, path)
    all_gw = f"{INFRA}/httproute-hostname-intersection-all"
    for host, want in [("first.com", V2), ("sub.first.com", V2), ("second.com", V2), ("sub.second.com", V2),
                       ("third.com", 404), ("sub.third.com", 404)]:
        d = ask(c, "/", host=host, gw=all_gw)
        assert (d.status if want == 404 else d.backend) == want, host
    assert parent_conditions(c, f"{INFRA}/no-intersecting-hosts")["Accepted"] == (False, "NoMatchingListenerHostname")
    assert parent_conditions(c, f"{INFRA}/specific-host-matches-listener-specific-host")["Accepted"] == (
        True, "Accepted")
    listeners = {ls.name: len(ls.attached) for ls in c.gateways[gw].listeners}
    assert listeners == {"listener-1": 2, "listener-2": 1, "listener-3": 1}


# HTTPRouteWeight (httproute-weight.go): 70/30/0 over many requests
def test_weight():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: weighted-backends, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - backendRefs:
    - {{name: infra-backend-v1, port: 8080, weight: 70}}
    - {{name: infra-backend-v2, port: 8080, weight: 30}}
    - {{name: infra-backend-v3, port: 8080, weight: 0}}
""")
    seen = [ask(c, "/", pick=i).backend for i in range(100)]
    assert (seen.count(V1), seen.count(V2), seen.count(V3)) == (70, 30, 0)


# HTTPRouteRequestHeaderModifier (httproute-request-header-modifier.go)
def test_request_header_modifier():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: request-header-modifier, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /set}}}}]
    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: X-Header-Set, value: set-overwrites-values}}]}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /add}}}}]
    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{add: [{{name: X-Header-Add, value: add-appends-values}}]}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /remove}}}}]
    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{remove: [X-Header-Remove]}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /case-insensitivity}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: X-Header-Set, value: header-set}}]
        add: [{{name: X-Header-Add, value: header-add}}]
        remove: [X-Header-Remove]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
""")

    def sent(path, headers):
        d = ask(c, path, headers=headers)
        return {k.lower(): v for k, v in gateway.apply_plan_headers(d, [("Host", "example.com"), *headers.items()])}

    assert sent("/set", {"Some-Other-Header": "val"})["x-header-set"] == "set-overwrites-values"
    assert sent("/set", {"X-Header-Set": "some-other-value"})["x-header-set"] == "set-overwrites-values"
    assert sent("/add", {"Some-Other-Header": "val"})["x-header-add"] == "add-appends-values"
    assert sent("/add", {"X-Header-Add": "some-other-value"})["x-header-add"] == "some-other-value,add-appends-values"
    out = sent("/remove", {"X-Header-Remove": "val"})
    assert "x-header-remove" not in out
    out = sent("/case-insensitivity", {"x-header-set": "original-val-set", "x-header-add": "original-val-add",
                                       "x-header-remove": "original-val-remove", "Another-Header": "x"})
    assert out["x-header-set"] == "header-set" and out["x-header-add"] == "original-val-add,header-add"
    assert "x-header-remove" not in out and out["another-header"] == "x"


REDIRECTS = f"""
kind: HTTPRoute
metadata: {{name: redirect, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /original-prefix}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /full}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /full-path-replacement}}}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /path-and-host}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{hostname: example.org, path: {{type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /path-and-status}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{statusCode: 301, path: {{type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /port}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{port: 8083}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /port-and-host}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{hostname: example.org, port: 8083}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /scheme}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /scheme-and-host-and-status}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 302, hostname: example.org}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /host-and-status}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{statusCode: 301, hostname: example.org}}}}]
  - matches: [{{path: {{type: PathPrefix, value: /scheme-and-port}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, port: 8443}}}}]
"""


# HTTPRouteRedirectPath, HTTPRouteRedirectPort, HTTPRouteRedirectScheme, HTTPRouteRedirectHostAndStatus,
# HTTPRouteRedirectPortAndScheme (httproute-redirect-*.go): status and Location
def test_redirects():
    c = world(REDIRECTS)
    for path, status, location in [
            ("/original-prefix/lemon", 302, "http://example.com/replacement-prefix/lemon"),
            ("/full/path/original", 302, "http://example.com/full-path-replacement"),
            ("/path-and-host", 302, "http://example.org/replacement-prefix"),
            ("/path-and-status", 301, "http://example.com/replacement-prefix"),
            ("/port", 302, "http://example.com:8083/port"),
            ("/port-and-host", 302, "http://example.org:8083/port-and-host"),
            ("/scheme", 302, "https://example.com/scheme"),
            ("/scheme-and-host-and-status", 302, "https://example.org/scheme-and-host-and-status"),
            ("/host-and-status", 301, "http://example.org/host-and-status"),
            ("/scheme-and-port", 302, "https://example.com:8443/scheme-and-port"),
            ("/original-prefix/lemon?x=1", 302, "http://example.com/replacement-prefix/lemon?x=1")]:
        d = ask(c, path, host="example.com")
        assert (d.status, d.location) == (status, location), path
    # on a listener port that is not the scheme's own, a redirect keeps it (HTTPRouteRedirectPortAndScheme)
    gws = BASE_GATEWAYS + [_gw("same-namespace-8080", [_http(port=8080)])]
    c = world(REDIRECTS.replace("{name: same-namespace}", "{name: same-namespace-8080}"), gws)
    assert ask(c, "/path-and-host", gw=f"{INFRA}/same-namespace-8080", port=8080).location == \
        "http://example.org:8080/replacement-prefix"
    assert ask(c, "/scheme", gw=f"{INFRA}/same-namespace-8080", port=8080).location == "https://example.com/scheme"


# HTTPRouteRewritePath (httproute-rewrite-path.go)
def test_rewrite_path():
    c = world(f"""
kind: HTTPRoute
metadata: {{name: rewrite-path, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /prefix/one}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /one}}}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /strip-prefix}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /full/one}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /one}}}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /prefix/rewrite-path-and-modify-headers}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /prefix}}}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /host}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{hostname: one.example.org}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
""")
    for path, upstream in [("/prefix/one/two", "/one/two"), ("/strip-prefix/three", "/three"), ("/strip-prefix", "/"),
                           ("/full/one/two", "/one"), ("/prefix/rewrite-path-and-modify-headers/one", "/prefix/one"),
                           ("/prefix/one/two?q=1", "/one/two?q=1")]:
        assert ask(c, path).path == upstream, path
    d = ask(c, "/host")
    assert dict(gateway.apply_plan_headers(d, [("Host", "example.com")]))["Host"] == "one.example.org"


# HTTPRouteCrossNamespace, HTTPRouteReferenceGrant, HTTPRouteInvalidReferenceGrant,
# HTTPRouteInvalidCrossNamespaceBackendRef (httproute-cross-namespace.go, -reference-grant.go, ...)
def test_cross_namespace_and_reference_grants():
    cross = f"""
kind: HTTPRoute
metadata: {{name: cross-namespace, namespace: {WEB}}}
spec:
  parentRefs: [{{name: backend-namespaces, namespace: {INFRA}}}]
  rules: [{{backendRefs: [{{name: web-backend, port: 8080}}]}}]
"""
    c = world(cross)
    assert ask(c, "/", gw=f"{INFRA}/backend-namespaces").backend == Backend(WEB, "web-backend", 8080)
    assert parent_conditions(c, f"{WEB}/cross-namespace")["Accepted"] == (True, "Accepted")
    # the same route from a namespace the Selector does not pick: NotAllowedByListeners
    c = world(cross.replace(f"namespace: {WEB}}}", f"namespace: {INFRA}}}"))
    assert parent_conditions(c, f"{INFRA}/cross-namespace")["Accepted"] == (False, "NotAllowedByListeners")
    assert ask(c, "/", gw=f"{INFRA}/backend-namespaces").status == 404

    route = f"""
kind: HTTPRoute
metadata: {{name: reference-grant, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules: [{{backendRefs: [{{name: web-backend, namespace: {WEB}, port: 8080}}]}}]
"""

    def grant(ns=WEB, from_group="gateway.networking.k8s.io", from_kind="HTTPRoute", from_ns=INFRA, to_group="",
              name="web-backend"):
        return {"kind": "ReferenceGrant", "metadata": {"namespace": ns, "name": "g"}, "spec": {
            "from": [{"group": from_group, "kind": from_kind, "namespace": from_ns}],
            "to": [{"group": to_group, "kind": "Service", "name": name}]}}
    c = world(route, grants_extra=[grant()])
    assert ask(c, "/").backend == Backend(WEB, "web-backend", 8080)
    assert parent_conditions(c, f"{INFRA}/reference-grant")["ResolvedRefs"] == (True, "ResolvedRefs")
    # HTTPRouteInvalidReferenceGrant: every near-miss grant leaves the ref refused, requests get 500
    near_misses = [grant(ns=INFRA), grant(from_group="not-the-group-youre-looking-for"), grant(from_kind="Gateway"),
                   grant(from_ns="not-the-namespace-youre-looking-for"),
                   grant(to_group="not-the-group-youre-looking-for"), grant(name="not-the-service-youre-looking-for")]
    c = world(route, grants_extra=near_misses)
    assert parent_conditions(c, f"{INFRA}/reference-grant") == {
        "Accepted": (True, "Accepted"), "ResolvedRefs": (False, "RefNotPermitted")}
    assert ask(c, "/").status == 500


# HTTPRouteInvalidNonExistentBackendRef, HTTPRouteInvalidBackendRefUnknownKind,
# HTTPRouteInvalidParentRefNotMatchingSectionName, HTTPRouteInvalidParentRefNotMatchingListenerPort
def test_invalid_routes_status_reasons():
    def route(name, backend="{name: infra-backend-v1, port: 8080}", parent="{name: same-namespace}"):
        return (f"---\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {INFRA}}}\nspec:\n"
                f"  parentRefs: [{parent}]\n  rules: [{{backendRefs: [{backend}]}}]\n")
    c = world(route("nonexistent-backend", "{name: nonexistent, port: 8080}")
              + route("unknown-kind", "{group: unknownkind.example.com, kind: NonExistent, name: infra-backend-v1}")
              + route("no-section", parent="{name: same-namespace, sectionName: nonexistent}")
              + route("no-port", parent="{name: same-namespace, port: 81}")
              + route("other-class", parent="{name: gw-of-other-class}")
              + f"---\nkind: Gateway\nmetadata: {{name: gw-of-other-class, namespace: {INFRA}}}\n"
                "spec: {gatewayClassName: other, listeners: [{name: http, port: 80, protocol: HTTP}]}\n")
    assert parent_conditions(c, f"{INFRA}/nonexistent-backend") == {
        "Accepted": (True, "Accepted"), "ResolvedRefs": (False, "BackendNotFound")}
    assert parent_conditions(c, f"{INFRA}/unknown-kind")["ResolvedRefs"] == (False, "InvalidKind")
    assert parent_conditions(c, f"{INFRA}/no-section")["Accepted"] == (False, "NoMatchingParent")
    assert parent_conditions(c, f"{INFRA}/no-port")["Accepted"] == (False, "NoMatchingParent")
    assert f"{INFRA}/other-class" not in c.routes  # another controller's Gateway: not our status to write
    assert f"{INFRA}/gw-of-other-class" not in c.gateways
    assert ask(c, "/").status == 500  # both accepted routes on same-namespace: invalid backends answer 500


def test_listener_conditions_and_programmed():
    gws = [_gw("gw", [_http(name="a"), _http(name="b"), _http(name="c", port=8080, hostname="x.example.com"),
                      {"name": "tls", "port": 6443, "protocol": "TLS"},
                      {"name": "https-no-cert", "port": 443, "protocol": "HTTPS"},
                      _http(name="kinds", port=9090) | {"allowedRoutes": {"kinds": [{"kind": "TCPRoute"}]}}])]
    c = compile_all(CLASSES, gws, [], [], NAMESPACES, SERVICES, addresses={f"{INFRA}/gw": ["192.168.50.200"]})
    state = c.gateways[f"{INFRA}/gw"]
    conds = {ls.name: {x.type: (x.status, x.reason) for x in ls.conditions} for ls in state.listeners}
    assert conds["a"]["Conflicted"] == (True, "HostnameConflict") and conds["b"]["Accepted"][0] is False
    assert conds["c"] == {"Accepted": (True, "Accepted"), "Conflicted": (False, "NoConflicts"),
                          "ResolvedRefs": (True, "ResolvedRefs"), "Programmed": (True, "Programmed")}
    assert conds["tls"]["Accepted"] == (False, "UnsupportedProtocol")
    assert conds["https-no-cert"]["ResolvedRefs"] == (False, "InvalidCertificateRef")
    assert conds["https-no-cert"]["Programmed"] == (False, "Invalid")
    assert conds["kinds"]["ResolvedRefs"] == (False, "InvalidRouteKinds")
    assert {x.type: (x.status, x.reason) for x in state.conditions} == {
        "Accepted": (True, "Accepted"), "Programmed": (True, "Programmed")}
    assert gateway.served_ports(state) == [8080, 9090]  # not the conflicting, TLS or cert-less ones
    assert c.classes == {"knet": c.classes["knet"]} and c.classes["knet"][0].status
    # without an address the Gateway is accepted but not programmed
    c = compile_all(CLASSES, gws, [], [], NAMESPACES, SERVICES, addresses={})
    assert {x.type: (x.status, x.reason) for x in c.gateways[f"{INFRA}/gw"].conditions}["Programmed"] == (
        False, "AddressNotAssigned")


def test_unsupported_rules_are_not_accepted():
    # what upstream's CEL rules refuse at admission (knet does not evaluate CEL) the controller refuses
    c = world(f"""
kind: HTTPRoute
metadata: {{name: bad, namespace: {INFRA}}}
spec:
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{{path: {{type: Exact, value: /x}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /y}}}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
""")
    assert parent_conditions(c, f"{INFRA}/bad")["Accepted"] == (False, "UnsupportedValue")
    assert ask(c, "/x").status == 404


# GatewaySecretReferenceGrantSpecific / GatewaySecretMissingReferenceGrant /
# GatewayInvalidTLSConfiguration (gateway-secret-*.go, gateway-invalid-tls-configuration.go)
def test_https_listener_certificates():
    secret = {"metadata": {"namespace": APP, "name": "cert"}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}}
    local = {"metadata": {"namespace": INFRA, "name": "local"}, "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}}
    broken = {"metadata": {"namespace": INFRA, "name": "broken"}, "data": {"ca.crt": "Y2E="}}

    def https(name, ref, hostname=None):
        return {"name": name, "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [ref]},
                **({"hostname": hostname} if hostname else {})}
    gws = [_gw("gw", [https("local", {"name": "local"}, "a.example.com"),
                      https("cross", {"name": "cert", "namespace": APP}, "b.example.com"),
                      https("broken", {"name": "broken"}, "c.example.com"),
                      https("missing", {"name": "nope"}, "d.example.com"),
                      https("kind", {"name": "local", "kind": "ConfigMap"}, "e.example.com"),
                      _http(name="plain", port=443, hostname="f.example.com")])]
    grant = {"metadata": {"namespace": APP, "name": "g"}, "spec": {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": INFRA}],
        "to": [{"group": "", "kind": "Secret", "name": "cert"}]}}

    def conds(grants):
        c = compile_all(CLASSES, gws, [], grants, NAMESPACES, SERVICES, addresses={f"{INFRA}/gw": ["10.0.0.1"]},
                        secrets=[secret, local, broken])
        return c, {ls.name: {x.type: (x.status, x.reason) for x in ls.conditions}
                   for ls in c.gateways[f"{INFRA}/gw"].listeners}
    c, before = conds([])
    assert before["cross"]["ResolvedRefs"] == (False, "RefNotPermitted")
    assert before["broken"]["ResolvedRefs"] == (False, "InvalidCertificateRef")
    assert before["missing"]["ResolvedRefs"] == (False, "InvalidCertificateRef")
    assert before["kind"]["ResolvedRefs"] == (False, "InvalidCertificateRef")
    # HTTP beside HTTPS on one port: both conflict
    assert before["plain"]["Conflicted"] == (True, "ProtocolConflict")
    assert before["local"]["Conflicted"] == (True, "ProtocolConflict")
    gws[0]["spec"]["listeners"].pop()
    c, after = conds([grant])
    assert after["local"]["Programmed"] == (True, "Programmed")
    assert after["cross"]["ResolvedRefs"] == (True, "ResolvedRefs")
    table = c.tables[(f"{INFRA}/gw", 443)]
    assert table.scheme == "https"
    assert table.certificates == {"a.example.com": f"{INFRA}/local", "b.example.com": f"{APP}/cert"}


def test_grpc_routes_are_refused_by_knets_listeners():
    grpc = {"metadata": {"namespace": INFRA, "name": "g"}, "spec": {"parentRefs": [
        {"name": "same-namespace"}, {"name": "gw-of-someone-else"}], "rules": [{}]}}
    c = compile_all(CLASSES, BASE_GATEWAYS, [], [], NAMESPACES, SERVICES, grpc_routes=[grpc])
    [parent] = c.grpc_routes[f"{INFRA}/g"]
    assert parent.parent_ref == {"name": "same-namespace"}
    assert [(x.type, x.status, x.reason) for x in parent.conditions] == [
        ("Accepted", False, "NotAllowedByListeners")]
