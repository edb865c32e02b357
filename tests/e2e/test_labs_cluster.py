"""`knet lab` played on the session cluster (issue #17 item 4), as a student plays it: `knet lab
start LAB`, a wrong answer or the unfixed cluster fails with a message saying what is wrong, the
right answer or the fix made with kubectl passes, `knet lab check` agrees; `knet lab reset`
always runs at the end (also when the test fails) and must leave the cluster as the other e2e
tests expect it (CoreDNS back at its replicas, lab namespaces gone).

The right answers here come from the cluster's config (cluster.yaml) and from what a student
reads with kubectl and `knet ssh`, not from knet.labs."""

from __future__ import annotations

import ipaddress
import json
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.e2e


class Player:
    def __init__(self, cluster):
        self.c = cluster

    def lab(self, *args: str, timeout: float = 180.0):
        return self.c.knet("lab", args[0], "--name", self.c.name, *args[1:], timeout=timeout)

    def answer(self, value: str, ok: bool, *says: str) -> str:
        p = self.lab("answer", value)
        out = p.stdout + p.stderr
        assert (p.returncode == 0) is ok, out
        for s in says:
            assert s in out, out
        return out

    def check(self, ok: bool, *says: str) -> str:
        p = self.lab("check")
        out = p.stdout + p.stderr
        assert (p.returncode == 0) is ok, out
        for s in says:
            assert s in out, out
        return out

    def check_until_ok(self, what: str, timeout: float = 30.0) -> str:
        """The data plane follows a fix within seconds (policy rules, endpoints, a rollout)."""
        return self.c.wait_for(what, lambda: (p := self.lab("check")).returncode == 0 and p.stdout,
                               timeout=timeout, interval=1.0)


@contextmanager
def playing(cluster, name: str):
    player = Player(cluster)
    try:
        started = player.lab("start", name)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Question 1/" in started.stdout
        yield player
    finally:
        reset = player.lab("reset")
        assert reset.returncode == 0, reset.stdout + reset.stderr


