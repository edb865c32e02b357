"""Requests and limits as cgroups on a real 3-node `knet up` cluster (session fixture
`knet_cluster`): the kernel OOM-kills a container over its memory limit (OOMKilled, 137,
restarted), a 100m CPU limit holds a busy loop near a tenth of a core, and `kubectl top` (the
metrics.k8s.io API fed by the kubelets' /stats/summary) follows a busy pod, also for a user who
only holds `view`."""

from __future__ import annotations

import json
import re
import time

import pytest

from knet.node import cgroups

from .cluster_namespaces import cluster_namespace, wait_running

pytestmark = pytest.mark.e2e

BUSY = ["python3", "-c", "while True: pass"]
IDLE = ["sleep", "3600"]


def _pod(name: str, ns: str, command: list[str], resources: dict, node: str = "node01") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                       "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [
                           {"name": "main", "image": "python:3.12-slim", "command": command,
                            "resources": resources}]}})


def _get(cluster, ns: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def _pod_cgroup(cluster, pod: dict) -> str:
    return cgroups.pod_cgroup(cgroups.cgroup_root(cluster.name, pod["spec"]["nodeName"]), pod)


def test_memory_limit_oom_kills_and_restarts(knet_cluster):
    with cluster_namespace(knet_cluster, "res-oom") as ns:
        # 256 MiB of touched pages against a 64 MiB limit: the kernel's OOM killer ends it.
        hog = ["python3", "-c", "x = b'x' * (256 << 20); import time; time.sleep(600)"]
        knet_cluster.kubectl("apply", "-f", "-", input=_pod("hog", ns, hog, {"limits": {"memory": "64Mi"}}))

        def oom_restarted():
            status = (_get(knet_cluster, ns, "hog")["status"].get("containerStatuses") or [{}])[0]
            last = (status.get("lastState") or {}).get("terminated") or {}
            return status.get("restartCount", 0) >= 1 and last.get("reason") == "OOMKilled" and status
        status = knet_cluster.wait_for("hog OOMKilled and restarted", oom_restarted, timeout=60, interval=0.5)
        assert status["lastState"]["terminated"]["exitCode"] == 137
        described = knet_cluster.kubectl("describe", "pod", "hog", "-n", ns).stdout
        assert re.search(r"Last State:\s+Terminated\n\s+Reason:\s+OOMKilled\n\s+Exit Code:\s+137", described), described
        pod = _get(knet_cluster, ns, "hog")
        assert pod["status"]["qosClass"] == "Burstable"
        driver = cgroups.detect()
        path = _pod_cgroup(knet_cluster, pod)
        assert "/kubepods/burstable/pod" in path
        limit_file = ("memory/" + path.strip("/") + "/memory.limit_in_bytes" if driver.version == 1
                      else path.strip("/") + "/memory.max")
        root = "/sys/fs/cgroup/"
        assert open(root + limit_file).read().strip() == str(64 << 20)  # the pod cgroup's limit too


def test_cpu_limit_holds_a_busy_loop_near_a_tenth_of_a_core(knet_cluster):
    with cluster_namespace(knet_cluster, "res-cpu") as ns:
        knet_cluster.kubectl("apply", "-f", "-", input=_pod("spin", ns, BUSY, {"limits": {"cpu": "100m"}}))
        wait_running(knet_cluster, ns, "spin")
        driver = cgroups.detect()
        assert driver is not None
        path = _pod_cgroup(knet_cluster, _get(knet_cluster, ns, "spin"))
        first, t0 = driver.usage(path), time.monotonic()
        time.sleep(4)
        second, t1 = driver.usage(path), time.monotonic()
        cores = (second.cpu_ns - first.cpu_ns) / 1e9 / (t1 - t0)
        assert 0.05 <= cores <= 0.2, f"a 100m limit let the loop use {cores:.3f} cores"


def _top_pods(cluster, *args: str) -> dict[str, tuple[int, int]]:
    """`kubectl top pod` rows: name -> (millicores, MiB)."""
    out = cluster.kubectl("top", "pod", *args, check=False)
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        cols = line.split()
        m = re.fullmatch(r"(\d+)m", cols[-2]), re.fullmatch(r"(\d+)Mi", cols[-1])
        if m[0] and m[1]:
            rows[cols[-3]] = (int(m[0].group(1)), int(m[1].group(1)))
    return rows


def test_kubectl_top_follows_a_busy_pod(knet_cluster):
    with cluster_namespace(knet_cluster, "res-top") as ns:
        # Busy, and holding 48 MiB it allocates after starting.
        busy = ["python3", "-c", "x = b'x' * (48 << 20)\nwhile True: pass"]
        knet_cluster.kubectl("apply", "-f", "-", input=_pod("busy", ns, busy, {"limits": {"cpu": "200m"}}))
        knet_cluster.kubectl("apply", "-f", "-", input=_pod("idle", ns, IDLE, {"requests": {"cpu": "10m"}}))
        wait_running(knet_cluster, ns, "busy")
        wait_running(knet_cluster, ns, "idle")
        # Two scrapes (15 s apart, as metrics-server) before a pod has a CPU rate.
        rows = knet_cluster.wait_for("kubectl top pod lists both pods",
                                     lambda: (r := _top_pods(knet_cluster, "-n", ns)) and len(r) == 2 and r,
                                     timeout=60, interval=2)
        assert 120 <= rows["busy"][0] <= 230, rows   # held by its 200m limit, busy all the time
        assert rows["idle"][0] <= 20, rows
        assert 45 <= rows["busy"][1] <= 100, rows    # its 48 MiB (and a little more) as working set

        everywhere = knet_cluster.kubectl("top", "pods", "-A").stdout
        assert re.search(rf"^{ns}\s+busy\s+\d+m\s+\d+Mi\s*$", everywhere, re.M), everywhere
        assert re.search(r"^kube-system\s+kube-apiserver-controlplane\s+\d+m\s+\d+Mi\s*$", everywhere, re.M), everywhere

        containers = knet_cluster.kubectl("top", "pod", "busy", "-n", ns, "--containers").stdout
        assert re.search(r"^POD\s+NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)", containers), containers
        assert re.search(r"^busy\s+main\s+\d+m\s+\d+Mi\s*$", containers, re.M), containers

        nodes = knet_cluster.kubectl("top", "nodes").stdout
        assert re.match(r"NAME\s+CPU\(cores\)\s+CPU(\(%\))?%?\s+MEMORY\(bytes\)\s+MEMORY(\(%\))?%?", nodes), nodes
        node01 = re.search(r"^node01\s+(\d+)m\s+(\d+)%\s+(\d+)Mi\s+(\d+)%\s*$", nodes, re.M)
        assert node01 and int(node01.group(1)) >= 120, nodes   # the busy pod runs there

        # A user holding `view` in the namespace reads its pods' metrics (metrics-server's
        # aggregated-metrics-reader role), and not the nodes' (cluster-scoped).
        knet_cluster.kubectl("create", "rolebinding", "viewer", "-n", ns, "--clusterrole=view", "--user=viewer")
        viewer = knet_cluster.wait_for("view aggregates metrics.k8s.io", lambda: _top_pods(
            knet_cluster, "-n", ns, "--as=viewer"), timeout=20, interval=0.5)
        assert set(viewer) == {"busy", "idle"}
        refused = knet_cluster.kubectl("top", "nodes", "--as=viewer", check=False)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
        refused = knet_cluster.kubectl("top", "pods", "-n", "kube-system", "--as=viewer", check=False)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr


def _kubelet_get(cluster, node: str, path: str, cert: str | None) -> tuple[int, str]:
    import ssl
    import urllib.error
    import urllib.request

    pki = cluster.state_dir / cluster.name / "pki"
    ip = cluster.kubectl("get", "node", node, "-o", "jsonpath={.status.addresses[?(@.type=='InternalIP')].address}").stdout
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    try:
        with urllib.request.urlopen(f"https://{ip}:10250{path}", context=ctx, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_kubelet_stats_summary_and_metrics_api_shapes(knet_cluster):
    """/stats/summary on the kubelet's port (nodes/stats: the apiserver's kubelet client may, an
    anonymous caller may not), and the NodeMetrics the apiserver serves from it."""
    code, body = _kubelet_get(knet_cluster, "node01", "/stats/summary", "apiserver-kubelet-client")
    assert code == 200, body
    summary = json.loads(body)
    node = summary["node"]
    assert node["nodeName"] == "node01"
    assert node["cpu"]["usageCoreNanoSeconds"] > 0 and node["memory"]["workingSetBytes"] > 0
    proxy = next(p for p in summary["pods"] if p["podRef"]["namespace"] == "kube-system"
                 and p["podRef"]["name"].startswith("kube-proxy-"))
    assert proxy["containers"][0]["name"] == "kube-proxy"
    assert proxy["containers"][0]["memory"]["workingSetBytes"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", proxy["cpu"]["time"])
    code, body = _kubelet_get(knet_cluster, "node01", "/stats/summary", None)
    assert code == 401, body

    def node_metrics():
        out = knet_cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/node01", check=False)
        return out.returncode == 0 and json.loads(out.stdout)
    metrics = knet_cluster.wait_for("NodeMetrics of node01", node_metrics, timeout=40, interval=1)
    assert metrics["kind"] == "NodeMetrics" and metrics["metadata"]["name"] == "node01"
    assert re.fullmatch(r"\d+(n|u|m)?", metrics["usage"]["cpu"]), metrics
    assert re.fullmatch(r"\d+(Ki|Mi|Gi)?", metrics["usage"]["memory"]), metrics
    assert re.fullmatch(r"\d+(\.\d+)?s", metrics["window"]), metrics
    missing = knet_cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
                                   check=False)
    assert 'podmetrics.metrics.k8s.io \"default/nope\" not found' in missing.stderr or \
        "not found" in missing.stderr, missing.stderr
