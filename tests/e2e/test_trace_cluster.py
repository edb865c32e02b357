"""`knet trace` on the real session cluster (`knet_cluster`): it reads each node's live rules and
routes in the node's network namespace. A pod -> Service trace ends at one of the Service's pods
(the one the walk chose; `--all` lists each), a Service without endpoints is rejected, a DNS name
resolves as the pod's resolver would, and the answer comes in under a second. With --probe a real
connection (TCP, or a UDP datagram) from the source agrees with the walk, in both proxy modes:
ClusterIP (to a pod on the same or another node), NodePort at another node's address, no
endpoints, policy allow, policy deny; both in the outcome and in the rules the kernel traced on
each node the packet crossed."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from knet.cluster.testing import knet_argv

from .test_proxy_cluster import current_mode, node_ips, set_mode, written_mode

pytestmark = pytest.mark.e2e

NS = "trace-e2e"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"


def manifests() -> str:
    container = {"name": "echo", "image": IMAGE, "args": ["netexec", "--http-port=8080"]}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "echo"}},
                  "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS, "labels": {"app": "client"}},
         "spec": {"nodeName": "node02", "containers": [container]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"selector": {"app": "echo"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                                         {"name": "udp", "port": 81, "protocol": "UDP",
                                                          "targetPort": 8081}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo-np", "namespace": NS},
         "spec": {"type": "NodePort", "selector": {"app": "echo"},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nobody", "namespace": NS},
         "spec": {"selector": {"app": "nobody"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                                           {"name": "udp", "port": 81, "protocol": "UDP",
                                                            "targetPort": 8081}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "far", "namespace": NS},
         "spec": {"selector": {"app": "guarded"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        # guarded on another node than its clients: the probe crosses nodes, the policy acts on node01
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "guarded", "namespace": NS, "labels": {"app": "guarded"}},
         "spec": {"nodeName": "node01", "containers": [container]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranger", "namespace": NS, "labels": {"app": "stranger"}},
         "spec": {"nodeName": "node02", "containers": [container]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "only-client", "namespace": NS},
         "spec": {"podSelector": {"matchLabels": {"app": "guarded"}}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}},
    ]
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="module")
def traced(knet_cluster):
    c = knet_cluster
    c.kubectl("apply", "-f", "-", input=manifests())
    c.kubectl("-n", NS, "rollout", "status", "deployment/echo", "--timeout=120s", timeout=130)
    c.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/client", "pod/guarded", "pod/stranger",
              "--timeout=120s", timeout=130)

    def ready_endpoints() -> int:
        out = c.kubectl("-n", NS, "get", "endpointslices", "-l", "kubernetes.io/service-name=echo", "-o", "json").stdout
        return sum(1 for s in json.loads(out)["items"] for ep in s.get("endpoints") or []
                   if (ep.get("conditions") or {}).get("ready"))
    c.wait_for("2 ready endpoints of echo", lambda: ready_endpoints() == 2, timeout=60, interval=0.5)
    time.sleep(2)  # kube-proxy's sync after the slice (minSyncPeriod 1 s)
    try:
        yield c
    finally:
        c.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def trace(c, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:  # noqa: ANN001
    start = time.monotonic()
    p = subprocess.run([*knet_argv(), "trace", "--name", c.name, *args], env=c.env, capture_output=True,
                       text=True, timeout=60)
    return p, time.monotonic() - start


def echo_pods(c) -> dict[str, dict]:  # noqa: ANN001
    items = json.loads(c.kubectl("-n", NS, "get", "pods", "-l", "app=echo", "-o", "json").stdout)["items"]
    return {f"{NS}/{p['metadata']['name']}": p for p in items}


def test_pod_to_service_is_delivered_to_one_of_its_pods_in_under_a_second(traced):
    p, took = trace(traced, f"{NS}/client", f"svc/{NS}/echo", "-o", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    pods = echo_pods(traced)
    assert d["verdict"] == "delivered", d["reason"]
    path = d["paths"][0]
    assert path["endpoint_pod"] in pods
    pod = pods[path["endpoint_pod"]]
    assert path["endpoint"] == f"{pod['status']['podIP']}:8080" and path["node"] == pod["spec"]["nodeName"]
    # the DNAT was read from the client's node: iptables-save there shows the rule that did it
    steps = [s for h in path["hops"] for s in h["steps"]]
    assert any(s["note"].startswith("DNAT to") or "DNAT to" in s["note"] for s in steps)
    assert not [s for s in steps if "assumed to match" in s["note"]]  # every match on the node understood
    assert d["sources"]["node02"].endswith("in node node02's network namespace")
    print(f"knet trace pod -> Service: {took:.2f} s")
    assert took < 1.0, f"knet trace took {took:.2f} s"


def test_all_lists_every_endpoint_and_dns_names_resolve(traced):
    p, _ = trace(traced, f"{NS}/client", "echo", "--all")  # a bare name: the pod's search path
    assert p.returncode == 0, p.stderr
    assert f"DNS (as the source pod resolves it): echo.{NS}.svc.cluster.local:" in p.stdout
    for name, pod in echo_pods(traced).items():
        assert f"verdict: delivered to pod {name} ({pod['status']['podIP']}:8080)" in p.stdout
    assert "probability 50%" in p.stdout


def test_service_without_endpoints_is_rejected(traced):
    p, _ = trace(traced, f"{NS}/client", f"svc/{NS}/nobody", "-o", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["verdict"] == "rejected"
    assert f"Service {NS}/nobody:http has no endpoints" in d["reason"]


def test_unknown_names_fail_with_a_message(traced):
    p, _ = trace(traced, f"{NS}/client", f"svc/{NS}/missing")
    assert p.returncode != 0 and f"no Service {NS}/missing" in p.stderr
    # SCTP is walked, not probed: said, nothing sent
    p, _ = trace(traced, f"{NS}/client", f"svc/{NS}/echo", "--protocol", "sctp", "--probe")
    assert p.returncode != 0 and "--probe sends TCP and UDP only" in p.stderr, p.stdout + p.stderr


def set_dataplane_mode(c, mode: str) -> None:  # noqa: ANN001
    """kube-proxy's mode, and the network add-on's policy rules in the same framework: its controller
    reads the mode when it starts, so its pods restart too (each cleans up the other mode's rules)."""
    set_mode(c, mode)
    c.kubectl("-n", "kube-system", "rollout", "restart", "ds", "knet-net")
    c.kubectl("-n", "kube-system", "rollout", "status", "ds", "knet-net", "--timeout=90s", timeout=100)

    def policy_programmed() -> bool:  # guarded's node holds its ingress rules, in this mode only
        nft = c.ssh("node01", "nft", "list", "table", "ip", "knet-netpol").stdout
        ipt = c.ssh("node01", "iptables", "-S").stdout
        here, other = (nft, ipt) if (mode or "iptables") == "nftables" else (ipt, nft)
        return f"{NS}/guarded" in here and f"{NS}/guarded" not in other
    c.wait_for(f"the policy controller's rules for {NS}/guarded in {mode or 'iptables'} mode", policy_programmed,
               timeout=60, interval=0.5)


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def proxy_mode(request, traced):
    """Every probe case runs in both proxy modes on the session cluster: one switch to the other mode
    for the whole group (pytest groups the tests by this module-scoped parameter) and one back, also
    when a test fails."""
    c, mode = traced, request.param
    written = written_mode(c)
    if current_mode(c) != mode:
        start = time.monotonic()
        set_dataplane_mode(c, mode)
        print(f"switched to {mode} in {time.monotonic() - start:.1f} s")
    try:
        yield mode
    finally:
        if written_mode(c) != written:
            start = time.monotonic()
            set_dataplane_mode(c, written)
            print(f"switched back to {written or 'iptables'} in {time.monotonic() - start:.1f} s")


def probe(c, *args: str) -> dict:  # noqa: ANN001
    p, _ = trace(c, *args, "--probe", "-o", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout)
    got = d["probe"]
    # the kernel's own trace of the first packet, on every node it crossed: the walk's rules, in order
    assert got["rules_agree"] and got["kernel_rules"], got["rules"]
    return d


@pytest.mark.parametrize(("frm", "to", "args", "outcome"), [
    (f"{NS}/client", f"svc/{NS}/echo", [], "connected"),
    (f"{NS}/client", f"svc/{NS}/nobody", [], "refused"),
    (f"{NS}/client", f"{NS}/guarded", ["--port", "8080"], "connected"),    # the policy allows the client
    (f"{NS}/stranger", f"{NS}/guarded", ["--port", "8080", "--probe-timeout", "1"], "timeout"),  # no one else
    (f"{NS}/client", f"svc/{NS}/echo", ["--port", "81", "--protocol", "udp"], "connected"),  # agnhost answers
    (f"{NS}/client", f"svc/{NS}/nobody", ["--port", "81", "--protocol", "udp"], "refused"),  # ICMP unreachable
], ids=["clusterip", "no-endpoints", "policy-allow", "policy-deny", "udp-clusterip", "udp-no-endpoints"])
def test_probe_agrees_with_the_walk(traced, proxy_mode, frm, to, args, outcome):
    d = probe(traced, frm, to, *args)
    assert d["mode"] == proxy_mode
    got = d["probe"]
    assert got["agrees"] and got["outcome"] == outcome, got
    if "guarded" in to:  # client and stranger on node02, guarded on node01: node01's kernel saw it too
        assert got["kernel_nodes"]["node01"][0], got["kernel_nodes"]
        assert "on node node01" in got["rules"] and "on node node02" in got["rules"], got["rules"]
    if outcome == "timeout":  # dropped on node01, by the policy's rules there
        assert "dropped by NetworkPolicy: pod trace-e2e/guarded" in d["reason"], d["reason"]
    if "udp" in args and outcome == "connected":
        answered = echo_pods(traced).get(f"{NS}/{got['detail']}")  # the pod that answered says its name
        assert answered is not None and got["endpoint"] == f"{answered['status']['podIP']}:8081", got


def test_probe_through_a_service_to_a_pod_on_another_node(traced, proxy_mode):
    """client (node02) -> ClusterIP of `far` -> its only pod, guarded on node01: node02 DNATs and
    routes, node01 forwards it through the policy's rules (which allow the client) to the pod."""
    d = probe(traced, f"{NS}/client", f"svc/{NS}/far")
    got = d["probe"]
    guarded = json.loads(traced.kubectl("-n", NS, "get", "pod", "guarded", "-o", "json").stdout)
    assert got["agrees"] and got["endpoint"] == f"{guarded['status']['podIP']}:8080", got
    hops = d["paths"][0]["hops"]
    assert [h["node"] for h in hops if "DNAT to" in " ".join(s["note"] for s in h["steps"])] == ["node02"]
    assert [list(segments) and bool(segments[0]) for segments in
            (got["kernel_nodes"]["node02"], got["kernel_nodes"]["node01"])] == [True, True], got["kernel_nodes"]
    assert "on node node02" in got["rules"] and "on node node01" in got["rules"], got["rules"]


def test_probe_agrees_at_a_nodeport_of_another_node(traced, proxy_mode):
    """client (node02) to node01's InternalIP:nodePort: node02 only routes it; node01's kube-proxy
    (KUBE-NODEPORTS / the nftables nodeport map) DNATs it to an echo pod and masquerades it (the
    source is not local to node01); the probe's connection ends where the walk says, and each node
    the packet crossed traced the rules the walk says."""
    c = traced
    node_ip = node_ips(c)["node01"]
    node_port = c.kubectl("-n", NS, "get", "svc", "echo-np", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout
    endpoints = {f"{p['status']['podIP']}:8080": name for name, p in echo_pods(c).items()}
    d = probe(c, f"{NS}/client", node_ip, "--port", node_port, "--all")
    assert d["mode"] == proxy_mode and d["target"]["kind"] == "node" and d["target"]["name"] == "node01"
    assert {path["endpoint"] for path in d["paths"]} == set(endpoints), d["paths"]
    for path in d["paths"]:
        assert path["verdict"] == "delivered" and path["endpoint_pod"] == endpoints[path["endpoint"]]
        assert path["masquerade"], path
        dnat = [h["node"] for h in path["hops"] for s in h["steps"] if "DNAT to" in s["note"]]
        assert dnat == ["node01"], path["hops"]
    got = d["probe"]
    assert got["agrees"] and got["outcome"] == "connected" and got["endpoint"] in endpoints, got
    assert got["kernel_nodes"]["node01"][0], got["kernel_nodes"]  # where the DNAT happened
