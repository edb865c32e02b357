"""kube-proxy on a real knet cluster (the session `knet_cluster`, 3 nodes): a Deployment of 3 echo
pods behind Services, reached from a pod on another node, in the cluster's mode and then in the
other mode after changing the kube-proxy ConfigMap and `rollout restart` (switched back at the end).
"""

from __future__ import annotations

import contextlib
import json

import pytest
import yaml

pytestmark = pytest.mark.e2e

NS = "proxy-e2e"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"


def manifests() -> str:
    def svc(name: str, selector: dict, **spec) -> dict:  # noqa: ANN003
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    container = {"name": "echo", "image": IMAGE, "args": ["netexec", "--http-port=8080"]}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "echo"}},
                  "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS, "labels": {"app": "client"}},
         "spec": {"nodeName": "node02", "containers": [container]}},
        svc("echo", {"app": "echo"}, type="NodePort"),
        svc("echo-local", {"app": "echo"}, type="NodePort", externalTrafficPolicy="Local"),
        svc("echo-sticky", {"app": "echo"}, sessionAffinity="ClientIP"),
        # hairpin is tried from its own pod: the node answers hairpinned packets with ICMP redirects,
        # which share the kernel's per-destination ICMP rate limit with REJECT's port-unreachable
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hairpin", "namespace": NS, "labels": {"app": "hairpin"}},
         "spec": {"nodeName": "node02", "containers": [container]}},
        svc("hairpin-self", {"app": "hairpin"}),
    ]
    return yaml.safe_dump_all(docs)


