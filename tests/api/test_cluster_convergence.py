"""A simulated cluster converges like Kubernetes: deployments, services, scaling, deleted pods,
and control-plane processes killed with SIGKILL (the kubelet restarts its static pods)."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from knet.cluster.processes import component_of, proc_cmdline
from knet.cluster.testing import ClusterUnderTest

pytestmark = [
    pytest.mark.api,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the real kubectl"),
]

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"


# A killed leader's successor takes over once the old lease has expired (client-go's leader
# election): with upstream's 15 s leases that is 15 s of waiting per kill; kubeadm's extraArgs
# shorten them here (the renew deadline stays above an apiserver restart).
LEADER_ELECTION = "{leader-elect-lease-duration: 8s, leader-elect-renew-deadline: 6s, leader-elect-retry-period: 1s}"
CLUSTER_CONFIG = f"""\
kind: Cluster
apiVersion: knet.io/v1alpha1
nodes: [controlplane, node01, node02]
podSubnet: 10.244.0.0/16
serviceSubnet: 10.96.0.0/12
controllerManagerExtraArgs: {LEADER_ELECTION}
schedulerExtraArgs: {LEADER_ELECTION}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    config_file = tmp_path_factory.mktemp("cluster-config") / "cluster.yaml"
    config_file.write_text(CLUSTER_CONFIG)
    c = ClusterUnderTest.up(nodes=None, dataplane="sim", extra_args=("--config", str(config_file)))
    try:
        yield c
    finally:
        c.down()


def component_pid(cluster, component: str) -> int | None:
    marker = f"{cluster.state_dir}/{cluster.name}/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = proc_cmdline(int(entry))
        if component_of(argv) == component and any(marker in a for a in argv):
            return int(entry)
    return None


def running_pods(cluster, selector: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-l", selector, "-o", "json").stdout
    return [p for p in json.loads(out)["items"]
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def ready_endpoints(cluster, service: str) -> set[str]:
    out = cluster.kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}", "-o",
                          "json").stdout
    ips = set()
    for eps in json.loads(out)["items"]:
        for ep in eps.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready"):
                ips.update(ep["addresses"])
    return ips


def test_the_config_file_made_three_nodes(cluster):
    out = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert out == ["node/controlplane", "node/node01", "node/node02"]


def test_deployment_expose_scale_and_delete_converge(cluster):
    cluster.kubectl("create", "deployment", "web", f"--image={IMAGE}", "--replicas=3")
    cluster.kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080")
    pods = cluster.wait_for("3 running web pods", lambda: len(running_pods(cluster, "app=web")) == 3 and
                            running_pods(cluster, "app=web"))
    # spread over the two schedulable workers (controlplane is tainted)
    assert {p["spec"]["nodeName"] for p in pods} == {"node01", "node02"}
    pod_ips = {p["status"]["podIP"] for p in pods}
    cluster.wait_for("endpoints of web", lambda: ready_endpoints(cluster, "web") == pod_ips)

    cluster.kubectl("scale", "deployment", "web", "--replicas=5")
    cluster.wait_for("5 running web pods", lambda: len(running_pods(cluster, "app=web")) == 5)
    cluster.wait_for("5 endpoints", lambda: len(ready_endpoints(cluster, "web")) == 5)

    victim = running_pods(cluster, "app=web")[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", victim, "--wait=false")
    cluster.wait_for("a replacement pod", lambda: len(running_pods(cluster, "app=web")) == 5 and
                     victim not in {p["metadata"]["name"] for p in running_pods(cluster, "app=web")})
    cluster.wait_for("endpoints without the deleted pod",
                     lambda: len(ready_endpoints(cluster, "web")) == 5)


@pytest.mark.parametrize("component", ["apiserver", "controller-manager", "scheduler"])
def test_killed_control_plane_process_is_restarted_and_converges(cluster, component):
    before = component_pid(cluster, component)
    assert before, f"no {component} process of the cluster"
    os.kill(before, signal.SIGKILL)
    after = cluster.wait_for(f"{component} restarted", lambda: (component_pid(cluster, component) or before)
                             != before and component_pid(cluster, component), timeout=30)
    assert after != before
    # the whole loop still works: API -> controllers -> scheduler -> node agents
    name = f"after-{component}"
    cluster.wait_for("the API answering", lambda: cluster.kubectl("get", "ns", "default", check=False)
                     .returncode == 0, timeout=30)
    cluster.kubectl("create", "deployment", name, f"--image={IMAGE}", "--replicas=2")
    cluster.wait_for(f"{name} running", lambda: len(running_pods(cluster, f"app={name}")) == 2, timeout=40)
    mirror = f"kube-{component}-controlplane"
    cluster.wait_for(f"mirror pod {mirror} Running", lambda: cluster.kubectl(
        "get", "pod", mirror, "-n", "kube-system", "-o", "jsonpath={.status.phase}", check=False
    ).stdout == "Running", timeout=30)
