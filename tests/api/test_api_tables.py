"""`kubectl get` columns for every kind, normal and -o wide, as kube-apiserver's server-side
printers (pkg/printers/internalversion) produce them for the same objects."""

from __future__ import annotations

import json

import pytest
import yaml
from api_kubectl_output import assert_table

pytestmark = pytest.mark.api


def apply(apiserver, namespace: str, *objs: dict) -> None:
    """`kubectl apply` of a multi-document YAML stream (JSON documents are YAML)."""
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input="".join("---\n" + yaml.safe_dump(o) for o in objs))


def put_status(apiserver, namespace: str | None, resource: str, name: str, status: dict) -> None:
    args = ["-n", namespace] if namespace else []
    apiserver.kubectl_ok(*args, "patch", resource, name, "--subresource=status", "--type=merge",
                         "-p", json.dumps({"status": status}))


def test_pods_pending_and_running(apiserver, namespace):
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
           "spec": {"nodeName": "node01", "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}})
    put_status(apiserver, namespace, "pod", "web", {
        "phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "a", "ready": True, "restartCount": 0, "image": "nginx", "imageID": "", "started": True,
             "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
            {"name": "b", "ready": False, "restartCount": 3, "image": "busybox", "imageID": "", "started": False,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "pods"), """
NAME      READY   STATUS             RESTARTS   AGE
pending   0/1     Pending            0          <age>
web       1/2     CrashLoopBackOff   3          <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "pods", "-o", "wide"), """
NAME      READY   STATUS             RESTARTS   AGE     IP           NODE     NOMINATED NODE   READINESS GATES
pending   0/1     Pending            0          <age>   <none>       <none>   <none>           <none>
web       1/2     CrashLoopBackOff   3          <age>   10.244.1.5   node01   <none>           <none>
""")


def test_services_of_every_type(apiserver, namespace):
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a-clusterip"},
           "spec": {"clusterIP": "10.96.200.10", "selector": {"app": "web", "tier": "fe"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                              {"name": "dns", "port": 53, "protocol": "UDP"}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b-nodeport"},
           "spec": {"type": "NodePort", "clusterIP": "10.96.200.11", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c-headless"},
           "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "d-external"},
           "spec": {"type": "ExternalName", "externalName": "example.com"}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "e-lb"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.200.12", "ports": [{"port": 443, "nodePort": 30443}]}})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "svc"), """
NAME          TYPE           CLUSTER-IP     EXTERNAL-IP   PORT(S)            AGE
a-clusterip   ClusterIP      10.96.200.10   <none>        80/TCP,53/UDP      <age>
b-nodeport    NodePort       10.96.200.11   <none>        80:30080/TCP       <age>
c-headless    ClusterIP      None           <none>        5432/TCP           <age>
d-external    ExternalName   <none>         example.com   <none>             <age>
e-lb          LoadBalancer   10.96.200.12   <pending>     443:30443/TCP      <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "svc", "-o", "wide"), """
NAME          TYPE           CLUSTER-IP     EXTERNAL-IP   PORT(S)            AGE     SELECTOR
a-clusterip   ClusterIP      10.96.200.10   <none>        80/TCP,53/UDP      <age>   app=web,tier=fe
b-nodeport    NodePort       10.96.200.11   <none>        80:30080/TCP       <age>   app=web
c-headless    ClusterIP      None           <none>        5432/TCP           <age>   app=db
d-external    ExternalName   <none>         example.com   <none>             <age>   <none>
e-lb          LoadBalancer   10.96.200.12   <pending>     443:30443/TCP      <age>   <none>
""")


def test_nodes_wide(apiserver):
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "tables-cp", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True}}
    apiserver.kubectl_ok("apply", "-f", "-", input=json.dumps(node))
    try:
        put_status(apiserver, None, "node", "tables-cp", {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is ready"}],
            "addresses": [{"type": "InternalIP", "address": "172.30.0.2"}, {"type": "Hostname", "address": "tables-cp"}],
            "nodeInfo": {"kubeletVersion": "v1.29.0", "osImage": "Ubuntu 22.04.4 LTS", "kernelVersion": "5.15.0-1071",
                         "containerRuntimeVersion": "containerd://1.6.26", "architecture": "amd64",
                         "operatingSystem": "linux", "bootID": "", "kubeProxyVersion": "", "machineID": "",
                         "systemUUID": ""}})
        assert_table(apiserver.kubectl_ok("get", "node", "tables-cp"), """
NAME        STATUS                     ROLES           AGE     VERSION
tables-cp   Ready,SchedulingDisabled   control-plane   <age>   v1.29.0
""")
        assert_table(apiserver.kubectl_ok("get", "node", "tables-cp", "-o", "wide"), """
NAME        STATUS                     ROLES           AGE     VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION   CONTAINER-RUNTIME
tables-cp   Ready,SchedulingDisabled   control-plane   <age>   v1.29.0   172.30.0.2    <none>        Ubuntu 22.04.4 LTS   5.15.0-1071      containerd://1.6.26
""")
    finally:
        apiserver.kubectl("delete", "node", "tables-cp")


