"""Upstream's RBAC rules of the roles knet's components run under, as data, and a rule matcher for
the (verb, group, resource, subresource, namespace, name) requests FakeApi logs.

The rule lists are copied from kubernetes/kubernetes
plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/controller-roles.yaml (system:controller:*)
and testdata/cluster-roles.yaml (system:kube-controller-manager, system:kube-scheduler,
system:volume-scheduler, system:node-proxier), and from kubeadm's CoreDNS ClusterRole
(cmd/kubeadm/app/phases/addons/dns/manifests.go, `system:coredns`). Each rule is
(apiGroups, resources, verbs[, resourceNames]); "res/sub" names a subresource, as in RBAC.
"""

from __future__ import annotations

from collections.abc import Iterable

from knet.client.fake import ApiRequest

Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | \
    tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]

EVENTS = (("", "events.k8s.io"), ("events",), ("create", "patch", "update"))  # upstream's eventsRule()

CONTROLLER_ROLES: dict[str, list[Rule]] = {
    "system:controller:clusterrole-aggregation-controller": [
        (("rbac.authorization.k8s.io",), ("clusterroles",), ("escalate", "get", "list", "patch", "update", "watch")),
    ],
    "system:controller:cronjob-controller": [
        (("batch",), ("cronjobs",), ("get", "list", "update", "watch")),
        (("batch",), ("jobs",), ("create", "delete", "get", "list", "patch", "update", "watch")),
        (("batch",), ("cronjobs/status",), ("update",)),
        (("batch",), ("cronjobs/finalizers",), ("update",)),
        (("",), ("pods",), ("delete", "list", "watch")),
        EVENTS,
    ],
    "system:controller:daemon-set-controller": [
        (("apps", "extensions"), ("daemonsets",), ("get", "list", "watch")),
        (("apps", "extensions"), ("daemonsets/status",), ("update",)),
        (("apps", "extensions"), ("daemonsets/finalizers",), ("update",)),
        (("",), ("nodes",), ("list", "watch")),
        (("",), ("pods",), ("create", "delete", "list", "patch", "watch")),
        (("",), ("pods/binding",), ("create",)),
        (("apps",), ("controllerrevisions",), ("create", "delete", "get", "list", "patch", "update", "watch")),
        EVENTS,
    ],
    "system:controller:statefulset-controller": [
        (("",), ("pods",), ("list", "watch")),
        (("apps",), ("statefulsets",), ("get", "list", "watch")),
        (("apps",), ("statefulsets/status",), ("update",)),
        (("apps",), ("statefulsets/finalizers",), ("update",)),
        (("",), ("pods",), ("create", "delete", "get", "patch", "update")),
        (("apps",), ("controllerrevisions",), ("create", "delete", "get", "list", "patch", "update", "watch")),
        (("",), ("persistentvolumeclaims",), ("create", "get", "list", "watch")),
        (("",), ("persistentvolumeclaims",), ("delete", "update")),
        (("",), ("pods/finalizers",), ("update",)),
        EVENTS,
    ],
    "system:controller:deployment-controller": [
        (("apps", "extensions"), ("deployments",), ("get", "list", "update", "watch")),
        (("apps", "extensions"), ("deployments/status",), ("update",)),
        (("apps", "extensions"), ("deployments/finalizers",), ("update",)),
        (("apps", "extensions"), ("replicasets",), ("create", "delete", "get", "list", "patch", "update", "watch")),
        (("",), ("pods",), ("get", "list", "update", "watch")),
        EVENTS,
    ],
    "system:controller:endpoint-controller": [
        (("",), ("pods", "services"), ("get", "list", "watch")),
        (("",), ("endpoints",), ("create", "delete", "get", "list", "update", "watch")),
        (("",), ("endpoints/restricted",), ("create",)),
        EVENTS,
    ],
    "system:controller:endpointslice-controller": [
        (("",), ("nodes", "pods", "services"), ("get", "list", "watch")),
        (("",), ("services/finalizers",), ("update",)),
        (("discovery.k8s.io",), ("endpointslices",), ("create", "delete", "get", "list", "update", "watch")),
        EVENTS,
    ],
    "system:controller:generic-garbage-collector": [
        (("*",), ("*",), ("delete", "get", "list", "patch", "update", "watch")),
        EVENTS,
    ],
    "system:controller:job-controller": [
        (("batch",), ("jobs",), ("get", "list", "patch", "update", "watch")),
        (("batch",), ("jobs/status",), ("update",)),
        (("batch",), ("jobs/finalizers",), ("update",)),
        (("",), ("pods",), ("create", "delete", "list", "patch", "watch")),
        EVENTS,
    ],
    "system:controller:namespace-controller": [
        (("",), ("namespaces",), ("delete", "get", "list", "watch")),
        (("",), ("namespaces/finalize", "namespaces/status"), ("update",)),
        (("*",), ("*",), ("delete", "deletecollection", "get", "list", "watch")),
    ],
    "system:controller:node-controller": [
        (("",), ("nodes",), ("delete", "get", "list", "patch", "update", "watch")),
        (("",), ("nodes/status",), ("patch", "update")),
        (("",), ("pods/status",), ("patch", "update")),
        (("",), ("pods",), ("delete", "get", "list", "watch")),
        EVENTS,
    ],
    "system:controller:pod-garbage-collector": [
        (("",), ("pods",), ("delete", "list", "watch")),
        (("",), ("nodes",), ("get", "list", "watch")),
        (("",), ("pods/status",), ("patch",)),
    ],
    "system:controller:replicaset-controller": [
        (("apps", "extensions"), ("replicasets",), ("get", "list", "update", "watch")),
        (("apps", "extensions"), ("replicasets/status",), ("update",)),
        (("apps", "extensions"), ("replicasets/finalizers",), ("update",)),
        (("",), ("pods",), ("create", "delete", "list", "patch", "watch")),
        EVENTS,
    ],
    "system:controller:root-ca-cert-publisher": [
        (("",), ("configmaps",), ("create", "update")),
        EVENTS,
    ],
    "system:controller:service-controller": [
        (("",), ("services",), ("get", "list", "watch")),
        (("",), ("services",), ("patch", "update")),
        (("",), ("services/status",), ("patch", "update")),
        (("",), ("nodes",), ("list", "watch")),
        EVENTS,
    ],
    "system:controller:service-account-controller": [
        (("",), ("serviceaccounts",), ("create",)),
        EVENTS,
    ],
    "system:controller:ttl-after-finished-controller": [
        (("batch",), ("jobs",), ("delete", "get", "list", "watch")),
        EVENTS,
    ],
}

