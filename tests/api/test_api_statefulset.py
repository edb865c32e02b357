"""StatefulSets, ControllerRevisions and DaemonSet history with the real kubectl and the
kubernetes Python client, against `knet apiserver` + `knet controller-manager` + `knet scheduler`
(the node agents played by the test, as in test_controllers_cluster.py): printer columns,
describe, pods created in order and removed in reverse, rollout status/history/undo, an invalid
update refused with 422 and its field path, claims that knet cannot provision."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from node_agents import wait_for
from test_controllers_cluster import cluster, ctl_apiserver, ns  # noqa: F401 -- shared fixtures

pytestmark = pytest.mark.api

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"
IMAGE2 = "registry.k8s.io/e2e-test-images/agnhost:2.40"


def manifest(name: str, replicas: int, *, claims: bool = False, policy: str = "OrderedReady") -> str:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
           "spec": {"serviceName": name, "replicas": replicas, "podManagementPolicy": policy,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": IMAGE, "args": ["netexec"],
                                                          "ports": [{"name": "http", "containerPort": 8080}]}]}}}}
    if claims:
        sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "www"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "www", "mountPath": "/data"}]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, sts]})


def apply(kubectl, namespace: str, text: str) -> str:
    proc = subprocess.run(["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "apply", "-n", namespace, "-f", "-"],
                          input=text, text=True, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class PodWatch:
    """The kubernetes client's watch on a namespace's pods: (event, pod, ready, deleting) in order."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        from kubernetes import client, config, watch
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.ns, self.log = namespace, []
        self.watch = watch.Watch()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for ev in self.watch.stream(self.core.list_namespaced_pod, self.ns, timeout_seconds=300):
                pod = ev["object"]
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
                self.log.append((ev["type"], pod.metadata.name, ready, pod.metadata.deletion_timestamp is not None))
        except Exception:  # noqa: BLE001 -- the apiserver going away at the end of the module
            return

    def first(self, pred) -> int:
        return next(i for i, e in enumerate(self.log) if pred(e))

    def stop(self) -> None:
        self.watch.stop()


