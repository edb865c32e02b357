"""`knet kubelet --dataplane=sim` against a real knet apiserver, driven by the real kubectl:
node registration, lease, pod lifecycle and status, graceful deletion, static pods run as host
processes with their mirror pods, logs through the apiserver, and many nodes in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import KNET  # noqa: E402

pytestmark = pytest.mark.api

STATIC = """
apiVersion: v1
kind: Pod
metadata: {name: ticker, namespace: kube-system, labels: {component: ticker}}
spec:
  hostNetwork: true
  containers:
  - name: ticker
    image: busybox
    command: ["sh", "-c", "echo tick $$$$; exec sleep 3600"]  # $$ is the escape of $ in k8s expansion
"""


def wait_for(check, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 -- poll until the deadline
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def sim_kubelet(apiserver, tmp_path_factory):
    root = tmp_path_factory.mktemp("simkubelet")
    manifests = root / "manifests"
    manifests.mkdir()
    (manifests / "ticker.yaml").write_text(STATIC)
    from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key

    # The apiserver verifies the kubelet's serving certificate against the cluster CA.
    crt, key = write_cert_key(root / "pki", "kubelet", issue_cert(
        load_cert_key(apiserver.pki_dir, "ca"), "simcp", dns_names=["simcp"], ip_addresses=["127.0.0.1"],
        server=True))
    log = open(root / "kubelet.log", "wb")
    main = subprocess.Popen([*KNET, "kubelet", "--hostname-override=simcp", "--node-ip=127.0.0.1",
                             f"--kubeconfig={apiserver.kubeconfig}", f"--root-dir={root / 'simcp'}",
                             f"--pod-manifest-path={manifests}", "--dataplane=sim", "--pod-cidr=10.244.9.0/24",
                             "--address=127.0.0.1", "--port=0", "--cluster-dns=10.96.0.10",
                             f"--tls-cert-file={crt}", f"--tls-private-key-file={key}",
                             f"--client-ca-file={apiserver.ca_file}",
                             "--node-labels=node-role.kubernetes.io/control-plane=",
                             "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule"],
                            stdout=log, stderr=log)
    many = subprocess.Popen([*KNET, "kubelet", "--dataplane=sim", "--sim-nodes=50", "--sim-node-prefix=simw-",
                             f"--kubeconfig={apiserver.kubeconfig}", f"--root-dir={root / 'workers'}",
                             "--pod-cidr=10.244.10.0/24", "--address=127.0.0.1", "--port=0"], stdout=log, stderr=log)
    try:
        wait_for(lambda: "Ready" in apiserver.kubectl("get", "node", "simcp").stdout, what="simcp Ready")
        yield {"root": root, "manifests": manifests, "main": main}
    finally:
        for proc in (main, many):
            proc.terminate()
        for proc in (main, many):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        apiserver.kubectl("delete", "nodes", "--all", "--wait=false")


def _json(apiserver, *args):
    return json.loads(apiserver.kubectl_ok(*args, "-o", "json"))


def test_node_registration_like_kubeadm(apiserver, sim_kubelet):
    out = apiserver.kubectl_ok("get", "node", "simcp", "-o", "wide")
    header, row = out.splitlines()
    cols = row.split()
    assert cols[:3] == ["simcp", "Ready", "control-plane"]
    assert "v1.29.0" in cols and "127.0.0.1" in cols and "knet://0.1.0" in row
    node = _json(apiserver, "get", "node", "simcp")
    assert node["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert {c["type"] for c in node["status"]["conditions"]} >= {"Ready", "MemoryPressure", "DiskPressure",
                                                                  "PIDPressure"}
    lease = _json(apiserver, "get", "lease", "simcp", "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "simcp" and lease["spec"]["leaseDurationSeconds"] == 40


def test_kubelet_restores_ready_when_someone_else_changed_it(apiserver, sim_kubelet):
    # The node lifecycle controller marks a node Unknown when its heartbeat came late; a live
    # kubelet posts its own Ready=True again at once, not at its next 5-minute status report.
    node = _json(apiserver, "get", "node", "simcp")
    conditions = [{**c, "status": "Unknown", "reason": "NodeStatusUnknown"} if c["type"] == "Ready" else c
                  for c in node["status"]["conditions"]]
    apiserver.kubectl_ok("patch", "node", "simcp", "--subresource=status", "--type=merge",
                         "-p", json.dumps({"status": {"conditions": conditions}}))

    def ready_again():
        got = _json(apiserver, "get", "node", "simcp")["status"]["conditions"]
        return next(c["status"] for c in got if c["type"] == "Ready") == "True"
    wait_for(ready_again, 15, "simcp Ready=True again")


def test_one_process_hosts_many_nodes(apiserver, sim_kubelet):
    def count():
        items = _json(apiserver, "get", "nodes")["items"]
        ready = [n for n in items if n["metadata"]["name"].startswith("simw-") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
        return len(ready) == 50 and ready
    nodes = wait_for(count, 20, "50 sim nodes Ready")
    endpoints = {n["metadata"]["annotations"]["knet.io/kubelet-endpoint"] for n in nodes}
    assert len(endpoints) == 1 and next(iter(endpoints)).startswith("127.0.0.1:")


def test_pod_lifecycle_status_and_graceful_delete(apiserver, sim_kubelet, namespace):
    apiserver.kubectl_ok("run", "web", "-n", namespace, "--image=nginx", "--overrides",
                         json.dumps({"spec": {"nodeName": "simw-0007"}}))

    def running():
        pod = _json(apiserver, "get", "pod", "web", "-n", namespace)
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(running, what="pod Running")
    st = pod["status"]
    assert st["podIP"].startswith("10.244.10.") and st["hostIP"] == "172.31.0.8"
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True", "ContainersReady": "True",
        "PodScheduled": "True"}
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0 and "running" in cs["state"]
    assert cs["containerID"].startswith("knet://") and cs["imageID"]
    assert st["startTime"]
    reasons = wait_for(lambda: (lambda r: r if {"Pulled", "Created", "Started"} <= r else None)(
        {e["reason"] for e in _json(apiserver, "get", "events", "-n", namespace)["items"]}), what="events")
    assert {"Pulled", "Created", "Started"} <= reasons
    t0 = time.monotonic()
    apiserver.kubectl_ok("delete", "pod", "web", "-n", namespace, "--wait=true", timeout=30)
    assert time.monotonic() - t0 < 10


def test_static_pod_runs_as_host_process_with_mirror_and_logs(apiserver, sim_kubelet):
    def mirror():
        pod = _json(apiserver, "get", "pod", "ticker-simcp", "-n", "kube-system")
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(mirror, 20, "mirror pod Running")
    assert "kubernetes.io/config.mirror" in pod["metadata"]["annotations"]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert pod["status"]["podIP"] == "127.0.0.1"
    logs = wait_for(lambda: apiserver.kubectl_ok("logs", "-n", "kube-system", "ticker-simcp"), what="logs")
    pid = int(logs.split()[1])
    # deleting the mirror pod does not stop the static pod: the kubelet re-creates the mirror
    uid = pod["metadata"]["uid"]
    apiserver.kubectl_ok("delete", "pod", "ticker-simcp", "-n", "kube-system", "--wait=false")
    wait_for(lambda: _json(apiserver, "get", "pod", "ticker-simcp", "-n", "kube-system")["metadata"]["uid"] != uid,
             20, "mirror re-created")
    assert Path(f"/proc/{pid}").exists()
    # killing the static pod's process: restarted, counted on the mirror pod
    subprocess.run(["kill", str(pid)], check=True)

    def restarted():
        p = _json(apiserver, "get", "pod", "ticker-simcp", "-n", "kube-system")
        cs = p["status"].get("containerStatuses") or [{}]
        return cs[0].get("restartCount", 0) >= 1 and "running" in cs[0].get("state", {})

    wait_for(restarted, 20, "static pod restarted")
    prev = apiserver.kubectl_ok("logs", "-n", "kube-system", "ticker-simcp", "--previous")
    assert prev.strip() == f"tick {pid}"


def test_env_from_a_config_map_created_after_the_pod(apiserver, sim_kubelet, namespace):
    # Issue #13: a simulated node never read a container's ConfigMaps (CreateContainerConfigError
    # while the ConfigMap existed). The kubelet reads them again at every start attempt.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late-config", "namespace": namespace},
           "spec": {"nodeName": "simw-0011", "containers": [{
               "name": "app", "image": "busybox", "command": ["sleep", "3600"],
               "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}}}],
               "envFrom": [{"secretRef": {"name": "app-secret"}}]}]}}
    apiserver.kubectl_ok("apply", "-f", "-", input=json.dumps(pod))

    def waiting():
        cs = (_json(apiserver, "get", "pod", "late-config", "-n", namespace)["status"].get("containerStatuses")
              or [{}])[0]
        return (cs.get("state") or {}).get("waiting")

    state = wait_for(lambda: (lambda w: w if w and w.get("reason") == "CreateContainerConfigError" else None)(
        waiting()), what="CreateContainerConfigError")
    # envFrom is resolved before env (makeEnvironmentVariables), so the Secret is missed first.
    assert state["message"] == 'secret "app-secret" not found'
    apiserver.kubectl_ok("create", "secret", "generic", "app-secret", "-n", namespace, "--from-literal=TOKEN=t")
    wait_for(lambda: (waiting() or {}).get("message") == 'configmap "app-config" not found',
             what="the ConfigMap missing")
    apiserver.kubectl_ok("create", "configmap", "app-config", "-n", namespace, "--from-literal=other=1")
    wait_for(lambda: (waiting() or {}).get("message") == "couldn't find key mode in ConfigMap "
             f"{namespace}/app-config", what="the missing key reported")
    apiserver.kubectl_ok("patch", "configmap", "app-config", "-n", namespace, "--type=merge",
                         "-p", json.dumps({"data": {"mode": "blue"}}))

    def running():
        p = _json(apiserver, "get", "pod", "late-config", "-n", namespace)
        return p["status"].get("phase") == "Running" and p
    p = wait_for(running, 10, "Running once the ConfigMap and Secret exist")
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    events = [e["message"] for e in _json(apiserver, "get", "events", "-n", namespace,
                                          "--field-selector", "involvedObject.name=late-config")["items"]]
    assert 'Error: configmap "app-config" not found' in events
