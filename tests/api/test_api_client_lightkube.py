"""lightkube (`pip install lightkube`, typed models from lightkube-models, httpx underneath)
against a knet apiserver, as a user's script uses it: list with label and field selectors (and
chunked), watch, create, patch (merge, strategic merge, JSON), server-side apply with a field
manager (and its conflict), delete, generic resources of a CRD, a refused identity, and exec
(lightkube speaks WebSocket v5.channel.k8s.io, so stdin works) into a pod of a real node agent."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from httpx2.websockets import WebSocketUpgradeError
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, EnvVar, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Pod
from lightkube.types import PatchType
from node_agents import host_static_pod, sim_kubelet, wait_for

pytestmark = pytest.mark.api

NODE = "lightkube-node"
POD = f"shell-{NODE}"

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.lightkube.knet.dev}
spec:
  group: lightkube.knet.dev
  scope: Namespaced
  names: {kind: Gizmo, plural: gizmos, singular: gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, properties: {ready: {type: boolean}}}
"""


def client(apiserver) -> Client:
    return Client(config=KubeConfig.from_file(apiserver.kubeconfig), field_manager="lightkube-script")


def test_list_watch_create_patch_delete(apiserver, namespace):
    c = client(apiserver)
    events: list[tuple[str, str, dict]] = []

    def watch():
        for event, cm in c.watch(ConfigMap, namespace=namespace, labels={"app": "demo"}):
            events.append((event, cm.metadata.name, dict(cm.data or {})))
            if event == "DELETED":
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.5)  # the watch request is on its way before the first change

    made = c.create(ConfigMap(metadata=ObjectMeta(name="settings", labels={"app": "demo"}), data={"color": "blue"}),
                    namespace=namespace)
    assert made.metadata.uid and made.metadata.resourceVersion
    for i in range(5):
        c.create(ConfigMap(metadata=ObjectMeta(name=f"extra-{i}", labels={"app": "extra"})), namespace=namespace)
    assert [cm.metadata.name for cm in c.list(ConfigMap, namespace=namespace, labels={"app": "demo"})] == ["settings"]
    # chunk_size pages through `limit`/`continue` tokens.
    paged = [cm.metadata.name for cm in c.list(ConfigMap, namespace=namespace, labels={"app": "extra"}, chunk_size=2)]
    assert paged == [f"extra-{i}" for i in range(5)]
    assert [cm.metadata.name for cm in c.list(ConfigMap, namespace=namespace,
                                              fields={"metadata.name": "extra-3"})] == ["extra-3"]

    c.patch(ConfigMap, "settings", {"data": {"size": "L"}}, namespace=namespace, patch_type=PatchType.MERGE)
    c.patch(ConfigMap, "settings", [{"op": "replace", "path": "/data/color", "value": "green"}],
            namespace=namespace, patch_type=PatchType.JSON)
    assert c.get(ConfigMap, "settings", namespace=namespace).data == {"color": "green", "size": "L"}
    with pytest.raises(ApiError) as failed:  # a JSON patch's failed test op is 422, as upstream
        c.patch(ConfigMap, "settings", [{"op": "test", "path": "/data/color", "value": "red"}],
                namespace=namespace, patch_type=PatchType.JSON)
    assert failed.value.status.code == 422

    # Strategic merge (lightkube's default patch type): containers and env merge by name.
    c.create(Deployment(metadata=ObjectMeta(name="web"), spec=DeploymentSpec(
        replicas=1, selector=LabelSelector(matchLabels={"app": "web"}),
        template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": "web"}), spec=PodSpec(containers=[
            Container(name="web", image="nginx", env=[EnvVar(name="A", value="1")])])))), namespace=namespace)
    dep = c.patch(Deployment, "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "B", "value": "2"}]}]}}}}, namespace=namespace)
    assert [(e.name, e.value) for e in dep.spec.template.spec.containers[0].env] == [("A", "1"), ("B", "2")]

    c.delete(ConfigMap, "settings", namespace=namespace)
    watcher.join(15)
    assert events == [("ADDED", "settings", {"color": "blue"}),
                      ("MODIFIED", "settings", {"color": "blue", "size": "L"}),
                      ("MODIFIED", "settings", {"color": "green", "size": "L"}),
                      ("DELETED", "settings", {"color": "green", "size": "L"})]
    with pytest.raises(ApiError) as missing:
        c.get(ConfigMap, "settings", namespace=namespace)
    assert (missing.value.status.code, missing.value.status.reason) == (404, "NotFound")
    c.deletecollection(ConfigMap, namespace=namespace)
    assert apiserver.kubectl_ok("get", "configmaps", "-n", namespace, "-o", "name") == ""


def test_server_side_apply(apiserver, namespace):
    c = client(apiserver)
    dep = Deployment(metadata=ObjectMeta(name="api", namespace=namespace), spec=DeploymentSpec(
        replicas=2, selector=LabelSelector(matchLabels={"app": "api"}),
        template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": "api"}), spec=PodSpec(containers=[
            Container(name="api", image="nginx")]))))
    applied = c.apply(dep)  # the client's field_manager
    assert applied.spec.replicas == 2
    assert [(m.manager, m.operation) for m in applied.metadata.managedFields] == [("lightkube-script", "Apply")]

    # Another manager setting the same field to another value is a conflict, unless forced.
    scaled = Deployment(metadata=ObjectMeta(name="api", namespace=namespace), spec=DeploymentSpec(
        replicas=5, selector=LabelSelector(matchLabels={"app": "api"}), template=dep.spec.template))
    with pytest.raises(ApiError) as conflict:
        c.apply(scaled, field_manager="autoscaler-script")
    assert (conflict.value.status.code, conflict.value.status.reason) == (409, "Conflict")
    assert 'conflict with "lightkube-script"' in conflict.value.status.message
    forced = c.apply(scaled, field_manager="autoscaler-script", force=True)
    assert forced.spec.replicas == 5
    assert apiserver.kubectl_ok("get", "deployment", "api", "-n", namespace, "-o",
                                "jsonpath={.spec.replicas}") == "5"

    # Generic resources: a CRD's objects through create_namespaced_resource, status subresource included.
    apiserver.kubectl_ok("apply", "-f", "-", input=CRD)
    apiserver.kubectl_ok("wait", "--for=condition=Established", "crd/gizmos.lightkube.knet.dev", timeout=30)
    Gizmo = create_namespaced_resource("lightkube.knet.dev", "v1", "Gizmo", "gizmos")
    w = c.apply(Gizmo(metadata=ObjectMeta(name="w1", namespace=namespace), spec={"size": 3}))
    assert w.spec == {"size": 3}
    c.apply(Gizmo.Status(metadata=ObjectMeta(name="w1", namespace=namespace), status={"ready": True}),
            field_manager="gizmo-controller")
    got = c.get(Gizmo, "w1", namespace=namespace)
    assert (got.spec, got.status) == ({"size": 3}, {"ready": True})
    assert [g.metadata.name for g in c.list(Gizmo, namespace=namespace)] == ["w1"]


