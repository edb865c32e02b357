"""RBAC as a CKA student meets it, with the real kubectl against an apiserver run with
`--authorization-mode=Node,RBAC` (the session's apiserver, as kubeadm runs it): service accounts,
roles and bindings, `kubectl auth can-i` (with --as, -n, --list), `auth whoami`, tokens from
`kubectl create token`, impersonation, escalation prevention and the system namespaces."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml


def token_kubeconfig(apiserver, token: str, path: Path) -> str:
    """A kubeconfig that authenticates with a bearer token only (no client certificate)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "c", "cluster": {"server": apiserver.url, "certificate-authority": apiserver.ca_file}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def run_as(apiserver, kubeconfig: str, *args: str):
    import subprocess

    from tests.conftest import KUBECTL

    return subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", *args], text=True, capture_output=True, timeout=30)


def can_i(apiserver, *args: str) -> str:
    p = apiserver.kubectl("auth", "can-i", *args)
    return p.stdout.strip()


def raw(apiserver, path: str, token: str | None = None, method: str = "GET", body: dict | None = None):
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    req = urllib.request.Request(apiserver.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_cka_workflow_service_account_role_and_binding(apiserver, namespace, tmp_path):
    ns = namespace
    sa = f"system:serviceaccount:{ns}:dev"
    apiserver.kubectl_ok("create", "serviceaccount", "dev", "-n", ns)
    assert can_i(apiserver, "list", "pods", "-n", ns, f"--as={sa}") == "no"

    apiserver.kubectl_ok("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "dev-reads", "--role=pod-reader", f"--serviceaccount={ns}:dev",
                         "-n", ns)
    assert can_i(apiserver, "list", "pods", "-n", ns, f"--as={sa}") == "yes"
    assert can_i(apiserver, "get", "pods", "--subresource=log", "-n", ns, f"--as={sa}") == "no"
    assert can_i(apiserver, "list", "secrets", "-n", ns, f"--as={sa}") == "no"
    assert can_i(apiserver, "list", "pods", "-n", "default", f"--as={sa}") == "no"
    assert can_i(apiserver, "delete", "pods", "-n", ns, f"--as={sa}") == "no"

    # The account's own token, as a pod would mount it.
    token = apiserver.kubectl_ok("create", "token", "dev", "-n", ns).strip()
    kc = token_kubeconfig(apiserver, token, tmp_path / "dev.conf")
    assert run_as(apiserver, kc, "get", "pods", "-n", ns).returncode == 0
    denied = run_as(apiserver, kc, "get", "secrets", "-n", ns)
    assert denied.returncode != 0
    assert (f'Error from server (Forbidden): secrets is forbidden: User "{sa}" cannot list resource "secrets" in API '
            f'group "" in the namespace "{ns}"') in denied.stderr
    whoami = run_as(apiserver, kc, "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == sa

    # can-i --list shows the role's rule (SelfSubjectRulesReview).
    listed = apiserver.kubectl_ok("auth", "can-i", "--list", "-n", ns, f"--as={sa}")
    assert any(line.split()[0] == "pods" and "[get list watch]" in line for line in listed.splitlines()[1:])
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed  # system:basic-user's

    # A cluster-wide right through a ClusterRole and ClusterRoleBinding.
    assert can_i(apiserver, "list", "nodes", f"--as={sa}") == "no"
    apiserver.kubectl_ok("create", "clusterrole", f"{ns}-node-reader", "--verb=get,list", "--resource=nodes")
    apiserver.kubectl_ok("create", "clusterrolebinding", f"{ns}-node-reader", f"--clusterrole={ns}-node-reader",
                         f"--serviceaccount={ns}:dev")
    try:
        assert can_i(apiserver, "list", "nodes", f"--as={sa}") == "yes"
        assert run_as(apiserver, kc, "get", "nodes").returncode == 0
    finally:
        apiserver.kubectl("delete", "clusterrolebinding", f"{ns}-node-reader")
        apiserver.kubectl("delete", "clusterrole", f"{ns}-node-reader")
    assert can_i(apiserver, "list", "nodes", f"--as={sa}") == "no"


def test_resource_names_limit_a_role(apiserver, namespace):
    ns = namespace
    apiserver.kubectl_ok("create", "configmap", "allowed", "-n", ns, "--from-literal=a=b")
    apiserver.kubectl_ok("create", "configmap", "other", "-n", ns, "--from-literal=a=b")
    apiserver.kubectl_ok("create", "role", "one-cm", "--verb=get", "--resource=configmaps",
                         "--resource-name=allowed", "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "one-cm", "--role=one-cm", "--user=jane", "-n", ns)
    assert apiserver.kubectl("get", "cm", "allowed", "-n", ns, "--as=jane").returncode == 0
    other = apiserver.kubectl("get", "cm", "other", "-n", ns, "--as=jane")
    assert other.returncode != 0 and 'configmaps "other" is forbidden' in other.stderr
    assert apiserver.kubectl("get", "cm", "-n", ns, "--as=jane").returncode != 0  # list is not get


def test_groups_and_default_roles(apiserver, namespace):
    ns = namespace
    apiserver.kubectl_ok("create", "rolebinding", "devs-edit", "--clusterrole=edit", "--group=devs", "-n", ns)
    assert can_i(apiserver, "create", "deployments.apps", "-n", ns, "--as=amy", "--as-group=devs") == "yes"
    assert can_i(apiserver, "get", "secrets", "-n", ns, "--as=amy", "--as-group=devs") == "yes"
    assert can_i(apiserver, "create", "rolebindings.rbac.authorization.k8s.io", "-n", ns, "--as=amy",
                 "--as-group=devs") == "no"  # edit cannot grant rights
    assert can_i(apiserver, "create", "deployments.apps", "-n", ns, "--as=amy") == "no"
    apiserver.kubectl_ok("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", ns)
    assert can_i(apiserver, "list", "pods", "-n", ns, "--as=bob") == "yes"
    assert can_i(apiserver, "get", "secrets", "-n", ns, "--as=bob") == "no"  # view does not read secrets


def test_anonymous_gets_only_public_info(apiserver):
    # Anonymous may not even ask (system:basic-user is for system:authenticated), let alone act.
    p = apiserver.kubectl("auth", "can-i", "*", "*", "--as=system:anonymous")
    assert p.returncode != 0 and p.stdout.strip() != "yes"
    assert ('selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "system:anonymous" cannot create '
            'resource "selfsubjectaccessreviews"') in p.stderr
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        code, _ = raw(apiserver, path)
        assert code == 200, path
    code, body = raw(apiserver, "/api/v1/secrets")
    assert code == 403
    assert json.loads(body)["message"] == ('secrets is forbidden: User "system:anonymous" cannot list resource '
                                           '"secrets" in API group "" at the cluster scope')
    code, _ = raw(apiserver, "/api/v1/namespaces", token="not-a-token")
    assert code == 401  # a bad credential is refused, never treated as anonymous


def test_impersonation_needs_the_impersonate_verb(apiserver, namespace, tmp_path):
    ns = namespace
    carl = f"system:serviceaccount:{ns}:carl"
    apiserver.kubectl_ok("create", "serviceaccount", "carl", "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "carl-admin", "--clusterrole=admin", f"--serviceaccount={ns}:carl",
                         "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "dora-view", "--clusterrole=view", "--user=dora", "-n", ns)
    kc = token_kubeconfig(apiserver, apiserver.kubectl_ok("create", "token", "carl", "-n", ns).strip(),
                          tmp_path / "carl.conf")
    # Discovery cached first, as carl: with a cold cache kubectl's discovery request is the one
    # refused, and kubectl prints it as `Error from server (Forbidden): unknown` (with
    # kube-apiserver too: client-go reads discovery errors raw), not the Status message.
    assert run_as(apiserver, kc, "get", "pods", "-n", ns).returncode == 0
    # Admin of the namespace, yet impersonating is a cluster-scoped right carl does not have.
    p = run_as(apiserver, kc, "get", "pods", "-n", ns, "--as=dora")
    assert p.returncode != 0
    assert (f'users "dora" is forbidden: User "{carl}" cannot impersonate resource "users" in API group "" at the '
            f'cluster scope') in p.stderr
    apiserver.kubectl_ok("create", "clusterrole", f"{ns}-as-dora", "--verb=impersonate", "--resource=users",
                         "--resource-name=dora")
    apiserver.kubectl_ok("create", "clusterrolebinding", f"{ns}-as-dora", f"--clusterrole={ns}-as-dora",
                         f"--serviceaccount={ns}:carl")
    try:
        assert run_as(apiserver, kc, "get", "pods", "-n", ns, "--as=dora").returncode == 0
        # ... as dora, who may only view: no deletes, and no other identity or group.
        p = run_as(apiserver, kc, "create", "configmap", "x", "-n", ns, "--as=dora")
        assert p.returncode != 0 and 'User "dora" cannot create resource "configmaps"' in p.stderr
        p = run_as(apiserver, kc, "get", "pods", "-n", ns, "--as=dora", "--as-group=system:masters")
        assert p.returncode != 0 and 'groups "system:masters" is forbidden' in p.stderr
    finally:
        apiserver.kubectl("delete", "clusterrolebinding", f"{ns}-as-dora")
        apiserver.kubectl("delete", "clusterrole", f"{ns}-as-dora")


def test_no_one_grants_what_they_do_not_hold(apiserver, namespace, tmp_path):
    ns = namespace
    apiserver.kubectl_ok("create", "serviceaccount", "rbac-manager", "-n", ns)
    apiserver.kubectl_ok("create", "role", "role-manager", "--verb=create,get,list",
                         "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
                         "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "rbac-manager", "--role=role-manager",
                         f"--serviceaccount={ns}:rbac-manager", "-n", ns)
    token = apiserver.kubectl_ok("create", "token", "rbac-manager", "-n", ns).strip()
    kc = token_kubeconfig(apiserver, token, tmp_path / "mgr.conf")
    p = run_as(apiserver, kc, "create", "role", "secret-reader", "--verb=get", "--resource=secrets", "-n", ns)
    assert p.returncode != 0
    assert "is attempting to grant RBAC permissions not currently held" in p.stderr
    # A role within its own rights is fine, and so is a binding to it.
    assert run_as(apiserver, kc, "create", "role", "role-lister", "--verb=list",
                  "--resource=roles.rbac.authorization.k8s.io", "-n", ns).returncode == 0
    # Binding cluster-admin would grant everything: refused.
    p = run_as(apiserver, kc, "create", "rolebinding", "sneaky", "--clusterrole=cluster-admin",
               f"--serviceaccount={ns}:rbac-manager", "-n", ns)
    assert p.returncode != 0 and "forbidden" in p.stderr.lower()


@pytest.mark.parametrize("name", ["kube-system", "default", "kube-public"])
def test_system_namespaces_cannot_be_deleted(apiserver, name):
    p = apiserver.kubectl("delete", "namespace", name, "--wait=false")
    assert p.returncode != 0
    assert f'namespaces "{name}" is forbidden: this namespace may not be deleted' in p.stderr
    assert apiserver.kubectl("get", "namespace", name).returncode == 0


def test_subject_access_review_answers_for_another_user(apiserver, namespace):
    ns = namespace
    apiserver.kubectl_ok("create", "rolebinding", "erin-view", "--clusterrole=view", "--user=erin", "-n", ns)
    code, body = raw(apiserver, "/apis/authorization.k8s.io/v1/subjectaccessreviews", method="POST", body={
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "erin", "resourceAttributes": {"namespace": ns, "verb": "list", "resource": "pods"}}},
        token=apiserver.token)
    assert code == 201 and json.loads(body)["status"]["allowed"] is True
    code, body = raw(apiserver, f"/apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews",
                     method="POST", token=apiserver.token, body={
                         "apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                         "spec": {"user": "erin", "resourceAttributes": {"namespace": ns, "verb": "delete",
                                                                          "resource": "pods"}}})
    assert code == 201 and json.loads(body)["status"]["allowed"] is False
    code, body = raw(apiserver, "/apis/authorization.k8s.io/v1/subjectaccessreviews", method="POST",
                     token=apiserver.token, body={"apiVersion": "authorization.k8s.io/v1",
                                                  "kind": "SubjectAccessReview", "spec": {"user": "erin"}})
    assert code == 422
