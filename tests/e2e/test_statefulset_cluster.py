"""A StatefulSet on a real knet cluster, as a user learns per-pod DNS with it: a headless Service
and a StatefulSet, whose pods another pod reaches by name (`nslookup web-0.web.NS.svc.cluster.local`)
and whose named port has SRV records naming the pods."""

from __future__ import annotations

import secrets

import pytest
import yaml

from .cluster_namespaces import busybox_pod, cluster_namespace, wait_running

pytestmark = pytest.mark.e2e


def web(ns: str) -> list[dict]:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
           "spec": {"clusterIP": "None", "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": ns},
           "spec": {"serviceName": "web", "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "nginx", "image": "nginx",
                                        "ports": [{"name": "http", "containerPort": 80}]}]}}}}
    return [svc, sts]


def test_statefulset_pods_resolve_by_name_from_another_pod(knet_cluster):
    with cluster_namespace(knet_cluster, f"sts-{secrets.token_hex(3)}") as ns:
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([busybox_pod("client", ns), *web(ns)]))
        wait_running(knet_cluster, ns, "client")
        knet_cluster.kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=120s", timeout=130)
        for i in range(2):
            ip = knet_cluster.kubectl("get", "pod", f"web-{i}", "-n", ns, "-o", "jsonpath={.status.podIP}").stdout
            name = f"web-{i}.web.{ns}.svc.cluster.local"
            out = knet_cluster.wait_for(f"nslookup {name}", lambda n=name: (r := knet_cluster.kubectl(
                "exec", "-n", ns, "client", "--", "nslookup", n, check=False, timeout=20)).returncode == 0
                and r.stdout, timeout=30)
            assert f"Name:\t{name}" in out and f"Address: {ip}" in out, out
        srv = knet_cluster.wait_for("SRV records", lambda: sorted(knet_cluster.kubectl(
            "exec", "-n", ns, "client", "--", "dig", "+short", "SRV", f"_http._tcp.web.{ns}.svc.cluster.local",
            check=False, timeout=20).stdout.splitlines()), timeout=30)
        assert srv == [f"0 50 80 web-0.web.{ns}.svc.cluster.local.", f"0 50 80 web-1.web.{ns}.svc.cluster.local."]
        # the pod knows its own name as the cluster does
        fqdn = knet_cluster.kubectl("exec", "-n", ns, "web-1", "--", "hostname", "-f", check=False, timeout=20)
        assert fqdn.stdout.strip() == f"web-1.web.{ns}.svc.cluster.local", fqdn


def test_kube_proxy_daemonset_has_its_revision(knet_cluster):
    """`kubectl rollout history ds/kube-proxy -n kube-system`, as on a kubeadm cluster: revision 1
    from `knet up`, and the newest revision is the one its pods run (their controller-revision-hash
    is the revision's). Other tests on this session cluster may roll kube-proxy out again (the
    proxy-mode switch), adding revisions."""
    history = knet_cluster.kubectl("rollout", "history", "ds/kube-proxy", "-n", "kube-system").stdout
    lines = history.split("\n")
    assert lines[0].split() == ["daemonset.apps/kube-proxy"] and lines[1].split() == ["REVISION", "CHANGE-CAUSE"]
    numbers = [int(line.split()[0]) for line in lines[2:] if line.strip()]
    assert numbers == sorted(numbers) and numbers[0] >= 1, history
    revs = yaml.safe_load(knet_cluster.kubectl("get", "controllerrevisions", "-n", "kube-system", "-l",
                                               "k8s-app=kube-proxy", "-o", "yaml").stdout)["items"]
    revs = [r for r in revs if r["metadata"]["ownerReferences"][0]["name"] == "kube-proxy"]
    newest = max(revs, key=lambda r: r["revision"])
    assert newest["revision"] == numbers[-1]
    pods = yaml.safe_load(knet_cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy",
                                               "-o", "yaml").stdout)["items"]
    pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert pods and {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == \
        {newest["metadata"]["labels"]["controller-revision-hash"]}
