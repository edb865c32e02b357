"""kopf (`pip install kopf`, aiohttp underneath) against a knet apiserver: the minimal operator
tests/clients/kopf_greeter.py runs as a user runs one, `kopf run --namespace NS --peering NAME`
with a kubeconfig. What a user sees: the operator joins its KopfPeering (and leaves it when
stopped), a Greeting gets kopf's finalizer, an owned ConfigMap, a status the printer columns show
and an Event; an edit is handled; a delete waits for the operator's delete handler, and while the
operator is down the finalizer holds the Greeting in Terminating until it comes back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import kopf
import pytest
from node_agents import wait_for

pytestmark = pytest.mark.api

OPERATOR = Path(__file__).resolve().parents[1] / "clients" / "kopf_greeter.py"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
# `kopf` of this interpreter's environment (the console script, else the module).
KOPF = [shutil.which("kopf")] if shutil.which("kopf") else [sys.executable, "-m", "kopf"]

CRDS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: greetings.demo.knet.dev}
spec:
  group: demo.knet.dev
  scope: Namespaced
  names: {kind: Greeting, plural: greetings, singular: greeting}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: To, type: string, jsonPath: .spec.to}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [to]
            properties:
              to: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
---
# kopf's peering resources (as kopf's docs/peering.yaml defines them for kopf.dev).
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kopfpeerings.kopf.dev}
spec:
  group: kopf.dev
  scope: Namespaced
  names: {kind: KopfPeering, plural: kopfpeerings, singular: kopfpeering}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterkopfpeerings.kopf.dev}
spec:
  group: kopf.dev
  scope: Cluster
  names: {kind: ClusterKopfPeering, plural: clusterkopfpeerings, singular: clusterkopfpeering}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def greeting(name: str, namespace: str, to: str) -> str:
    return (f"apiVersion: demo.knet.dev/v1\nkind: Greeting\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec: {{to: {to}}}\n")


class Operator:
    """`kopf run` of the greeter as a subprocess; its log is shown when a test fails."""

    def __init__(self, apiserver, namespace: str, log: Path):
        self.apiserver, self.namespace, self.log = apiserver, namespace, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.apiserver.kubeconfig, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*KOPF, "run", "--namespace", self.namespace, "--peering", "greeters", "--verbose", str(OPERATOR)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"kopf did not stop on SIGTERM:\n{self.tail()}") from None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else "(no log)"


def kubectl_json(apiserver, *args: str) -> dict:
    return json.loads(apiserver.kubectl_ok(*args, "-o", "json"))


def peers(apiserver, namespace: str) -> dict:
    return kubectl_json(apiserver, "get", "kopfpeering", "greeters", "-n", namespace).get("status") or {}


def test_kopf_operator_handles_a_custom_resource(apiserver, namespace, tmp_path):
    assert kopf.__version__
    apiserver.kubectl_ok("apply", "-f", "-", input=CRDS)
    for crd in ("greetings.demo.knet.dev", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        apiserver.kubectl_ok("wait", "--for=condition=Established", f"crd/{crd}", timeout=30)
    apiserver.kubectl_ok("apply", "-f", "-", input=f"apiVersion: kopf.dev/v1\nkind: KopfPeering\n"
                                                   f"metadata: {{name: greeters, namespace: {namespace}}}\n")
    operator = Operator(apiserver, namespace, tmp_path / "kopf.log")
    operator.start()
    try:
        run_scenario(apiserver, namespace, operator)
    except BaseException:
        print(f"--- kopf log ---\n{operator.tail()}")
        raise
    finally:
        if operator.process is not None and operator.process.poll() is None:
            operator.process.kill()
            operator.process.wait(5)


def run_scenario(apiserver, namespace: str, operator: Operator) -> None:
    ns = ["-n", namespace]
    # The operator announces itself in its peering object (id, priority, lastseen, lifetime).
    me = wait_for("the operator in its KopfPeering", lambda: list(peers(apiserver, namespace)), timeout=30)
    assert len(me) == 1 and peers(apiserver, namespace)[me[0]]["priority"] == 0

    apiserver.kubectl_ok("apply", "-f", "-", input=greeting("hello", namespace, "world"))
    cm = wait_for("the greeting's ConfigMap",
                  lambda: kubectl_json(apiserver, "get", "configmap", "hello-greeting", *ns), timeout=30)
    assert cm["data"] == {"text": "Hello, world!"}
    owner = cm["metadata"]["ownerReferences"]
    obj = kubectl_json(apiserver, "get", "greeting", "hello", *ns)
    assert owner == [{"apiVersion": "demo.knet.dev/v1", "kind": "Greeting", "name": "hello",
                      "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    wait_for("status.phase Greeted", lambda: kubectl_json(apiserver, "get", "greeting", "hello", *ns)
             .get("status", {}).get("phase") == "Greeted", timeout=15)
    obj = kubectl_json(apiserver, "get", "greeting", "hello", *ns)
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    assert obj["status"]["greet"] == {"configMap": "hello-greeting"}  # the handler's return value
    assert "kopf.zalando.org/last-handled-configuration" in obj["metadata"]["annotations"]
    # Only the CRD's printer columns: no AGE column when a CRD names its own, as upstream.
    table = apiserver.kubectl_ok("get", "greetings", *ns).splitlines()
    assert table[0].split() == ["NAME", "TO", "PHASE"] and table[1].split()[:3] == ["hello", "world", "Greeted"]
    events = wait_for("kopf's Event", lambda: [e for e in kubectl_json(apiserver, "get", "events", *ns,
                                                                         "--field-selector", "involvedObject.name=hello")
                                                 ["items"] if e["reason"] == "Greeted"], timeout=15)
    assert events[0]["message"] == "created ConfigMap hello-greeting"
    assert events[0]["involvedObject"]["kind"] == "Greeting" and events[0]["source"]["component"] == "kopf"
    assert "created ConfigMap hello-greeting" in apiserver.kubectl_ok("describe", "greeting", "hello", *ns)

    # An edit of spec.to reaches the update handler.
    apiserver.kubectl_ok("patch", "greeting", "hello", *ns, "--type=merge", "-p", '{"spec":{"to":"knet"}}')
    wait_for("the rewritten ConfigMap", lambda: kubectl_json(apiserver, "get", "configmap", "hello-greeting", *ns)
             ["data"] == {"text": "Hello, knet!"}, timeout=15)
    wait_for("status.phase Regreeted", lambda: kubectl_json(apiserver, "get", "greeting", "hello", *ns)
             .get("status", {}).get("phase") == "Regreeted", timeout=15)

    # kubectl delete waits until the operator's delete handler ran and dropped the finalizer.
    apiserver.kubectl_ok("delete", "greeting", "hello", *ns, "--timeout=30s", timeout=40)
    assert apiserver.kubectl("get", "greeting", "hello", *ns).returncode == 1
    assert apiserver.kubectl("get", "configmap", "hello-greeting", *ns).returncode == 1

    # With the operator stopped, the finalizer holds a deleted Greeting in Terminating.
    apiserver.kubectl_ok("apply", "-f", "-", input=greeting("later", namespace, "again"))
    wait_for("the second ConfigMap", lambda: apiserver.kubectl("get", "configmap", "later-greeting", *ns)
             .returncode == 0, timeout=30)
    wait_for("status.phase Greeted", lambda: kubectl_json(apiserver, "get", "greeting", "later", *ns)
             .get("status", {}).get("phase") == "Greeted", timeout=15)
    assert operator.stop() == 0
    assert peers(apiserver, namespace) == {}  # a stopping operator leaves its peering
    apiserver.kubectl_ok("delete", "greeting", "later", *ns, "--wait=false")
    held = kubectl_json(apiserver, "get", "greeting", "later", *ns)
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == [FINALIZER]
    assert apiserver.kubectl("get", "configmap", "later-greeting", *ns).returncode == 0

    # Back up, the operator finishes the deletion it missed.
    operator.start()
    wait_for("the Greeting gone", lambda: apiserver.kubectl("get", "greeting", "later", *ns).returncode == 1,
             timeout=30)
    assert apiserver.kubectl("get", "configmap", "later-greeting", *ns).returncode == 1
    assert operator.stop() == 0
    assert operator.log.read_text().count("Handler 'greet' succeeded") == 2  # nothing was greeted twice
