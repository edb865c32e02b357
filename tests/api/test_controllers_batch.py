"""The job and ttl-after-finished controllers in `knet controller-manager`, with `knet scheduler`,
against a real `knet apiserver`, observed with the real kubectl and a watch: a Job with
completions 5 / parallelism 2 runs five pods never more than two at a time; a failing Job backs
off (10 s) and fails at its backoffLimit; ttlSecondsAfterFinished deletes a finished Job and
its pods; `kubectl delete job` takes the running pods (and their tracking finalizer) with it.

As in test_controllers_cluster.py there is no kubelet: the test plays the node agents, and runs
each pod's command the way a shell would end it -- `exit N` fails with code N, `sleep` keeps
running, anything else succeeds -- which is the API traffic a kubelet produces.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from node_agents import wait_for
from test_controllers_cluster import (  # noqa: F401 -- ctl_apiserver is a fixture used here
    FAST_LEASE,
    NODES,
    Component,
    FakeNodeAgents,
    Kubectl,
    ctl_apiserver,
)

pytestmark = pytest.mark.api
RUN_FOR = 0.6  # seconds a finishing pod runs


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobNodeAgents(FakeNodeAgents):
    """Node agents whose pods end: Running first, then Succeeded or Failed with an exit code."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(kubeconfig)
        self.started: dict[str, float] = {}

    def _tick(self) -> None:
        self._renew_leases()
        for pod in self.core.list_pod_for_all_namespaces().items:
            node, meta = pod.spec.node_name, pod.metadata
            if node not in NODES:
                continue
            if meta.deletion_timestamp:
                if pod.status.phase not in ("Succeeded", "Failed"):
                    self.core.delete_namespaced_pod(meta.name, meta.namespace, grace_period_seconds=0)
                continue
            if pod.status.phase in ("Succeeded", "Failed"):
                continue
            container = pod.spec.containers[0]
            script = " ".join((container.command or []) + (container.args or []))
            if pod.status.phase != "Running":
                self.started[meta.uid] = time.monotonic()
                self.core.patch_namespaced_pod_status(meta.name, meta.namespace, {"status": {
                    "phase": "Running", "startTime": now(), "podIP": "10.244.1.10", "podIPs": [{"ip": "10.244.1.10"}],
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": now()}
                                   for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                    "containerStatuses": [{"name": container.name, "image": container.image, "imageID": "",
                                           "ready": True, "restartCount": 0, "started": True,
                                           "state": {"running": {"startedAt": now()}}}]}})
                continue
            if "sleep" in script or time.monotonic() - self.started.get(meta.uid, 0) < RUN_FOR:
                continue
            code = int(script.split("exit ", 1)[1].split()[0]) if "exit " in script else 0
            self.core.patch_namespaced_pod_status(meta.name, meta.namespace, {"status": {
                "phase": "Succeeded" if code == 0 else "Failed",
                "conditions": [{"type": t, "status": "False", "lastTransitionTime": now(), "reason": "PodCompleted"}
                               for t in ("ContainersReady", "Ready")],
                "containerStatuses": [{"name": container.name, "image": container.image, "imageID": "",
                                       "ready": False, "restartCount": 0, "started": False,
                                       "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0
                                                                else "Error", "startedAt": now(),
                                                                "finishedAt": now()}}}]}})


@pytest.fixture(scope="module")
def batch_cluster(ctl_apiserver, tmp_path_factory):  # noqa: F811
    logs = tmp_path_factory.mktemp("batch-controlplane")
    kubeconfig = str(ctl_apiserver)
    cm = Component(["knet", "controller-manager", "--allocate-node-cidrs=true", f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
                    "--cluster-cidr=10.244.0.0/16", "--controllers=*", "--leader-elect=true",
                    "--node-cidr-mask-size=24", "--service-cluster-ip-range=10.96.0.0/12",
                    "--use-service-account-credentials=true", *FAST_LEASE], str(logs / "controller-manager.log"))
    sched = Component(["knet", "scheduler", f"--kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
                       "--leader-elect=true", *FAST_LEASE], str(logs / "scheduler.log"))
    agents = JobNodeAgents(kubeconfig)
    kubectl = Kubectl(kubeconfig)
    try:
        agents.register_nodes()
        cm.start()
        sched.start()
        agents.start()
        yield {"kubectl": kubectl, "agents": agents, "logs": logs}
    finally:
        agents.stop()
        cm.stop()
        sched.stop()
        for name in NODES:
            kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
        for log in ("controller-manager.log", "scheduler.log"):
            path = logs / log
            if path.exists():
                print(f"--- {log} (tail) ---\n{path.read_text()[-3000:]}")


