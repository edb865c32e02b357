"""autoscaling/v2 HorizontalPodAutoscaler (and autoscaling/v1 over the same objects) with the real
kubectl and the kubernetes client: create/get/list/patch/delete, `kubectl autoscale`, the
`kubectl get hpa` columns as kube-apiserver 1.32 prints them, `describe`, upstream's defaults,
422s with ValidateHorizontalPodAutoscaler's field paths, RBAC; and the controller reporting
FailedGetResourceMetric while no metrics exist (as upstream without metrics-server)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.api


def deployment(name: str, replicas: int = 1) -> str:
    return yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "20m"}}}]}}}})


def hpa(name: str, **spec) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 5, **spec}}


def test_kubectl_autoscale_get_describe_patch_delete(apiserver, namespace):
    k = lambda *a, **kw: apiserver.kubectl_ok("-n", namespace, *a, **kw)  # noqa: E731
    k("apply", "-f", "-", input=deployment("web"))
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in k("autoscale", "deployment", "web",
                                                                      "--cpu-percent=50", "--min=1", "--max=5")
    table = k("get", "hpa").splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert table[1].split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "5", "0"]
    # stored once, served as v2 (preferred) and as v1
    v2 = json.loads(k("get", "horizontalpodautoscalers.v2.autoscaling", "web", "-o", "json"))
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]
    assert v2["spec"]["minReplicas"] == 1 and "behavior" not in v2["spec"]
    v1 = json.loads(k("get", "horizontalpodautoscalers.v1.autoscaling", "web", "-o", "json"))
    assert v1["apiVersion"] == "autoscaling/v1"
    assert (v1["spec"]["targetCPUUtilizationPercentage"], v1["spec"]["maxReplicas"]) == (50, 5)
    # patch through v1 shows in v2, and the other way round
    k("patch", "horizontalpodautoscalers.v1.autoscaling", "web", "--type=merge", "-p",
      '{"spec": {"targetCPUUtilizationPercentage": 70}}')
    v2 = json.loads(k("get", "hpa", "web", "-o", "json"))
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    k("patch", "hpa", "web", "--type=merge", "-p", '{"spec": {"maxReplicas": 7, "behavior": {"scaleDown": '
                                                    '{"stabilizationWindowSeconds": 30}}}}')
    v2 = json.loads(k("get", "hpa", "web", "-o", "json"))
    # SetDefaults_HorizontalPodAutoscalerBehavior fills in what was left out
    assert v2["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 30, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]}}
    v1 = json.loads(k("get", "horizontalpodautoscalers.v1.autoscaling", "web", "-o", "json"))
    assert v1["spec"]["maxReplicas"] == 7
    assert json.loads(v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/behavior"])["scaleDown"][
        "stabilizationWindowSeconds"] == 30
    described = k("describe", "hpa", "web")
    for line in ("Reference:", "Deployment/web", "Min replicas:", "Max replicas:", "7",
                 "resource cpu on pods  (as a percentage of request):  <unknown> / 70%"):
        assert line in described, described
    # the kubernetes client (v2 and v1 models)
    from kubernetes import client
    api = apiserver.client()
    got = client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(namespace).items
    assert [h.metadata.name for h in got] == ["web"] and got[0].spec.max_replicas == 7
    assert client.AutoscalingV1Api(api).read_namespaced_horizontal_pod_autoscaler(
        "web", namespace).spec.target_cpu_utilization_percentage == 70
    from kubernetes import watch
    seen = [(e["type"], e["object"].metadata.name, e["object"].spec.max_replicas) for e in watch.Watch().stream(
        client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler, namespace, timeout_seconds=2)]
    assert ("ADDED", "web", 7) in seen
    explained = k("explain", "hpa.spec.behavior.scaleDown")
    assert "stabilizationWindowSeconds" in explained and "GROUP:      autoscaling" in explained, explained
    assert 'horizontalpodautoscaler.autoscaling "web" deleted' in k("delete", "hpa", "web")
    assert apiserver.kubectl("-n", namespace, "get", "hpa", "web").returncode == 1


def test_defaults_and_the_targets_column(apiserver, namespace):
    k = lambda *a, **kw: apiserver.kubectl_ok("-n", namespace, *a, **kw)  # noqa: E731
    k("create", "-f", "-", input=json.dumps(hpa("plain")))
    plain = json.loads(k("get", "hpa", "plain", "-o", "json"))
    # upstream: minReplicas 1 and a CPU target of 80% when no metric is given
    assert plain["spec"]["minReplicas"] == 1
    assert plain["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    metrics = [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "packets"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
    ]
    k("create", "-f", "-", input=json.dumps(hpa("three", metrics=metrics, minReplicas=2)))
    rows = {r.split()[0]: r for r in k("get", "hpa").splitlines()[1:]}
    assert "cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more..." in rows["three"]
    assert rows["three"].split()[-4:-1] == ["2", "5", "0"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"minReplicas": 0}, "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"),
    ({"minReplicas": 3, "maxReplicas": 2}, "spec.maxReplicas: Invalid value: 2: must be greater than or equal to "
                                           "`minReplicas`"),
    ({"maxReplicas": 0}, "spec.maxReplicas: Invalid value: 0: must be greater than 0"),
    ({"scaleTargetRef": {"kind": "Deployment"}}, "spec.scaleTargetRef.name: Required value"),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                               "averageUtilization": 0}}}]},
     "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]},
     "spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value or a "
     "target utilization"),
    ({"metrics": [{"type": "Bogus"}]}, 'spec.metrics[0].type: Unsupported value: "Bogus"'),
    ({"metrics": [{"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                          "averageUtilization": 5}}}]},
     "spec.metrics[0].pods: Required value: must populate information for the given metric source"),
    ({"behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}},
     "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero"),
    ({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}},
     "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600"),
    ({"behavior": {"scaleDown": {"selectPolicy": "Most"}}},
     'spec.behavior.scaleDown.selectPolicy: Unsupported value: "Most": supported values: "Disabled", "Max", "Min"'),
    ({"behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}}},
     "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800"),
])
def test_invalid_specs_are_refused_422(apiserver, namespace, spec, message):
    obj = hpa("bad")
    if "scaleTargetRef" in spec:
        obj["spec"]["scaleTargetRef"] = spec.pop("scaleTargetRef")
    obj["spec"].update(spec)
    out = apiserver.kubectl("-n", namespace, "create", "-f", "-", "-v=6", input=json.dumps(obj))
    assert out.returncode == 1 and 'The HorizontalPodAutoscaler "bad" is invalid' in out.stderr, out.stderr
    assert message in out.stderr and "422 Unprocessable Entity" in out.stderr, out.stderr


def test_v1_refuses_a_bad_cpu_target(apiserver, namespace):
    obj = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "maxReplicas": 3, "targetCPUUtilizationPercentage": 0}}
    out = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(obj))
    assert out.returncode == 1 and "spec.targetCPUUtilizationPercentage: Invalid value: 0: must be greater than 0" \
        in out.stderr, out.stderr


def test_a_viewer_cannot_create_one(apiserver, namespace):
    user = f"viewer-{namespace}"
    apiserver.kubectl_ok("-n", namespace, "create", "rolebinding", "v", "--clusterrole=view", f"--user={user}")
    apiserver.kubectl_ok("-n", namespace, "create", "-f", "-", input=json.dumps(hpa("mine")))
    assert apiserver.kubectl_ok("-n", namespace, "get", "hpa", f"--as={user}").splitlines()[1].startswith("mine")
    out = apiserver.kubectl("-n", namespace, "create", "-f", "-", f"--as={user}", input=json.dumps(hpa("theirs")))
    assert out.returncode == 1
    assert (f'horizontalpodautoscalers.autoscaling is forbidden: User "{user}" cannot create resource '
            f'"horizontalpodautoscalers" in API group "autoscaling" in the namespace "{namespace}"') in out.stderr
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=deployment("web"))
    out = apiserver.kubectl("-n", namespace, "autoscale", "deployment", "web", "--max=2", f"--as={user}")
    assert out.returncode == 1 and "forbidden" in out.stderr


def test_the_controller_reports_missing_metrics(apiserver, namespace):
    """With no PodMetrics for the target's pods (nothing runs them here), the controller says so
    as upstream does without metrics-server: FailedGetResourceMetric, ScalingActive False."""
    k = lambda *a, **kw: apiserver.kubectl_ok("-n", namespace, *a, **kw)  # noqa: E731
    k("apply", "-f", "-", input=deployment("web", replicas=2))
    k("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=5")
    k("create", "-f", "-", input=json.dumps(hpa("ghost", scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment",
                                                                          "name": "nope"})))
    log = open(apiserver.root / f"cm-hpa-{namespace}.log", "wb")  # noqa: SIM115
    cm = subprocess.Popen([sys.executable, "-c", "from knet.cli.main import main; main()", "controller-manager",
                           f"--kubeconfig={apiserver.kubeconfig}", "--controllers=horizontalpodautoscaling",
                           "--horizontal-pod-autoscaler-sync-period=1s", "--leader-elect=false"],
                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(k("get", "hpa", "web", "-o", "json")).get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            if "ScalingActive" in conds:
                break
            assert time.monotonic() < deadline, f"no conditions: {status}"
            time.sleep(0.5)
        assert (conds["AbleToScale"]["status"], conds["AbleToScale"]["reason"]) == ("True", "SucceededGetScale")
        assert (conds["ScalingActive"]["status"], conds["ScalingActive"]["reason"]) == ("False", "FailedGetResourceMetric")
        assert conds["ScalingActive"]["message"] == (
            "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics "
            "for resource cpu: no metrics returned from resource metrics API")
        assert status["currentReplicas"] == 2 and status["currentMetrics"] == [{"type": ""}]
        # nothing was scaled
        assert json.loads(k("get", "deployment", "web", "-o", "json"))["spec"]["replicas"] == 2
        events = k("get", "events", "--field-selector=involvedObject.name=web,involvedObject.kind=HorizontalPodAutoscaler")
        assert "FailedGetResourceMetric" in events and "FailedComputeMetricsReplicas" in events, events
        described = k("describe", "hpa", "web")
        assert "ScalingActive  False   FailedGetResourceMetric" in described, described
        # a target that does not exist
        deadline = time.monotonic() + 20
        while True:
            conds = {c["type"]: c for c in (json.loads(k("get", "hpa", "ghost", "-o", "json")).get("status") or {})
                     .get("conditions") or []}
            if "AbleToScale" in conds:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert (conds["AbleToScale"]["status"], conds["AbleToScale"]["reason"]) == ("False", "FailedGetScale")
        assert 'deployments.apps "nope" not found' in conds["AbleToScale"]["message"]
    finally:
        cm.terminate()
        cm.wait(10)
