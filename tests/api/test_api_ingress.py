"""networking.k8s.io/v1 Ingress and IngressClass with the real kubectl: `kubectl create ingress`,
`get` columns, `describe` with rules and backends, the DefaultIngressClass admission, and what
kube-apiserver refuses (cases of upstream's pkg/apis/networking/validation validation_test.go:
TestValidateIngressCreate, TestValidateIngressRules, TestValidateIngressClass)."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.api


def ingress(name: str, paths: list[dict], **spec) -> str:
    return yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
                           "spec": {"rules": [{"host": "a.example.com", "http": {"paths": paths}}], **spec}})


def path(p: str, ptype: str | None = "Prefix", service: dict | None = None) -> dict:
    out = {"path": p, "backend": {"service": service or {"name": "web", "port": {"number": 80}}}}
    if ptype is not None:
        out["pathType"] = ptype
    return out


def test_create_get_describe_and_the_default_class(apiserver, namespace):
    cls = f"cls-{namespace}"
    apiserver.kubectl_ok("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": cls, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "example.com/ingress-controller"}}))
    try:
        table = apiserver.kubectl_ok("get", "ingressclass", cls).splitlines()
        assert table[0].split() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
        assert table[1].split()[:3] == [cls, "example.com/ingress-controller", "<none>"]
        apiserver.kubectl_ok("-n", namespace, "create", "service", "clusterip", "wear", "--tcp=8080:8080")
        apiserver.kubectl_ok("-n", namespace, "create", "ingress", "shop", "--rule=shop.example.com/wear*=wear:8080",
                             "--rule=shop.example.com/watch=watch:80",
                             "--annotation=nginx.ingress.kubernetes.io/rewrite-target=/")
        obj = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "ingress", "shop", "-o", "json"))
        assert obj["spec"]["ingressClassName"] == cls  # DefaultIngressClass admission
        paths = obj["spec"]["rules"][0]["http"]["paths"]
        assert [(p["path"], p["pathType"]) for p in paths] == [("/wear", "Prefix"), ("/watch", "Exact")]
        table = apiserver.kubectl_ok("-n", namespace, "get", "ing").splitlines()
        assert table[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
        assert table[1].split()[:4] == ["shop", cls, "shop.example.com", "80"]
        apiserver.kubectl_ok("-n", namespace, "create", "ingress", "other", f"--class={cls}",
                             "--rule=/=web:80,tls=web-cert", "--default-backend=fallback:80")
        row = apiserver.kubectl_ok("-n", namespace, "get", "ingress", "other", "--no-headers").split()
        assert row[:4] == ["other", cls, "*", "80,"] and row[4] == "443"
        described = apiserver.kubectl_ok("-n", namespace, "describe", "ingress", "shop")
        assert f"Ingress Class:    {cls}" in described
        rules = described.split("Rules:", 1)[1]
        assert "shop.example.com" in rules and "/wear" in rules and "wear:8080" in rules and "watch:80" in rules
        assert "nginx.ingress.kubernetes.io/rewrite-target: /" in described
        # status is a subresource: a status write through the main resource is ignored
        apiserver.kubectl_ok("-n", namespace, "patch", "ingress", "shop", "--type=merge", "--subresource=status",
                             "-p", '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.7"}]}}}')
        assert apiserver.kubectl_ok("-n", namespace, "get", "ingress", "shop", "--no-headers").split()[3] == \
            "192.0.2.7"
    finally:
        apiserver.kubectl("delete", "ingressclass", cls, "--ignore-not-found")


@pytest.mark.parametrize(("paths", "spec", "message"), [
    ([path("/a", "Wildcard")], {}, 'spec.rules[0].http.paths[0].pathType: Unsupported value: "Wildcard": '
                                   'supported values: "Exact", "ImplementationSpecific", "Prefix"'),
    ([path("/a", None)], {}, "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"),
    ([path("a", "Prefix")], {}, 'spec.rules[0].http.paths[0].path: Invalid value: "a": must be an absolute path'),
    ([path("/a//b", "Exact")], {}, "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b\": must not contain '//'"),
    ([path("/a/..", "Prefix")], {}, "spec.rules[0].http.paths[0].path: Invalid value: \"/a/..\": cannot end with '/..'"),
    ([path("/a", service={"name": "web"})], {},
     "spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is required"),
    ([path("/a", service={"name": "web", "port": {"number": 80, "name": "http"}})], {},
     "spec.rules[0].http.paths[0].backend.service.port: Invalid value: \"\": cannot set both port name & port number"),
    ([path("/a", service={"name": "Web_1", "port": {"number": 80}})], {},
     'spec.rules[0].http.paths[0].backend.service.name: Invalid value: "Web_1"'),
    ([path("/a")], {"ingressClassName": "Bad_Class"}, 'spec.ingressClassName: Invalid value: "Bad_Class"'),
    ([path("/a")], {"tls": [{"hosts": ["*.*.example.com"]}]}, 'spec.tls[0].hosts[0]: Invalid value: "*.*.example.com"'),
])
def test_invalid_ingresses_are_refused_with_field_causes(apiserver, namespace, paths, spec, message):
    result = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=ingress("bad", paths, **spec))
    assert result.returncode == 1 and 'Ingress "bad" is invalid' in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_what_else_is_refused(apiserver, namespace):
    # an IP as host; neither rules nor a default backend; the class annotation and field together
    ip_host = yaml.safe_load(ingress("ip", [path("/")]))
    ip_host["spec"]["rules"][0]["host"] = "10.0.0.1"
    result = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=yaml.safe_dump(ip_host))
    assert 'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address' in result.stderr
    empty = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "empty"}, "spec": {}}
    result = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=yaml.safe_dump(empty))
    assert "either `defaultBackend` or `rules` must be specified" in result.stderr
    both = yaml.safe_load(ingress("both", [path("/")], ingressClassName="nginx"))
    both["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    result = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=yaml.safe_dump(both))
    assert "can not be set when the class field is also set" in result.stderr
    # regex characters are fine under ImplementationSpecific (ingress-nginx's use-regex paths)
    apiserver.kubectl_ok("-n", namespace, "create", "-f", "-",
                         input=ingress("regex", [path("/shop(/|$)(.*)", "ImplementationSpecific")]))
    # a backend in another namespace cannot be named: `namespace` is no field of a service backend
    other = yaml.safe_load(ingress("cross", [path("/", service={"name": "web", "namespace": "kube-system",
                                                                  "port": {"number": 80}})]))
    result = apiserver.kubectl("-n", namespace, "create", "-f", "-", "--validate=strict", input=yaml.safe_dump(other))
    assert result.returncode == 1 and 'unknown field "spec.rules[0].http.paths[0].backend.service.namespace"' \
        in result.stderr, result.stderr


def test_invalid_ingress_classes(apiserver):
    def ic(name, **spec):
        return yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                               "metadata": {"name": name}, "spec": spec})
    result = apiserver.kubectl("create", "-f", "-", input=ic("no-controller"))
    assert "spec.controller: Required value" in result.stderr
    result = apiserver.kubectl("create", "-f", "-", input=ic("bad-controller", controller="nginx"))
    assert "spec.controller: Invalid value" in result.stderr
    result = apiserver.kubectl("create", "-f", "-", input=ic("ns-scope", controller="a.io/b", parameters={
        "kind": "Config", "name": "c", "scope": "Namespace"}))
    assert "spec.parameters.namespace: Required value" in result.stderr
    apiserver.kubectl_ok("create", "-f", "-", input=ic("api-test-immutable", controller="a.io/b",
                                                        parameters={"kind": "Config", "name": "c"}))
    try:
        got = json.loads(apiserver.kubectl_ok("get", "ingressclass", "api-test-immutable", "-o", "json"))
        assert got["spec"]["parameters"]["scope"] == "Cluster"  # defaulted
        result = apiserver.kubectl("patch", "ingressclass", "api-test-immutable", "--type=merge", "-p",
                                   '{"spec":{"controller":"a.io/c"}}')
        assert "field is immutable" in result.stderr
    finally:
        apiserver.kubectl("delete", "ingressclass", "api-test-immutable", "--ignore-not-found")
