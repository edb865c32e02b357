"""Service validation of the LoadBalancer fields (upstream pkg/apis/core/validation:
validateLoadBalancerClassField, LoadBalancerSourceRanges, ValidateLoadBalancerStatus)."""

from __future__ import annotations

import copy

import pytest

from knet.api.resources import services


def svc(svc_type: str = "LoadBalancer", status: dict | None = None, **spec) -> dict:  # noqa: ANN003
    out = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": svc_type, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], **spec},
           "status": {"loadBalancer": status or {}}}
    return out


def errors(obj: dict, old: dict | None = None) -> list[tuple[str, str, str]]:
    return [(e.type, e.field, e.detail) for e in services.validate(obj, old)]


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param(svc(loadBalancerClass="example.com/lb"), [], id="class-on-a-loadbalancer"),
    pytest.param(svc("ClusterIP", loadBalancerClass="example.com/lb"),
                 [("Forbidden", "spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'")],
                 id="class-on-a-clusterip"),
    pytest.param(svc(loadBalancerClass="not a name!"), "Invalid", id="class-not-a-qualified-name"),
    pytest.param(svc(loadBalancerSourceRanges=["10.0.0.0/8", " 192.168.1.0/24"]), [], id="ranges"),
    pytest.param(svc(loadBalancerSourceRanges=["10.0.0.1"]), "Invalid", id="range-without-prefix"),
    pytest.param(svc("NodePort", loadBalancerSourceRanges=["10.0.0.0/8"]),
                 [("Forbidden", "spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'")],
                 id="ranges-on-a-nodeport"),
    pytest.param(svc(status={"ingress": [{"ip": "172.30.0.200", "ipMode": "VIP"}]}), [], id="status-vip"),
    pytest.param(svc(status={"ingress": [{"ip": "not-an-ip"}]}), "Invalid", id="status-ip-garbage"),
    pytest.param(svc(status={"ingress": [{"hostname": "lb.example.com", "ipMode": "VIP"}]}),
                 [("Forbidden", "status.loadBalancer.ingress[0].ipMode", "may not be specified when `ip` is not set")],
                 id="status-ipmode-without-ip"),
    pytest.param(svc(status={"ingress": [{"ip": "172.30.0.200", "ipMode": "Tunnel"}]}), "NotSupported",
                 id="status-ipmode-unknown"),
    pytest.param(svc(status={"ingress": [{"hostname": "10.0.0.1"}]}),
                 [("Invalid", "status.loadBalancer.ingress[0].hostname", "must be a DNS name, not an IP address")],
                 id="status-hostname-is-an-ip"),
])
def test_load_balancer_fields(obj, expected):
    got = errors(obj)
    if isinstance(expected, str):
        assert [e[0] for e in got] == [expected], got
    else:
        assert got == expected


def test_class_may_not_change_but_goes_with_a_type_change():
    old = svc(loadBalancerClass="example.com/a", clusterIP="10.96.0.5")
    assert errors(svc(loadBalancerClass="example.com/b", clusterIP="10.96.0.5"), old) == [
        ("Invalid", "spec.loadBalancerClass", "may not change once set")]
    assert errors(svc(clusterIP="10.96.0.5"), old) == [("Invalid", "spec.loadBalancerClass", "may not change once set")]
    new = svc("ClusterIP", loadBalancerClass="example.com/a", clusterIP="10.96.0.5")
    services.carry_over(new, copy.deepcopy(old))
    assert "loadBalancerClass" not in new["spec"] and errors(new, old) == []
