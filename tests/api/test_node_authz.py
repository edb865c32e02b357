"""A kubelet's credentials against the apiserver with `--authorization-mode=Node,RBAC
--enable-admission-plugins=NodeRestriction`: tried as an attacker holding one node's kubelet
certificate would (real kubectl, `system:node:<name>` in `system:nodes`). The node reads only what
pods bound to it reference, at once after the binding, writes only its own Node (no node-role
labels), its pods and its lease, and gets tokens only bound to its own pods.

These need the apiserver to run the Node authorizer and NodeRestriction (issue #12's
integration); before it every request is allowed."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def nodes(apiserver, tmp_path_factory):
    """Two registered nodes and a kubeconfig for each one's kubelet: {name: kubeconfig path}."""
    from knet.cluster.pki import load_cert_key, write_client_kubeconfig

    root = tmp_path_factory.mktemp("node-authz")
    ca = load_cert_key(apiserver.pki_dir, "ca")
    suffix = uuid.uuid4().hex[:6]
    out = {}
    for name in (f"na-{suffix}", f"nb-{suffix}"):
        out[name] = str(write_client_kubeconfig(root / f"{name}.conf", ca, server=apiserver.url,
                                                user=f"system:node:{name}", groups=["system:nodes"]))
        apiserver.kubectl_ok("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    try:
        yield out
    finally:
        for name in out:
            apiserver.kubectl("delete", "node", name, "--wait=false")


def as_node(apiserver, kubeconfig: str, *args: str, input: str | None = None):
    """kubectl with a node's kubeconfig instead of the admin's (the fixture's own kubectl)."""
    args = (f"--kubeconfig={kubeconfig}", *args)
    return subprocess.run([shutil.which("kubectl") or "kubectl", *args], input=input, text=True,
                          capture_output=True, timeout=30)


def pod(name: str, node: str | None, secret: str, configmap: str, sa: str = "default") -> str:
    spec = {"containers": [{"name": "c", "image": "busybox", "envFrom": [{"configMapRef": {"name": configmap}}]}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}], "serviceAccountName": sa,
            "automountServiceAccountToken": False}
    if node:
        spec["nodeName"] = node
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def test_node_reads_only_what_its_pods_reference(apiserver, namespace, nodes):
    a, b = nodes
    apiserver.kubectl_ok("create", "secret", "generic", "creds", "-n", namespace, "--from-literal=k=v")
    apiserver.kubectl_ok("create", "secret", "generic", "unrelated", "-n", namespace, "--from-literal=k=v")
    apiserver.kubectl_ok("create", "configmap", "settings", "-n", namespace, "--from-literal=k=v")
    apiserver.kubectl_ok("create", "-n", namespace, "-f", "-", input=pod("web", a, "creds", "settings"))
    ok = as_node(apiserver, nodes[a], "get", "secret", "creds", "-n", namespace, "-o", "name")
    assert (ok.returncode, ok.stdout) == (0, "secret/creds\n"), ok.stderr
    assert as_node(apiserver, nodes[a], "get", "configmap", "settings", "-n", namespace).returncode == 0
    for who, what in ((a, "unrelated"), (b, "creds")):
        p = as_node(apiserver, nodes[who], "get", "secret", what, "-n", namespace)
        assert p.returncode == 1 and "Error from server (Forbidden)" in p.stderr, (who, what, p.stderr)
        assert f"no relationship found between node '{who}' and this object" in p.stderr
    p = as_node(apiserver, nodes[a], "get", "secrets", "-n", namespace)
    assert p.returncode == 1 and "Forbidden" in p.stderr
    p = as_node(apiserver, nodes[b], "get", "configmap", "settings", "-n", namespace)
    assert p.returncode == 1 and "Forbidden" in p.stderr