def test_a_refused_identity_gets_403(apiserver, namespace):
    apiserver.kubectl_ok("create", "serviceaccount", "nobody", "-n", namespace)
    token = apiserver.kubectl_ok("create", "token", "nobody", "-n", namespace).strip()
    kubeconfig = KubeConfig.from_one(cluster=Cluster(server=apiserver.url, certificate_auth=apiserver.ca_file),
                                     user=User(token=token), namespace=namespace)
    c = Client(config=kubeconfig)
    with pytest.raises(ApiError) as refused:
        list(c.list(ConfigMap))
    assert (refused.value.status.code, refused.value.status.reason) == (403, "Forbidden")
    assert f'"system:serviceaccount:{namespace}:nobody" cannot list resource "configmaps"' in \
        refused.value.status.message


@pytest.fixture(scope="module")
def shell_pod(apiserver, tmp_path_factory):
    manifest = host_static_pod("shell", {"main": "echo started; exec sleep 3600"})
    with sim_kubelet(apiserver, tmp_path_factory.mktemp("lightkube-kubelet"), NODE, kubeconfig=apiserver.kubeconfig,
                     pod_cidr="10.244.82.0/24", taint="example.com/lightkube-only:NoSchedule",
                     static_pods={"shell": manifest}):
        wait_for("the shell pod to run", lambda: "started" in apiserver.kubectl("logs", POD).stdout, timeout=20.0)
        yield POD


def test_exec_with_stdin(apiserver, shell_pod):
    # AsyncClient: lightkube's sync Client runs exec through httpx2's thread-based WebSockets,
    # whose background reader outlives the closed socket and can steal the first bytes of the
    # next connection that reuses its fd (seen with strace: a later request's TLS handshake
    # fails with WRONG_VERSION_NUMBER). That is a client bug, whatever the server.
    async def script():
        c = AsyncClient(config=KubeConfig.from_file(apiserver.kubeconfig))
        assert (await c.get(Pod, shell_pod, namespace="default")).status.phase == "Running"
        for _ in range(3):  # one client, several sessions
            done = await c.exec(shell_pod, namespace="default", command=["sh", "-c", "tr a-z A-Z; echo err >&2; exit 2"],
                                stdin="shout\n", stdout=True, stderr=True, timeout=20)
            assert (done.stdout, done.stderr, done.exit_code) == ("SHOUT\n", "err\n", 2)
        with pytest.raises(ApiError) as failed:
            await c.exec(shell_pod, namespace="default", command=["false"], raise_on_error=True, timeout=20)
        assert failed.value.status.reason == "NonZeroExitCode"
        assert [(c.reason, c.message) for c in failed.value.status.details.causes] == [("ExitCode", "1")]
        # A wrong container is refused before the upgrade (400 with a Status, as kube-apiserver's
        # exec does); lightkube surfaces the refused upgrade as httpx2's WebSocketUpgradeError.
        with pytest.raises(WebSocketUpgradeError) as refused:
            await c.exec(shell_pod, namespace="default", container="nope", command=["true"], timeout=20)
        assert refused.value.response.status_code == 400  # httpx2 closes its body before raising
        await c.close()

    asyncio.run(asyncio.wait_for(script(), 60))
