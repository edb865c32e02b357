"""`knet trace` on the real session cluster (`knet_cluster`): it reads each node's live rules and
routes in the node's network namespace. A pod -> Service trace ends at one of the Service's pods
(the one the walk chose; `--all` lists each), a Service without endpoints is rejected, a DNS name
resolves as the pod's resolver would, and the answer comes in under a second. With --probe a real
connection from the source agrees with the walk: ClusterIP, NodePort (at another node's address, in
both proxy modes), no endpoints, policy allow, policy deny, both in the outcome and in the rules the
kernel traced on the source's node."""

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
         "spec": {"selector": {"app": "echo"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo-np", "namespace": NS},
         "spec": {"type": "NodePort", "selector": {"app": "echo"},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nobody", "namespace": NS},
         "spec": {"selector": {"app": "nobody"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "guarded", "namespace": NS, "labels": {"app": "guarded"}},
         "spec": {"containers": [container]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranger", "namespace": NS, "labels": {"app": "stranger"}},
         "spec": {"containers": [container]}},
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


@pytest.mark.parametrize(("frm", "to", "outcome"), [
    (f"{NS}/client", f"svc/{NS}/echo", "connected"),
    (f"{NS}/client", f"svc/{NS}/nobody", "refused"),
    (f"{NS}/client", f"{NS}/guarded", "connected"),     # the policy allows the client
    (f"{NS}/stranger", f"{NS}/guarded", "timeout"),     # and no one else
], ids=["clusterip", "no-endpoints", "policy-allow", "policy-deny"])
def test_probe_agrees_with_the_walk(traced, frm, to, outcome):
    port = [] if to.startswith("svc/") else ["--port", "8080"]
    p, _ = trace(traced, frm, to, *port, "--probe", "-o", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    probe = json.loads(p.stdout)["probe"]
    assert probe["agrees"] and probe["outcome"] == outcome, probe
    # the kernel's own trace of the first packet on the source's node: the walk's rules, in order
    assert probe["rules_agree"] and probe["kernel_rules"], probe["rules"]


def test_probe_agrees_at_a_nodeport_of_another_node_in_both_modes(traced):
    """client (node02) to node01's InternalIP:nodePort: node02 only routes it; node01's kube-proxy
    (KUBE-NODEPORTS / the nftables nodeport map) DNATs it to an echo pod and masquerades it (the
    source is not local to node01); the probe's connection ends where the walk says."""
    c = traced
    node_ip = node_ips(c)["node01"]
    node_port = c.kubectl("-n", NS, "get", "svc", "echo-np", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout
    endpoints = {f"{p['status']['podIP']}:8080": name for name, p in echo_pods(c).items()}
    first, written = current_mode(c), written_mode(c)
    try:
        for mode in (first, "nftables" if first == "iptables" else "iptables"):
            if mode != first:
                set_mode(c, mode)
            p, _ = trace(c, f"{NS}/client", node_ip, "--port", node_port, "--probe", "--all", "-o", "json")
            assert p.returncode == 0, p.stdout + p.stderr
            d = json.loads(p.stdout)
            assert d["mode"] == mode and d["target"]["kind"] == "node" and d["target"]["name"] == "node01"
            assert {path["endpoint"] for path in d["paths"]} == set(endpoints), d["paths"]
            for path in d["paths"]:
                assert path["verdict"] == "delivered" and path["endpoint_pod"] == endpoints[path["endpoint"]]
                assert path["masquerade"], path
                dnat = [h["node"] for h in path["hops"] for s in h["steps"] if "DNAT to" in s["note"]]
                assert dnat == ["node01"], path["hops"]
            probe = d["probe"]
            assert probe["agrees"] and probe["outcome"] == "connected" and probe["endpoint"] in endpoints, probe
            assert probe["rules_agree"] and probe["kernel_rules"], probe["rules"]
    finally:
        if written_mode(c) != written:
            set_mode(c, written)