def test_secret_readable_as_soon_as_the_pod_is_bound(apiserver, namespace, nodes):
    a, _ = nodes
    apiserver.kubectl_ok("create", "secret", "generic", "later", "-n", namespace, "--from-literal=k=v")
    apiserver.kubectl_ok("create", "configmap", "later-cm", "-n", namespace, "--from-literal=k=v")
    apiserver.kubectl_ok("create", "-n", namespace, "-f", "-", input=pod("unbound", None, "later", "later-cm"))
    assert as_node(apiserver, nodes[a], "get", "secret", "later", "-n", namespace).returncode == 1
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "unbound"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": a}}
    apiserver.kubectl_ok("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/unbound/binding", "-f", "-",
                         input=json.dumps(binding))
    p = as_node(apiserver, nodes[a], "get", "secret", "later", "-n", namespace, "-o", "name")
    assert (p.returncode, p.stdout) == (0, "secret/later\n"), p.stderr
    apiserver.kubectl_ok("delete", "pod", "unbound", "-n", namespace, "--grace-period=0", "--force")
    p = as_node(apiserver, nodes[a], "get", "secret", "later", "-n", namespace)
    assert p.returncode == 1 and "no relationship found" in p.stderr


def test_node_writes_only_its_own_objects(apiserver, namespace, nodes):
    a, b = nodes
    p = as_node(apiserver, nodes[a], "create", "-n", namespace, "-f", "-", input=pod("evil", a, "x", "y"))
    assert p.returncode == 1 and f'node "{a}" can only create mirror pods' in p.stderr, p.stderr
    p = as_node(apiserver, nodes[a], "label", "node", b, "pwned=true")
    assert p.returncode == 1 and f'node "{a}" is not allowed to modify node "{b}"' in p.stderr, p.stderr
    p = as_node(apiserver, nodes[a], "label", "node", a, "node-role.kubernetes.io/control-plane=")
    assert p.returncode == 1 and "is not allowed to modify labels: node-role.kubernetes.io/control-plane" \
        in p.stderr, p.stderr
    assert as_node(apiserver, nodes[a], "label", "node", a, "team=blue").returncode == 0
    p = as_node(apiserver, nodes[a], "taint", "node", a, "k=v:NoSchedule")
    assert p.returncode == 1 and "is not allowed to modify taints" in p.stderr, p.stderr
    apiserver.kubectl_ok("create", "-n", namespace, "-f", "-", input=pod("theirs", b, "x", "y"))
    p = as_node(apiserver, nodes[a], "delete", "pod", "theirs", "-n", namespace, "--wait=false")
    assert p.returncode == 1 and "can only delete pods with spec.nodeName set to itself" in p.stderr, p.stderr
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": b, "namespace": "kube-node-lease"}, "spec": {"holderIdentity": b}}
    p = as_node(apiserver, nodes[a], "create", "-f", "-", input=json.dumps(lease))
    assert p.returncode == 1 and "can only access node lease with the same name as the requesting node" in p.stderr


def test_tokens_only_for_its_own_pods(apiserver, namespace, nodes):
    a, b = nodes
    apiserver.kubectl_ok("create", "serviceaccount", "robot", "-n", namespace)
    apiserver.kubectl_ok("create", "-n", namespace, "-f", "-", input=pod("mine", a, "x", "y", sa="robot"))
    apiserver.kubectl_ok("create", "-n", namespace, "-f", "-", input=pod("other", b, "x", "y", sa="robot"))
    uid = json.loads(apiserver.kubectl_ok("get", "pod", "mine", "-n", namespace, "-o", "json"))["metadata"]["uid"]
    ok = as_node(apiserver, nodes[a], "create", "token", "robot", "-n", namespace, "--bound-object-kind=Pod",
                 "--bound-object-name=mine", f"--bound-object-uid={uid}")
    assert ok.returncode == 0 and ok.stdout.count(".") == 2, ok.stderr
    p = as_node(apiserver, nodes[a], "create", "token", "robot", "-n", namespace)
    assert p.returncode == 1 and "node requested token not bound to a pod" in p.stderr, p.stderr
    other_uid = json.loads(apiserver.kubectl_ok("get", "pod", "other", "-n", namespace, "-o", "json"))["metadata"][
        "uid"]
    p = as_node(apiserver, nodes[a], "create", "token", "robot", "-n", namespace, "--bound-object-kind=Pod",
                "--bound-object-name=other", f"--bound-object-uid={other_uid}")
    assert p.returncode == 1 and "node requested token bound to a pod scheduled on a different node" in p.stderr
