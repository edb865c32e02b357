"""knet controller-manager + knet scheduler against the real `knet apiserver`, observed with the
real kubectl: node podCIDRs, Deployments/ReplicaSets/pods spread over nodes, EndpointSlices that
follow readiness, scale, pod deletion, DaemonSets, FailedScheduling, and convergence after the
controller-manager and scheduler are killed and restarted.

There is no kubelet here: the test itself plays the node agents' part (it marks pods bound to
its nodes Running/Ready with an address from the node's podCIDR, and can stop doing so), which
is exactly the API traffic a kubelet produces.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest
from node_agents import wait_for

pytestmark = pytest.mark.api

NODES = ("ctl-cp", "ctl-node01", "ctl-node02")
# A restarted (kill -9) component waits for its predecessor's lease to expire, as upstream does;
# short leases keep that wait short here.
FAST_LEASE = ("--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s",
              "--leader-elect-retry-period=1s")
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True,
                              text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def create(self, *generator: str) -> None:
        """`kubectl create deployment ...` / `kubectl run ...` exactly as a user types them."""
        self(*generator)

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "-o", "json").stdout)


class Component:
    """A knet control-plane process with its log in a file (shown when a test fails)."""

    def __init__(self, argv: list[str], log_path: str) -> None:
        self.argv, self.log_path = argv, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 -- owned by the child process
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class FakeNodeAgents:
    """Plays the kubelets of NODES through the API: node status heartbeats and pod status."""

    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import client, config
        api_client = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.stopped_nodes: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._ip_seq: dict[str, int] = {}

    def register_nodes(self) -> None:
        for name in NODES:
            body = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
                    "spec": {"taints": [CP_TAINT]} if name == "ctl-cp" else {}}
            self.core.create_node(body)
            self._post_node_status(name)

    def _post_node_status(self, name: str) -> None:
        from kubernetes import client
        node = self.core.read_node_status(name)
        stamp = datetime.now(UTC)
        resources = {"cpu": "2", "memory": "4Gi", "pods": "110"}
        node.status = client.V1NodeStatus(
            conditions=[client.V1NodeCondition(type="Ready", status="True", reason="KubeletReady",
                                               message="kubelet is posting ready status",
                                               last_heartbeat_time=stamp, last_transition_time=stamp)],
            allocatable=resources, capacity=resources)
        self.core.replace_node_status(name, node)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 -- conflicts and races: next tick retries
                pass

    def _renew_leases(self) -> None:
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for name in NODES:
            if name in self.stopped_nodes:
                continue
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}}
            try:
                self.coordination.patch_namespaced_lease(name, "kube-node-lease", {"spec": body["spec"]})
            except Exception:  # noqa: BLE001 -- first time: create it
                self.coordination.create_namespaced_lease("kube-node-lease", body)

    def _tick(self) -> None:
        self._renew_leases()
        pods = self.core.list_pod_for_all_namespaces().items
        for pod in pods:
            node = pod.spec.node_name
            if node not in NODES or node in self.stopped_nodes or pod.metadata.deletion_timestamp:
                continue
            if pod.status.phase == "Running":
                continue
            cidr = self.core.read_node(node).spec.pod_cidr
            if not cidr:
                continue
            seq = self._ip_seq[node] = self._ip_seq.get(node, 1) + 1
            ip = str(ipaddress.ip_network(cidr)[seq])
            body = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.0.2.1",
                               "startTime": now(),
                               "conditions": [{"type": t, "status": "True", "lastTransitionTime": now()}
                                              for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}}
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
        # pods being deleted on our nodes: the "kubelet" confirms the deletion
        for pod in pods:
            if pod.spec.node_name in NODES and pod.metadata.deletion_timestamp:
                self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ctl_apiserver(tmp_path_factory):
    """A `knet apiserver` of our own (in-memory storage) with an admin kubeconfig."""
    from knet.cluster.pki import create_control_plane_pki, write_client_kubeconfig

    root = tmp_path_factory.mktemp("ctl-apiserver")
    pki = create_control_plane_pki(root / "pki")
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    kubeconfig = write_client_kubeconfig(root / "admin.conf", pki.ca(), server=server, user="kubernetes-admin",
                                         groups=["system:masters"])
    log = open(root / "apiserver.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["knet", "apiserver", "--bind-address=127.0.0.1", f"--secure-port={port}", "--storage=memory:",
         "--advertise-address=127.0.0.1", "--service-cluster-ip-range=10.96.0.0/12",
         f"--tls-cert-file={pki.apiserver_crt}", f"--tls-private-key-file={pki.apiserver_key}",
         f"--client-ca-file={pki.ca_crt}", f"--service-account-key-file={pki.sa_pub}",
         f"--service-account-signing-key-file={pki.sa_key}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        kubectl = Kubectl(str(kubeconfig))
        wait_for("the apiserver", lambda: proc.poll() is None and kubectl("get", "--raw", "/readyz", check=False)
                 .returncode == 0, timeout=30)
        yield kubeconfig
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(2)  # in-memory storage: nothing to flush; open watches can delay a clean exit
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def cluster(ctl_apiserver, tmp_path_factory):
    logs = tmp_path_factory.mktemp("controlplane")
    kubeconfig = str(ctl_apiserver)
    knet = ["knet"]
    cm = Component([*knet, "controller-manager", "--allocate-node-cidrs=true", f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
                    "--cluster-cidr=10.244.0.0/16", "--cluster-name=kubernetes",
                    "--controllers=*,bootstrapsigner,tokencleaner", "--leader-elect=true",
                    "--node-cidr-mask-size=24", "--service-cluster-ip-range=10.96.0.0/12",
                    "--use-service-account-credentials=true", "--node-monitor-grace-period=4s",
                    "--node-monitor-period=1s", f"--root-ca-file={ctl_apiserver.parent / 'pki' / 'ca.crt'}",
                    *FAST_LEASE], str(logs / "controller-manager.log"))
    sched = Component([*knet, "scheduler", f"--kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
                       "--leader-elect=true", *FAST_LEASE], str(logs / "scheduler.log"))
    agents = FakeNodeAgents(kubeconfig)
    kubectl = Kubectl(kubeconfig)
    try:
        agents.register_nodes()
        cm.start()
        sched.start()
        agents.start()
        yield {"kubectl": kubectl, "cm": cm, "sched": sched, "agents": agents, "logs": logs}
    finally:
        agents.stop()
        cm.stop()
        sched.stop()
        for name in NODES:
            kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
        for log in ("controller-manager.log", "scheduler.log"):
            path = logs / log
            if path.exists():
                sys.stderr.write(f"--- {log} (tail) ---\n{path.read_text()[-3000:]}\n")


@pytest.fixture
def ns(cluster):
    name = f"ctl-{uuid.uuid4().hex[:6]}"
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    subprocess.run(["kubectl", f"--kubeconfig={cluster['kubectl'].kubeconfig}", "create", "-f", "-"],
                   input=manifest, text=True, check=True, capture_output=True)
    yield name
    cluster["kubectl"]("delete", "namespace", name, "--wait=false", check=False)


def ready_ips(kubectl, ns, svc):
    slices = kubectl.json("get", "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={svc}")["items"]
    return sorted(a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready")
                  for a in e["addresses"])


def web_pods(kubectl, ns):
    return [p for p in kubectl.json("get", "pods", "-n", ns, "-l", "app=web")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def test_nodes_get_distinct_pod_cidrs(cluster):
    kubectl = cluster["kubectl"]

    def cidrs():
        got = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in kubectl.json("get", "nodes")["items"]
               if n["metadata"]["name"] in NODES}
        return got if all(got.values()) and len(got) == 3 else None

    got = wait_for("podCIDRs", cidrs)
    assert len(set(got.values())) == 3
    assert all(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network("10.244.0.0/16"))
               and c.endswith("/24") for c in got.values())


def test_components_hold_their_leases(cluster):
    kubectl = cluster["kubectl"]

    def holders():
        leases = kubectl.json("get", "leases", "-n", "kube-system")["items"]
        return {lease["metadata"]["name"]: lease["spec"].get("holderIdentity") for lease in leases}

    got = wait_for("both leases held", lambda: (h := holders()) and h.get("kube-controller-manager")
                   and h.get("kube-scheduler") and h)
    assert all("_" in got[n] for n in ("kube-controller-manager", "kube-scheduler"))  # HOSTNAME_UUID


def test_default_serviceaccount_and_root_ca_appear(cluster, ns, ctl_apiserver):
    kubectl = cluster["kubectl"]
    wait_for("default serviceaccount", lambda: kubectl("get", "sa", "default", "-n", ns, check=False)
             .returncode == 0)
    ca = wait_for("kube-root-ca.crt", lambda: kubectl.json("get", "configmap", "kube-root-ca.crt", "-n", ns))
    assert ca["data"]["ca.crt"] == (ctl_apiserver.parent / "pki" / "ca.crt").read_text()


def test_deployment_expose_scale_delete_and_restart_converge(cluster, ns):
    kubectl = cluster["kubectl"]
    kubectl.create("create", "deployment", "web", "--image=registry.k8s.io/e2e-test-images/agnhost:2.39",
            "--replicas=3", "-n", ns)
    kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    pods = web_pods(kubectl, ns)
    assert len(pods) == 3
    assert {p["spec"]["nodeName"] for p in pods} == {"ctl-node01", "ctl-node02"}  # spread, not the control plane
    rs = kubectl.json("get", "rs", "-n", ns)["items"][0]
    assert all(p["metadata"]["labels"]["pod-template-hash"] == rs["metadata"]["labels"]["pod-template-hash"]
               for p in pods)
    table = kubectl("get", "deploy", "web", "-n", ns).stdout
    assert table.split("\n")[1].split()[1:4] == ["3/3", "3", "3"], table
    ips = sorted(p["status"]["podIP"] for p in web_pods(kubectl, ns))
    wait_for("3 ready endpoints", lambda: ready_ips(kubectl, ns, "web") == ips)
    describe = kubectl("describe", "svc", "web", "-n", ns).stdout
    assert "Endpoints:" in describe and ips[0] in describe

    kubectl("scale", "deployment", "web", "--replicas=5", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    wait_for("5 ready endpoints", lambda: len(ready_ips(kubectl, ns, "web")) == 5)

    victim = web_pods(kubectl, ns)[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
    wait_for("a replacement", lambda: len(web_pods(kubectl, ns)) == 5
             and victim not in {p["metadata"]["name"] for p in web_pods(kubectl, ns)}
             and len(ready_ips(kubectl, ns, "web")) == 5)

    # kill both control-plane components; change the world; restart; everything converges again
    cluster["cm"].kill()
    cluster["sched"].kill()
    kubectl("scale", "deployment", "web", "--replicas=2", "-n", ns)
    cluster["cm"].start()
    cluster["sched"].start()
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    wait_for("2 pods and 2 endpoints", lambda: len(web_pods(kubectl, ns)) == 2
             and sorted(p["status"].get("podIP") for p in web_pods(kubectl, ns)) == ready_ips(kubectl, ns, "web"))
    assert len(kubectl.json("get", "rs", "-n", ns)["items"]) == 1  # no duplicate ReplicaSet after restart


def test_rolling_update_replaces_every_pod(cluster, ns):
    kubectl = cluster["kubectl"]
    kubectl.create("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    before = {p["metadata"]["name"] for p in web_pods(kubectl, ns)}
    kubectl("set", "image", "deployment/web", "nginx=httpd", "-n", ns)
    # as `kubectl annotate … kubernetes.io/change-cause=…` after a change: the controller copies
    # the annotation to the new ReplicaSet, which `rollout history` reads
    kubectl("annotate", "deployment/web", "kubernetes.io/change-cause=image httpd", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    after = web_pods(kubectl, ns)
    assert len(after) == 2 and not before & {p["metadata"]["name"] for p in after}
    assert {p["spec"]["containers"][0]["image"] for p in after} == {"httpd"}
    history = wait_for("the change cause in the history", lambda: (lambda out: out if "image httpd" in out else None)(
        kubectl("rollout", "history", "deployment/web", "-n", ns).stdout))
    assert [line.split(None, 1) for line in history.splitlines()[2:] if line.strip()] == [
        ["1", "<none>"], ["2", "image httpd"]], history
    # undo goes back to the first ReplicaSet (no third one), which becomes revision 3
    kubectl("rollout", "undo", "deployment/web", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    wait_for("nginx pods again", lambda: {p["spec"]["containers"][0]["image"] for p in web_pods(kubectl, ns)}
             == {"nginx"} and len(web_pods(kubectl, ns)) == 2)
    rss = kubectl.json("get", "rs", "-n", ns)["items"]
    assert len(rss) == 2
    revisions = {r["spec"]["template"]["spec"]["containers"][0]["image"]:
                 r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for r in rss}
    assert revisions == {"nginx": "3", "httpd": "2"}


def test_unschedulable_pod_reports_failed_scheduling(cluster, ns):
    kubectl = cluster["kubectl"]
    kubectl.create("run", "picky", "--image=nginx", "-n", ns, "--overrides",
            json.dumps({"spec": {"nodeSelector": {"disk": "ssd"}}}))
    describe = wait_for("FailedScheduling", lambda: (out := kubectl("describe", "pod", "picky", "-n", ns).stdout)
                        and "FailedScheduling" in out and out)
    assert "0/3 nodes are available:" in describe
    assert "node(s) didn't match Pod's node affinity/selector" in describe
    pod = kubectl.json("get", "pod", "picky", "-n", ns)
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    kubectl("label", "node", "ctl-node02", "disk=ssd")
    try:
        bound = wait_for("binding after the label", lambda: kubectl.json("get", "pod", "picky", "-n", ns)["spec"]
                         .get("nodeName"))
        assert bound == "ctl-node02"
        events = kubectl("get", "events", "-n", ns, "--field-selector", "reason=Scheduled").stdout
        assert f"Successfully assigned {ns}/picky to ctl-node02" in events
    finally:
        kubectl("label", "node", "ctl-node02", "disk-")


def test_daemonset_one_pod_per_eligible_node(cluster, ns):
    kubectl = cluster["kubectl"]
    manifest = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": ns},
                "spec": {"selector": {"matchLabels": {"app": "agent"}},
                         "template": {"metadata": {"labels": {"app": "agent"}},
                                      "spec": {"containers": [{"name": "a", "image": "nginx"}]}}}}
    subprocess.run(["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "apply", "-f", "-"],
                   input=json.dumps(manifest), text=True, check=True, capture_output=True)

    def placed():
        pods = kubectl.json("get", "pods", "-n", ns, "-l", "app=agent")["items"]
        return sorted(p["spec"].get("nodeName") or "-" for p in pods)

    wait_for("a pod on each worker", lambda: placed() == ["ctl-node01", "ctl-node02"])  # cp is tainted
    name = kubectl.json("get", "pods", "-n", ns, "-l", "app=agent")["items"][0]["metadata"]["name"]
    assert re.search(r"Controlled By:\s+DaemonSet/agent\n", kubectl("describe", "pod", name, "-n", ns).stdout)
    wait_for("DESIRED/READY 2/2", lambda: kubectl.json("get", "ds", "agent", "-n", ns)["status"].get("numberReady") == 2)
    # a template change rolls every daemon pod, one node at a time
    before = {p["metadata"]["name"] for p in kubectl.json("get", "pods", "-n", ns, "-l", "app=agent")["items"]}
    kubectl("rollout", "restart", "ds/agent", "-n", ns)
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
    wait_for("all daemon pods replaced", lambda: (now := {
        p["metadata"]["name"] for p in kubectl.json("get", "pods", "-n", ns, "-l", "app=agent")["items"]
        if not p["metadata"].get("deletionTimestamp")}) and len(now) == 2 and not now & before)


def test_silent_node_goes_unknown_and_endpoints_not_ready(cluster, ns):
    kubectl = cluster["kubectl"]
    agents = cluster["agents"]
    kubectl.create("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
    kubectl("expose", "deployment", "web", "--port=80", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    wait_for("2 ready endpoints", lambda: len(ready_ips(kubectl, ns, "web")) == 2)
    on_node02 = [p["status"]["podIP"] for p in web_pods(kubectl, ns) if p["spec"]["nodeName"] == "ctl-node02"]
    agents.stopped_nodes.add("ctl-node02")  # its kubelet stops posting; grace period is 4s here
    try:
        def ready_status():
            node = kubectl.json("get", "node", "ctl-node02")
            return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")

        wait_for("Ready=Unknown", lambda: ready_status() == "Unknown")
        wait_for("its endpoints not ready", lambda: not set(on_node02) & set(ready_ips(kubectl, ns, "web")))
    finally:
        agents.stopped_nodes.discard("ctl-node02")
        agents._post_node_status("ctl-node02")


def test_stalled_rollout_exceeds_its_progress_deadline(cluster, ns):
    kubectl = cluster["kubectl"]
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": ns},
                "spec": {"replicas": 1, "progressDeadlineSeconds": 2, "selector": {"matchLabels": {"app": "stuck"}},
                         "template": {"metadata": {"labels": {"app": "stuck"}},
                                      "spec": {"nodeSelector": {"no-such": "node"},
                                               "containers": [{"name": "c", "image": "nginx"}]}}}}
    subprocess.run(["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "create", "-f", "-"],
                   input=json.dumps(manifest), text=True, check=True, capture_output=True)
    out = kubectl("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=20s", check=False)
    assert out.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in out.stderr


def test_relabelled_pod_leaves_its_replicaset(cluster, ns):
    kubectl = cluster["kubectl"]
    kubectl.create("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    victim = web_pods(kubectl, ns)[0]["metadata"]["name"]
    kubectl("label", "pod", victim, "-n", ns, "app=debug", "--overwrite")
    wait_for("a replacement", lambda: len(web_pods(kubectl, ns)) == 2
             and victim not in {p["metadata"]["name"] for p in web_pods(kubectl, ns)})
    wait_for("the quarantined pod orphaned", lambda: not kubectl.json("get", "pod", victim, "-n", ns)["metadata"]
             .get("ownerReferences"))


def test_drain_waits_on_a_pod_disruption_budget(cluster, ns):
    """As a CKA student drains a node: `kubectl drain` evicts through pods/eviction, which a
    PodDisruptionBudget refuses with 429 while no disruption is allowed (drain retries, then
    times out and the pods stay); once the budget allows one, the drain goes through."""
    kubectl = cluster["kubectl"]
    kubectl.create("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
    kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    kubectl("create", "pdb", "web", "--selector=app=web", "--min-available=2", "-n", ns)
    wait_for("the budget counted", lambda: (lambda s: s.get("currentHealthy") == 2 and s.get("expectedPods") == 2)(
        kubectl.json("get", "pdb", "web", "-n", ns).get("status") or {}))
    table = kubectl("get", "pdb", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert table[1].split()[:4] == ["web", "2", "N/A", "0"]
    before = web_pods(kubectl, ns)
    node = before[0]["spec"]["nodeName"]
    try:
        out = kubectl("drain", node, "--pod-selector=app=web", "--ignore-daemonsets", "--timeout=7s", check=False)
        assert out.returncode != 0, out.stdout
        assert "Cannot evict pod as it would violate the pod's disruption budget." in out.stderr, out.stderr
        assert {p["metadata"]["name"] for p in web_pods(kubectl, ns)} == {p["metadata"]["name"] for p in before}
        kubectl("patch", "pdb", "web", "-n", ns, "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
        wait_for("one disruption allowed", lambda: (kubectl.json("get", "pdb", "web", "-n", ns).get("status") or {})
                 .get("disruptionsAllowed") == 1)
        out = kubectl("drain", node, "--pod-selector=app=web", "--ignore-daemonsets", "--timeout=50s", check=False)
        assert out.returncode == 0, out.stderr
        assert "evicted" in out.stdout and f"node/{node} drained" in out.stdout, out.stdout
        wait_for("the web pods elsewhere", lambda: len(pods := web_pods(kubectl, ns)) == 2
                 and all(p["spec"].get("nodeName") not in (None, node) for p in pods), timeout=60)
    finally:
        kubectl("uncordon", node, check=False)


def test_replication_controller_as_older_tutorials_use_it(cluster, ns):
    """A v1 ReplicationController without a selector (defaulted from the template's labels)
    runs its pods, `kubectl get rc` shows upstream's columns and `kubectl scale rc` resizes it."""
    kubectl = cluster["kubectl"]
    manifest = json.dumps({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
                           "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                               "containers": [{"name": "nginx", "image": "nginx"}]}}}})
    subprocess.run(["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "create", "-n", ns, "-f", "-"], input=manifest,
                   text=True, check=True, capture_output=True)
    rc = kubectl.json("get", "rc", "web", "-n", ns)
    assert rc["spec"]["selector"] == {"app": "web"} and rc["metadata"]["labels"] == {"app": "web"}
    wait_for("two ready replicas", lambda: (kubectl.json("get", "rc", "web", "-n", ns).get("status") or {})
             .get("readyReplicas") == 2, timeout=60)
    table = kubectl("get", "rc", "-n", ns, "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert table[1].split()[:4] == ["web", "2", "2", "2"] and table[1].split()[-3:] == ["nginx", "nginx", "app=web"]
    kubectl("scale", "rc", "web", "--replicas=3", "-n", ns)
    wait_for("three web pods", lambda: len(web_pods(kubectl, ns)) == 3, timeout=60)
    assert {r["kind"] for p in web_pods(kubectl, ns) for r in p["metadata"]["ownerReferences"]} == {
        "ReplicationController"}
    mismatched = json.dumps({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "bad"},
                             "spec": {"replicas": 1, "selector": {"app": "web"}, "template": {
                                 "metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}})
    bad = subprocess.run(["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "create", "-n", ns, "-f", "-"],
                         input=mismatched, text=True, capture_output=True)
    assert bad.returncode == 1 and "spec.template.metadata.labels: Invalid value" in bad.stderr, bad.stderr
