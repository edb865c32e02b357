"""knet.api.requestinfo against upstream's tables: TestGetAPIRequestInfo, TestGetNonAPIRequestInfo
and TestSelectorParsing are ported from k8s.io/apiserver/pkg/endpoints/request/requestinfo_test.go
(v0.32), row for row; knet's own rows (the authorization attributes, connect subpaths, the
fields knet dispatches on) follow them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from knet.api.auth import User
from knet.api.authz.request import request_attributes
from knet.api.requestinfo import RequestInfoError, parse


def info_of(method: str, url: str):
    split = urlsplit(url)
    return parse(method, split.path, parse_qs(split.query, keep_blank_values=True))


# (method, url, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name, parts)
API_CASES = [
    # resource paths
    ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]),
    ("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other", ["namespaces", "other"]),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    # special verbs
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other",
     "pods", "", "foo", ["pods", "foo", "subpath", "not", "a", "subresource"]),
    ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    # subresource identification
    ("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo",
     ["pods", "foo", "status"]),
    ("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo",
     ["pods", "foo", "proxy", "subpath"]),
    ("PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other",
     ["namespaces", "other", "finalize"]),
    ("PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other",
     ["namespaces", "other", "status"]),
    # verb identification
    ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    # deletecollection verb identification
    ("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", ["nodes"]),
    ("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]),
    ("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "api", "extensions", "v1", "other",
     "pods", "", "", ["pods"]),
    # api group identification
    ("POST", "/apis/extensions/v1/namespaces/other/pods", "create", "api", "extensions", "v1", "other", "pods", "", "",
     ["pods"]),
    # api version identification
    ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "api", "extensions", "v1beta3", "other", "pods",
     "", "", ["pods"]),
]


@pytest.mark.parametrize("method,url,verb,prefix,group,version,namespace,resource,subresource,name,parts", API_CASES)
def test_get_api_request_info(method, url, verb, prefix, group, version, namespace, resource, subresource, name, parts):
    info = info_of(method, url)
    assert info.is_resource_request
    # Upstream's table says "api" for every row's prefix but never checks it: /apis/... is "apis".
    assert info.api_prefix == url.split("/")[1] and prefix == "api"
    assert (info.verb, info.api_group, info.api_version, info.namespace, info.resource, info.subresource, info.name,
            list(info.parts)) == (verb, group, version, namespace, resource, subresource, name, parts)


@pytest.mark.parametrize("url", [
    "/",                      # no resource path
    "/api/version/",          # just apiversion
    "/apis/group/version/",   # just prefix, group, version
    "/badprefix/version/resource",
    "/apis/version/resource",  # missing api group
])
def test_get_api_request_info_error_cases_are_non_resource(url):
    assert not info_of("GET", url).is_resource_request


@pytest.mark.parametrize("url,expected", [
    ("/api/version/resource", True),                          # simple groupless
    ("/apis/group/version/resource/name/subresource", True),  # simple group
    ("/api/version/resource/name/subresource", True),         # more steps
    ("/apis/batch/v1/job", True),                             # group list
    ("/apis/batch/v1/job/foo", True),                         # group get
    ("/apis/batch/v1/job/foo/scale", True),                   # group subresource
    ("/not-api/version/resource", False),                     # bad root
    ("/apis/extensions/v1beta1", False),                      # group without enough steps
    ("/apis/extensions/v1beta1/", False),                     # group without enough steps 2
    ("/api/version", False),                                  # not enough steps
    ("/api", False),                                          # one step
    ("/", False),                                             # zero step
    ("", False),                                              # empty
])
def test_get_non_api_request_info(url, expected):
    assert info_of("GET", url).is_resource_request is expected


def test_non_resource_verb_is_the_lower_case_method():
    info = info_of("POST", "/apis/apps")
    assert (info.is_resource_request, info.verb, info.path) == (False, "post", "/apis/apps")


# (name, method, url, expected name, expected verb, fieldSelector, labelSelector)
SELECTOR_CASES = [
    ("no selector", "GET", "/apis/group/version/resource", "", "list", "", ""),
    ("metadata.name selector", "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1",
     "list", "metadata.name=name1", ""),
    ("metadata.name selector with watch", "GET",
     "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "name1", "watch",
     "metadata.name=name1", ""),
    ("random selector", "GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "list",
     "foo=bar", "baz=qux"),
    ("invalid selector with metadata.name", "GET",
     "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list", "metadata.name=name1,foo", ""),
    ("invalid selector with metadata.name with watch", "GET",
     "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "", "watch",
     "metadata.name=name1,foo", ""),
    ("invalid selector with metadata.name with watch false", "GET",
     "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "", "list",
     "metadata.name=name1,foo", ""),
    ("selector on deletecollection is honored", "DELETE",
     "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "deletecollection", "foo=bar",
     "baz=qux"),
    ("selector on repeated param matches parsed param", "GET",
     "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar"
     "&labelSelector=foo=bar&labelSelector=foo=baz", "foo", "list", "metadata.name=foo", "foo=bar"),
    ("selector on other verb is ignored", "GET",
     "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar", "name", "get", "", ""),
    ("selector on deprecated root type watch is not parsed", "GET",
     "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "", "watch", "", ""),
    ("selector on deprecated root item watch is not parsed", "GET",
     "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "name", "watch",
     "", ""),
]


@pytest.mark.parametrize("case,method,url,name,verb,field_selector,label_selector", SELECTOR_CASES,
                         ids=[c[0] for c in SELECTOR_CASES])
def test_selector_parsing(case, method, url, name, verb, field_selector, label_selector):
    info = info_of(method, url)
    assert (info.name, info.verb, info.field_selector, info.label_selector) == (name, verb, field_selector,
                                                                                label_selector)


# knet's rows, each an upstream behaviour the tables above do not pin down.
@pytest.mark.parametrize("url,verb,name", [
    ("/api/v1/pods?watch=", "watch", ""),         # Convert_Slice_string_To_bool: only "0"/"false" are false
    ("/api/v1/pods?watch=FALSE", "list", ""),
    ("/api/v1/pods?fieldSelector=metadata.name==web", "list", "web"),
    ("/api/v1/pods?fieldSelector=metadata.name!=web", "list", ""),
    ("/api/v1/pods?fieldSelector=spec.nodeName=n1,metadata.name=web", "list", "web"),
    ("/api/v1/pods?fieldSelector=metadata.name=..", "list", ""),     # not a path segment name
    ("/api/v1/pods?fieldSelector=metadata.name=a%25b", "list", ""),  # nor with a %
    ("/api/v1/pods?fieldSelector=metadata.name=web&limit=x", "list", ""),  # options that do not decode
    ("/api/v1/pods?fieldSelector=metadata.name=web&limit=x&watch=1", "watch", ""),
    ("/api/v1/pods?fieldSelector=metadata.name=web&labelSelector=a%20in", "list", ""),
    ("/api/v1/pods?fieldSelector=metadata.name=web&timeoutSeconds=30", "list", "web"),
    ("/api/v1/namespaces/ns/pods/web?watch=true", "get", "web"),  # a named GET ignores ?watch
])
def test_verbs_and_names_from_the_query(url, verb, name):
    info = info_of("GET", url)
    assert (info.verb, info.name) == (verb, name)


def test_a_path_prefix_verb_without_a_resource_is_upstreams_error():
    with pytest.raises(RequestInfoError, match="unable to determine kind and namespace from url"):
        info_of("GET", "/api/v1/watch")


@pytest.mark.parametrize("url,in_path,path_name,scope", [
    ("/api/v1/namespaces/other/pods", True, "", "namespace"),
    ("/api/v1/namespaces/other", False, "other", "resource"),
    ("/api/v1/namespaces/other/status", False, "other", "resource"),
    ("/api/v1/namespaces/other/namespaces/other", True, "other", "resource"),  # dispatch refuses this one
    ("/api/v1/pods?fieldSelector=metadata.name=web", False, "", "resource"),  # a list, though it has a name
    ("/api/v1/pods", False, "", "cluster"),
    ("/apis", False, "", ""),
])
def test_what_dispatch_reads(url, in_path, path_name, scope):
    info = info_of("GET", url)
    assert (info.namespace_in_path, info.path_name, info.scope) == (in_path, path_name, scope)


@pytest.mark.parametrize("path,subpath", [
    ("/api/v1/nodes/n1/proxy", ""),
    ("/api/v1/nodes/n1/proxy/", "/"),
    ("/api/v1/nodes/n1/proxy/stats/summary", "/stats/summary"),
    ("/api/v1/nodes/n1/proxy/logs/", "/logs/"),
    ("/api/v1/namespaces/proxy/pods/web:80/proxy/a//b", "/a//b"),
    ("/api/v1/nodes/n1/proxy/../../secrets", "/../../secrets"),  # cleaned where it is joined to the target
])
def test_connect_subpath(path, subpath):
    """handlers.getRequestOptions: the path after the subresource, with the request's trailing slash."""
    info = info_of("GET", path)
    assert info.subresource == "proxy" and info.subpath() == subpath


