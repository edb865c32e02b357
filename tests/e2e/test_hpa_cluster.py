"""A HorizontalPodAutoscaler on a real 3-node `knet up` cluster (session fixture `knet_cluster`):
a Deployment whose pods burn CPU until the test has seen the scale-up (then idle) is scaled up
by the kube-controller-manager's horizontalpodautoscaling controller from the metrics.k8s.io
figures (the apiserver's scraper of the kubelets' /stats/summary, every 15 s) and back down once
the scale-down stabilisation window has passed. The test ends the busy phase itself (a file in
each container) instead of a fixed busy minute from each container's start: the pods the
scale-up adds would otherwise burn a minute of their own before the scale-down could begin."""

from __future__ import annotations

import json
import re

import pytest

from .cluster_namespaces import cluster_namespace

pytestmark = pytest.mark.e2e

# busy (a core's worth, as `while :; do :; done`) until /tmp/stop exists, then idle
STOP_FILE = "/tmp/stop"
BUSY_THEN_IDLE = f"while [ ! -e {STOP_FILE} ]; do :; done; sleep 3600"


def _deployment(ns: str) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burn", "namespace": ns},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}}, "template": {
                           "metadata": {"labels": {"app": "burn"}},
                           "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                               "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", BUSY_THEN_IDLE],
                               "resources": {"requests": {"cpu": "20m"}}}]}}}})


def _hpa(ns: str) -> str:
    return json.dumps({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                       "metadata": {"name": "burn", "namespace": ns},
                       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
                                "minReplicas": 1, "maxReplicas": 3,
                                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                                    "type": "Utilization", "averageUtilization": 50}}}],
                                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 20}}}})


def test_hpa_scales_a_busy_deployment_up_and_back_down(knet_cluster):
    k = knet_cluster.kubectl
    with cluster_namespace(knet_cluster, "hpa-burn") as ns:
        k("apply", "-f", "-", input=_deployment(ns))
        k("apply", "-f", "-", input=_hpa(ns))

        def replicas() -> int:
            return json.loads(k("get", "deployment", "burn", "-n", ns, "-o", "json").stdout)["spec"]["replicas"]

        def scaled_up() -> dict | None:
            hpa = json.loads(k("get", "hpa", "burn", "-n", ns, "-o", "json").stdout)
            return hpa if hpa.get("status", {}).get("desiredReplicas", 0) > 1 and replicas() > 1 else None

        # Two scrapes give the first CPU rate; a pod is counted a metric window after it is Ready.
        hpa = knet_cluster.wait_for("the HPA scales burn up", scaled_up, timeout=150, interval=2)
        current = hpa["status"]["currentMetrics"][0]["resource"]["current"]
        assert current["averageUtilization"] > 50, hpa["status"]
        conds = {c["type"]: c for c in hpa["status"]["conditions"]}
        assert (conds["ScalingActive"]["status"], conds["ScalingActive"]["reason"]) == ("True", "ValidMetricFound")
        assert conds["AbleToScale"]["status"] == "True"
        row = k("get", "hpa", "burn", "-n", ns).stdout.splitlines()[1]
        assert re.match(r"burn\s+Deployment/burn\s+cpu: \d+%/50%\s+1\s+3\s+\d\s+", row), row

        # The busy phase ends in every pod (also in those the scale-up is still starting),
        # utilisation falls, the 20 s window passes: back to one.
        stopped: set[str] = set()

        def idle_and_scaled_down() -> bool:
            pods = json.loads(k("get", "pods", "-n", ns, "-l", "app=burn", "-o", "json").stdout)["items"]
            for name in {p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"} - stopped:
                if k("exec", "-n", ns, name, "--", "touch", STOP_FILE, check=False).returncode == 0:
                    stopped.add(name)
            return replicas() == 1

        knet_cluster.wait_for("the HPA scales burn back down to 1", idle_and_scaled_down, timeout=240, interval=3)
        events = k("get", "events", "-n", ns, "--field-selector=involvedObject.kind=HorizontalPodAutoscaler",
                   "-o", "json").stdout
        messages = [e["message"] for e in json.loads(events)["items"] if e["reason"] == "SuccessfulRescale"]
        assert any(re.fullmatch(r"New size: [23]; reason: cpu resource utilization \(percentage of request\) "
                                r"above target", m) for m in messages), messages
        assert "New size: 1; reason: All metrics below target" in messages, messages
        described = k("describe", "hpa", "burn", "-n", ns).stdout
        assert "SuccessfulRescale" in described and "Deployment/burn" in described, described