def test_configmaps_secrets_serviceaccounts_leases(apiserver, namespace):
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"},
           "binaryData": {"c": "AAE="}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
           "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}},
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
          {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
           "spec": {"holderIdentity": "controlplane_1234", "leaseDurationSeconds": 15}})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "cm"), """
NAME   DATA   AGE
cfg    3      <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "secret"), """
NAME   TYPE                DATA   AGE
tls    kubernetes.io/tls   2      <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "sa", "robot"), """
NAME    SECRETS   AGE
robot   0         <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "lease"), """
NAME     HOLDER              AGE
leader   controlplane_1234   <age>
""")


def test_endpoints_and_endpointslices(apiserver, namespace):
    addrs = [{"ip": f"10.244.1.{i}"} for i in range(1, 6)]
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
           "subsets": [{"addresses": addrs, "ports": [{"name": "http", "port": 8080}]}]},
          {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "empty"}},
          {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abcde"},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": [a["ip"]], "conditions": {"ready": True}} for a in addrs]},
          {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "empty-xyz"},
           "addressType": "IPv4", "endpoints": []})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "endpoints"), """
NAME    ENDPOINTS                                               AGE
empty   <none>                                                  <age>
web     10.244.1.1:8080,10.244.1.2:8080,10.244.1.3:8080 + 2 more...   <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "endpointslices"), """
NAME        ADDRESSTYPE   PORTS     ENDPOINTS                                AGE
empty-xyz   IPv4          <unset>   <unset>                                  <age>
web-abcde   IPv4          8080      10.244.1.1,10.244.1.2,10.244.1.3 + 2 more...   <age>
""")


def test_workloads(apiserver, namespace):
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                         "containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "side", "image": "busybox"}]}}
    selector = {"matchLabels": {"app": "web"}}
    apply(apiserver, namespace,
          {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 3, "selector": selector, "template": template}},
          {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d4f8"},
           "spec": {"replicas": 3, "selector": selector, "template": template}},
          {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
           "spec": {"selector": selector, "template": template}})
    put_status(apiserver, namespace, "deploy", "web", {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                                                        "availableReplicas": 2})
    put_status(apiserver, namespace, "rs", "web-5d4f8", {"replicas": 3, "readyReplicas": 2})
    put_status(apiserver, namespace, "ds", "agent", {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                                                     "numberReady": 1, "updatedNumberScheduled": 2,
                                                     "numberAvailable": 1, "numberMisscheduled": 0})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "deploy", "-o", "wide"), """
NAME   READY   UP-TO-DATE   AVAILABLE   AGE     CONTAINERS   IMAGES               SELECTOR
web    2/3     3            2           <age>   nginx,side   nginx:1.25,busybox   app=web
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "rs"), """
NAME        DESIRED   CURRENT   READY   AGE
web-5d4f8   3         3         2       <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "ds", "-o", "wide"), """
NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR      AGE     CONTAINERS   IMAGES               SELECTOR
agent   2         2         1       2            1           kubernetes.io/os=linux   <age>   nginx,side   nginx:1.25,busybox   app=web
""")


def test_networkpolicies_namespaces_and_events(apiserver, namespace):
    apply(apiserver, namespace,
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all"},
           "spec": {"podSelector": {}}},
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-web"},
           "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}},
          {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"},
           "involvedObject": {"kind": "Pod", "name": "web", "namespace": namespace},
           "reason": "Scheduled", "message": "Successfully assigned web to node01", "type": "Normal",
           "source": {"component": "default-scheduler"}, "count": 1,
           "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "netpol"), """
NAME        POD-SELECTOR   AGE
allow-web   app=web        <age>
deny-all    <none>         <age>
""")
    out = apiserver.kubectl_ok("-n", namespace, "get", "events")
    lines = out.strip().splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert lines[1].split()[1:] == ["Normal", "Scheduled", "pod/web", "Successfully", "assigned", "web", "to", "node01"]
    assert_table(apiserver.kubectl_ok("get", "ns", namespace), f"""
NAME   STATUS   AGE
{namespace}   Active   <age>
""")


def test_get_all_uses_the_all_category(apiserver, namespace):
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"clusterIP": "10.96.200.20", "ports": [{"port": 80}]}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-in-all"}})
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "all"), """
NAME          TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)   AGE
service/web   ClusterIP   10.96.200.20   <none>        80/TCP    <age>
""")


def test_get_all_namespaces_and_label_selector(apiserver, namespace):
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "labels": {"tier": "fe"}}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two", "labels": {"tier": "be"}}})
    out = apiserver.kubectl_ok("get", "cm", "-A", "-l", "tier in (fe,be)")
    assert_table(out, f"""
NAMESPACE   NAME   DATA   AGE
{namespace}   one    0      <age>
{namespace}   two    0      <age>
""")
    assert_table(apiserver.kubectl_ok("-n", namespace, "get", "cm", "-l", "tier!=be", "--show-labels"), """
NAME   DATA   AGE     LABELS
one    0      <age>   tier=fe
""")


def test_numeric_label_selectors_and_a_malformed_one(apiserver, namespace):
    """`x>N`/`x<N` are apimachinery's grammar too; a selector that does not parse is a 400 with
    its message, as kube-apiserver answers."""
    apply(apiserver, namespace,
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "v1", "labels": {"rev": "1"}}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "v7", "labels": {"rev": "7"}}})
    assert apiserver.kubectl_ok("-n", namespace, "get", "cm", "-l", "rev>3", "-o", "name") == "configmap/v7\n"
    assert apiserver.kubectl_ok("-n", namespace, "get", "cm", "-l", "rev<3,rev", "-o", "name") == "configmap/v1\n"
    bad = apiserver.kubectl("-n", namespace, "get", "cm", "-l", "rev<x")
    assert bad.returncode == 1
    assert "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer" in bad.stderr
