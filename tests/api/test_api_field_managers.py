"""Who owns what a client wrote without naming a field manager: kube-apiserver records the
first word of its User-Agent (managerOrUserAgent), so a later server-side apply that changes
such a field conflicts with that client, as the JavaScript client (`node-fetch`), kopf (`kopf`)
and the Python client (`OpenAPI-Generator`) see against a real cluster; a write through a
subresource (status) is a separate managedFields entry that says so."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from node_agents import host_static_pod, sim_kubelet, wait_for

pytestmark = pytest.mark.api


def managed(apiserver, namespace: str, *what: str) -> list[tuple[str, str, str | None, dict]]:
    obj = json.loads(apiserver.kubectl_ok("get", *what, "-n", namespace, "-o", "json", "--show-managed-fields"))
    return [(m["manager"], m["operation"], m.get("subresource"), m["fieldsV1"])
            for m in obj["metadata"].get("managedFields") or []]


def core(apiserver, user_agent: str | None = None) -> k8s.CoreV1Api:
    api = apiserver.client()
    if user_agent is not None:
        api.user_agent = user_agent
    return k8s.CoreV1Api(api)


def test_writes_without_a_field_manager_belong_to_the_user_agent(apiserver, namespace):
    core(apiserver, "my-tool/1.0 (linux/amd64)").create_namespaced_config_map(
        namespace, {"metadata": {"name": "owned"}, "data": {"a": "1", "b": "2"}})
    [(manager, operation, subresource, fields)] = managed(apiserver, namespace, "cm", "owned")
    assert (manager, operation, subresource) == ("my-tool", "Update", None)
    assert fields["f:data"].keys() - {"."} == {"f:a", "f:b"}

    # Applying another value of a field my-tool wrote is a conflict with my-tool.
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  a: '9'\n"
    p = apiserver.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=cm)
    assert p.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "my-tool" using v1: .data.a' in p.stderr

    # The Python client's own User-Agent ("OpenAPI-Generator/<version>/python") names it.
    core(apiserver).patch_namespaced_config_map("owned", namespace, {"data": {"a": "5"}})
    owners = {m: fields for m, _, _, fields in managed(apiserver, namespace, "cm", "owned")}
    assert owners["OpenAPI-Generator"] == {"f:data": {"f:a": {}}}
    assert owners["my-tool"] == {"f:data": {"f:b": {}}}

    # An explicit fieldManager wins over the User-Agent.
    apiserver.kubectl_ok("-n", namespace, "patch", "cm", "owned", "-p", '{"data":{"c":"3"}}',
                         "--field-manager=named")
    assert {m for m, *_ in managed(apiserver, namespace, "cm", "owned")} == {"my-tool", "OpenAPI-Generator", "named"}


def test_a_status_write_is_recorded_with_its_subresource(apiserver, namespace):
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    core(apiserver, "creator/1").create_namespaced_pod(namespace, pod)
    core(apiserver, "reporter/1").patch_namespaced_pod_status("p", namespace, {"status": {"phase": "Running"}})
    entries = {(m, sub): fields for m, op, sub, fields in managed(apiserver, namespace, "pod", "p")}
    assert set(entries) == {("creator", None), ("reporter", "status")}
    assert entries[("reporter", "status")] == {"f:status": {"f:phase": {}}}
    assert "f:spec" in entries[("creator", None)]


def test_the_kubelet_owns_the_mirror_pod_and_its_status(apiserver, tmp_path):
    # As on a kubeadm node: `kubectl get pod -o yaml --show-managed-fields` names the kubelet,
    # once for the mirror pod it created and once for the status it reports.
    node = "managers-node"
    with sim_kubelet(apiserver, tmp_path, node, kubeconfig=apiserver.kubeconfig, pod_cidr="10.244.83.0/24",
                     taint="example.com/managers-only:NoSchedule",
                     static_pods={"idle": host_static_pod("idle", {"main": "exec sleep 3600"})}):
        def entries():
            found = managed(apiserver, "default", "pod", f"idle-{node}")
            return found if any(sub == "status" for _, _, sub, _ in found) else None

        found = wait_for("the kubelet's status write", entries, timeout=20.0)
        assert {(m, op, sub) for m, op, sub, _ in found} == {("kubelet", "Update", None),
                                                             ("kubelet", "Update", "status")}
        status = next(fields for _, _, sub, fields in found if sub == "status")
        assert "f:phase" in status["f:status"]
