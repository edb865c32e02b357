"""Where pods/proxy and services/proxy send a request (upstream's SplitSchemeNamePort and the
pod and service ResourceLocation rules)."""

from __future__ import annotations

import pytest

from knet.api.errors import ApiError
from knet.api.podproxy import split_name, target_of_pod, target_of_service


@pytest.mark.parametrize(("name", "want"), [
    ("web", ("", "web", "")), ("web:8080", ("", "web", "8080")), ("https:web:443", ("https", "web", "443")),
    ("web:http", ("", "web", "http")), ("http:web:", ("http", "web", "")),
])
def test_split_name(name, want):
    assert split_name(name) == want


def test_a_name_with_too_many_parts_is_a_bad_request():
    with pytest.raises(ApiError) as err:
        split_name("ftp:web:1:2")
    assert err.value.code == 400


POD = {"metadata": {"name": "p"}, "status": {"podIP": "10.244.1.5"},
       "spec": {"containers": [{"name": "a"}, {"name": "b", "ports": [{"containerPort": 8080}]}]}}


def test_pod_targets():
    assert target_of_pod(POD, "9090") == ("10.244.1.5", 9090)
    assert target_of_pod(POD, "") == ("10.244.1.5", 8080)  # the first container port
    assert target_of_pod({**POD, "spec": {"containers": [{"name": "a"}]}}, "") == ("10.244.1.5", 80)
    for bad in ("http", "70000"):
        with pytest.raises(ApiError) as err:
            target_of_pod(POD, bad)
        assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        target_of_pod({**POD, "status": {}}, "80")
    assert err.value.code == 503


SVC = {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}, {"name": "admin", "port": 81}]}}
SLICES = [{"ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}],
           "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
                         {"addresses": ["10.244.2.7"], "conditions": {"ready": False}}]}]


@pytest.mark.parametrize(("port", "want"), [("http", ("10.244.1.5", 8080)), ("80", ("10.244.1.5", 8080)),
                                            ("admin", ("10.244.1.5", 9090)), ("81", ("10.244.1.5", 9090))])
def test_service_targets_a_ready_endpoint_of_the_named_or_numbered_port(port, want):
    assert target_of_service(SVC, SLICES, port, pick=min) == want


@pytest.mark.parametrize(("svc", "slices", "port"), [
    (SVC, SLICES, ""),  # two ports, none named: ambiguous
    (SVC, SLICES, "https"),
    (SVC, [{**SLICES[0], "endpoints": [{"addresses": ["10.244.2.7"], "conditions": {"ready": False}}]}], "http"),
    (SVC, [], "http"),
])
def test_no_endpoint_is_a_503_as_upstream(svc, slices, port):
    with pytest.raises(ApiError) as err:
        target_of_service(svc, slices, port)
    assert err.value.code == 503 and err.value.message == 'no endpoints available for service "web"'
