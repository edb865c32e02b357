"""The basics every other component relies on: kubectl and the kubernetes client against a
running knet apiserver (CRUD, list, watch, auth)."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.api


def test_system_namespaces_exist(apiserver):
    out = apiserver.kubectl_ok("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}")
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(out.split())


def test_kubernetes_service_points_at_the_apiserver(apiserver):
    svc = json.loads(apiserver.kubectl_ok("get", "svc", "kubernetes", "-n", "default", "-o", "json"))
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": apiserver.port}]
    ep = json.loads(apiserver.kubectl_ok("get", "endpoints", "kubernetes", "-n", "default", "-o", "json"))
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                              "ports": [{"name": "https", "port": apiserver.port, "protocol": "TCP"}]}]


def test_configmap_crud_with_kubectl(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2")
    assert apiserver.kubectl_ok("-n", namespace, "get", "cm", "cfg", "-o", "jsonpath={.data.b}") == "2"
    apiserver.kubectl_ok("-n", namespace, "patch", "cm", "cfg", "-p", '{"data":{"c":"3"}}')
    out = apiserver.kubectl_ok("-n", namespace, "get", "cm", "cfg")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert lines[1].split()[:2] == ["cfg", "3"]
    apiserver.kubectl_ok("-n", namespace, "delete", "cm", "cfg")
    p = apiserver.kubectl("-n", namespace, "get", "cm", "cfg")
    assert p.returncode == 1
    assert 'Error from server (NotFound): configmaps "cfg" not found' in p.stderr


def test_anonymous_requests_are_refused_but_health_is_open(apiserver):
    def curl(path: str, *extra: str) -> tuple[str, str]:
        p = subprocess.run(["curl", "-s", "--cacert", apiserver.ca_file, "-w", "\n%{http_code}", *extra,
                            apiserver.url + path], capture_output=True, text=True, timeout=10)
        body, _, code = p.stdout.rpartition("\n")
        return code, body

    # As on kubeadm (--anonymous-auth on, Node,RBAC): anonymous requests are system:anonymous,
    # which may read only the health and version paths (system:public-info-viewer).
    code, body = curl("/api/v1/namespaces")
    assert code == "403"
    assert json.loads(body)["message"] == ('namespaces is forbidden: User "system:anonymous" cannot list resource '
                                           '"namespaces" in API group "" at the cluster scope')
    assert curl("/healthz") == ("200", "ok")
    assert curl("/readyz")[0] == "200"
    assert json.loads(curl("/version")[1])["major"] == "1"
    code, body = curl("/api/v1/namespaces", "-H", f"Authorization: Bearer {apiserver.token}")
    assert code == "200"
    assert json.loads(body)["kind"] == "NamespaceList"
    assert curl("/api/v1/namespaces", "-H", "Authorization: Bearer wrong")[0] == "401"


def test_python_client_create_list_watch(apiserver, namespace):
    import kubernetes

    with apiserver.client() as api_client:
        core = kubernetes.client.CoreV1Api(api_client)
        created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "w1"}, "data": {"k": "v"}})
        assert created.metadata.uid
        listed = core.list_namespaced_config_map(namespace)
        assert [c.metadata.name for c in listed.items] == ["w1"]
        w = kubernetes.watch.Watch()
        events = []
        core.patch_namespaced_config_map("w1", namespace, {"data": {"k": "v2"}})
        for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=listed.metadata.resource_version,
                           timeout_seconds=5):
            events.append((ev["type"], ev["object"].data["k"]))
            if len(events) == 1:
                w.stop()
        assert events == [("MODIFIED", "v2")]