@pytest.fixture
def ns(batch_cluster):
    name = f"batch-{uuid.uuid4().hex[:6]}"
    batch_cluster["kubectl"]("create", "namespace", name)
    yield name
    batch_cluster["kubectl"]("delete", "namespace", name, "--wait=false", check=False)


class PodWatch:
    """Every pod event of a namespace from now on (a watch from the list's resourceVersion)."""

    def __init__(self, kubeconfig: str, ns: str) -> None:
        from kubernetes import client, config, watch
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.ns, self.events, self._watch = ns, [], watch.Watch()
        rv = self.core.list_namespaced_pod(ns).metadata.resource_version
        self._thread = threading.Thread(target=self._run, args=(rv,), daemon=True)
        self._thread.start()

    def _run(self, rv: str) -> None:
        try:
            for ev in self._watch.stream(self.core.list_namespaced_pod, self.ns, resource_version=rv,
                                         timeout_seconds=120):
                self.events.append((ev["type"], ev["object"]))
        except Exception:  # noqa: BLE001 -- stop() closes the stream under it
            if not self.stopped:
                raise

    stopped = False

    def stop(self) -> None:
        self.stopped = True
        self._watch.stop()

    def pods_seen(self) -> set[str]:
        return {pod.metadata.name for _, pod in self.events}

    def most_running_at_once(self) -> int:
        live: set[str] = set()
        most = 0
        for etype, pod in list(self.events):
            if etype == "DELETED" or pod.status.phase in ("Succeeded", "Failed") or pod.metadata.deletion_timestamp:
                live.discard(pod.metadata.name)
            else:
                live.add(pod.metadata.name)
            most = max(most, len(live))
        return most


def job_json(kubectl, ns: str, name: str) -> dict:
    return kubectl.json("get", "job", name, "-n", ns)


def conditions(job: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in (job.get("status") or {}).get("conditions") or []}


def apply(kubectl, ns: str, manifest: dict) -> None:
    subprocess.run(["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "apply", "-n", ns, "-f", "-"],
                   input=json.dumps(manifest), text=True, check=True, capture_output=True)


def job_manifest(name: str, script: str, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "work", "image": "busybox", "command": ["sh", "-c", script]}]}}}}


def test_completions_5_parallelism_2(batch_cluster, ns):
    kubectl = batch_cluster["kubectl"]
    watch = PodWatch(kubectl.kubeconfig, ns)
    try:
        apply(kubectl, ns, job_manifest("five", "echo done", completions=5, parallelism=2))
        job = wait_for("Complete", lambda: (j := job_json(kubectl, ns, "five")) and
                       conditions(j).get("Complete") == ("True", "CompletionsReached") and j, timeout=90)
    finally:
        watch.stop()
    assert job["status"]["succeeded"] == 5 and job["status"].get("failed", 0) == 0
    assert conditions(job)["SuccessCriteriaMet"] == ("True", "CompletionsReached")
    pods = kubectl.json("get", "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=five")["items"]
    assert len(pods) == 5 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or []) for p in pods)
    assert {p["spec"]["nodeName"] for p in pods} <= {"ctl-node01", "ctl-node02"}
    assert watch.pods_seen() == {p["metadata"]["name"] for p in pods}  # the watch saw every pod's life
    assert watch.most_running_at_once() == 2
    row = kubectl("get", "job", "five", "-n", ns).stdout.splitlines()[1].split()
    assert row[:3] == ["five", "Complete", "5/5"]
    events = kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=five").stdout
    assert "SuccessfulCreate" in events and "Completed" in events


