"""Issue #19 item 1 on a real cluster (the session `knet_cluster`): namespaces holding Services with
ready endpoints (TCP and UDP) are created and deleted in a loop, in both kube-proxy modes. No
kube-proxy may log `sync failed` meanwhile (nftables mode used to fail every other partial sync
after a deletion: `flush chain ... endpoint-...: No such file or directory`), and a UDP flow to a
deleted Service's endpoint is flushed from conntrack once the rules are gone: the client, sending
from one fixed source port, no longer reaches the endpoint.

The UDP endpoint that must become unreachable lives in a namespace that stays (`udp-server`), behind
a selectorless Service with a hand-written EndpointSlice in the deleted namespace: a deleted pod
could not answer anyway, this one would if its stale conntrack entry were left in place.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from .test_proxy_cluster import current_mode, set_mode, written_mode

pytestmark = pytest.mark.e2e

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"
STAY = "proxydel-e2e"  # the UDP server and the client
CLIENT_NODE = "node02"
ROUNDS = 3
UDP_PORT = 8081  # agnhost netexec's UDP server: answers "hostname" with its hostname

UDP_CLIENT = r"""
import socket, sys
ip, port, n, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
u.bind(("0.0.0.0", sport)); u.settimeout(1)
for _ in range(n):
    u.sendto(b"hostname", (ip, port))
    try:
        print(u.recvfrom(100)[0].decode(), flush=True)
    except OSError as exc:
        print("TIMEOUT" if isinstance(exc, TimeoutError) else f"ERROR-{exc.errno}", flush=True)
