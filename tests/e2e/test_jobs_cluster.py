"""Jobs on the real 3-node session cluster (runc containers, the real kubelet reporting exit codes):
an Indexed Job whose pods read JOB_COMPLETION_INDEX through the downward API and get their
index hostnames, `kubectl wait --for=condition=complete`, a pod failure policy failing the Job
on an exit code, and `kubectl delete job` taking a running Job's pods (and the
job-tracking finalizer) with it."""

from __future__ import annotations

import json

import pytest

from knet.cluster.testing import ClusterUnderTest

pytestmark = pytest.mark.e2e


def _job(cluster: ClusterUnderTest, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "job", name, "-o", "json").stdout)


def _pods(cluster: ClusterUnderTest, job: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-l", f"batch.kubernetes.io/job-name={job}", "-o", "json").stdout
    return json.loads(out)["items"]


def _conditions(job: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in job["status"].get("conditions") or []}


def _delete(cluster: ClusterUnderTest, *what: str) -> None:
    cluster.kubectl("delete", *what, "--wait=false", "--ignore-not-found", check=False)


INDEXED = """
apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: busybox
        command: ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]
"""


def test_indexed_job_runs_each_index_once(knet_cluster):
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=INDEXED)
        knet_cluster.kubectl("wait", "--for=condition=complete", "job/idx", "--timeout=90s")
        job = _job(knet_cluster, "idx")
        assert job["status"]["succeeded"] == 3 and job["status"]["completedIndexes"] == "0-2"
        row = knet_cluster.kubectl("get", "job", "idx").stdout.splitlines()[1].split()
        assert row[:3] == ["idx", "Complete", "3/3"]
        logs = sorted(knet_cluster.kubectl("logs", p["metadata"]["name"]).stdout.strip()
                      for p in _pods(knet_cluster, "idx"))
        assert logs == [f"index={i} host=idx-{i}" for i in range(3)]
    finally:
        _delete(knet_cluster, "job", "idx")


FAIL_FAST = """
apiVersion: batch/v1
kind: Job
metadata: {name: answer}
spec:
  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: work, operator: In, values: [42]}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: busybox
        command: ["sh", "-c", "exit 42"]
"""


def test_pod_failure_policy_fails_the_job_on_exit_code(knet_cluster):
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=FAIL_FAST)
        knet_cluster.kubectl("wait", "--for=condition=failed", "job/answer", "--timeout=90s")
        job = _job(knet_cluster, "answer")
        assert _conditions(job)["Failed"] == ("True", "PodFailurePolicy")
        [pod] = _pods(knet_cluster, "answer")  # failed at once: no retry despite backoffLimit 6
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 42
        message = next(c["message"] for c in job["status"]["conditions"] if c["type"] == "Failed")
        assert message == (f"Container work for pod default/{pod['metadata']['name']} failed with exit code 42 "
                           "matching FailJob rule at index 0")
    finally:
        _delete(knet_cluster, "job", "answer")


NAP = """
apiVersion: batch/v1
kind: Job
metadata: {name: nap}
spec:
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      containers:
      - name: work
        image: busybox
        command: ["sleep", "3600"]
"""


def test_delete_job_takes_its_running_pods(knet_cluster):
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=NAP)
        knet_cluster.wait_for("the pod running", lambda: [p["status"].get("phase") for p in _pods(knet_cluster, "nap")]
                              == ["Running"], timeout=60)
        [pod] = _pods(knet_cluster, "nap")
        assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
        knet_cluster.kubectl("delete", "job", "nap")
        try:
            knet_cluster.wait_for("the pod gone", lambda: not _pods(knet_cluster, "nap"), timeout=60)
        except AssertionError:
            print(json.dumps(_pods(knet_cluster, "nap"), indent=1))
            raise
    finally:
        _delete(knet_cluster, "job", "nap")
