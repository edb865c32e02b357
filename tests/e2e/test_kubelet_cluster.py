"""The node agent on a real 3-node `knet up` cluster (session fixture `knet_cluster`):
readiness probes driving EndpointSlices, restarts counted, mirror pods, node shells, crictl."""

from __future__ import annotations

import json
import secrets

import pytest

pytestmark = pytest.mark.e2e


def _pod(cluster, name: str, ns: str = "default") -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def test_readiness_probe_drives_endpointslice(knet_cluster):
    flag = f"/tmp/knet-ready-{secrets.token_hex(4)}"
    manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: probed, labels: {{app: probed}}}}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080"]
    readinessProbe:
      exec: {{command: ["test", "-f", "{flag}"]}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: probed}}
spec:
  selector: {{app: probed}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
    knet_cluster.kubectl("apply", "-f", "-", input=manifest)

    def endpoint_ready():
        out = knet_cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=probed",
                                   "-o", "json").stdout
        eps = [ep for s in json.loads(out)["items"] for ep in s.get("endpoints") or []]
        return eps[0]["conditions"].get("ready") if eps else None

    try:
        knet_cluster.wait_for("pod Running", lambda: _pod(knet_cluster, "probed")["status"].get("phase") == "Running")
        knet_cluster.wait_for("endpoint listed not ready", lambda: endpoint_ready() is False, timeout=15)
        pod = _pod(knet_cluster, "probed")
        assert pod["status"]["containerStatuses"][0]["ready"] is False
        knet_cluster.kubectl("exec", "probed", "--", "touch", flag)
        knet_cluster.wait_for("endpoint ready", lambda: endpoint_ready() is True, timeout=15)
        assert "1/1" in knet_cluster.kubectl("get", "pod", "probed").stdout
        knet_cluster.kubectl("exec", "probed", "--", "rm", "-f", flag)
        knet_cluster.wait_for("endpoint not ready again", lambda: endpoint_ready() is False, timeout=15)
        events = knet_cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=probed").stdout
        assert "Unhealthy" in events and "Readiness probe failed" in events
    finally:
        knet_cluster.kubectl("delete", "pod,svc", "probed", "--wait=false", check=False)


def test_repeated_probe_failures_are_one_event_with_a_count(knet_cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080"]
    readinessProbe:
      tcpSocket: {port: 9}
      periodSeconds: 1
"""
    knet_cluster.kubectl("apply", "-f", "-", input=manifest)

    def unhealthy_events() -> list[dict]:
        out = knet_cluster.kubectl("get", "events", "--field-selector",
                                   "involvedObject.name=unready,reason=Unhealthy", "-o", "json").stdout
        return json.loads(out)["items"]

    try:
        knet_cluster.wait_for("three probe failures", lambda: sum(e.get("count", 1) for e in unhealthy_events()) >= 3,
                              timeout=20)
        events = unhealthy_events()
        assert len(events) == 1, [e["message"] for e in events]
        assert events[0]["count"] >= 3 and events[0]["type"] == "Warning"
        assert events[0]["message"].startswith("Readiness probe failed:")
        assert "(x" in knet_cluster.kubectl("describe", "pod", "unready").stdout  # "Unhealthy  3s (x4 over 6s)"
    finally:
        knet_cluster.kubectl("delete", "pod", "unready", "--wait=false")


def test_killed_container_is_restarted_and_counted(knet_cluster):
    marker = str(3000 + secrets.randbelow(999))
    manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: victim}}
spec:
  nodeName: node02
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sleep", "{marker}"]
"""
    knet_cluster.kubectl("apply", "-f", "-", input=manifest)
    try:
        knet_cluster.wait_for("Running", lambda: _pod(knet_cluster, "victim")["status"].get("phase") == "Running")
        # SIGKILL: the container's `sleep` is PID 1 of its PID namespace, which ignores a SIGTERM
        # it has no handler for (as under containerd: `kill PID` from the node does nothing).
        r = knet_cluster.ssh("node02", "pkill", "-KILL", "-x", "-f", f"sleep {marker}")
        assert r.returncode == 0, r.stderr

        def restarted():
            st = _pod(knet_cluster, "victim")["status"]["containerStatuses"][0]
            return st if st["restartCount"] == 1 and "running" in st["state"] else None

        st = knet_cluster.wait_for("restart", restarted, timeout=15)
        assert st["lastState"]["terminated"]["exitCode"] == 137
        assert st["lastState"]["terminated"]["reason"] == "Error"
        assert st["containerID"].startswith("knet://")
        row = knet_cluster.kubectl("get", "pod", "victim", "--no-headers").stdout.split()
        assert row[3] == "1"
    finally:
        knet_cluster.kubectl("delete", "pod", "victim", "--wait=false", check=False)


def test_node_shell_shows_the_node(knet_cluster):
    nodes = {n["name"]: n for n in knet_cluster.config["nodes"]}
    r = knet_cluster.ssh("node01", "sh", "-c", "hostname; ip -o -4 addr show dev eth0; ps -e -o comm=")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "node01"
    assert f"inet {nodes['node01']['ip']}/" in lines[1]
    ps = knet_cluster.ssh("node01", "ps", "-ef").stdout
    assert "--hostname-override=node01" in ps and "--hostname-override=node02" not in ps


def test_mirror_pods_of_static_control_plane(knet_cluster):
    pod = _pod(knet_cluster, "kube-apiserver-controlplane", "kube-system")
    meta = pod["metadata"]
    assert "kubernetes.io/config.mirror" in meta["annotations"]
    assert meta["annotations"]["kubernetes.io/config.source"] == "file"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Node", "controlplane")
    assert pod["spec"]["nodeName"] == "controlplane"
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"] == next(n["ip"] for n in knet_cluster.config["nodes"] if n["name"] == "controlplane")


def test_crictl_lists_node_containers(knet_cluster):
    r = knet_cluster.knet("crictl", "--name", knet_cluster.name, "node01", "ps")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD", "ID", "POD"]
    assert any(" kube-proxy " in row and "Running" in row for row in rows)


def test_node_lease_and_ready_status(knet_cluster):
    lease = json.loads(knet_cluster.kubectl("get", "lease", "node01", "-n", "kube-node-lease", "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == "node01"
    node = json.loads(knet_cluster.kubectl("get", "node", "node01", "-o", "json").stdout)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "KubeletReady",
                                                                    "kubelet is posting ready status")
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "knet://0.1.0"
    cp = json.loads(knet_cluster.kubectl("get", "node", "controlplane", "-o", "json").stdout)
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in cp["spec"]["taints"]


def test_crictl_inside_the_node_shell(knet_cluster):
    r = knet_cluster.ssh("node01", "crictl", "ps")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[:2] == ["CONTAINER", "IMAGE"]
    assert "kube-proxy" in r.stdout
    pods = knet_cluster.ssh("node01", "crictl", "pods").stdout
    assert pods.splitlines()[0].split()[:2] == ["POD", "ID"] and "kube-proxy-" in pods