def kubectl_json(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def test_lab_list_and_no_lab_running(knet_cluster):
    p = Player(knet_cluster)
    listing = p.lab("list")
    assert listing.returncode == 0
    for name in ("service-networking", "explore-environment", "cni", "coredns", "network-policy",
                 "troubleshoot-service-selector", "troubleshoot-target-port", "troubleshoot-coredns",
                 "troubleshoot-dns-policy"):
        assert name in listing.stdout
    check = p.lab("check")
    assert check.returncode == 1 and "no lab is running" in check.stderr
    assert "no lab" in p.lab("start", "no-such-lab").stderr


def test_service_networking_lab(knet_cluster):
    cfg = knet_cluster.config
    with playing(knet_cluster, "service-networking") as p:
        assert "Hint 1/2 for [node-range]: kubectl get nodes -o wide" in p.lab("hint").stdout
        assert "Hint 2/2 for [node-range] (last hint)" in p.lab("hint").stdout
        node_net = ipaddress.ip_network(cfg["nodeNetwork"])
        p.answer(str(node_net.supernet(new_prefix=16)), False, "wider than")
        p.answer(str(node_net), True, "the nodes' network is")
        node01_cidr = kubectl_json(knet_cluster, "get", "node", "node01")["spec"]["podCIDR"]
        p.answer(node01_cidr, False, "node node01's share of the pod range")
        p.answer(cfg["podSubnet"], True)
        p.answer(cfg["podSubnet"], False, "the pod range")
        p.answer(cfg["serviceSubnet"], True)
        p.answer("1", False, "count the kube-proxy pods again")
        p.answer(str(len(cfg["nodes"])), True)
        mode = cfg["proxyMode"] or "iptables"
        p.answer("ipvs", False, "kube-proxy's ConfigMap says mode")
        p.answer(mode, True)
        p.answer("deployment", False, "scheduler likes")
        p.answer("DaemonSet", True, "Lab service-networking complete")
        p.check(True)
        status = p.lab("status").stdout
        assert f" ✓ [pod-range] What is the range of IP addresses configured for pods on this cluster? (CIDR) " \
               f"(answered: {cfg['podSubnet']})" in status
        state = knet_cluster.state_dir / knet_cluster.name / "labs" / "state.json"
        assert json.loads(state.read_text())["answers"]["service-range"] == cfg["serviceSubnet"]
    assert not state.exists()  # reset forgets the lab


def test_explore_environment_lab(knet_cluster):
    nodes = kubectl_json(knet_cluster, "get", "nodes")["items"]
    cp_ip = next(a["address"] for n in nodes if n["metadata"]["name"] == "controlplane"
                 for a in n["status"]["addresses"] if a["type"] == "InternalIP")
    route = knet_cluster.ssh("controlplane", "ip", "route", "show", "default").stdout.split()
    with playing(knet_cluster, "explore-environment") as p:
        p.answer(str(len(nodes) + 1), False, "count the nodes again")
        p.answer(str(len(nodes)), True)
        p.answer(cp_ip, True)
        p.answer("lo", False, "not the node's InternalIP")
        p.answer("eth0", True)  # the node's link, as on kubeadm
        p.answer(route[route.index("via") + 1], True)
        p.answer("6443", False, "kube-apiserver's")
        p.answer("10259", True, "complete")


def test_cni_lab(knet_cluster):
    with playing(knet_cluster, "cni") as p:
        p.answer("/run/docker.sock", False, "--container-runtime-endpoint")
        p.answer("unix:///var/run/containerd/containerd.sock", True)
        p.answer("/etc/cni/net.d", False, "no bridge plugin in /etc/cni/net.d")
        p.answer("/opt/cni/bin", True)
        p.answer("bridge", True)
        p.answer("kube-proxy", False, "does not mount /etc/cni/net.d")
        p.answer("knet-net", True)
        p.answer(kubectl_json(knet_cluster, "get", "node", "node01")["spec"]["podCIDR"], True, "complete")


def test_coredns_lab(knet_cluster):
    dns_ip = kubectl_json(knet_cluster, "-n", "kube-system", "get", "svc", "kube-dns")["spec"]["clusterIP"]
    with playing(knet_cluster, "coredns") as p:
        p.answer("coredns", False, "is the Deployment")
        p.answer("kube-dns", True)
        p.answer(dns_ip, True)
        p.answer("2", True)
        p.answer("in-addr.arpa", False, "reverse zone")
        p.answer(knet_cluster.config["dnsDomain"], True)
        p.answer("mysql", False, "looked up in the pod's own namespace (lab-coredns) first")
        p.answer("mysql.lab-coredns-payroll", True, "mysql's ClusterIP")
        p.check(False, "✗ [fix-webapp] DB_HOST=mysql does not resolve to Service mysql")
        knet_cluster.kubectl("-n", "lab-coredns", "set", "env", "deploy/webapp", "DB_HOST=mysql.lab-coredns-payroll")
        p.check_until_ok("webapp reaching mysql after the rollout", timeout=60)
        p.check(True, "webapp reaches mysql at mysql.lab-coredns-payroll:3306", "complete")


ALLOW_INTERNAL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: internal-only, namespace: lab-network-policy}
spec:
  podSelector: {matchLabels: {name: payroll}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {name: internal}}}]
    ports: [{protocol: TCP, port: 8080}]
