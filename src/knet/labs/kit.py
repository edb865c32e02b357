"""What labs share: manifests of the small apps they deploy, and observations of the cluster
several labs make (control-plane flags, the DNS Service, probes from a pod)."""

from __future__ import annotations

from typing import Any

from knet.labs.access import ClusterAccess, ExecResult, LabClusterError
from knet.labs.facts import container_argv, flag_value, internal_ip, nslookup_addresses

# knet runs an unknown image's command as a host program in the pod (so `wget`, `nslookup` are
# the node's); the names are those a real busybox has, so the probes read the same on kubeadm.
CLIENT_IMAGE = "busybox:1.36"
WEB_IMAGE = "nginx:1.25"   # knet serves it with agnhost netexec on the first containerPort
KUBE_SYSTEM = "kube-system"


def client_pod(name: str, namespace: str, labels: dict[str, str] | None = None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": CLIENT_IMAGE, "command": ["sleep", "86400"]}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}}


def web_pod_template(labels: dict[str, str], port: int = 80) -> dict[str, Any]:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "web", "image": WEB_IMAGE,
                                     "ports": [{"containerPort": port, "protocol": "TCP"}]}],
                     "terminationGracePeriodSeconds": 0}}


def web_pod(name: str, namespace: str, labels: dict[str, str], port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": web_pod_template(labels, port)["spec"]}


def deployment(name: str, namespace: str, template: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(template["metadata"]["labels"])},
                     "template": template}}


def service(name: str, namespace: str, selector: dict[str, str], port: int, target_port: int | str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": dict(selector),
                     "ports": [{"name": "http", "port": port, "targetPort": target_port, "protocol": "TCP"}]}}


# ------------------------------------------------------------------------- observations

def control_plane_flag(cluster: ClusterAccess, component: str, flag: str) -> str | None:
    """A flag of a control-plane static pod (its mirror pod's command, as `kubectl -n kube-system
    get pod kube-apiserver-controlplane -o yaml` shows it, or /etc/kubernetes/manifests)."""
    pods = cluster.list("pods", KUBE_SYSTEM, f"component={component}")
    if not pods:
        raise LabClusterError(f"no {component} pod in kube-system (selector component={component})")
    return flag_value(container_argv(pods[0]), flag)


def node_addresses(cluster: ClusterAccess) -> dict[str, str]:
    return {n["metadata"]["name"]: internal_ip(n) or "" for n in cluster.list("nodes")}


def control_plane_node(cluster: ClusterAccess) -> str:
    nodes = cluster.list("nodes")
    for n in nodes:
        if "node-role.kubernetes.io/control-plane" in (n["metadata"].get("labels") or {}):
            return n["metadata"]["name"]
    raise LabClusterError("no node is labelled node-role.kubernetes.io/control-plane")


def worker_node(cluster: ClusterAccess) -> str:
    """node01 where there is one (the labs' questions name it), else the first worker."""
    names = [n["metadata"]["name"] for n in cluster.list("nodes")
             if "node-role.kubernetes.io/control-plane" not in (n["metadata"].get("labels") or {})]
    if not names:
        raise LabClusterError("this lab needs a worker node (knet up --nodes 2 or more)")
    return "node01" if "node01" in names else sorted(names)[0]


def dns_service(cluster: ClusterAccess) -> dict[str, Any]:
    """The Service the kubelet gives pods as their nameserver: kube-system's Service whose
    ClusterIP is the kubelets' clusterDNS (kube-system/kubelet-config), kube-dns on kubeadm."""
    import yaml

    cm = cluster.get("configmaps", "kubelet-config", KUBE_SYSTEM) or {}
    conf = yaml.safe_load((cm.get("data") or {}).get("kubelet") or "") or {}
    ips = conf.get("clusterDNS") or []
    for svc in cluster.list("services", KUBE_SYSTEM):
        if (svc.get("spec") or {}).get("clusterIP") in ips:
            return svc
    raise LabClusterError(f"no kube-system Service has the kubelets' clusterDNS address {ips}")


def dns_deployment(cluster: ClusterAccess) -> dict[str, Any]:
    """The Deployment whose pods the DNS Service selects (coredns on kubeadm)."""
    selector = (dns_service(cluster).get("spec") or {}).get("selector") or {}
    for d in cluster.list("deployments", KUBE_SYSTEM):
        labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            return d
    raise LabClusterError(f"no kube-system Deployment runs the pods of the DNS Service (selector {selector})")


def ready_endpoints(cluster: ClusterAccess, namespace: str, service: str) -> list[str]:
    addrs = []
    for eps in cluster.list("endpointslices", namespace, f"kubernetes.io/service-name={service}"):
        for ep in eps.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True):
                addrs.extend(ep.get("addresses") or [])
    return sorted(set(addrs))


def http_get(cluster: ClusterAccess, namespace: str, pod: str, url: str) -> ExecResult:
    """`wget -q -O- -T 3 URL` from a pod (what a user would type to try a Service). `-t 1`: GNU
    wget (what knet's busybox runs) otherwise retries a timed-out connection 20 times."""
    return cluster.exec(namespace, pod, ["wget", "-q", "-O-", "-T", "3", "-t", "1", url], timeout=20)


def resolve(cluster: ClusterAccess, namespace: str, pod: str, name: str) -> tuple[list[str], str]:
    """`nslookup NAME` from a pod: the addresses it answered and its output."""
    result = cluster.exec(namespace, pod, ["nslookup", "-timeout=2", "-retry=1", name], timeout=25)
    return (nslookup_addresses(result.stdout) if result.rc == 0 else []), result.output
