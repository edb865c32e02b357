"""What bench/netpol_bench.py sends and computes, apart from any I/O: percentiles, the synthetic
cluster of N policies over M pods (for the render/apply and connect-latency parts), and the
manifests of the policy-to-enforced part. Pure; tests/unit/netpol/test_netpol_workload.py."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
NAMESPACES = 10          # the synthetic pods and policies are spread over ns00..ns09
APPS = 25                # app labels per namespace: a policy's podSelector picks one
ROLES = ("web", "api", "db")
FREE_NAMESPACE = "free"  # pods no synthetic policy selects or names (the connect-latency pair)
TARGET_LABEL = "netpol-bench/target"
CLIENT_LABEL = "netpol-bench/client"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank on the sorted values (as bench/cluster_bench.py): p50 of [1..100] is 51 (the
    rank round(0.5 * 99) = 50, 0-based), p99 is 99, p100 the max."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    """count, p50, p99 and max, rounded for printing (the values' unit)."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(percentile(values, 50), 4), "p99": round(percentile(values, 99), 4),
            "max": round(max(values), 4)}


def pod_ip(i: int) -> str:
    """Pod i's address in 10.244.0.0/16, 250 per /24 (no .0/.1/.255)."""
    return f"10.244.{i // 250}.{i % 250 + 2}"


def synthetic_namespaces() -> list[Obj]:
    out = [{"metadata": {"name": f"ns{k:02d}", "labels": {"kubernetes.io/metadata.name": f"ns{k:02d}",
                                                          "team": f"t{k % 3}"}}} for k in range(NAMESPACES)]
    return out + [{"metadata": {"name": FREE_NAMESPACE, "labels": {"kubernetes.io/metadata.name": FREE_NAMESPACE}}}]


def synthetic_pod(i: int, node: str, ns: str | None = None, ip: str | None = None, **labels: str) -> Obj:
    """Pod i: namespace ns(i % 10), labels app=app(i // 10 % 25), role web/api/db, a named port."""
    labels = labels or {"app": f"app{i // NAMESPACES % APPS:02d}", "role": ROLES[i % len(ROLES)]}
    return {"metadata": {"namespace": ns or f"ns{i % NAMESPACES:02d}", "name": f"pod{i:05d}", "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip or pod_ip(i)}}


def synthetic_policy(j: int) -> Obj:
    """Policy j in ns(j % 10) selects app=app(j // 10 % 25) (the pods of that app in that namespace),
    with one of four ingress shapes (pods by role, other namespaces, an ipBlock with except and a
    named port, pods of labelled namespaces) and, for every fifth policy, egress to the namespace's
    databases and DNS: the kinds of rules real clusters hold."""
    ns = f"ns{j % NAMESPACES:02d}"
    shape = j % 4
    if shape == 0:
        rule = {"from": [{"podSelector": {"matchLabels": {"role": "web"}}}], "ports": [{"port": 8080}]}
    elif shape == 1:
        rule = {"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": f"ns{(j + 1) % NAMESPACES:02d}"}}}],
            "ports": [{"port": 80}, {"port": 443}]}
    elif shape == 2:
        rule = {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                "ports": [{"port": "http"}]}
    else:
        rule = {"from": [{"namespaceSelector": {"matchLabels": {"team": f"t{j % 3}"}},
                          "podSelector": {"matchLabels": {"role": "api"}}}],
                "ports": [{"port": 8000, "endPort": 8100}]}
    spec: Obj = {"podSelector": {"matchLabels": {"app": f"app{j // NAMESPACES % APPS:02d}"}}, "ingress": [rule]}
    if j % 5 == 0:
        spec["egress"] = [{"to": [{"podSelector": {"matchLabels": {"role": "db"}}}], "ports": [{"port": 5432}]},
                          {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]
        spec["policyTypes"] = ["Ingress", "Egress"]
    return {"metadata": {"namespace": ns, "name": f"pol{j:05d}"}, "spec": spec}


def synthetic_cluster(policies: int, pods: int, nodes: int = 1) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(policies, pods, namespaces): `pods` pods over node01..node<nodes> (1: all on node01, the
    worst case for that node: every policy's rules land on it) and `policies` policies among them.
    Runs of 7 consecutive pods per node, so the pods a policy selects (same namespace and app, 250
    apart) sit on different nodes, as a Deployment's do: with 10 nodes node01 holds ~100 pods and
    the rules of ~40 % of the policies."""
    return ([synthetic_policy(j) for j in range(policies)],
            [synthetic_pod(i, f"node{i // 7 % nodes + 1:02d}") for i in range(pods)],
            synthetic_namespaces())


def free_pod(name: str, ip: str, node: str = "node01") -> Obj:
    """A pod in namespace `free`, which no synthetic policy selects (none lives there) and none
    names as a peer by label (only the 10.0.0.0/8 ipBlocks cover its address)."""
    pod = synthetic_pod(0, node, ns=FREE_NAMESPACE, ip=ip, bench="free")
    pod["metadata"]["name"] = name
    return pod


# -- the policy-to-enforced part (manifests sent to a real cluster) ----------------------------

def target_policy(i: int, namespace: str) -> Obj:
    """Policy i isolates the pod labelled target=t<i> for ingress: even i deny every ingress, odd
    i allow only pods labelled as clients of that target (the probing client is not one). Either
    way the client's connections to the target stop once the policy is enforced."""
    spec: Obj = {"podSelector": {"matchLabels": {TARGET_LABEL: f"t{i:03d}"}}, "policyTypes": ["Ingress"]}
    if i % 2:
        spec["ingress"] = [{"from": [{"podSelector": {"matchLabels": {CLIENT_LABEL: f"t{i:03d}"}}}],
                            "ports": [{"port": 80, "protocol": "TCP"}]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"isolate-t{i:03d}", "namespace": namespace}, "spec": spec}


def server_deployment(replicas: int, namespace: str, image: str) -> Obj:
    """Small TCP servers (agnhost serve-hostname on :80, one process per pod), spread over nodes."""
    labels = {"app": "netpol-bench-server"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "server", "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "terminationGracePeriodSeconds": 0,
                         "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                        "whenUnsatisfiable": "ScheduleAnyway",
                                                        "labelSelector": {"matchLabels": labels}}],
                         "containers": [{"name": "serve", "image": image, "args": [
                             "serve-hostname", "--tcp", "--http=false", "--port", "80"],
                             "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}}


def client_pod(namespace: str, node: str, image: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "prober", "namespace": namespace,
                                                           "labels": {"app": "netpol-bench-client"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": image, "args": ["pause"]}]}}