def test_failing_job_backs_off_and_fails_at_backoff_limit(batch_cluster, ns):
    kubectl = batch_cluster["kubectl"]
    apply(kubectl, ns, job_manifest("doomed", "exit 1", backoffLimit=1))
    job = wait_for("Failed", lambda: (j := job_json(kubectl, ns, "doomed")) and
                   conditions(j).get("Failed") == ("True", "BackoffLimitExceeded") and j, timeout=90)
    assert job["status"]["failed"] == 2 and "completionTime" not in job["status"]
    assert conditions(job)["FailureTarget"] == ("True", "BackoffLimitExceeded")
    pods = sorted(kubectl.json("get", "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=doomed")["items"],
                  key=lambda p: p["metadata"]["creationTimestamp"])
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    first_failed = datetime.fromisoformat(
        pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"].replace("Z", "+00:00"))
    second_created = datetime.fromisoformat(pods[1]["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert (second_created - first_failed).total_seconds() >= 9  # the 10 s back-off (timestamps have 1 s steps)
    row = kubectl("get", "job", "doomed", "-n", ns).stdout.splitlines()[1].split()
    assert row[:3] == ["doomed", "Failed", "0/1"]
    described = " ".join(kubectl("describe", "job", "doomed", "-n", ns).stdout.split())
    assert "Pods Statuses: 0 Active (0 Ready) / 0 Succeeded / 2 Failed" in described
    assert "Warning BackoffLimitExceeded" in described and "Job has reached the specified backoff limit" in described


def test_ttl_after_finished_deletes_job_and_pods(batch_cluster, ns):
    kubectl = batch_cluster["kubectl"]
    apply(kubectl, ns, job_manifest("brief", "echo bye", ttlSecondsAfterFinished=0))
    wait_for("the Job gone", lambda: kubectl("get", "job", "brief", "-n", ns, check=False).returncode != 0, timeout=60)
    wait_for("its pods gone", lambda: not kubectl.json("get", "pods", "-n", ns)["items"], timeout=30)


def test_kubectl_delete_job_takes_running_pods(batch_cluster, ns):
    kubectl = batch_cluster["kubectl"]
    apply(kubectl, ns, job_manifest("forever", "sleep 3600", completions=2, parallelism=2))
    wait_for("2 running pods", lambda: [p["status"].get("phase") for p in kubectl.json(
        "get", "pods", "-n", ns)["items"]] == ["Running", "Running"], timeout=60)
    assert job_json(kubectl, ns, "forever")["status"]["active"] == 2
    kubectl("delete", "job", "forever", "-n", ns)
    wait_for("pods gone", lambda: not kubectl.json("get", "pods", "-n", ns)["items"], timeout=60)


def test_cronjob_creates_a_job_for_a_missed_slot_and_records_it(batch_cluster, ns):
    """A CronJob whose last schedule was three minutes ago has a slot due now: the cronjob
    controller creates its Job at once (no waiting for the next minute), tracks it in
    status.active, and records lastSuccessfulTime when the Job completes."""
    kubectl = batch_cluster["kubectl"]
    kubectl("create", "cronjob", "tick", "-n", ns, "--image=busybox", "--schedule=*/1 * * * *", "--", "echo", "tick")
    past = datetime.fromtimestamp(time.time() // 60 * 60 - 180, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl("patch", "cronjob", "tick", "-n", ns, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"lastScheduleTime": past}}))
    job = wait_for("the Job", lambda: (items := kubectl.json("get", "jobs", "-n", ns)["items"]) and items[0], timeout=30)
    name = job["metadata"]["name"]
    minutes = int(name.rsplit("-", 1)[1])
    assert name == f"tick-{minutes}" and abs(minutes * 60 - time.time()) < 120
    scheduled = datetime.fromtimestamp(minutes * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == scheduled
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    cj = wait_for("status.active", lambda: (c := kubectl.json("get", "cronjob", "tick", "-n", ns))["status"].get(
        "lastSuccessfulTime") and c, timeout=60)
    assert cj["status"]["lastScheduleTime"] >= scheduled
    assert "SuccessfulCreate" in kubectl("get", "events", "-n", ns, "--field-selector",
                                         "involvedObject.name=tick").stdout