CLUSTER_ROLES: dict[str, list[Rule]] = {
    "system:kube-controller-manager": [
        EVENTS,
        (("coordination.k8s.io",), ("leases",), ("create",)),
        (("coordination.k8s.io",), ("leases",), ("get", "update"), ("kube-controller-manager",)),
        (("",), ("secrets", "serviceaccounts"), ("create",)),
        (("",), ("secrets",), ("delete",)),
        (("",), ("configmaps", "namespaces", "secrets", "serviceaccounts"), ("get",)),
        (("",), ("secrets", "serviceaccounts"), ("update",)),
        (("authentication.k8s.io",), ("tokenreviews",), ("create",)),
        (("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
        (("*",), ("*",), ("list", "watch")),
        (("",), ("serviceaccounts/token",), ("create",)),
    ],
    "system:kube-scheduler": [
        EVENTS,
        (("coordination.k8s.io",), ("leases",), ("create",)),
        (("coordination.k8s.io",), ("leases",), ("get", "update"), ("kube-scheduler",)),
        (("",), ("nodes",), ("get", "list", "watch")),
        (("",), ("pods",), ("delete", "get", "list", "watch")),
        (("",), ("bindings", "pods/binding"), ("create",)),
        (("",), ("pods/status",), ("patch", "update")),
        (("",), ("replicationcontrollers", "services"), ("get", "list", "watch")),
        (("apps", "extensions"), ("replicasets",), ("get", "list", "watch")),
        (("apps",), ("statefulsets",), ("get", "list", "watch")),
        (("policy",), ("poddisruptionbudgets",), ("get", "list", "watch")),
        (("",), ("persistentvolumeclaims", "persistentvolumes"), ("get", "list", "watch")),
        (("authentication.k8s.io",), ("tokenreviews",), ("create",)),
        (("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
        (("storage.k8s.io",), ("csinodes",), ("get", "list", "watch")),
        (("",), ("namespaces",), ("get", "list", "watch")),
        (("storage.k8s.io",), ("csidrivers",), ("get", "list", "watch")),
        (("storage.k8s.io",), ("csistoragecapacities",), ("get", "list", "watch")),
    ],
    "system:volume-scheduler": [
        (("",), ("persistentvolumes",), ("get", "list", "patch", "update", "watch")),
        (("storage.k8s.io",), ("storageclasses",), ("get", "list", "watch")),
        (("",), ("persistentvolumeclaims",), ("get", "list", "patch", "update", "watch")),
    ],
    "system:node-proxier": [
        (("",), ("endpoints", "services"), ("list", "watch")),
        (("",), ("nodes",), ("get", "list", "watch")),
        EVENTS,
        (("discovery.k8s.io",), ("endpointslices",), ("list", "watch")),
    ],
    # kubeadm's ClusterRole for CoreDNS (bound to kube-system/coredns).
    "system:coredns": [
        (("",), ("endpoints", "services", "pods", "namespaces"), ("list", "watch")),
        (("discovery.k8s.io",), ("endpointslices",), ("list", "watch")),
    ],
}

ROLES = {**CONTROLLER_ROLES, **CLUSTER_ROLES}


def rule_allows(rule: Rule, req: ApiRequest) -> bool:
    """RBAC's RuleAllows for a resource request (rbac/v1 helpers: '*' matches all; resources
    name "resource/subresource"; resourceNames restrict by name, and never match a create or a
    collection request, which have none)."""
    groups, resources, verbs = rule[0], rule[1], rule[2]
    names = rule[3] if len(rule) > 3 else ()
    resource = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    if "*" not in verbs and req.verb not in verbs:
        return False
    if "*" not in groups and req.group not in groups:
        return False
    if not ("*" in resources or resource in resources
            or (req.subresource and f"*/{req.subresource}" in resources)):
        return False
    return not names or req.name in names and req.verb not in ("list", "watch", "create")


def denied(requests: Iterable[ApiRequest], *roles: str) -> list[ApiRequest]:
    """The requests no rule of `roles` allows (ClusterRoleBindings: every namespace)."""
    rules = [rule for role in roles for rule in ROLES[role]]
    return sorted({r for r in requests if not any(rule_allows(rule, r) for rule in rules)})
