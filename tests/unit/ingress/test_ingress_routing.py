"""The routing table and matching (knet.ingress.routing). The path matching table is upstream's
"Examples" table of https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
(Kind, Path(s), Request path(s), Matches?); the regex/rewrite cases are ingress-nginx's
documented rewrite example (docs/examples/rewrite) and its ImplementationSpecific = nginx prefix
location behaviour."""

from __future__ import annotations

import pytest

from knet.ingress.routing import (
    Backend,
    build_table,
    endpoints_for,
    ingress_class_selected,
    normalize_host,
    normalize_path,
)


def ingress(name="ing", namespace="default", rules=(), annotations=None, tls=None, default=None, created="2026-01-01"):
    spec = {"rules": list(rules)}
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {"metadata": {"name": name, "namespace": namespace, "annotations": annotations or {},
                         "creationTimestamp": created}, "spec": spec}


def rule(host=None, *paths):
    r = {"http": {"paths": [{"path": p, "pathType": t, "backend": {"service": {"name": svc, "port": {"number": 80}}}}
                            for p, t, svc in paths]}}
    if host:
        r["host"] = host
    return r


def routed(table, path, host="x.example"):
    _, loc = table.route(host, path)
    return None if loc is None else loc.backend.service


# (path type, rule paths, request path, matches) -- upstream's table
K8S_EXAMPLES = [
    ("Prefix", ["/"], "/anything/at/all", True),
    ("Exact", ["/foo"], "/foo", True),
    ("Exact", ["/foo"], "/bar", False),
    ("Exact", ["/foo"], "/foo/", False),
    ("Exact", ["/foo/"], "/foo", False),
    ("Prefix", ["/foo"], "/foo", True),
    ("Prefix", ["/foo"], "/foo/", True),
    ("Prefix", ["/foo/"], "/foo", True),
    ("Prefix", ["/foo/"], "/foo/", True),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", False),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", False),
    ("Prefix", ["/", "/aaa"], "/aaa/ccc", True),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/aaa/bbb", True),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/ccc", True),
    ("Prefix", ["/aaa"], "/ccc", False),
]


@pytest.mark.parametrize(("ptype", "paths", "request_path", "matches"), K8S_EXAMPLES)
def test_kubernetes_path_matching_examples(ptype, paths, request_path, matches):
    table = build_table([ingress(rules=[rule(None, *[(p, ptype, f"svc{i}") for i, p in enumerate(paths)])])])
    got = routed(table, request_path)
    assert (got is not None) == matches
    if matches and len(paths) > 1:  # the longest matching path wins
        best = max((p for p in paths if request_path == p or request_path.startswith(p.rstrip("/") + "/")
                    or p == "/"), key=len)
        assert got == f"svc{paths.index(best)}"


def test_exact_is_preferred_over_prefix_for_the_same_path():
    table = build_table([ingress(rules=[rule(None, ("/foo", "Prefix", "prefix"), ("/foo", "Exact", "exact"))])])
    assert routed(table, "/foo") == "exact"
    assert routed(table, "/foo/bar") == "prefix"


def test_implementation_specific_is_a_string_prefix_as_nginx():
    table = build_table([ingress(rules=[rule(None, ("/foo", "ImplementationSpecific", "a"))])])
    assert routed(table, "/foobar") == "a"
    assert routed(table, "/fo") is None


def test_hosts_wildcards_and_the_catch_all():
    table = build_table([ingress(rules=[rule("foo.bar.com", ("/", "Prefix", "exact-host")),
                                        rule("*.bar.com", ("/", "Prefix", "wildcard")),
                                        rule(None, ("/", "Prefix", "any"))])])
    assert routed(table, "/", "foo.bar.com") == "exact-host"
    assert routed(table, "/", "FOO.bar.com:8080") == "exact-host"
    assert routed(table, "/", "baz.bar.com") == "wildcard"
    assert routed(table, "/", "a.baz.bar.com") == "any"  # a wildcard covers one label only
    assert routed(table, "/", "bar.com") == "any"
    assert routed(table, "/", "") == "any"


def test_a_host_without_a_matching_path_gets_the_default_backend():
    table = build_table([ingress(rules=[rule("a.com", ("/wear", "Prefix", "wear"))])])
    server, loc = table.route("a.com", "/other")
    assert loc is None and server.default_backend is None and table.default_backend is None
    table = build_table([ingress(rules=[rule("a.com", ("/wear", "Prefix", "wear"))], default="fallback")])
    server, loc = table.route("a.com", "/other")
    assert loc is None and server.default_backend == Backend("default", "fallback", 80)
    only_default = build_table([ingress(default="everything")])
    assert only_default.default_backend == Backend("default", "everything", 80)


def test_rewrite_target_with_capture_groups():
    # ingress-nginx docs/examples/rewrite: path /something(/|$)(.*), rewrite-target /$2
    table = build_table([ingress(annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/$2"},
                                 rules=[rule("rewrite.bar.com", ("/something(/|$)(.*)", "ImplementationSpecific",
                                                                 "http-svc"))])])
    for request_path, upstream in [("/something", "/"), ("/something/", "/"), ("/something/new", "/new"),
                                   ("/SOMETHING/new", "/new")]:
        _, loc = table.route("rewrite.bar.com", request_path)
        assert loc is not None and loc.rewrite(request_path) == upstream, request_path
    assert table.route("rewrite.bar.com", "/somethingelse")[1] is None


