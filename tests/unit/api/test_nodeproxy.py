"""Where nodes/proxy sends a request: upstream's node ResourceLocation (SplitSchemeNamePort, the
kubelet port and transport, isProxyableHostname) and net.JoinPreservingTrailingSlash, which keeps
a proxied path under the target's root."""

from __future__ import annotations

import pytest

from knet.api.errors import ApiError
from knet.api.nodeproxy import Location, kubelet_endpoint, location, split_name
from knet.api.podproxy import clean_path, join_preserving_trailing_slash


def node(addresses=(("InternalIP", "10.0.0.11"),), port=10250, annotations=None) -> dict:
    return {"metadata": {"name": "node01", "annotations": annotations or {}},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


@pytest.mark.parametrize("name,scheme,port,want", [
    ("node01", "", "", Location("https", "10.0.0.11", 10250, kubelet=True)),
    ("node01:10250", "", "10250", Location("https", "10.0.0.11", 10250, kubelet=True)),
    ("https:node01:10250", "https", "10250", Location("https", "10.0.0.11", 10250, kubelet=True)),
    ("http:node01:10250", "http", "10250", Location("https", "10.0.0.11", 10250, kubelet=True)),  # the kubelet's
    ("node01:9100", "", "9100", Location("http", "10.0.0.11", 9100, kubelet=False)),  # the proxy transport
    ("https:node01:9100", "https", "9100", Location("https", "10.0.0.11", 9100, kubelet=False)),
])
def test_locations(name, scheme, port, want):
    assert split_name(name) == (scheme, "node01", port)
    assert location(node(), scheme, port) == want


def test_the_kubelet_port_comes_from_the_node_status():
    assert location(node(port=10260), "", "") == Location("https", "10.0.0.11", 10260, kubelet=True)
    assert location(node(port=0), "", "") == Location("https", "10.0.0.11", 10250, kubelet=True)


def test_preferred_address_types_are_kubeadms():
    both = node(addresses=(("Hostname", "node01"), ("ExternalIP", "192.0.2.7"), ("InternalIP", "10.0.0.11")))
    assert location(both, "", "").host == "10.0.0.11"
    assert location(node(addresses=(("Hostname", "node01"), ("ExternalIP", "192.0.2.7"))), "", "").host == "192.0.2.7"
    with pytest.raises(ApiError) as err:
        location(node(addresses=()), "", "")
    assert err.value.code == 500


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
                                     "255.255.255.255", "fe80::1", "node01"])
def test_an_address_that_is_not_global_unicast_is_not_proxied(address):
    """isProxyableHostname: a node cannot point the proxy at the apiserver's own host or a
    metadata service, on the kubelet port or any other."""
    for port in ("", "2379"):
        with pytest.raises(ApiError) as err:
            location(node(addresses=(("InternalIP", address),)), "", port)
        assert (err.value.code, err.value.message) == (400, "address not allowed")


def test_a_simulated_nodes_kubelet_is_reached_where_it_registered():
    sim = node(addresses=(("InternalIP", "10.200.0.5"),), annotations={"knet.io/kubelet-endpoint": "127.0.0.1:41234"})
    assert location(sim, "", "", honor_annotation=True) == Location("https", "127.0.0.1", 41234, kubelet=True)
    assert kubelet_endpoint(sim, honor_annotation=True) == ("127.0.0.1", 41234)
    # Not for other ports: those go to the node's address, checked as always.
    assert location(sim, "", "8080", honor_annotation=True) == Location("http", "10.200.0.5", 8080, kubelet=False)
    loopback = node(addresses=(("InternalIP", "127.0.0.1"),), annotations={"knet.io/kubelet-endpoint": "127.0.0.1:1"})
    with pytest.raises(ApiError):
        location(loopback, "", "2379", honor_annotation=True)


def test_an_apiserver_of_real_nodes_ignores_the_endpoint_annotation():
    """Without --kubelet-endpoint-annotation (a real dataplane), a node that writes the
    annotation (to aim the apiserver's kubelet client certificate at the apiserver's own port)
    is reached at its address and kubelet port as upstream, and a loopback address is refused."""
    hijack = {"knet.io/kubelet-endpoint": "127.0.0.1:6443"}
    real = node(addresses=(("InternalIP", "10.200.0.5"),), port=10250, annotations=hijack)
    assert location(real, "", "") == Location("https", "10.200.0.5", 10250, kubelet=True)
    assert kubelet_endpoint(real, honor_annotation=False) == ("10.200.0.5", 10250)
    with pytest.raises(ApiError) as err:
        location(node(addresses=(("InternalIP", "127.0.0.1"),), annotations=hijack), "", "")
    assert (err.value.code, err.value.message) == (400, "address not allowed")
    # The relay (exec, logs) prefers addresses as --kubelet-preferred-address-types does.
    assert kubelet_endpoint(node(addresses=(("Hostname", "n1"), ("ExternalIP", "192.0.2.9")), port=10333),
                            honor_annotation=False) == ("192.0.2.9", 10333)
    with pytest.raises(ApiError) as err:
        kubelet_endpoint(node(addresses=()), honor_annotation=False)
    assert err.value.code == 500


@pytest.mark.parametrize("name", ["a:b:c:d", "ftp:node01:80", ":10250", "https::10250", ""])
def test_malformed_node_names_are_bad_requests(name):
    with pytest.raises(ApiError) as err:
        split_name(name)
    assert (err.value.code, err.value.message) == (400, f"invalid node request {name!r}")


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "１"])
def test_malformed_ports_are_bad_requests(port):
    with pytest.raises(ApiError) as err:
        location(node(), "", port)
    assert err.value.code == 400


@pytest.mark.parametrize("path,want", [
    # Go's path.Clean table (src/path/path_test.go, cleantests), rooted and relative rows.
    ("", "."), ("abc", "abc"), ("abc/def", "abc/def"), (".", "."), ("..", ".."), ("../..", "../.."),
    ("../../abc", "../../abc"), ("/abc", "/abc"), ("/", "/"), ("abc/", "abc"), ("abc/def/", "abc/def"),
    ("a/b/c/", "a/b/c"), ("./", "."), ("../", ".."), ("/abc/", "/abc"), ("abc//def//ghi", "abc/def/ghi"),
    ("//abc", "/abc"), ("///abc", "/abc"), ("//abc//", "/abc"), ("abc//", "abc"), ("abc/./def", "abc/def"),
    ("/./abc/def", "/abc/def"), ("abc/.", "abc"), ("abc/def/ghi/../jkl", "abc/def/jkl"),
    ("abc/def/../ghi/../jkl", "abc/jkl"), ("abc/def/..", "abc"), ("abc/def/../..", "."), ("/abc/def/../..", "/"),
    ("abc/def/../../..", ".."), ("/abc/def/../../..", "/"), ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
    ("abc/./../def", "def"), ("abc//./../def", "def"), ("abc/../../././../def", "../../def"),
])
def test_clean_path(path, want):
    assert clean_path(path) == want


@pytest.mark.parametrize("subpath,want", [
    ("", ""), ("/", "/"), ("/stats/summary", "/stats/summary"), ("/logs/", "/logs/"),
    ("/../../secrets", "/secrets"), ("/a/../../b/", "/b/"), ("/a//b", "/a/b"),
])
def test_join_preserving_trailing_slash(subpath, want):
    assert join_preserving_trailing_slash("", subpath) == want
