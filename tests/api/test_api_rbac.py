"""rbac.authorization.k8s.io/v1 with the real kubectl: `kubectl create role/clusterrole/
rolebinding/clusterrolebinding`, get (columns as upstream's printers), describe, -o yaml; the
validation kube-apiserver applies (422 for an invalid roleRef, subject or rule; roleRef cannot
change); and the bootstrap policy a starting apiserver creates. (Authorization itself is wired
into the request path separately.)"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import yaml

pytestmark = pytest.mark.api


def _cols(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_roles_and_bindings_with_kubectl(apiserver, namespace):
    suffix = uuid.uuid4().hex[:6]
    cr, crb = f"t-reader-{suffix}", f"t-readers-{suffix}"
    k = apiserver.kubectl_ok
    k("-n", namespace, "create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods,pods/log")
    k("-n", namespace, "create", "rolebinding", "read-pods", "--role=pod-reader", "--user=jane",
      "--group=devs", f"--serviceaccount={namespace}:robot")
    k("create", "clusterrole", cr, "--verb=get", "--resource=nodes", "--resource-name=node01")
    k("create", "clusterrolebinding", crb, f"--clusterrole={cr}", "--group=ops")
    try:
        role = yaml.safe_load(k("-n", namespace, "get", "role", "pod-reader", "-o", "yaml"))
        assert role["apiVersion"] == "rbac.authorization.k8s.io/v1" and role["kind"] == "Role"
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "pods/log"],
                                  "verbs": ["get", "list", "watch"]}]
        rb = json.loads(k("-n", namespace, "get", "rolebinding", "read-pods", "-o", "json"))
        assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}
        assert {s["kind"]: s.get("apiGroup", "") for s in rb["subjects"]} == {
            "User": "rbac.authorization.k8s.io", "Group": "rbac.authorization.k8s.io", "ServiceAccount": ""}

        table = k("-n", namespace, "get", "roles").splitlines()
        assert _cols(table[0]) == ["NAME", "CREATED AT"]
        assert _cols(table[1])[0] == "pod-reader"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", _cols(table[1])[1])
        wide = k("-n", namespace, "get", "rolebinding", "read-pods", "-o", "wide").splitlines()
        assert _cols(wide[0]) == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
        row = _cols(wide[1])
        assert row[:2] == ["read-pods", "Role/pod-reader"] and row[3:] == ["jane", "devs", f"{namespace}/robot"]
        assert _cols(k("get", "clusterrolebinding", crb).splitlines()[1])[:2] == [crb, f"ClusterRole/{cr}"]
        assert _cols(k("get", "clusterrole", cr).splitlines()[0]) == ["NAME", "CREATED AT"]

        described = k("-n", namespace, "describe", "role", "pod-reader")
        assert re.search(r"^Name:\s+pod-reader$", described, re.M)
        assert re.search(r"^\s+pods\s+\[\]\s+\[\]\s+\[get list watch\]$", described, re.M), described
        described = k("describe", "clusterrole", cr)
        assert re.search(r"^\s+nodes\s+\[\]\s+\[node01\]\s+\[get\]$", described, re.M), described
        described = k("-n", namespace, "describe", "rolebinding", "read-pods")
        assert re.search(r"^\s+Kind:\s+Role$", described, re.M) and re.search(r"^\s+Name:\s+pod-reader$", described, re.M)
        assert re.search(rf"^\s+ServiceAccount\s+robot\s+{namespace}$", described, re.M), described
        assert re.search(r"^\s+User\s+jane\s*$", described, re.M), described
        described = k("describe", "clusterrolebinding", crb)
        assert re.search(r"^\s+Group\s+ops\s*$", described, re.M), described

        # roleRef is immutable: 422 "cannot change roleRef", the object unchanged.
        rb["roleRef"]["name"] = "other"
        p = apiserver.kubectl("-n", namespace, "replace", "-f", "-", input=json.dumps(rb))
        assert p.returncode != 0
        assert ('The RoleBinding "read-pods" is invalid: roleRef: Invalid value: '
                'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef'
                ) in p.stderr
        p = apiserver.kubectl("-n", namespace, "patch", "rolebinding", "read-pods", "--type=merge",
                              "-p", '{"roleRef":{"kind":"ClusterRole"}}')
        assert p.returncode != 0 and "cannot change roleRef" in p.stderr
        assert json.loads(k("-n", namespace, "get", "rolebinding", "read-pods", "-o", "json"))["roleRef"]["name"] == "pod-reader"
        # Subjects may change.
        k("-n", namespace, "patch", "rolebinding", "read-pods", "--type=merge",
          "-p", '{"subjects":[{"kind":"User","name":"joe","apiGroup":"rbac.authorization.k8s.io"}]}')
    finally:
        apiserver.kubectl("delete", "clusterrolebinding", crb, "--ignore-not-found")
        apiserver.kubectl("delete", "clusterrole", cr, "--ignore-not-found")


INVALID = [
    pytest.param({"kind": "ClusterRoleBinding", "metadata": {"name": "bad-crb"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"}},
                 'The ClusterRoleBinding "bad-crb" is invalid: roleRef.kind: '
                 'Unsupported value: "Role": supported values: "ClusterRole"', id="crb-to-role"),
    pytest.param({"kind": "RoleBinding", "metadata": {"name": "bad-rb"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                  "subjects": [{"kind": "ServiceAccount", "name": "x", "apiGroup": "rbac.authorization.k8s.io"}]},
                 'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""',
                 id="sa-with-api-group"),
    pytest.param({"kind": "RoleBinding", "metadata": {"name": "bad-rb2"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                  "subjects": [{"kind": "Robot", "name": "x"}]},
                 'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
                 id="unknown-subject-kind"),
    pytest.param({"kind": "RoleBinding", "metadata": {"name": "bad-rb3"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole"}},
                 "roleRef.name: Required value", id="no-role-name"),
    pytest.param({"kind": "Role", "metadata": {"name": "bad-role"},
                  "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]},
                 'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply '
                 "to non-resource URLs", id="role-with-urls"),
    pytest.param({"kind": "Role", "metadata": {"name": "bad-role2"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]},
                 "rules[0].verbs: Required value: verbs must contain at least one value", id="no-verbs"),
]


@pytest.mark.parametrize(("obj", "message"), INVALID)
def test_invalid_rbac_objects_are_refused_422(apiserver, namespace, obj, message):
    obj = {"apiVersion": "rbac.authorization.k8s.io/v1", **obj}
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(obj))
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    raw = apiserver.kubectl("-n", namespace, "create", "-f", "-", "-v=6", input=json.dumps(obj))
    assert "422 Unprocessable Entity" in raw.stderr


def test_bootstrap_policy_is_served(apiserver):
    names = apiserver.kubectl_ok("get", "clusterroles", "-o", "name").split()
    for want in ("cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
                 "system:public-info-viewer", "system:node", "system:node-proxier", "system:kube-scheduler",
                 "system:kube-controller-manager", "system:controller:deployment-controller"):
        assert f"clusterrole.rbac.authorization.k8s.io/{want}" in names
    crb = json.loads(apiserver.kubectl_ok("get", "clusterrolebinding", "system:public-info-viewer", "-o", "json"))
    assert crb["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert [s["name"] for s in crb["subjects"]] == ["system:authenticated", "system:unauthenticated"]
    leader = json.loads(apiserver.kubectl_ok("-n", "kube-system", "get", "rolebinding",
                                             "system::leader-locking-kube-scheduler", "-o", "json"))
    assert leader["roleRef"]["kind"] == "Role"


def test_controller_manager_aggregates_cluster_roles(apiserver):
    """`knet controller-manager --controllers=clusterrole-aggregation`: admin/edit/view get their
    rules, a new `aggregate-to-view` role reaches all three (admin aggregates edit, which
    aggregates view) and leaves them when deleted."""
    import subprocess
    import sys
    import time

    from knet.api.authz.escalation import covers

    def rules(name: str) -> list:
        return json.loads(apiserver.kubectl_ok("get", "clusterrole", name, "-o", "json")).get("rules") or []

    def has_widgets(name: str) -> bool:
        return any("widgets" in r.get("resources", []) for r in rules(name))

    def wait(what: str, cond, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    log = open(apiserver.root / "cm-aggregation.log", "wb")  # noqa: SIM115
    cm = subprocess.Popen([sys.executable, "-c", "from knet.cli.main import main; main()", "controller-manager", f"--kubeconfig={apiserver.kubeconfig}",
                           "--controllers=clusterrole-aggregation"], stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    log.close()
    name = f"t-widgets-{uuid.uuid4().hex[:6]}"
    try:
        wait("admin, edit and view aggregated", lambda: all(rules(n) for n in ("admin", "edit", "view")))
        admin, edit, view = rules("admin"), rules("edit"), rules("view")
        assert covers(admin, edit)[0] and covers(edit, view)[0] and not covers(view, edit)[0]
        assert not any("secrets" in r.get("resources", []) for r in view)
        apiserver.kubectl_ok("apply", "-f", "-", input=json.dumps({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}))
        wait("widgets in view, edit and admin", lambda: all(has_widgets(n) for n in ("view", "edit", "admin")))
        apiserver.kubectl_ok("delete", "clusterrole", name)
        wait("widgets gone again", lambda: not any(has_widgets(n) for n in ("view", "edit", "admin")))
    finally:
        cm.terminate()
        cm.wait(timeout=10)
        apiserver.kubectl("delete", "clusterrole", name, "--ignore-not-found")


def test_restart_reconciles_the_bootstrap_policy(apiserver_factory):
    """As kube-apiserver's rbac/bootstrap-roles hook: at start, missing defaults are created
    again, missing rules and subjects added back (what users added is kept), and objects
    annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` are left alone."""
    server = apiserver_factory()
    k = server.kubectl_ok

    def get(kind: str, name: str) -> dict:
        return json.loads(k("get", kind, name, "-o", "json"))

    basic = get("clusterrole", "system:basic-user")
    basic["rules"] = basic["rules"][:1] + [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    k("replace", "-f", "-", input=json.dumps(basic))
    proxier = get("clusterrole", "system:node-proxier")
    proxier["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
    proxier["rules"] = []
    k("replace", "-f", "-", input=json.dumps(proxier))
    public = get("clusterrolebinding", "system:public-info-viewer")
    public["subjects"] = public["subjects"][:1]
    k("replace", "-f", "-", input=json.dumps(public))
    k("delete", "clusterrole", "view")
    k("-n", "kube-system", "delete", "rolebinding", "system::leader-locking-kube-scheduler")

    server.stop()
    server.start()
    basic = get("clusterrole", "system:basic-user")
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]} in basic["rules"]  # kept
    assert {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]} in basic["rules"]
    assert get("clusterrole", "system:node-proxier").get("rules") in (None, [])  # protected
    assert [s["name"] for s in get("clusterrolebinding", "system:public-info-viewer")["subjects"]] == [
        "system:authenticated", "system:unauthenticated"]
    assert get("clusterrole", "view")["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]
    k("-n", "kube-system", "get", "rolebinding", "system::leader-locking-kube-scheduler")
