"""The proxy's decision for one request (knet.ingress.decide), pure: what ingress-nginx does with
a path that climbs, a TLS host over plain HTTP, an unmatched request, a rewrite, and the request
target the backend gets (as sent when plain, the normalized path re-escaped otherwise)."""

from __future__ import annotations

from knet.ingress.decide import Decision, RequestLine, RoundRobin, decide_ingress, page
from knet.ingress.routing import Backend, build_table


def ing(rules, annotations=None, tls=None):
    spec = {"rules": rules, **({"tls": tls} if tls else {})}
    return {"metadata": {"name": "i", "namespace": "ns", "annotations": annotations or {},
                         "creationTimestamp": "2026-01-01"}, "spec": spec}


def rule(host, p, svc="app", ptype="Prefix"):
    return {**({"host": host} if host else {}), "http": {"paths": [
        {"path": p, "pathType": ptype, "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}


def decide(table, target, host="a.example", scheme="http"):
    return decide_ingress(table, RequestLine(scheme, "GET", host, target))


def test_forward_targets():
    table = build_table([ing([rule("a.example", "/app")])])
    d = decide(table, "/app/x?q=1")
    assert d == Decision(backend=Backend("ns", "app", 80), upstream_name="ns-app-80", target="/app/x?q=1")
    # a path that needed normalizing goes on as it was matched, escaped again
    assert decide(table, "/other/../app/a%20b/./c?x").target == "/app/a%20b/c?x"
    assert decide(table, "//app").target == "/app"


def test_own_answers():
    table = build_table([ing([rule("a.example", "/app")], tls=[{"hosts": ["a.example"], "secretName": "s"}])])
    assert decide(table, "/../etc/passwd").status == 400
    assert decide(table, "/app/%2e%2e/%2e%2e/x").status == 400
    redirect = decide(table, "/app?x=1")
    assert (redirect.status, redirect.location) == (308, "https://a.example/app?x=1")
    assert decide(table, "/app", scheme="https").backend == Backend("ns", "app", 80)
    missing = decide(table, "/nothing", scheme="https")
    assert (missing.status, missing.upstream_name) == (404, "upstream-default-backend")
    assert "<center><h1>503 Service Temporarily Unavailable</h1></center>" in page(503)


def test_rewrite_and_backend_protocol():
    table = build_table([ing([rule(None, "/api(/|$)(.*)", ptype="ImplementationSpecific")],
                             {"nginx.ingress.kubernetes.io/rewrite-target": "/$2",
                              "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"})])
    d = decide(table, "/API/v1/items?page=2", host="any")
    assert (d.target, d.upstream_tls) == ("/v1/items?page=2", True)


def test_round_robin_and_retry_order():
    rr, b = RoundRobin(tries=3), Backend("ns", "app", 80)
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    assert rr.pick(eps, b) == eps and rr.pick(eps, b) == eps[::-1] and rr.pick([], b) == []
    assert len(RoundRobin(tries=3).pick([(f"10.0.0.{i}", 80) for i in range(5)], b)) == 3