U = User("jane", "", ("system:authenticated",))


@pytest.mark.parametrize("method,url,attrs", [
    ("GET", "/api/v1/namespaces/ns/pods", dict(verb="list", namespace="ns", resource="pods")),
    ("GET", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name=web&watch=1",
     dict(verb="watch", namespace="ns", resource="pods", name="web")),
    ("GET", "/api/v1/namespaces/other", dict(verb="get", namespace="other", resource="namespaces", name="other")),
    ("DELETE", "/apis/apps/v1/namespaces/ns/deployments",
     dict(verb="deletecollection", namespace="ns", api_group="apps", resource="deployments")),
    ("GET", "/api/v1/nodes/n1/proxy/../../secrets", dict(verb="get", resource="nodes", subresource="proxy", name="n1")),
    # A WebSocket exec, attach or port-forward (a GET) needs create, as with
    # AuthorizePodWebsocketUpgradeCreatePermission.
    ("GET", "/api/v1/namespaces/ns/pods/web/exec?command=id",
     dict(verb="create", namespace="ns", resource="pods", subresource="exec", name="web")),
    ("GET", "/api/v1/namespaces/ns/pods/web/portforward",
     dict(verb="create", namespace="ns", resource="pods", subresource="portforward", name="web")),
    ("GET", "/api/v1/namespaces/ns/pods/web/log", dict(verb="get", namespace="ns", resource="pods", subresource="log",
                                                        name="web")),
])
def test_authorization_attributes(method, url, attrs):
    got = request_attributes(U, info_of(method, url))
    assert got.resource_request and got.api_version == "v1"
    assert {k: getattr(got, k) for k in ("verb", "namespace", "api_group", "resource", "subresource", "name")} == {
        "namespace": "", "api_group": "", "subresource": "", "name": "", **attrs}


def test_non_resource_authorization_attributes():
    got = request_attributes(U, info_of("GET", "/apis/apps/v1"))
    assert (got.resource_request, got.verb, got.path) == (False, "get", "/apis/apps/v1")


def test_a_create_is_resource_scoped_in_the_metrics():
    assert info_of("POST", "/api/v1/namespaces/ns/pods").scope == "resource"