def test_statefulset_ordered_lifecycle_rollout_and_history(cluster, ns):  # noqa: F811
    kubectl = cluster["kubectl"]
    pods = PodWatch(kubectl.kubeconfig, ns)
    try:
        time.sleep(0.5)
        out = apply(kubectl, ns, manifest("web", 3))
        assert "statefulset.apps/web created" in out
        status = kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=90s").stdout
        assert "partitioned roll out complete: 3 new pods have been updated..." in status
        # created in order, each after its predecessor was Ready
        for prev, nxt in (("web-0", "web-1"), ("web-1", "web-2")):
            ready = pods.first(lambda e, p=prev: e[1] == p and e[2])
            added = pods.first(lambda e, n=nxt: e[0] == "ADDED" and e[1] == n)
            assert ready < added, pods.log

        table = kubectl("get", "sts", "web", "-n", ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "AGE"]
        assert table[1].split()[:2] == ["web", "3/3"]
        wide = kubectl("get", "statefulset", "web", "-n", ns, "-o", "wide").stdout.splitlines()
        assert wide[0].split() == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
        assert wide[1].split()[3:] == ["c", IMAGE]

        sts = kubectl.json("get", "sts", "web", "-n", ns)
        assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        assert sts["spec"]["podManagementPolicy"] == "OrderedReady" and sts["spec"]["revisionHistoryLimit"] == 10
        st = sts["status"]
        assert (st["replicas"], st["readyReplicas"], st["currentReplicas"], st["updatedReplicas"],
                st["availableReplicas"], st["observedGeneration"]) == (3, 3, 3, 3, 3, 1)
        rev1 = st["currentRevision"]
        assert st["updateRevision"] == rev1 and rev1.startswith("web-")
        for i in range(3):
            pod = kubectl.json("get", "pod", f"web-{i}", "-n", ns)
            labels = pod["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
            assert labels["apps.kubernetes.io/pod-index"] == str(i)
            assert labels["controller-revision-hash"] == rev1
            assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (f"web-{i}", "web")
        # the headless Service's endpoints carry the pods' hostnames (per-pod DNS names)
        slices = kubectl.json("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
        assert sorted(e.get("hostname") for s in slices for e in s["endpoints"]) == ["web-0", "web-1", "web-2"]

        revs = kubectl("get", "controllerrevisions", "-n", ns).stdout.splitlines()
        assert revs[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
        assert revs[1].split()[:3] == [rev1, "statefulset.apps/web", "1"]

        describe = " ".join(kubectl("describe", "sts", "web", "-n", ns).stdout.split())
        for text in ("Replicas: 3 desired | 3 total", "Update Strategy: RollingUpdate Partition: 0",
                     "Pods Status: 3 Running / 0 Waiting / 0 Succeeded / 0 Failed",
                     "SuccessfulCreate", "create Pod web-2 in StatefulSet web successful"):
            assert text in describe, describe

        # scale down: web-2 goes first, then web-1
        kubectl("scale", "sts", "web", "--replicas=1", "-n", ns)
        wait_for("one pod left", lambda: [e for e in kubectl.json("get", "pods", "-n", ns)["items"]] and
                 [p["metadata"]["name"] for p in kubectl.json("get", "pods", "-n", ns)["items"]] == ["web-0"],
                 timeout=60)
        gone2 = pods.first(lambda e: e[1] == "web-2" and (e[3] or e[0] == "DELETED"))
        gone1 = pods.first(lambda e: e[1] == "web-1" and (e[3] or e[0] == "DELETED"))
        assert gone2 < gone1, pods.log
    finally:
        pods.stop()

    # a rollout, its history, and undo through the ControllerRevisions
    kubectl("scale", "sts", "web", "--replicas=2", "-n", ns)
    kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=90s")
    # a revision keeps the set's annotations of its time: the change-cause `rollout history` shows
    kubectl("annotate", "sts", "web", "kubernetes.io/change-cause=agnhost-2.40", "-n", ns)
    kubectl("set", "image", "sts/web", f"c={IMAGE2}", "-n", ns)
    kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=90s")
    wait_for("both pods at the new image", lambda: {p["spec"]["containers"][0]["image"] for p in
                                                     kubectl.json("get", "pods", "-n", ns)["items"]} == {IMAGE2}
             and kubectl.json("get", "sts", "web", "-n", ns)["status"].get("currentRevision") != rev1, timeout=60)
    history = kubectl("rollout", "history", "sts/web", "-n", ns).stdout
    assert history.split() == ["statefulset.apps/web", "REVISION", "CHANGE-CAUSE", "1", "<none>", "2", "agnhost-2.40"], \
        history
    detail = kubectl("rollout", "history", "sts/web", "-n", ns, "--revision=1").stdout
    assert IMAGE in detail and IMAGE2 not in detail, detail
    assert "statefulset.apps/web rolled back" in kubectl("rollout", "undo", "sts/web", "-n", ns).stdout
    kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=90s")
    wait_for("rolled back", lambda: {p["spec"]["containers"][0]["image"] for p in
                                     kubectl.json("get", "pods", "-n", ns)["items"]} == {IMAGE}
             and kubectl.json("get", "sts", "web", "-n", ns)["status"].get("currentRevision") == rev1, timeout=60)
    history = kubectl("rollout", "history", "sts/web", "-n", ns).stdout
    assert history.split() == ["statefulset.apps/web", "REVISION", "CHANGE-CAUSE", "2", "agnhost-2.40", "3", "<none>"], \
        history

    # what may not change is refused: 422, the field path, upstream's message
    bad = kubectl("patch", "sts", "web", "-n", ns, "-p", '{"spec":{"serviceName":"other"}}', check=False)
    assert bad.returncode == 1
    assert ('The StatefulSet "web" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
            "'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
            "'minReadySeconds' are forbidden") in bad.stderr
    kubectl("delete", "sts", "web", "-n", ns)
    wait_for("pods and revisions collected", lambda: not kubectl.json("get", "pods", "-n", ns)["items"]
             and not kubectl.json("get", "controllerrevisions", "-n", ns)["items"], timeout=60)
    # the Endpoints the Service's selector made go with the Service (they have no owner reference)
    assert kubectl("get", "endpoints", "web", "-n", ns, check=False).returncode == 0
    kubectl("delete", "svc", "web", "-n", ns)
    wait_for("the Endpoints deleted", lambda: kubectl("get", "endpoints", "web", "-n", ns, check=False).returncode == 1)


def test_statefulset_python_client_verbs_and_422(cluster, ns):  # noqa: F811
    from kubernetes import client, config, watch
    apps = client.AppsV1Api(config.new_client_from_config(config_file=cluster["kubectl"].kubeconfig))
    body = json.loads(manifest("db", 2, policy="Parallel"))["items"][1]
    created = apps.create_namespaced_stateful_set(ns, body)
    assert created.spec.pod_management_policy == "Parallel" and created.metadata.generation == 1
    w = watch.Watch()
    ready = None
    for ev in w.stream(apps.list_namespaced_stateful_set, ns, timeout_seconds=90):
        if (ev["object"].status.ready_replicas or 0) == 2:
            ready = ev["object"]
            w.stop()
    assert ready is not None and ready.status.current_revision
    assert [s.metadata.name for s in apps.list_namespaced_stateful_set(ns).items] == ["db"]
    patched = apps.patch_namespaced_stateful_set("db", ns, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3 and patched.metadata.generation == 2
    scale = apps.read_namespaced_stateful_set_scale("db", ns)
    assert (scale.spec.replicas, scale.status.selector) == (3, "app=db")
    with pytest.raises(client.ApiException) as exc:
        apps.patch_namespaced_stateful_set("db", ns, {"spec": {"selector": {"matchLabels": {"app": "x"}},
                                                               "template": {"metadata": {"labels": {"app": "x"}}}}})
    assert exc.value.status == 422
    causes = json.loads(exc.value.body)["details"]["causes"]
    assert {(c["reason"], c["field"]) for c in causes} == {("FieldValueForbidden", "spec")}
    with pytest.raises(client.ApiException) as exc:
        apps.patch_namespaced_stateful_set("db", ns, {"spec": {"replicas": -1}})
    assert exc.value.status == 422
    assert json.loads(exc.value.body)["details"]["causes"][0]["field"] == "spec.replicas"
    apps.delete_namespaced_stateful_set("db", ns)
    wait_for("db gone", lambda: not apps.list_namespaced_stateful_set(ns).items)


def test_volume_claim_templates_are_accepted_but_knet_has_no_storage(cluster, ns):  # noqa: F811
    kubectl = cluster["kubectl"]
    apply(kubectl, ns, manifest("data", 2, claims=True))
    sts = kubectl.json("get", "sts", "data", "-n", ns)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"

    def warning():
        events = kubectl.json("get", "events", "-n", ns, "--field-selector", "reason=FailedCreate")["items"]
        return events and events[0]

    event = wait_for("FailedCreate", warning, timeout=60)
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == "data"
    assert event["message"].startswith("create Claim www-data-0 for Pod data-0 in StatefulSet data failed error: "
                                       "knet has no storage")
    assert kubectl.json("get", "pods", "-n", ns)["items"] == []
    assert "knet has no storage" in kubectl("describe", "sts", "data", "-n", ns).stdout


def test_daemonset_rollout_history_and_undo(cluster, ns):  # noqa: F811
    kubectl = cluster["kubectl"]
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a", "image": IMAGE}]}}}}
    apply(kubectl, ns, json.dumps(ds))
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=90s")
    history = kubectl("rollout", "history", "ds/agent", "-n", ns).stdout
    assert history.split() == ["daemonset.apps/agent", "REVISION", "CHANGE-CAUSE", "1", "<none>"], history
    kubectl("set", "image", "ds/agent", f"a={IMAGE2}", "-n", ns)
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=90s")
    history = kubectl("rollout", "history", "ds/agent", "-n", ns).stdout
    assert history.split()[-4:] == ["1", "<none>", "2", "<none>"], history
    assert "daemonset.apps/agent rolled back" in kubectl("rollout", "undo", "ds/agent", "-n", ns).stdout
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=90s")
    wait_for("the old image back", lambda: {p["spec"]["containers"][0]["image"] for p in
                                            kubectl.json("get", "pods", "-n", ns)["items"]
                                            if not p["metadata"].get("deletionTimestamp")} == {IMAGE}, timeout=60)
    history = kubectl("rollout", "history", "ds/agent", "-n", ns).stdout
    assert history.split()[-4:] == ["2", "<none>", "3", "<none>"], history
    revs = kubectl("get", "controllerrevisions", "-n", ns).stdout
    assert "daemonset.apps/agent" in revs
