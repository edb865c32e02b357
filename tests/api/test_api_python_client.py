"""The official `kubernetes` Python client deserialises every kind knet serves into its typed
models (after tests elsewhere have created objects of each kind in this session's apiserver)."""

from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.api

OBJECTS = """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {type: NodePort, selector: {app: p}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: ds}}
  template: {metadata: {labels: {app: ds}}, spec: {containers: [{name: c, image: nginx}]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: l}
spec: {holderIdentity: me, leaseDurationSeconds: 10, renewTime: "2026-01-01T00:00:00.000000Z"}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-abc, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
ports: [{name: "", port: 80, protocol: TCP}]
endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}}]
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: e1}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: knet.io/test
reportingInstance: test
action: Testing
reason: Tested
type: Normal
regarding: {kind: Pod, name: p}
note: a note
"""


def test_typed_models_for_every_kind(apiserver, namespace):
    import kubernetes

    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=OBJECTS)
    with apiserver.client() as c:
        core, apps = kubernetes.client.CoreV1Api(c), kubernetes.client.AppsV1Api(c)
        pod = core.read_namespaced_pod("p", namespace)
        assert pod.spec.containers[0].ports[0].container_port == 80 and pod.status.phase == "Pending"
        svc = core.read_namespaced_service("s", namespace)
        assert svc.spec.ports[0].target_port == "http" and 30000 <= svc.spec.ports[0].node_port <= 32767
        assert core.read_namespaced_secret("sec", namespace).data == {"password": "aHVudGVyMg=="}
        assert apps.read_namespaced_daemon_set("ds", namespace).spec.update_strategy.type == "RollingUpdate"
        np = kubernetes.client.NetworkingV1Api(c).read_namespaced_network_policy("np", namespace)
        assert np.spec.policy_types == ["Ingress"] and np.spec.ingress[0].ports[0].protocol == "TCP"
        lease = kubernetes.client.CoordinationV1Api(c).read_namespaced_lease("l", namespace)
        assert lease.spec.holder_identity == "me" and lease.spec.renew_time.year == 2026
        es = kubernetes.client.DiscoveryV1Api(c).read_namespaced_endpoint_slice("s-abc", namespace)
        assert es.endpoints[0].addresses == ["10.244.1.5"]
        ev = kubernetes.client.EventsV1Api(c).read_namespaced_event("e1", namespace)
        assert ev.note == "a note" and ev.regarding.name == "p"
        core_ev = core.read_namespaced_event("e1", namespace)
        assert core_ev.message == "a note" and core_ev.involved_object.name == "p"
        # Every list endpoint deserialises (all namespaces).
        for lister in (core.list_pod_for_all_namespaces, core.list_service_for_all_namespaces, core.list_node,
                       core.list_namespace, core.list_endpoints_for_all_namespaces, core.list_event_for_all_namespaces,
                       core.list_config_map_for_all_namespaces, core.list_secret_for_all_namespaces,
                       core.list_service_account_for_all_namespaces, apps.list_deployment_for_all_namespaces,
                       apps.list_replica_set_for_all_namespaces, apps.list_daemon_set_for_all_namespaces,
                       kubernetes.client.NetworkingV1Api(c).list_network_policy_for_all_namespaces,
                       kubernetes.client.CoordinationV1Api(c).list_lease_for_all_namespaces,
                       kubernetes.client.DiscoveryV1Api(c).list_endpoint_slice_for_all_namespaces,
                       kubernetes.client.EventsV1Api(c).list_event_for_all_namespaces):
            result = lister()
            assert result.metadata.resource_version, lister.__name__
        ns_list = core.list_namespace(label_selector=f"kubernetes.io/metadata.name={namespace}")
        assert [n.metadata.name for n in ns_list.items] == [namespace]


def test_yaml_manifests_round_trip(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=OBJECTS)
    exported = apiserver.kubectl_ok("-n", namespace, "get", "svc", "s", "-o", "yaml")
    svc = yaml.safe_load(exported)
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert apiserver.kubectl_ok("-n", namespace, "replace", "-f", "-", input=exported).strip() == "service/s replaced"
