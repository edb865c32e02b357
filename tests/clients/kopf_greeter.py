"""A minimal kopf operator, as a user writes one, that tests/api/test_api_client_kopf.py runs
with `kopf run` against a knet apiserver: for each Greeting (demo.knet.dev/v1) it creates a
ConfigMap `<name>-greeting` owned by the Greeting and records the phase in the Greeting's status;
a change of spec.to rewrites the ConfigMap; on delete (kopf's finalizer holds the object until
then) it deletes the ConfigMap. Each greeting is also an Event on the Greeting. The `kubernetes` client inside the handlers reads $KUBECONFIG."""

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "demo.knet.dev", "v1", "greetings"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    kubernetes.config.load_kube_config()
    # Short watch requests, so the test also sees kopf's re-watch from the last resourceVersion.
    settings.watching.server_timeout = 20
    settings.peering.lifetime = 30


def greeting_map(name: str, to: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-greeting"},
            "data": {"text": f"Hello, {to}!"}}


@kopf.on.create(GROUP, VERSION, PLURAL)
def greet(spec, name, namespace, body, patch, logger, **_):
    cm = greeting_map(name, spec["to"])
    kopf.adopt(cm, owner=body)
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, cm)
    kopf.info(body, reason="Greeted", message=f"created ConfigMap {cm['metadata']['name']}")
    logger.info(f"greeted {spec['to']}")
    patch.status["phase"] = "Greeted"
    return {"configMap": cm["metadata"]["name"]}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.to")
def regreet(new, name, namespace, patch, **_):
    kubernetes.client.CoreV1Api().patch_namespaced_config_map(
        f"{name}-greeting", namespace, {"data": {"text": f"Hello, {new}!"}})
    patch.status["phase"] = "Regreeted"


@kopf.on.delete(GROUP, VERSION, PLURAL)
def farewell(name, namespace, logger, **_):
    kubernetes.client.CoreV1Api().delete_namespaced_config_map(f"{name}-greeting", namespace)
    logger.info("said farewell")
