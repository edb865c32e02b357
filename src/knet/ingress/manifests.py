"""The ingress controller add-on as cluster objects, in the shape of ingress-nginx's
deploy/static/provider/baremetal/deploy.yaml (trimmed of the admission webhook, which knet does
not run): namespace `ingress-nginx`, ServiceAccount + RBAC, Service `ingress-nginx-controller`
(NodePort), Deployment `ingress-nginx-controller` and the IngressClass `nginx`, which is the
cluster's default class (as minikube's ingress add-on marks it), so `kubectl create ingress`
without --class is served. `knet up` creates them unless the cluster config says
`ingressController: false`; `knet ingress-manifest | kubectl apply -f -` (or `delete -f -`)
installs or removes them by hand."""

from __future__ import annotations

from typing import Any

NAMESPACE = "ingress-nginx"
NAME = "ingress-nginx"
CONTROLLER = "ingress-nginx-controller"
CLASS_NAME = "nginx"
CONTROLLER_CLASS = "k8s.io/ingress-nginx"
IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.12.0"
RBAC = "rbac.authorization.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
LABELS = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx",
          "app.kubernetes.io/part-of": "ingress-nginx"}
SELECTOR = {**LABELS, "app.kubernetes.io/component": "controller"}


def _meta(name: str, namespaced: bool = True, component: str | None = "controller") -> dict[str, Any]:
    labels = dict(LABELS)
    if component:
        labels["app.kubernetes.io/component"] = component
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def objects() -> list[tuple[str, str, dict[str, Any]]]:
    """(apiVersion, resource, object), in the order to create them."""
    sa = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "name": NAME}
    return [
        ("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": NAMESPACE, "labels": {"app.kubernetes.io/name": "ingress-nginx",
                                          "app.kubernetes.io/instance": "ingress-nginx"}}}),
        ("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME),
                                   "automountServiceAccountToken": True}),
        (RBAC, "roles", {"apiVersion": RBAC, "kind": "Role", "metadata": _meta(NAME), "rules": [
            _rule([""], ["namespaces"], ["get"]),
            _rule([""], ["configmaps", "pods", "secrets", "endpoints"], ["get", "list", "watch"]),
            _rule([""], ["services"], ["get", "list", "watch"]),
            # knet's Gateway API side: each Gateway's LoadBalancer Service (gatewaycontroller.py)
            _rule([""], ["services"], ["create", "update", "patch", "delete"]),
            _rule(["networking.k8s.io"], ["ingresses"], ["get", "list", "watch"]),
            _rule(["networking.k8s.io"], ["ingresses/status"], ["update", "patch"]),
            _rule(["networking.k8s.io"], ["ingressclasses"], ["get", "list", "watch"]),
            _rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"]),
            _rule([""], ["events"], ["create", "patch"]),
            _rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch", "get"]),
        ]}),
        (RBAC, "rolebindings", {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": _meta(NAME),
                                "roleRef": {**role_ref, "kind": "Role"}, "subjects": sa}),
        (RBAC, "clusterroles", {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": _meta(NAME, False, None),
                                "rules": [
            _rule([""], ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"], ["list", "watch"]),
            _rule(["coordination.k8s.io"], ["leases"], ["list", "watch"]),
            _rule([""], ["nodes"], ["get"]),
            _rule([""], ["services"], ["get", "list", "watch"]),
            _rule(["networking.k8s.io"], ["ingresses"], ["get", "list", "watch"]),
            _rule([""], ["events"], ["create", "patch"]),
            _rule(["events.k8s.io"], ["events"], ["create", "patch", "update"]),
            _rule(["networking.k8s.io"], ["ingresses/status"], ["update", "patch"]),
            _rule(["networking.k8s.io"], ["ingressclasses"], ["get", "list", "watch"]),
            _rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch", "get"]),
            _rule([GATEWAY_GROUP], ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants"],
                  ["get", "list", "watch"]),
            _rule([GATEWAY_GROUP], ["gatewayclasses/status", "gateways/status", "httproutes/status",
                                    "grpcroutes/status"], ["update", "patch"]),
        ]}),
        (RBAC, "clusterrolebindings", {"apiVersion": RBAC, "kind": "ClusterRoleBinding",
                                       "metadata": _meta(NAME, False, None),
                                       "roleRef": {**role_ref, "kind": "ClusterRole"}, "subjects": sa}),
        ("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": _meta(CONTROLLER), "spec": {
            "type": "NodePort", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
            "selector": dict(SELECTOR),
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "appProtocol": "http"},
                      {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https",
                       "appProtocol": "https"}]}}),
        ("apps/v1", "deployments", deployment()),
        ("networking.k8s.io/v1", "ingressclasses", {
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {**_meta(CLASS_NAME, False), "annotations": {
                "ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": CONTROLLER_CLASS}}),
    ]


def deployment() -> dict[str, Any]:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    probe = {"httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"}, "periodSeconds": 10,
             "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(CONTROLLER), "spec": {
        "replicas": 1, "revisionHistoryLimit": 10, "minReadySeconds": 0,
        "selector": {"matchLabels": dict(SELECTOR)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        "template": {"metadata": {"labels": dict(SELECTOR)}, "spec": {
            "serviceAccountName": NAME, "terminationGracePeriodSeconds": 300, "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [{
                "name": "controller", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                "args": ["/nginx-ingress-controller", "--election-id=ingress-nginx-leader",
                         f"--controller-class={CONTROLLER_CLASS}", f"--ingress-class={CLASS_NAME}",
                         f"--configmap=$(POD_NAMESPACE)/{CONTROLLER}",
                         f"--publish-service=$(POD_NAMESPACE)/{CONTROLLER}"],
                "env": env,
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                          {"name": "https", "containerPort": 443, "protocol": "TCP"}],
                "readinessProbe": {**probe, "initialDelaySeconds": 2},
                "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 5},
                "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}},
            }],
        }},
    }}


def manifest_yaml() -> str:
    import yaml

    return "".join("---\n" + yaml.safe_dump(obj, sort_keys=False) for _, _, obj in objects())
