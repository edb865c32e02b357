"""What a kubeadm cluster refuses, tried from inside a real knet cluster (Node,RBAC and
NodeRestriction on, as `knet up` runs the apiserver): a pod's own service-account token and
what RBAC lets it do, through the `kubernetes` Service as a pod reaches the API; the system
namespaces. Every test makes its own namespace and deletes it, also on failure."""

from __future__ import annotations

import secrets

import pytest
import yaml

from .cluster_namespaces import busybox_pod, cluster_namespace, wait_running

pytestmark = pytest.mark.e2e

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
def sec_ns(knet_cluster):
    with cluster_namespace(knet_cluster, f"sec-{secrets.token_hex(3)}") as ns:
        yield ns


def api_from_pod(cluster, ns: str, pod: str, path: str) -> tuple[int, str]:
    """GET the API at `path` from inside the pod with its mounted token, as client-go in a pod
    does: https://kubernetes.default.svc with the mounted CA. Returns (HTTP code, body)."""
    script = (f'curl -s -o /tmp/body -w "%{{http_code}}" --cacert {SA_DIR}/ca.crt '
              f'-H "Authorization: Bearer $(cat {SA_DIR}/token)" https://kubernetes.default.svc{path}; '
              'echo; cat /tmp/body')
    p = cluster.kubectl("exec", "-n", ns, pod, "--", "sh", "-c", script, check=False, timeout=30)
    code, _, body = p.stdout.partition("\n")
    return int(code or 0), body


def test_a_pods_default_token_cannot_list_secrets(knet_cluster, sec_ns):
    knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(busybox_pod("client", sec_ns)))
    wait_running(knet_cluster, sec_ns, "client")
    code, body = api_from_pod(knet_cluster, sec_ns, "client", "/api/v1/secrets")
    assert code == 403, body
    assert (f'User \\"system:serviceaccount:{sec_ns}:default\\" cannot list resource \\"secrets\\" in API group '
            f'\\"\\" at the cluster scope') in body
    code, body = api_from_pod(knet_cluster, sec_ns, "client", f"/api/v1/namespaces/{sec_ns}/pods")
    assert code == 403, body


def test_a_pod_gets_what_its_accounts_role_grants(knet_cluster, sec_ns):
    k = knet_cluster.kubectl
    k("create", "serviceaccount", "reader", "-n", sec_ns)
    k("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", sec_ns)
    k("create", "rolebinding", "reader", "--role=pod-reader", f"--serviceaccount={sec_ns}:reader", "-n", sec_ns)
    k("apply", "-f", "-", input=yaml.safe_dump(busybox_pod("reader", sec_ns, service_account="reader")))
    wait_running(knet_cluster, sec_ns, "reader")
    code, body = api_from_pod(knet_cluster, sec_ns, "reader", f"/api/v1/namespaces/{sec_ns}/pods")
    assert code == 200, body
    assert '"name":"reader"' in body.replace(" ", "")
    code, body = api_from_pod(knet_cluster, sec_ns, "reader", f"/api/v1/namespaces/{sec_ns}/secrets")
    assert code == 403, body
    code, body = api_from_pod(knet_cluster, sec_ns, "reader", "/api/v1/namespaces/kube-system/pods")
    assert code == 403, body


def test_kube_system_cannot_be_deleted(knet_cluster):
    p = knet_cluster.kubectl("delete", "namespace", "kube-system", "--wait=false", check=False)
    assert p.returncode != 0
    assert 'namespaces "kube-system" is forbidden: this namespace may not be deleted' in p.stderr
    assert knet_cluster.kubectl("get", "ns", "kube-system", "-o", "jsonpath={.status.phase}").stdout == "Active"
