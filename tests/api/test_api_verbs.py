"""The verbs through real kubectl and the kubernetes client: create (generateName), apply
(client- and server-side), patch (strategic, merge, JSON), replace with optimistic
concurrency, dry run, scale, binding, TokenRequest, delete with finalizers, graceful pod
deletion, ownerReference garbage collection and namespace termination."""

from __future__ import annotations

import json
import time

import pytest
import yaml

pytestmark = pytest.mark.api


def wait_for(what: str, fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def get_json(apiserver, *args):
    return json.loads(apiserver.kubectl_ok(*args, "-o", "json"))


def exists(apiserver, *args) -> bool:
    return apiserver.kubectl(*args).returncode == 0


DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
      - name: sidecar
        image: busybox
"""


def test_generate_name(apiserver, namespace):
    out = apiserver.kubectl_ok("-n", namespace, "create", "-f", "-", "-o", "name",
                               input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\n")
    name = out.strip().split("/")[1]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5


def test_client_side_apply_creates_updates_and_prunes_fields(apiserver, namespace):
    assert apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=DEPLOY).strip() == "deployment.apps/web created"
    assert apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=DEPLOY).strip() == "deployment.apps/web unchanged"
    changed = DEPLOY.replace("nginx:1.25", "nginx:1.26").replace('        - {name: B, value: "2"}\n', "")
    assert apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=changed).strip() == "deployment.apps/web configured"
    d = get_json(apiserver, "-n", namespace, "get", "deploy", "web")
    containers = d["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["nginx", "sidecar"]
    assert containers[0]["image"] == "nginx:1.26"
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    assert d["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]


def test_server_side_apply(apiserver, namespace):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n"
    assert apiserver.kubectl_ok("-n", namespace, "apply", "--server-side", "-f", "-", input=cm).strip() == \
        "configmap/ssa serverside-applied"
    apiserver.kubectl_ok("-n", namespace, "apply", "--server-side", "-f", "-", input=cm.replace("'1'", "'2'"))
    obj = yaml.safe_load(apiserver.kubectl_ok("-n", namespace, "get", "cm", "ssa", "-o", "yaml", "--show-managed-fields"))
    assert obj["data"] == {"a": "2"}
    assert [(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:a": {}}}
    # A field the manager applied before and leaves out now is removed; others' fields stay.
    apiserver.kubectl_ok("-n", namespace, "apply", "--server-side", "-f", "-",
                         input=cm.replace("  a: '1'\n", "  a: '1'\n  b: '2'\n"))
    apiserver.kubectl_ok("-n", namespace, "patch", "cm", "ssa", "-p", '{"data":{"c":"3"}}')
    apiserver.kubectl_ok("-n", namespace, "apply", "--server-side", "-f", "-", input=cm.replace("  a: '1'\n", "  b: '2'\n"))
    assert get_json(apiserver, "-n", namespace, "get", "cm", "ssa")["data"] == {"b": "2", "c": "3"}


def test_strategic_merge_json_and_merge_patches(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    # Strategic: containers merge by name, env by name.
    apiserver.kubectl_ok("-n", namespace, "patch", "deploy", "web", "-p",
                         '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}')
    d = get_json(apiserver, "-n", namespace, "get", "deploy", "web")
    assert [(c["name"], c["image"]) for c in d["spec"]["template"]["spec"]["containers"]] == \
        [("nginx", "nginx:1.25"), ("sidecar", "busybox:1.36")]
    # Merge patch replaces lists wholesale.
    apiserver.kubectl_ok("-n", namespace, "patch", "deploy", "web", "--type=merge", "-p",
                         '{"metadata":{"labels":{"team":"net"}}}')
    # JSON patch.
    apiserver.kubectl_ok("-n", namespace, "patch", "deploy", "web", "--type=json", "-p",
                         '[{"op":"replace","path":"/spec/replicas","value":4},{"op":"remove","path":"/metadata/labels/app"}]')
    d = get_json(apiserver, "-n", namespace, "get", "deploy", "web")
    assert d["spec"]["replicas"] == 4
    assert d["metadata"]["labels"] == {"team": "net"}
    p = apiserver.kubectl("-n", namespace, "patch", "deploy", "web", "--type=json", "-p",
                          '[{"op":"test","path":"/spec/replicas","value":9}]')
    assert p.returncode != 0
    # label / annotate are patches too.
    apiserver.kubectl_ok("-n", namespace, "label", "deploy", "web", "tier=fe")
    apiserver.kubectl_ok("-n", namespace, "annotate", "deploy", "web", "note=hello")
    d = get_json(apiserver, "-n", namespace, "get", "deploy", "web")
    assert d["metadata"]["labels"]["tier"] == "fe" and d["metadata"]["annotations"]["note"] == "hello"


def test_replace_with_a_stale_resource_version_conflicts(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "cc", "--from-literal=a=1")
    stale = get_json(apiserver, "-n", namespace, "get", "cm", "cc")
    apiserver.kubectl_ok("-n", namespace, "patch", "cm", "cc", "-p", '{"data":{"a":"2"}}')
    stale["data"]["a"] = "3"
    p = apiserver.kubectl("-n", namespace, "replace", "-f", "-", input=json.dumps(stale))
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Conflict): error when replacing "STDIN": Operation cannot be '
                                'fulfilled on configmaps "cc": the object has been modified; please apply your '
                                "changes to the latest version and try again")
    fresh = get_json(apiserver, "-n", namespace, "get", "cm", "cc")
    fresh["data"]["a"] = "3"
    apiserver.kubectl_ok("-n", namespace, "replace", "-f", "-", input=json.dumps(fresh))
    again = get_json(apiserver, "-n", namespace, "get", "cm", "cc")
    assert again["data"]["a"] == "3"
    assert int(again["metadata"]["resourceVersion"]) > int(fresh["metadata"]["resourceVersion"])


def test_server_dry_run_validates_but_stores_nothing(apiserver, namespace):
    out = apiserver.kubectl_ok("-n", namespace, "create", "configmap", "dry", "--from-literal=a=1",
                               "--dry-run=server", "-o", "json")
    assert json.loads(out)["metadata"]["uid"]
    assert not exists(apiserver, "-n", namespace, "get", "cm", "dry")
    p = apiserver.kubectl("-n", namespace, "create", "service", "clusterip", "dry", "--tcp=0:80", "--dry-run=server")
    assert p.returncode != 0


def test_scale_and_python_client_roundtrip(apiserver, namespace):
    import kubernetes

    with apiserver.client() as api_client:
        apps = kubernetes.client.AppsV1Api(api_client)
        body = yaml.safe_load(DEPLOY)
        created = apps.create_namespaced_deployment(namespace, body)
        assert created.spec.template.spec.containers[0].termination_message_path == "/dev/termination-log"
        assert created.spec.strategy.rolling_update.max_surge == "25%"
        apiserver.kubectl_ok("-n", namespace, "scale", "deploy", "web", "--replicas=5")
        assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 5
        scale = apps.read_namespaced_deployment_scale("web", namespace)
        assert (scale.spec.replicas, scale.status.selector) == (5, "app=web")
        apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 1}})
        listed = apps.list_namespaced_deployment(namespace, label_selector="app=web")
        assert [d.spec.replicas for d in listed.items] == [1]
        apps.delete_namespaced_deployment("web", namespace)
        with pytest.raises(kubernetes.client.ApiException) as err:
            apps.read_namespaced_deployment("web", namespace)
        assert err.value.status == 404


def test_binding_and_field_selectors(apiserver, namespace):
    for name in ("p1", "p2"):
        apiserver.kubectl_ok("-n", namespace, "run", name, "--image=nginx")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node01"}}
    apiserver.kubectl_ok("-n", namespace, "create", "--raw",
                         f"/api/v1/namespaces/{namespace}/pods/p1/binding", "-f", "-", input=json.dumps(binding))
    out = apiserver.kubectl_ok("-n", namespace, "get", "pods", "--field-selector", "spec.nodeName=node01", "-o", "name")
    assert out.split() == ["pod/p1"]
    out = apiserver.kubectl_ok("-n", namespace, "get", "pods", "--field-selector", "spec.nodeName=", "-o", "name")
    assert out.split() == ["pod/p2"]
    p = apiserver.kubectl("-n", namespace, "create", "--raw", f"/api/v1/namespaces/{namespace}/pods/p1/binding",
                          "-f", "-", input=json.dumps(binding))
    assert p.returncode != 0 and "is already assigned to node" in p.stderr
    p = apiserver.kubectl("-n", namespace, "get", "pods", "--field-selector", "spec.bogus=1")
    assert "field label not supported: spec.bogus" in p.stderr


def test_token_request_gives_a_working_bearer_token(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    token = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--duration=15m").strip()
    header, claims, _ = token.split(".")
    import base64

    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["sub"] == f"system:serviceaccount:{namespace}:robot"
    assert payload["exp"] - payload["iat"] == 900
    out = apiserver.kubectl_ok("--token", token, "--server", apiserver.url, "--certificate-authority",
                               apiserver.ca_file, "--kubeconfig=/dev/null", "auth", "whoami", "-o",
                               "jsonpath={.status.userInfo.username}")
    assert out.strip() == f"system:serviceaccount:{namespace}:robot"
    p = apiserver.kubectl("-n", namespace, "create", "token", "robot", "--duration=1m")
    assert "may not specify a duration less than 10 minutes" in p.stderr


def test_finalizers_hold_deletion_until_removed(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-",
                         input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n")
    apiserver.kubectl_ok("-n", namespace, "delete", "cm", "held", "--wait=false")
    obj = get_json(apiserver, "-n", namespace, "get", "cm", "held")
    assert obj["metadata"]["deletionTimestamp"]
    assert obj["metadata"]["finalizers"] == ["example.com/hold"]
    apiserver.kubectl_ok("-n", namespace, "patch", "cm", "held", "--type=json", "-p",
                         '[{"op":"remove","path":"/metadata/finalizers"}]')
    assert not exists(apiserver, "-n", namespace, "get", "cm", "held")


def test_graceful_pod_deletion(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: node01\n"
        "  terminationGracePeriodSeconds: 45\n  containers:\n  - {name: c, image: nginx}\n"))
    apiserver.kubectl_ok("-n", namespace, "delete", "pod", "bound", "--wait=false")
    pod = get_json(apiserver, "-n", namespace, "get", "pod", "bound")
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 45
    assert apiserver.kubectl_ok("-n", namespace, "get", "pod", "bound", "--no-headers").split()[2] == "Terminating"
    apiserver.kubectl_ok("-n", namespace, "delete", "pod", "bound", "--grace-period=0", "--force")
    assert not exists(apiserver, "-n", namespace, "get", "pod", "bound")
    # An unscheduled pod goes at once.
    apiserver.kubectl_ok("-n", namespace, "run", "unbound", "--image=nginx")
    apiserver.kubectl_ok("-n", namespace, "delete", "pod", "unbound", "--wait=false")
    assert not exists(apiserver, "-n", namespace, "get", "pod", "unbound")


def _owned_configmap(apiserver, namespace, owner: dict, name: str) -> None:
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": [ref]}}))


@pytest.mark.parametrize("policy", ["background", "foreground", "orphan"])
def test_owner_reference_garbage_collection(apiserver, namespace, policy):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    owner = get_json(apiserver, "-n", namespace, "get", "deploy", "web")
    _owned_configmap(apiserver, namespace, owner, "dep")
    apiserver.kubectl_ok("-n", namespace, "delete", "deploy", "web", f"--cascade={policy}", "--timeout=20s")
    assert not exists(apiserver, "-n", namespace, "get", "deploy", "web")
    if policy == "orphan":
        cm = get_json(apiserver, "-n", namespace, "get", "cm", "dep")
        assert "ownerReferences" not in cm["metadata"]
    else:
        wait_for("dependent deleted", lambda: not exists(apiserver, "-n", namespace, "get", "cm", "dep"))


def test_namespace_termination_deletes_contents(apiserver):
    ns = f"term-{int(time.time() * 1000) % 100000}"
    apiserver.kubectl_ok("create", "namespace", ns)
    apiserver.kubectl_ok("-n", ns, "create", "configmap", "a", "--from-literal=x=1")
    apiserver.kubectl_ok("-n", ns, "apply", "-f", "-",
                         input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n")
    apiserver.kubectl_ok("delete", "namespace", ns, "--wait=false")
    ns_obj = get_json(apiserver, "get", "ns", ns)
    assert ns_obj["status"]["phase"] == "Terminating"
    p = apiserver.kubectl("-n", ns, "create", "configmap", "late")
    assert p.returncode != 0
    assert f"unable to create new content in namespace {ns} because it is being terminated" in p.stderr
    wait_for("configmap a deleted", lambda: not exists(apiserver, "-n", ns, "get", "cm", "a"))
    assert exists(apiserver, "get", "ns", ns)  # held by the finalizer of its last object
    apiserver.kubectl_ok("-n", ns, "patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for("namespace gone", lambda: not exists(apiserver, "get", "ns", ns))


def test_chunked_list_with_limit_and_continue(apiserver, namespace):
    for i in range(7):
        apiserver.kubectl_ok("-n", namespace, "create", "configmap", f"c{i}")
    out = apiserver.kubectl_ok("-n", namespace, "get", "cm", "--chunk-size=2", "-o", "name")
    assert [n for n in out.split() if n != "configmap/kube-root-ca.crt"] == [f"configmap/c{i}" for i in range(7)]
    first = json.loads(apiserver.kubectl_ok("get", "--raw", f"/api/v1/namespaces/{namespace}/configmaps?limit=3"))
    assert len(first["items"]) == 3 and first["metadata"]["remainingItemCount"] == 4
    rest = json.loads(apiserver.kubectl_ok(
        "get", "--raw", f"/api/v1/namespaces/{namespace}/configmaps?limit=10&continue={first['metadata']['continue']}"))
    assert [c["metadata"]["name"] for c in first["items"] + rest["items"]] == [f"c{i}" for i in range(7)]
    assert "continue" not in rest["metadata"]


def test_apply_a_list_validates_each_item_on_the_server(apiserver, namespace):
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l1"}},
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l2"}, "bogus": 1}]
    p = apiserver.kubectl("-n", namespace, "apply", "-f", "-",
                          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert p.stdout.strip() == "configmap/l1 created"
    assert p.stderr.strip() == ('Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" '
                                'cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus"')
    # `kubectl get -o yaml` output (a List) applies back.
    exported = apiserver.kubectl_ok("-n", namespace, "get", "cm", "-o", "yaml")
    assert apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=exported).strip() == "configmap/l1 configured"


def test_pod_defaults_and_admission_as_kube_apiserver(apiserver, namespace):
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dns"},
                "spec": {"priorityClassName": "system-cluster-critical",
                         "containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.10.1",
                                         "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                                         "ports": [{"containerPort": 53, "protocol": "UDP", "name": "dns"}]}]}}
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))
    pod = get_json(apiserver, "-n", namespace, "get", "pod", "dns")
    c = pod["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["livenessProbe"] == {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert (c["terminationMessagePath"], c["terminationMessagePolicy"]) == ("/dev/termination-log", "File")
    spec = pod["spec"]
    assert (spec["priority"], spec["preemptionPolicy"], spec["enableServiceLinks"]) == (2000000000, "PreemptLowerPriority", True)
    assert (spec["serviceAccountName"], spec["schedulerName"], spec["dnsPolicy"]) == ("default", "default-scheduler", "ClusterFirst")
    mount = c["volumeMounts"][0]
    assert mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" and mount["readOnly"] is True
    vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert mount["name"].startswith("kube-api-access-") and len(mount["name"]) == len("kube-api-access-") + 5
    assert [next(iter(s)) for s in vol["projected"]["sources"]] == ["serviceAccountToken", "configMap", "downwardAPI"]
    assert [t["key"] for t in spec["tolerations"]] == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_kubectl_edit_sends_a_patch_of_the_edited_fields(apiserver, namespace, tmp_path):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i -e 's/replicas: 2/replicas: 6/' -e 's/image: busybox$/image: busybox:1.36/' \"$1\"\n")
    editor.chmod(0o755)
    import os
    import subprocess

    p = subprocess.run(["kubectl", f"--kubeconfig={apiserver.kubeconfig}", "-n", namespace, "edit", "deploy", "web"],
                       env={**os.environ, "EDITOR": str(editor), "KUBE_EDITOR": str(editor)},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "deployment.apps/web edited"
    d = get_json(apiserver, "-n", namespace, "get", "deploy", "web")
    assert d["spec"]["replicas"] == 6
    assert [c["image"] for c in d["spec"]["template"]["spec"]["containers"]] == ["nginx:1.25", "busybox:1.36"]


def test_auth_reviews(apiserver):
    assert apiserver.kubectl_ok("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}") == "kubernetes-admin"
    assert apiserver.kubectl_ok("auth", "can-i", "delete", "pods", "-A").strip() == "yes"
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": apiserver.token}}
    out = json.loads(apiserver.kubectl_ok("create", "-f", "-", "-o", "json", input=json.dumps(review)))
    assert out["status"]["authenticated"] is True and out["status"]["user"]["username"] == "admin-by-token"
    review["spec"]["token"] = "bogus"
    out = json.loads(apiserver.kubectl_ok("create", "-f", "-", "-o", "json", input=json.dumps(review)))
    assert out["status"]["authenticated"] is False


def test_server_side_apply_conflicts_with_other_managers(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "owned", "--from-literal=a=1", "--from-literal=b=2")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  a: '9'\n  b: '2'\n"
    p = apiserver.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=cm)
    assert p.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.a' in p.stderr
    assert get_json(apiserver, "-n", namespace, "get", "cm", "owned")["data"] == {"a": "1", "b": "2"}
    # The same value is no conflict; --force-conflicts takes the field over.
    apiserver.kubectl_ok("-n", namespace, "apply", "--server-side", "--force-conflicts", "-f", "-", input=cm)
    obj = get_json(apiserver, "-n", namespace, "get", "cm", "owned", "--show-managed-fields")
    assert obj["data"] == {"a": "9", "b": "2"}
    owners = {m["manager"]: m["fieldsV1"] for m in obj["metadata"]["managedFields"]}
    assert owners["kubectl"] == {"f:data": {"f:a": {}, "f:b": {}}}
    assert owners["kubectl-create"] == {"f:data": {"f:b": {}}}
    # Dropping b from the applied config keeps it: kubectl-create still owns it.
    apiserver.kubectl_ok("-n", namespace, "apply", "--server-side", "-f", "-", input=cm.replace("  b: '2'\n", ""))
    assert get_json(apiserver, "-n", namespace, "get", "cm", "owned")["data"] == {"a": "9", "b": "2"}
