"""A node's kubelet killed with SIGKILL (the session `knet_cluster`): its supervisor starts it
again, and the new kubelet re-adopts the node's pods from its checkpoints and runc's state:
no container restarts, same container IDs, IPs and start times, logs kept, `kubectl exec`
works, and the pods' Service keeps answering throughout."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time

import pytest
import yaml

from knet.cluster.processes import component_of, proc_cmdline

pytestmark = pytest.mark.e2e

NS = "readopt-e2e"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"


def _manifests(marker: str, nap: int) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "echo"}},
                  "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {
                      "nodeSelector": {"kubernetes.io/hostname": "node01"},
                      "containers": [{"name": "echo", "image": IMAGE, "args": ["netexec", "--http-port=8080"],
                                      "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                                         "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": NS},
         "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "namespace": NS},
         "spec": {"nodeName": "node01", "terminationGracePeriodSeconds": 1, "containers": [
             {"name": "c", "image": "busybox", "command": ["sh", "-c", f"echo said-{marker}; exec sleep {nap}"]}]}},
    ]
    return yaml.safe_dump_all(docs)


def _pods(cluster) -> dict[str, dict]:
    out = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)
    return {p["metadata"]["name"]: p for p in out["items"]}


def _facts(pods: dict[str, dict]) -> dict[str, tuple]:
    """What must not change across a kubelet restart, per pod."""
    return {name: (p["metadata"]["uid"], p["status"].get("podIP"), p["status"].get("startTime"),
                   tuple((c["name"], c["containerID"], c["restartCount"], json.dumps(c["state"], sort_keys=True))
                         for c in p["status"]["containerStatuses"]))
            for name, p in pods.items()}


def _kubelet_pids(cluster, node: str) -> list[int]:
    """Host pids of the kubelet process of `node` (not its supervisor, nsenter or setpriv)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = proc_cmdline(int(entry))  # the kubelet's title: `/usr/bin/kubelet … --root-dir=STATE/NAME/nodes/NODE`
        if component_of(argv) == "kubelet" and f"--root-dir={cluster.state_dir / cluster.name / 'nodes' / node}" in argv:
            found.append(int(entry))
    return found


def _all_ready(pods: dict[str, dict]) -> bool:
    return len(pods) == 3 and all(
        p["status"].get("phase") == "Running" and all(c.get("ready") for c in p["status"].get("containerStatuses") or [])
        for p in pods.values())