"""


def netexec(name: str, ns: str, labels: dict, node: str | None = None) -> dict:
    spec: dict = {"terminationGracePeriodSeconds": 1,
                  "containers": [{"name": "netexec", "image": IMAGE,
                                  "args": ["netexec", "--http-port=8080", f"--udp-port={UDP_PORT}"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": spec}


def stay_manifests() -> str:
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": STAY}},
        netexec("udp-server", STAY, {"app": "udp-server"}, node="node01"),
        netexec("client", STAY, {"app": "client"}, node=CLIENT_NODE),
    ])


def round_manifests(ns: str, server_ip: str) -> str:
    """Two web pods behind a TCP and a UDP Service, and `relay`: UDP to the server in STAY."""
    def svc(name: str, port: dict, selector: dict | None) -> dict:
        spec: dict = {"ports": [port]}
        if selector:
            spec["selector"] = selector
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        netexec("web-0", ns, {"app": "web"}),
        netexec("web-1", ns, {"app": "web"}),
        svc("web", {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"app": "web"}),
        svc("dns", {"name": "udp", "port": 53, "targetPort": UDP_PORT, "protocol": "UDP"}, {"app": "web"}),
        svc("relay", {"name": "udp", "port": 5353, "protocol": "UDP"}, None),
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "relay-1", "namespace": ns, "labels": {"kubernetes.io/service-name": "relay"}},
         "endpoints": [{"addresses": [server_ip], "conditions": {"ready": True}}],
         "ports": [{"name": "udp", "port": UDP_PORT, "protocol": "UDP"}]},
    ])


class Probe:
    def __init__(self, cluster) -> None:  # noqa: ANN001
        self.c = cluster

    def cluster_ip(self, ns: str, svc: str) -> str:
        return self.c.kubectl("-n", ns, "get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}").stdout

    def pod_ips(self, ns: str, selector: str) -> dict[str, str]:
        items = json.loads(self.c.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: p["status"].get("podIP", "") for p in items}

    def udp(self, ip: str, port: int, n: int, sport: int) -> list[str]:
        out = self.c.kubectl("-n", STAY, "exec", "client", "--", "python3", "-c", UDP_CLIENT, ip, str(port), str(n),
                             str(sport), timeout=30 + 2 * n).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def tcp(self, ip: str) -> str:
        return self.c.kubectl("-n", STAY, "exec", "client", "--", "curl", "-s", "-m", "3", f"http://{ip}/hostname",
                              check=False).stdout.strip()

    def rules(self, node: str) -> str:
        return self.c.ssh(node, "sh", "-c", "iptables-save 2>/dev/null; nft list ruleset 2>/dev/null").stdout

    def flows(self, node: str, orig_dst: str) -> list[str]:
        """conntrack entries in the node for UDP flows to orig_dst (its answers name the endpoint)."""
        out = self.c.ssh(node, "conntrack", "-L", "-p", "udp", "--orig-dst", orig_dst).stdout
        return [line for line in out.splitlines() if f"dst={orig_dst}" in line]

    def proxy_logs(self) -> dict[str, str]:
        pods = json.loads(self.c.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "-o",
                                         "json").stdout)["items"]
        return {p["metadata"]["name"]: self.c.kubectl("-n", "kube-system", "logs", p["metadata"]["name"],
                                                      check=False, timeout=60).stdout for p in pods}


def mentions(text: str, ip: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d])", text) is not None


def sync_failures(logs: dict[str, str]) -> dict[str, list[str]]:
    return {pod: [line for line in text.splitlines() if "sync failed" in line] for pod, text in logs.items()}


@pytest.fixture(scope="module")
def stay(knet_cluster):  # noqa: ANN001, ANN201
    written = written_mode(knet_cluster)
    knet_cluster.kubectl("apply", "-f", "-", input=stay_manifests())
    try:
        knet_cluster.kubectl("-n", STAY, "wait", "--for=condition=Ready", "pod/udp-server", "pod/client",
                             "--timeout=90s", timeout=100)
        yield Probe(knet_cluster)
    finally:
        knet_cluster.kubectl("delete", "namespace", STAY, "--wait=false", check=False)
        if written_mode(knet_cluster) != written:
            set_mode(knet_cluster, written)  # as the cluster had it (kubeadm's "", not "iptables")


def one_round(cluster, stay: Probe, ns: str, next_ns: str | None, server_ip: str, sports: tuple[int, int]) -> None:  # noqa: ANN001
    """ns is applied already: wait for its endpoints, open the UDP flows, delete it (applying next_ns
    meanwhile), then check the rules, the conntrack table and the client's flow."""
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/web-0", "pod/web-1", "--timeout=90s",
                    timeout=100)
    web, dns, relay = (stay.cluster_ip(ns, s) for s in ("web", "dns", "relay"))
    webs = stay.pod_ips(ns, "app=web")
    dns_port, relay_port = sports
    cluster.wait_for(f"{ns}/web answering over TCP", lambda: stay.tcp(web) in webs, timeout=30, interval=0.5)
    # the flows that must go with the Services, each from one fixed source port
    cluster.wait_for(f"{ns}/dns answering over UDP", lambda: (got := set(stay.udp(dns, 53, 2, dns_port)))
                     and got <= set(webs), timeout=30, interval=0.5)
    cluster.wait_for(f"{ns}/relay answering from {STAY}/udp-server",
                     lambda: stay.udp(relay, 5353, 2, relay_port) == ["udp-server"] * 2, timeout=30, interval=0.5)
    assert any(f"src={server_ip} " in f for f in stay.flows(CLIENT_NODE, relay))

    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    if next_ns:  # the next namespace's Services arrive while these go
        cluster.kubectl("apply", "-f", "-", input=round_manifests(next_ns, server_ip))
    cluster.wait_for(f"{ns}'s Services gone from {CLIENT_NODE}'s rules",
                     lambda: not any(mentions(stay.rules(CLIENT_NODE), ip) for ip in (web, dns, relay)),
                     timeout=60, interval=0.5)
    # kube-proxy flushes the flows right after the apply that removed the rules
    endpoints = (server_ip, *webs.values())
    stale: list[str] = []

    def flushed() -> bool:
        stale[:] = [f for d in (dns, relay) for f in stay.flows(CLIENT_NODE, d)
                    if any(f"src={ip} " in f for ip in endpoints)]
        return not stale
    try:
        cluster.wait_for(f"no conntrack entry on {CLIENT_NODE} to {ns}'s deleted endpoints", flushed,
                         timeout=10, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstale flows: {stale}\nkube-proxy logs:\n"
                             f"{json.dumps(stay.proxy_logs(), indent=1)[-6000:]}") from None
    # and the same client flow no longer reaches the server
    after = stay.udp(relay, 5353, 3, relay_port)
    assert "udp-server" not in after, after


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_namespace_deletions_never_fail_a_sync_and_flush_udp_flows(knet_cluster, stay: Probe, mode: str):  # noqa: ANN001
    if current_mode(knet_cluster) != mode:
        set_mode(knet_cluster, mode)
    server_ip = stay.pod_ips(STAY, "app=udp-server")["udp-server"]
    before = sync_failures(stay.proxy_logs())
    names = [f"proxydel-{mode[:3]}-{i}" for i in range(ROUNDS)]
    knet_cluster.kubectl("apply", "-f", "-", input=round_manifests(names[0], server_ip))
    try:
        for i, ns in enumerate(names):
            base = 40000 + 100 * (mode == "nftables") + 10 * i
            one_round(knet_cluster, stay, ns, names[i + 1] if i + 1 < ROUNDS else None, server_ip,
                      (base, base + 1))
        failures = sync_failures(stay.proxy_logs())
        new = {pod: lines[len(before.get(pod, [])):] for pod, lines in failures.items()}
        assert not any(new.values()), new
        if mode == "nftables":
            # the chains of the Services deleted in earlier rounds are gone (deleted a sync or more later)
            def leftovers() -> list[str]:
                listing = knet_cluster.ssh(CLIENT_NODE, "nft", "list", "table", "ip", "kube-proxy").stdout
                return [line.strip() for line in listing.splitlines() if any(f"-{ns}/" in line for ns in names[:-1])]
            knet_cluster.wait_for("no chains left of the deleted namespaces", lambda: not leftovers(), timeout=40,
                                  interval=1)
    finally:
        for ns in names:
            knet_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