def test_rewrite_target_without_groups_replaces_the_whole_path():
    # the classic lab: /wear and /watch rewritten to / on their apps
    table = build_table([ingress(annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"},
                                 rules=[rule(None, ("/wear", "Prefix", "wear"), ("/watch", "Prefix", "watch"))])])
    _, loc = table.route("", "/wear/shirts")
    assert loc.backend.service == "wear" and loc.rewrite("/wear/shirts") == "/"


def test_regex_mode_applies_to_every_path_of_the_host():
    # ingress-nginx: use-regex/rewrite-target on one Ingress makes the host's paths regexes
    regex = ingress("a", annotations={"nginx.ingress.kubernetes.io/use-regex": "true"},
                    rules=[rule("h.com", ("/api/v[0-9]+", "ImplementationSpecific", "api"))])
    plain = ingress("b", rules=[rule("h.com", ("/static", "ImplementationSpecific", "static"))], created="2026-02-01")
    table = build_table([regex, plain])
    assert routed(table, "/api/v2/x", "h.com") == "api"
    assert routed(table, "/STATIC/x", "h.com") == "static"  # case-insensitive, as ~*


def test_strict_path_validation_skips_regex_characters_in_prefix_paths():
    table = build_table([ingress(rules=[rule(None, ("/a(.*)", "Prefix", "bad"), ("/ok", "Prefix", "ok"))])])
    assert routed(table, "/a(.*)") is None and routed(table, "/ok") == "ok"
    assert "default/ing" in table.skipped


def test_the_oldest_ingress_keeps_a_contested_path():
    old = ingress("old", rules=[rule("h.com", ("/", "Prefix", "first"))], created="2026-01-01")
    new = ingress("new", rules=[rule("h.com", ("/", "Prefix", "second"))], created="2026-03-01")
    assert routed(build_table([new, old]), "/", "h.com") == "first"


def test_backends_are_always_in_the_ingress_namespace():
    ing = ingress(namespace="team-a", rules=[rule(None, ("/", "Prefix", "web"))])
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["namespace"] = "kube-system"  # not a field
    _, loc = build_table([ing]).route("", "/")
    assert loc.backend == Backend("team-a", "web", 80)


def test_tls_secrets_come_from_the_ingress_namespace():
    ing = ingress(namespace="team-a", rules=[rule("s.com", ("/", "Prefix", "web"))],
                  tls=[{"hosts": ["s.com"], "secretName": "cert"}])
    assert build_table([ing]).servers["s.com"].tls_secret == "team-a/cert"


@pytest.mark.parametrize(("raw", "want"), [
    ("/", "/"), ("/a/b", "/a/b"), ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/../b", "/b"),
    ("/wear/../watch", "/watch"), ("/a/%2e%2e/b", "/b"), ("/a/b/", "/a/b/"), ("/a?x=/../..", "/a"),
    ("/..", None), ("/a/../../etc/passwd", None), ("/%2e%2e/secret", None), ("relative", None), ("/a%00b", None),
])
def test_paths_are_normalized_before_matching(raw, want):
    assert normalize_path(raw) == want


def test_hosts_are_normalized():
    assert normalize_host("Foo.Example.COM.:443") == "foo.example.com"
    assert normalize_host("[::1]:80") == "[::1]"


def test_endpoints_from_endpointslices():
    svc = {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "m", "port": 9, "targetPort": 9}]}}
    slices = [{"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "m", "port": 9}],
               "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                             {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                             {"addresses": ["10.0.0.3"]}]}]
    assert endpoints_for(svc, 80, slices) == [("10.0.0.1", 8080), ("10.0.0.3", 8080)]
    assert endpoints_for(svc, "http", slices) == [("10.0.0.1", 8080), ("10.0.0.3", 8080)]
    assert endpoints_for(svc, 81, slices) == []


def test_class_selection():
    classes = {"nginx": {"spec": {"controller": "k8s.io/ingress-nginx"}}, "other": {"spec": {"controller": "x.io/y"}}}
    ing = ingress()
    assert not ingress_class_selected(ing, "nginx", classes, "k8s.io/ingress-nginx")
    assert ingress_class_selected(ing, "nginx", classes, "k8s.io/ingress-nginx", watch_without_class=True)
    ing["spec"]["ingressClassName"] = "nginx"
    assert ingress_class_selected(ing, "nginx", classes, "k8s.io/ingress-nginx")
    ing["spec"]["ingressClassName"] = "other"
    assert not ingress_class_selected(ing, "nginx", classes, "k8s.io/ingress-nginx")
    ing["spec"].pop("ingressClassName")
    ing["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "nginx"
    assert ingress_class_selected(ing, "nginx", classes, "k8s.io/ingress-nginx")