def test_kill_9_kubelet_restarts_without_pod_restarts(knet_cluster):
    c = knet_cluster
    marker, nap = secrets.token_hex(4), 3000 + secrets.randbelow(999)
    c.kubectl("apply", "-f", "-", input=_manifests(marker, nap))
    try:
        c.wait_for("echo pods and talker Running and Ready", lambda: _all_ready(_pods(c)), timeout=60, interval=0.5)
        cluster_ip = json.loads(c.kubectl("get", "svc", "echo", "-n", NS, "-o", "json").stdout)["spec"]["clusterIP"]
        url = f"http://{cluster_ip}/hostname"
        echo_names = {n for n in _pods(c) if n.startswith("echo-")}
        c.wait_for("the Service answers from node02",
                   lambda: c.ssh("node02", "curl", "-s", "-m", "2", url).stdout.strip() in echo_names, timeout=30)
        before = _facts(_pods(c))
        assert f"said-{marker}" in c.kubectl("logs", "talker", "-n", NS).stdout

        # The Service is probed from node02 all along the kubelet's death and return.
        answers: list[tuple[float, str]] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                r = c.ssh("node02", "curl", "-s", "-m", "2", url, timeout=10)
                answers.append((time.monotonic(), r.stdout.strip()))
                time.sleep(0.2)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        try:
            time.sleep(1.0)
            old = _kubelet_pids(c, "node01")
            assert len(old) == 1, old
            os.kill(old[0], signal.SIGKILL)
            killed_at = time.monotonic()
            new = c.wait_for("a new kubelet of node01", lambda: [p for p in _kubelet_pids(c, "node01")
                                                                 if p not in old], timeout=10, interval=0.1)
            assert time.monotonic() - killed_at < 10
            # The new kubelet serves the node's pods again: logs and exec go through it.
            c.wait_for("kubectl logs through the new kubelet", lambda: f"said-{marker}" in c.kubectl(
                "logs", "talker", "-n", NS, check=False).stdout, timeout=20, interval=0.5)
            node = json.loads(c.kubectl("get", "node", "node01", "-o", "json").stdout)
            ready = next(x for x in node["status"]["conditions"] if x["type"] == "Ready")
            assert ready["status"] == "True", ready
            time.sleep(3.0)  # a few more probes (and status writes) after the return
        finally:
            stop.set()
            prober.join(timeout=15)
        assert len(new) == 1
        after = _facts(_pods(c))
        assert after == before  # same uids, IPs, start times, container IDs, restart counts, states
        failed = [(round(t - killed_at, 1), out) for t, out in answers if out not in echo_names]
        assert answers and not failed, failed
        exec_out = c.kubectl("exec", "-n", NS, "talker", "--", "sh", "-c", "echo exec-ok; cat /proc/1/cmdline").stdout
        assert "exec-ok" in exec_out and "sleep" in exec_out
        # A container that dies after the restart is still restarted (by the new kubelet).
        assert c.ssh("node01", "pkill", "-KILL", "-x", "-f", f"sleep {nap}").returncode == 0
        def restarted():
            st = _pods(c)["talker"]["status"]["containerStatuses"][0]
            return st if st["restartCount"] == 1 and "running" in st["state"] else None
        st = c.wait_for("talker restarted by the new kubelet", restarted, timeout=20)
        assert st["lastState"]["terminated"]["exitCode"] == 137
    finally:
        c.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_kill_9_controlplane_kubelet_keeps_its_static_pods(knet_cluster):
    """The control plane's kubelet runs etcd and the API server as static pods: killed, it comes
    back and re-adopts them (the API never goes down, no static pod restarts)."""
    c = knet_cluster

    def static_facts() -> dict[str, tuple]:
        out = json.loads(c.kubectl("get", "pods", "-n", "kube-system", "-o", "json").stdout)
        mirrors = {p["metadata"]["name"]: p for p in out["items"]
                   if p["spec"].get("nodeName") == "controlplane" and "kubernetes.io/config.mirror" in
                   (p["metadata"].get("annotations") or {})}
        return {name: (p["status"].get("startTime"), tuple(
            (s["containerID"], s["restartCount"], json.dumps(s["state"], sort_keys=True))
            for s in p["status"].get("containerStatuses") or [])) for name, p in mirrors.items()}

    def control_plane_pids() -> set[int]:
        """Host pids of etcd and the API server (their command lines name the cluster's state dir)."""
        pids = set()
        for entry in (e for e in os.listdir("/proc") if e.isdigit()):
            argv = proc_cmdline(int(entry))
            if any(str(c.state_dir) in a for a in argv) and \
                    (component_of(argv) == "apiserver" or argv[:1] == ["etcd"]):
                pids.add(int(entry))
        return pids

    before = static_facts()
    assert {"etcd-controlplane", "kube-apiserver-controlplane"} <= set(before), before
    processes_before = control_plane_pids()
    assert processes_before
    old = _kubelet_pids(c, "controlplane")
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    c.wait_for("a new kubelet of controlplane", lambda: [p for p in _kubelet_pids(c, "controlplane") if p not in old],
               timeout=10, interval=0.1)
    # The API answers all along (its process was never stopped).
    for _ in range(10):
        assert c.kubectl("get", "--raw", "/readyz", timeout=10).stdout.strip() == "ok"
        time.sleep(0.3)
    time.sleep(3.0)  # the new kubelet has synced its static pods (a restart would show by now)
    assert control_plane_pids() == processes_before
    assert static_facts() == before
