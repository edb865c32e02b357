"""Discovery as kubectl 1.32 reads it: aggregated (apidiscovery.k8s.io/v2) and legacy
documents, short names and the `all` category; OpenAPI v3 index and documents."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest

pytestmark = pytest.mark.api

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def get(apiserver, path: str, accept: str = "application/json") -> tuple[str, dict]:
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    req = urllib.request.Request(apiserver.url + path,
                                 headers={"Authorization": f"Bearer {apiserver.token}", "Accept": accept})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return r.headers["Content-Type"], json.loads(r.read())


def test_aggregated_discovery(apiserver):
    ctype, core = get(apiserver, "/api", AGGREGATED + ",application/json")
    assert ctype == AGGREGATED and core["kind"] == "APIGroupDiscoveryList"
    pods = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert (pods["scope"], pods["singularResource"], pods["shortNames"], pods["categories"]) == \
        ("Namespaced", "pod", ["po"], ["all"])
    assert {s["subresource"] for s in pods["subresources"]} >= {"status", "binding", "log", "exec", "eviction"}
    _, groups = get(apiserver, "/apis", AGGREGATED)
    names = [g["metadata"]["name"] for g in groups["items"]]
    assert {"apps", "discovery.k8s.io", "networking.k8s.io", "coordination.k8s.io", "events.k8s.io"} <= set(names)
    apps = next(g for g in groups["items"] if g["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}


def test_legacy_discovery(apiserver):
    _, versions = get(apiserver, "/api")
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    _, v1 = get(apiserver, "/api/v1")
    by_name = {r["name"]: r for r in v1["resources"]}
    assert by_name["services"]["shortNames"] == ["svc"] and by_name["nodes"]["namespaced"] is False
    assert by_name["pods/eviction"]["group"] == "policy"
    _, group = get(apiserver, "/apis/apps")
    assert group["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    out = apiserver.kubectl_ok("api-resources", "--api-group=apps", "--no-headers")
    assert [line.split()[0] for line in out.splitlines()] == ["controllerrevisions", "daemonsets", "deployments",
                                                              "replicasets", "statefulsets"]
    sts = next(line.split() for line in out.splitlines() if line.startswith("statefulsets"))
    assert sts == ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"]


def test_explain_statefulset_and_controllerrevision(apiserver):
    out = apiserver.kubectl_ok("explain", "statefulsets.spec.podManagementPolicy")
    assert "GROUP:      apps" in out and "KIND:       StatefulSet" in out and "FIELD: podManagementPolicy <string>" in out
    out = apiserver.kubectl_ok("explain", "statefulset.spec.updateStrategy.rollingUpdate")
    assert "FIELD: rollingUpdate <RollingUpdateStatefulSetStrategy>" in out and "  partition\t<integer>" in out
    out = apiserver.kubectl_ok("explain", "controllerrevisions")
    assert "KIND:       ControllerRevision" in out and "  data\t<Object>" in out and "  revision\t<integer>" in out


def test_openapi_v3_index_and_documents(apiserver):
    _, index = get(apiserver, "/openapi/v3")
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    _, doc = get(apiserver, url)
    deploy = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deploy["x-kubernetes-group-version-kind"] == [{"group": "apps", "version": "v1", "kind": "Deployment"}]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    _, core = get(apiserver, index["paths"]["api/v1"]["serverRelativeURL"])
    containers = core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert (containers["x-kubernetes-patch-merge-key"], containers["x-kubernetes-patch-strategy"]) == ("name", "merge")


def test_delete_collection_with_a_label_selector(apiserver, namespace):
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        apiserver.kubectl_ok("-n", namespace, "create", "configmap", name)
        apiserver.kubectl_ok("-n", namespace, "label", "cm", name, f"tier={tier}")
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    req = urllib.request.Request(f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps?labelSelector=tier%3Dx",
                                 method="DELETE", headers={"Authorization": f"Bearer {apiserver.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        deleted = json.loads(r.read())
    assert sorted(i["metadata"]["name"] for i in deleted["items"]) == ["a", "b"]
    assert apiserver.kubectl_ok("-n", namespace, "get", "cm", "-o", "name").split() == ["configmap/c"]