"""


def test_network_policy_lab(knet_cluster):
    ns = "lab-network-policy"
    with playing(knet_cluster, "network-policy") as p:
        p.answer("no", False, "try it")
        p.answer("yes", True, "all traffic to it is allowed")
        p.check(False, "no NetworkPolicy in lab-network-policy selects pod payroll")
        # a policy that shuts everyone out is wrong too
        knet_cluster.kubectl("apply", "-f", "-", input=ALLOW_INTERNAL.replace("name: internal}", "name: nobody}"))
        refused = knet_cluster.wait_for("internal refused", lambda: "internal cannot reach payroll" in (
            out := p.lab("check").stdout) and out, timeout=30, interval=1.0)
        # the check ran knet trace --probe: a real connection, and the walk saying why it went nowhere
        assert ("(the probe: timeout; dropped by NetworkPolicy: pod lab-network-policy/payroll is selected by "
                "policies for ingress") in refused, refused
        knet_cluster.kubectl("apply", "-f", "-", input=ALLOW_INTERNAL)
        p.check_until_ok("only internal reaching payroll")
        p.check(True, "only internal reaches payroll:8080 (policies: internal-only)",
                "internal: allowed by NetworkPolicy lab-network-policy/internal-only ingress rule 1",
                "external: timeout, dropped by NetworkPolicy")
        assert knet_cluster.kubectl("-n", ns, "get", "networkpolicy", "-o", "name").stdout.strip()
    gone = knet_cluster.kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0 or "Terminating" in gone.stdout


def test_troubleshoot_service_selector_lab(knet_cluster):
    ns = "lab-svc-selector"
    with playing(knet_cluster, "troubleshoot-service-selector") as p:
        p.answer("1", False)
        p.answer("0", True)
        p.check(False, "Service web selects app=webapp, tier=frontend, which matches no pod")
        knet_cluster.kubectl("-n", ns, "patch", "svc", "web", "-p", '{"spec":{"selector":{"app":"web"}}}')
        p.check_until_ok("client reaching web through its Service")
        p.check(True, "client reaches it", "✓ [endpoints] answered: 0")


def test_troubleshoot_target_port_lab(knet_cluster):
    ns = "lab-svc-targetport"
    with playing(knet_cluster, "troubleshoot-target-port") as p:
        p.answer("80", False)
        p.answer("8080", True)
        p.check(False, "Service web sends port 80 to targetPort 8080, but its pods listen on 80/TCP")
        knet_cluster.kubectl("-n", ns, "patch", "svc", "web", "--type", "json",
                             "-p", '[{"op":"replace","path":"/spec/ports/0/targetPort","value":80}]')
        p.check_until_ok("client reaching web through its Service")


def test_troubleshoot_coredns_lab(knet_cluster):
    replicas = kubectl_json(knet_cluster, "-n", "kube-system", "get", "deploy", "coredns")["spec"]["replicas"]
    try:
        with playing(knet_cluster, "troubleshoot-coredns") as p:
            assert kubectl_json(knet_cluster, "-n", "kube-system", "get", "deploy", "coredns")["spec"]["replicas"] == 0
            p.answer("kube-dns", False, "only the address")
            p.answer("coredns", True)
            p.check(False, "Deployment kube-system/coredns is scaled to 0")
            knet_cluster.kubectl("-n", "kube-system", "scale", "deployment", "coredns", "--replicas=1")
            p.check_until_ok("DNS answering again", timeout=60)
    finally:
        # reset gave back the replicas it found, and waited for them
        d = kubectl_json(knet_cluster, "-n", "kube-system", "get", "deploy", "coredns")
        assert d["spec"]["replicas"] == replicas and d["status"].get("readyReplicas") == replicas, d["status"]


DEFAULT_DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: lab-dns-policy}
spec: {podSelector: {}, policyTypes: [Egress]}
"""
DNS_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: lab-dns-policy}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""


def test_troubleshoot_dns_policy_lab(knet_cluster):
    ns = "lab-dns-policy"
    with playing(knet_cluster, "troubleshoot-dns-policy") as p:
        p.check(False, "client cannot resolve web", "none allows DNS")
        knet_cluster.kubectl("-n", ns, "delete", "networkpolicy", "default-deny-egress")
        p.check(False, "default-deny-egress is gone or changed")  # opening everything is not the fix
        knet_cluster.kubectl("apply", "-f", "-", input=DEFAULT_DENY)
        knet_cluster.kubectl("apply", "-f", "-", input=DNS_EGRESS)
        p.check_until_ok("client resolving and reaching web")


def test_troubleshoot_kube_proxy_lab(knet_cluster):
    original = kubectl_json(knet_cluster, "-n", "kube-system", "get", "cm", "kube-proxy")["data"]["config.conf"]
    try:
        with playing(knet_cluster, "troubleshoot-kube-proxy") as p:
            p.answer("coredns", False, "not the failing ones")
            p.answer("kube-proxy", True)
            p.check(False, "says mode: iptable, which kube-proxy refuses")
            logs = knet_cluster.kubectl("-n", "kube-system", "logs", "ds/kube-proxy", check=False)
            assert "iptable" in logs.stdout + logs.stderr  # what a student reads to find it
            patch = json.dumps({"data": {"config.conf": original}})
            knet_cluster.kubectl("-n", "kube-system", "patch", "cm", "kube-proxy", "-p", patch)
            knet_cluster.kubectl("-n", "kube-system", "delete", "pod", "-l", "k8s-app=kube-proxy", timeout=90)
            p.check_until_ok("kube-proxy running again and Service web answering", timeout=90)
    finally:
        cm = kubectl_json(knet_cluster, "-n", "kube-system", "get", "cm", "kube-proxy")["data"]["config.conf"]
        assert cm == original
        ds = kubectl_json(knet_cluster, "-n", "kube-system", "get", "ds", "kube-proxy")["status"]
        assert ds["numberReady"] == ds["desiredNumberScheduled"], ds
