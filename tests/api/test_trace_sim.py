"""`knet trace` on a simulated cluster (`knet up --dataplane sim`, 2 nodes): no node holds kernel
rules, so each node's rules are those knet's kube-proxy and policy controller render for it from
the API objects; the walk and the verdicts are the real dataplane's."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from knet.cluster.bootstrap import knet_argv
from knet.cluster.testing import ClusterUnderTest

pytestmark = [
    pytest.mark.api,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the real kubectl"),
]

NS = "trace-sim"


def manifests() -> str:
    container = {"name": "echo", "image": "registry.k8s.io/e2e-test-images/agnhost:2.39",
                 "args": ["netexec", "--http-port=8080"], "ports": [{"containerPort": 8080}]}
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "echo"}},
                  "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS, "labels": {"app": "client"}},
         "spec": {"containers": [container]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"selector": {"app": "echo"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "only-client", "namespace": NS},
         "spec": {"podSelector": {"matchLabels": {"app": "echo"}}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}},
    ])


@pytest.fixture(scope="module")
def sim_cluster():
    cluster = ClusterUnderTest.up(nodes=2, dataplane="sim")
    try:
        cluster.kubectl("apply", "-f", "-", input=manifests())
        cluster.kubectl("-n", NS, "rollout", "status", "deployment/echo", "--timeout=90s", timeout=100)
        cluster.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/client", "--timeout=90s", timeout=100)

        def ready() -> int:
            out = cluster.kubectl("-n", NS, "get", "endpointslices", "-o", "json").stdout
            return sum(1 for s in json.loads(out)["items"] for ep in s.get("endpoints") or []
                       if (ep.get("conditions") or {}).get("ready"))
        cluster.wait_for("2 ready endpoints", lambda: ready() == 2, timeout=60, interval=0.5)
        yield cluster
    finally:
        cluster.down()


def trace(c, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run([*knet_argv(), "trace", "--name", c.name, *args], env=c.env, capture_output=True,
                          text=True, timeout=60)


def test_trace_on_the_simulated_dataplane(sim_cluster):
    pods = {f"{NS}/{p['metadata']['name']}": p for p in json.loads(sim_cluster.kubectl(
        "-n", NS, "get", "pods", "-l", "app=echo", "-o", "json").stdout)["items"]}
    p = trace(sim_cluster, f"{NS}/client", f"echo.{NS}.svc", "-o", "json", "--all")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert {path["endpoint_pod"] for path in d["paths"]} == set(pods)
    assert {path["verdict"] for path in d["paths"]} == {"delivered"}
    assert all(any(line.startswith(f"allowed by NetworkPolicy {NS}/only-client ingress rule 1") for line in path["policy"])
               for path in d["paths"])
    assert all(s.startswith("rendered by knet's kube-proxy") for s in d["sources"].values())
    # another echo pod is not the client: the policy drops it, by name
    one, other = sorted(pods)
    p = trace(sim_cluster, one, other, "--port", "8080")
    assert p.returncode == 0, p.stderr
    assert f"verdict: dropped by NetworkPolicy: pod {other} is selected by policies for ingress" in p.stdout


def test_http_trace_through_the_ingress_controller_on_the_simulated_dataplane(sim_cluster):
    """The ingress add-on's controller pod reached at its ClusterIP, the Ingress rule, then the
    controller's own connection to an echo pod, which only-client's NetworkPolicy drops: 504."""
    c = sim_cluster
    c.kubectl("-n", "ingress-nginx", "rollout", "status", "deployment/ingress-nginx-controller", "--timeout=90s",
              timeout=100)
    c.kubectl("-n", NS, "create", "ingress", "echo", "--class=nginx", "--rule=/echo*=echo:80")
    p = trace(c, f"{NS}/client", "http://sim.example/echo/x", "-o", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["controller"].startswith("ingress-nginx/ingress-nginx-controller-")
    assert (d["route"]["route"], d["route"]["path"], d["route"]["backend"]) == (
        f"{NS}/echo", "/echo", {"namespace": NS, "service": "echo", "port": 80})
    assert (d["verdict"], d["status"]) == ("gateway-timeout", 504), d["reason"]
    assert "dropped by NetworkPolicy" in d["back"][0]["reason"]