class Echo:
    def __init__(self, cluster) -> None:  # noqa: ANN001
        self.c = cluster

    def get(self, name: str, path: str = "/hostname") -> str:
        return self.c.kubectl("-n", NS, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}").stdout

    def node_port(self, name: str) -> int:
        return int(self.c.kubectl("-n", NS, "get", "svc", name, "-o", "jsonpath={.spec.ports[0].nodePort}").stdout)

    def curl_from_client(self, url: str, n: int, pod: str = "client") -> list[str]:
        """n requests from the client pod; each line the answer or CURL-EXIT-<code>."""
        script = (f"for i in $(seq {n}); do out=$(curl -s -m 3 {url}) || out=CURL-EXIT-$?; "
                  'echo "$out"; done')
        out = self.c.kubectl("-n", NS, "exec", pod, "--", "sh", "-c", script, timeout=60).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def pods(self) -> dict[str, dict]:
        items = json.loads(self.c.kubectl("-n", NS, "get", "pods", "-l", "app=echo", "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: p for p in items if p.get("status", {}).get("phase") == "Running"}


def node_ips(cluster) -> dict[str, str]:  # noqa: ANN001
    return {n["name"]: n["ip"] for n in cluster.config["nodes"]}


def written_mode(cluster) -> str:  # noqa: ANN001
    """The mode as the ConfigMap spells it (kubeadm writes "", which means iptables)."""
    cm = json.loads(cluster.kubectl("-n", "kube-system", "get", "cm", "kube-proxy", "-o", "json").stdout)
    return yaml.safe_load(cm["data"]["config.conf"]).get("mode") or ""


def current_mode(cluster) -> str:  # noqa: ANN001
    return written_mode(cluster) or "iptables"


def set_mode(cluster, mode: str) -> None:  # noqa: ANN001
    cm = json.loads(cluster.kubectl("-n", "kube-system", "get", "cm", "kube-proxy", "-o", "json").stdout)
    conf = cm["data"]["config.conf"]
    lines = [f'mode: "{mode}"' if line.startswith("mode:") else line for line in conf.splitlines()]
    patch = {"data": {"config.conf": "\n".join(lines)}}
    cluster.kubectl("-n", "kube-system", "patch", "cm", "kube-proxy", "--type=merge", "-p", json.dumps(patch))
    cluster.kubectl("-n", "kube-system", "rollout", "restart", "ds", "kube-proxy")

    cluster.kubectl("-n", "kube-system", "rollout", "status", "ds", "kube-proxy", "--timeout=90s", timeout=100)

    def switched(node: str) -> bool:
        nft = cluster.ssh(node, "nft", "list", "tables").stdout
        ipt = cluster.ssh(node, "iptables", "-t", "nat", "-S").stdout
        if (mode or "iptables") == "nftables":
            return "ip kube-proxy" in nft and "KUBE-SERVICES" not in ipt
        return "ip kube-proxy" not in nft and "KUBE-SERVICES" in ipt
    for node in node_ips(cluster):
        cluster.wait_for(f"kube-proxy on {node} in {mode} mode, the other mode cleaned up",
                         lambda n=node: switched(n), timeout=90, interval=1)


def check_traffic(cluster, echo: Echo) -> None:  # noqa: ANN001
    pods = echo.pods()
    ip = echo.get("echo")
    # ClusterIP from a pod on node02: all 3 backends answer
    answers = cluster.wait_for("all 3 backends via the ClusterIP", lambda: (
        a := set(echo.curl_from_client(f"http://{ip}/hostname", 30))) >= set(pods) and a, timeout=60, interval=1)
    assert answers == set(pods)
    # NodePort on every node's address
    np = echo.node_port("echo")
    for node, addr in node_ips(cluster).items():
        # each node's kube-proxy programs the NodePort on its own schedule: poll, as upstream e2e does
        cluster.wait_for(f"NodePort {np} answered by the pods on {node}", lambda a=addr: (
            got := set(echo.curl_from_client(f"http://{a}:{np}/hostname", 6))) and got <= set(pods),
            timeout=30, interval=1)
    # ClientIP affinity pins the client to one backend
    sticky = echo.get("echo-sticky")
    assert len(set(echo.curl_from_client(f"http://{sticky}/hostname", 12))) == 1
    # externalTrafficPolicy: Local keeps the client's address; Cluster masquerades it (from a node)
    local_np = echo.node_port("echo-local")
    node_with_pod = next(p["spec"]["nodeName"] for p in pods.values())
    other = next(n for n in node_ips(cluster) if n != node_with_pod)
    url = f"http://{node_ips(cluster)[node_with_pod]}:{local_np}/clientip"
    seen = cluster.ssh(other, "curl", "-s", "-m", "3", url).stdout
    assert seen.rsplit(":", 1)[0] == node_ips(cluster)[other], seen
    # hairpin: a pod reaches itself through its own Service
    self_ip = echo.get("hairpin-self")
    assert set(echo.curl_from_client(f"http://{self_ip}/hostname", 3, pod="hairpin")) == {"hairpin"}


def check_scale_to_zero(cluster, echo: Echo) -> None:  # noqa: ANN001
    ip = echo.get("echo")
    cluster.kubectl("-n", NS, "scale", "deploy", "echo", "--replicas=0")
    seen: list[object] = []

    def refused() -> bool:
        # curl exit 7, "Failed to connect": connection refused, answered by kube-proxy's REJECT. Until
        # the pods are gone their endpoints are terminating-but-serving and still get traffic.
        seen[:] = [echo.curl_from_client(f"http://{ip}/hostname", 1),
                   cluster.kubectl("-n", NS, "get", "endpointslices", "-o",
                                   "jsonpath={.items[*].endpoints[*].conditions}").stdout]
        return seen[0] == ["CURL-EXIT-7"]
    try:
        cluster.wait_for("connection refused with 0 endpoints", refused, timeout=120, interval=1)
    except AssertionError as exc:
        client_node = echo.c.kubectl("-n", NS, "get", "pod", "client", "-o", "jsonpath={.spec.nodeName}").stdout
        rules = cluster.ssh(client_node, "sh", "-c", "nft list ruleset; iptables-save; conntrack -L 2>/dev/null "
                            f"| grep {ip}").stdout
        proxy_pod = echo.c.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "-o",
                                   f"jsonpath={{.items[?(@.spec.nodeName=='{client_node}')].metadata.name}}").stdout
        proxy_log = echo.c.kubectl("-n", "kube-system", "logs", proxy_pod.split()[0], "--tail=60").stdout
        raise AssertionError(f"{exc}; last curl and endpoint conditions: {seen}; kube-proxy log on {client_node}:\n"
                             f"{proxy_log}\nrules on {client_node}:\n{rules}") from None
    cluster.kubectl("-n", NS, "scale", "deploy", "echo", "--replicas=3")
    answers: list[str] = []

    def restored() -> bool:
        answers[:] = echo.curl_from_client(f"http://{ip}/hostname", 20)
        return len(set(answers) - {"CURL-EXIT-7", "CURL-EXIT-28"}) == 3
    try:
        cluster.wait_for("traffic restored after scaling back", restored, timeout=90, interval=1)
    except AssertionError as exc:
        state = cluster.kubectl("-n", NS, "get", "deploy,rs,pods,endpointslices", "-o", "wide", check=False).stdout
        events = cluster.kubectl("-n", NS, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
        # Each backend asked directly (is it the pods or the rules?), and what kube-proxy did.
        direct = {name: echo.curl_from_client(f"http://{p['status'].get('podIP')}:8080/hostname", 1)
                  for name, p in echo.pods().items()}
        client_node = echo.c.kubectl("-n", NS, "get", "pod", "client", "-o", "jsonpath={.spec.nodeName}").stdout
        rules = cluster.ssh(client_node, "sh", "-c", "iptables-save | grep -i echo; nft list ruleset | grep -i -A3 "
                            "echo").stdout
        proxy_pod = echo.c.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "-o",
                                   f"jsonpath={{.items[?(@.spec.nodeName=='{client_node}')].metadata.name}}").stdout
        proxy_log = echo.c.kubectl("-n", "kube-system", "logs", proxy_pod.split()[0], "--tail=80", check=False).stdout
        raise AssertionError(f"{exc}; last answers: {sorted(set(answers))}; each pod directly: {direct}\n{state}\n"
                             f"{events[-3000:]}\nkube-proxy log on {client_node}:\n{proxy_log}\nrules:\n"
                             f"{rules[-6000:]}") from None


@pytest.fixture(scope="module")
def echo(knet_cluster):  # noqa: ANN001, ANN201
    knet_cluster.kubectl("apply", "-f", "-", input=manifests())
    try:
        knet_cluster.kubectl("-n", NS, "rollout", "status", "deploy/echo", "--timeout=90s", timeout=100)
        knet_cluster.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/client", "pod/hairpin",
                             "--timeout=60s", timeout=70)
        yield Echo(knet_cluster)
    finally:
        knet_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_iptables_list_on_node01_shows_kube_proxy_chains(knet_cluster, echo):  # noqa: ANN001
    if current_mode(knet_cluster) != "iptables":
        pytest.skip("cluster runs nftables mode")
    out = knet_cluster.ssh("node01", "iptables", "--list").stdout
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD",
                  "KUBE-PROXY-FIREWALL", "KUBE-PROXY-CANARY"):
        assert f"Chain {chain}" in out, chain
    # Other tests' Services may already have KUBE-SVC- chains: wait for every chain this test names
    # (KUBE-EXT- needs this module's NodePort Services synced on node01), then assert each.
    nat_chains = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-MARK-MASQ", "KUBE-POSTROUTING")
    nat = ""

    def all_nat_chains() -> bool:
        nonlocal nat
        nat = knet_cluster.ssh("node01", "iptables", "-t", "nat", "--list").stdout
        return all(f"Chain {c}" in nat for c in nat_chains)
    with contextlib.suppress(AssertionError):
        knet_cluster.wait_for("service chains in nat", all_nat_chains)
    for chain in nat_chains:
        assert f"Chain {chain}" in nat, chain


def test_services_in_both_modes(knet_cluster, echo):  # noqa: ANN001
    first, written = current_mode(knet_cluster), written_mode(knet_cluster)
    other = "nftables" if first == "iptables" else "iptables"
    try:
        check_traffic(knet_cluster, echo)
        check_scale_to_zero(knet_cluster, echo)
        set_mode(knet_cluster, other)
        check_traffic(knet_cluster, echo)
        check_scale_to_zero(knet_cluster, echo)
    finally:
        if written_mode(knet_cluster) != written:
            set_mode(knet_cluster, written)  # as the cluster had it (kubeadm's "", not "iptables")
