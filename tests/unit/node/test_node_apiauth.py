"""The kubelet API's authorization attributes, SubjectAccessReview and answer cache. The path
table ports upstream's pkg/kubelet/server/server_test.go TestAuthFilters (expected subresource for
each kubelet path) and auth.go's method -> verb mapping."""

from __future__ import annotations

import pytest

from knet.api.auth import User
from knet.node.apiauth import (
    ALLOWED_TTL,
    DENIED_TTL,
    DecisionCache,
    forbidden_message,
    request_attributes,
    subject_access_review,
)

NODE01 = User("system:node:node01", groups=("system:nodes", "system:authenticated"))
APISERVER = User("kube-apiserver-kubelet-client", groups=("system:masters", "system:authenticated"))

PATHS = [
    ("/attach/ns/pod/c", "proxy"), ("/configz", "proxy"), ("/containerLogs/ns/pod/c", "proxy"),
    ("/debug/flags/v", "proxy"), ("/debug/pprof/profile", "proxy"), ("/exec/ns/pod/c", "proxy"),
    ("/healthz", "proxy"), ("/healthz/log", "proxy"), ("/healthz/ping", "proxy"), ("/healthz/syncloop", "proxy"),
    ("/logs/", "log"), ("/logs/kubelet.log", "log"), ("/metrics", "metrics"), ("/metrics/cadvisor", "metrics"),
    ("/metrics/probes", "metrics"), ("/metrics/resource", "metrics"), ("/pods/", "proxy"), ("/pods", "proxy"),
    ("/portForward/ns/pod", "proxy"), ("/run/ns/pod/c", "proxy"), ("/runningpods/", "proxy"), ("/spec/", "spec"),
    ("/stats/", "stats"), ("/stats/container", "stats"), ("/stats/summary", "stats"),
    ("/stats/ns/pod/uid/c", "stats"), ("/stats/pod/c", "stats"), ("/containers", "proxy"),
    # prefixes only match whole path segments
    ("/metricsfoo", "proxy"), ("/logsfoo", "proxy"), ("/statsx/summary", "proxy"),
]


@pytest.mark.parametrize(("path", "subresource"), [pytest.param(p, s, id=p) for p, s in PATHS])
def test_subresource_of_each_path(path, subresource):
    attrs = request_attributes(NODE01, "GET", path, "node02")
    assert (attrs.resource, attrs.subresource, attrs.name, attrs.api_version) == ("nodes", subresource, "node02", "v1")


@pytest.mark.parametrize(("method", "verb"), [("GET", "get"), ("POST", "create"), ("PUT", "update"),
                                              ("PATCH", "patch"), ("DELETE", "delete"), ("OPTIONS", "")])
def test_verb_of_each_method(method, verb):
    assert request_attributes(NODE01, method, "/exec/ns/pod/c", "node02").verb == verb


def test_subject_access_review_and_forbidden_text():
    attrs = request_attributes(NODE01, "POST", "/exec/default/web/c", "node02")
    assert subject_access_review(attrs) == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:node:node01", "groups": ["system:nodes", "system:authenticated"],
                 "resourceAttributes": {"verb": "create", "version": "v1", "resource": "nodes",
                                        "subresource": "proxy", "name": "node02"}}}
    assert forbidden_message(attrs) == \
        "Forbidden (user=system:node:node01, verb=create, resource=nodes, subresource=proxy)"
    with_extra = request_attributes(User("u", uid="1", groups=(), extra={"scopes": ["a"]}), "GET", "/logs/", "n")
    spec = subject_access_review(with_extra)["spec"]
    assert (spec["uid"], spec["extra"]) == ("1", {"scopes": ["a"]})


def test_cache_keeps_allowed_five_minutes_and_denied_thirty_seconds():
    cache = DecisionCache()
    exec_as_node = DecisionCache.key(subject_access_review(request_attributes(NODE01, "POST", "/exec/a/b/c", "n")))
    exec_as_apiserver = DecisionCache.key(subject_access_review(
        request_attributes(APISERVER, "POST", "/exec/a/b/c", "n")))
    logs_as_apiserver = DecisionCache.key(subject_access_review(
        request_attributes(APISERVER, "GET", "/containerLogs/a/b/c", "n")))
    assert exec_as_node != exec_as_apiserver != logs_as_apiserver
    cache.put(exec_as_node, False, now=100.0)
    cache.put(exec_as_apiserver, True, now=100.0)
    assert cache.get(exec_as_node, 100.0 + DENIED_TTL - 1) is False
    assert cache.get(exec_as_node, 100.0 + DENIED_TTL) is None  # expired: ask again
    assert cache.get(exec_as_apiserver, 100.0 + ALLOWED_TTL - 1) is True
    assert cache.get(exec_as_apiserver, 100.0 + ALLOWED_TTL) is None
    assert cache.get(logs_as_apiserver, 100.0) is None
    assert (ALLOWED_TTL, DENIED_TTL) == (300.0, 30.0)


def test_cache_is_bounded_and_keeps_the_recently_used():
    cache = DecisionCache(size=2)
    cache.put(b"a", True, 0.0)
    cache.put(b"b", True, 0.0)
    assert cache.get(b"a", 1.0) is True  # a is now the most recently used
    cache.put(b"c", True, 0.0)
    assert len(cache) == 2
    assert cache.get(b"b", 1.0) is None
    assert cache.get(b"a", 1.0) is True and cache.get(b"c", 1.0) is True
