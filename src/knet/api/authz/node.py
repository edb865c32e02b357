"""The Node authorizer (`--authorization-mode=Node`, plugin/pkg/auth/authorizer/node): what a
kubelet (user `system:node:<name>` in group `system:nodes`) may do.

- Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes: only those a pod bound to the
  node references (NodeGraph), one object at a time.
- `serviceaccounts/token`: only for a service account of a pod bound to the node.
- Leases: only its own, in `kube-node-lease`.
- Everything else: the node rules (bootstrappolicy.NodeRules(), the `system:node` ClusterRole's
  rules), copied here as data; writes they allow are narrowed further by NodeRestriction
  admission (its own Node, its own pods' status, mirror pods bound to itself).
Requests from anyone else get no opinion (RBAC decides). A refusal is also "no opinion", with
upstream's reason (`no relationship found between node 'node01' and this object`), which the
403 message carries after the usual sentence.

This is the behaviour of kube-apiserver v1.29 (the AuthorizeNodeWithSelectors gate of v1.31+
off: a node may still list and watch all pods and nodes).
"""

from __future__ import annotations

from knet.api.auth import User
from knet.api.authz.attributes import ALLOW, NO_OPINION, Attributes, Decision
from knet.api.authz.nodegraph import CONFIGMAPS, PVCS, PVS, SECRETS, SERVICEACCOUNTS, NodeGraph

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

_READ = ("get", "list", "watch")

# bootstrappolicy.NodeRules() (kube-apiserver v1.29, default feature gates): (verbs, API groups,
# resources). The `system:node` ClusterRole carries the same rules.
NODE_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    # Needed to check API access. These creates are non-mutating.
    (("create",), ("authentication.k8s.io",), ("tokenreviews",)),
    (("create",), ("authorization.k8s.io",), ("subjectaccessreviews", "localsubjectaccessreviews")),
    # Needed to build serviceLister, to populate env vars for services.
    (_READ, ("",), ("services",)),
    # Nodes can register Node API objects and report status (NodeRestriction: only their own).
    (("create", "get", "list", "watch"), ("",), ("nodes",)),
    (("update", "patch"), ("",), ("nodes/status",)),
    (("update", "patch"), ("",), ("nodes",)),
    (("create", "update", "patch"), ("",), ("events",)),
    (_READ, ("",), ("pods",)),
    # Mirror pods (NodeRestriction: bound to itself), its pods' status and evictions.
    (("create", "delete"), ("",), ("pods",)),
    (("update", "patch"), ("",), ("pods/status",)),
    (("create",), ("",), ("pods/eviction",)),
    # Narrowed to what its pods reference by the graph above.
    (_READ, ("",), ("secrets", "configmaps")),
    (("get",), ("",), ("persistentvolumeclaims", "persistentvolumes")),
    # Needed for glusterfs volumes.
    (("get",), ("",), ("endpoints",)),
    # Client certificate rotation.
    (("create", "get", "list", "watch"), ("certificates.k8s.io",), ("certificatesigningrequests",)),
    (("get", "create", "update", "patch", "delete"), ("coordination.k8s.io",), ("leases",)),
    (("get",), ("storage.k8s.io",), ("volumeattachments",)),
    (("create",), ("",), ("serviceaccounts/token",)),
    (("get", "update", "patch"), ("",), ("persistentvolumeclaims/status",)),
    (("get", "watch", "list"), ("storage.k8s.io",), ("csidrivers",)),
    (("get", "create", "update", "patch", "delete"), ("storage.k8s.io",), ("csinodes",)),
    (_READ, ("node.k8s.io",), ("runtimeclasses",)),
)


def node_rules_as_policy_rules() -> list[dict]:
    """NODE_RULES as rbac/v1 PolicyRule wire dicts (the `system:node` ClusterRole's rules)."""
    return [{"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}
            for verbs, groups, resources in NODE_RULES]


def _rule_index(rules) -> frozenset[tuple[str, str, str]]:
    """(group, resource[/subresource], verb) triples: NODE_RULES have no wildcards or names,
    so matching is one set lookup."""
    return frozenset((group, resource, verb) for verbs, groups, resources in rules
                     for group in groups for resource in resources for verb in verbs)


def node_identity(user: User | None) -> tuple[str, bool]:
    """nodeidentifier.NodeIdentity: (node name, is a node). A node is a user named
    `system:node:<name>` in group `system:nodes`; the name may be empty (an unknown node)."""
    if user is None or not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return "", False
    return user.name[len(NODE_USER_PREFIX):], True


def _no(reason: str = "") -> Decision:
    return Decision(NO_OPINION, reason)


_ALLOW = Decision(ALLOW)
_NO = Decision(NO_OPINION)


class NodeAuthorizer:
    """`NodeAuthorizer(graph)`; `NodeAuthorizer.for_store(store)` builds the graph from the
    apiserver's store and keeps it following every write."""

    def __init__(self, graph: NodeGraph, rules=NODE_RULES) -> None:
        self.graph = graph
        self._rules = _rule_index(rules)

    @classmethod
    def for_store(cls, store, rules=NODE_RULES) -> NodeAuthorizer:
        return cls(NodeGraph().attach(store), rules)

    def authorize(self, attrs: Attributes) -> Decision:
        node, is_node = node_identity(attrs.user)
        if not is_node:
            return _NO
        if not node:
            return _no(f'unknown node for user "{attrs.user.name}"')
        if attrs.resource_request:
            group, resource = attrs.api_group, attrs.resource
            if group == "":
                if resource == SECRETS or resource == CONFIGMAPS:
                    return self._read_namespaced_object(node, resource, attrs)
                if resource == PVCS:
                    if attrs.subresource == "status":
                        return self._status_update(node, resource, attrs)
                    return self._get(node, resource, attrs)
                if resource == PVS:
                    return self._get(node, resource, attrs)
                if resource == SERVICEACCOUNTS:
                    return self._create_token(node, attrs)
            elif group == "coordination.k8s.io" and resource == "leases":
                return self._lease(node, attrs)
            elif group == "storage.k8s.io":
                if resource == "volumeattachments":
                    return self._get(node, resource, attrs)
                if resource == "csinodes":
                    return self._csinode(node, attrs)
            elif group == "resource.k8s.io":
                if resource == "resourceclaims":
                    return self._get(node, resource, attrs)
                if resource == "resourceslices":
                    return self._resource_slice(node, attrs)
        # Access to other resources is not subdivided: the node rules decide.
        if self._rules_allow(attrs):
            return _ALLOW
        return _NO

    def _rules_allow(self, attrs: Attributes) -> bool:
        if not attrs.resource_request:
            return False  # the node rules name no non-resource URLs
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        return (attrs.api_group, resource, attrs.verb) in self._rules

    # -- objects reached through the node's pods --------------------------------------------
    def _status_update(self, node: str, resource: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("update", "patch"):
            return _no("can only get/update/patch this type")
        if attrs.subresource != "status":
            return _no("can only update status subresource")
        return self._related(node, resource, attrs)

    def _get(self, node: str, resource: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return _no("can only get individual resources of this type")
        if attrs.subresource:
            return _no("cannot get subresource")
        return self._related(node, resource, attrs)

    def _read_namespaced_object(self, node: str, resource: str, attrs: Attributes) -> Decision:
        """get, or list/watch of a single named object (the kubelet's watch-based secret and
        configmap managers use a metadata.name field selector)."""
        if attrs.verb not in _READ:
            return _no("can only read resources of this type")
        if attrs.subresource:
            return _no("cannot read subresource")
        if not attrs.namespace:
            return _no("can only read namespaced object of this type")
        return self._related(node, resource, attrs)

    def _related(self, node: str, resource: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return _no("No Object name found")
        if self.graph.has_path(node, resource, attrs.namespace, attrs.name):
            return _ALLOW
        return _no(f"no relationship found between node '{node}' and this object")

    def _create_token(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return _no("can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return _no("can only create token subresource of serviceaccount")
        if self.graph.has_path(node, SERVICEACCOUNTS, attrs.namespace, attrs.name):
            return _ALLOW
        return _no(f"no relationship found between node '{node}' and this object")

    # -- objects named after the node -------------------------------------------------------
    def _lease(self, node: str, attrs: Attributes) -> Decision:
        verb = attrs.verb
        if verb not in ("get", "create", "update", "patch", "delete"):
            return _no("can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _no(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        # On create the name is not known yet: NodeRestriction checks the object's name.
        if verb != "create" and attrs.name != node:
            return _no("can only access node lease with the same name as the requesting node")
        return _ALLOW

    def _csinode(self, node: str, attrs: Attributes) -> Decision:
        verb = attrs.verb
        if verb not in ("get", "create", "update", "patch", "delete"):
            return _no("can only get, create, update, patch, or delete a CSINode")
        if attrs.subresource:
            return _no("cannot authorize CSINode subresources")
        if verb != "create" and attrs.name != node:
            return _no("can only access CSINode with the same name as the requesting node")
        return _ALLOW

    def _resource_slice(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource:
            return _no("cannot authorize ResourceSlice subresources")
        verb = attrs.verb
        if verb in ("create", "watch", "list", "deletecollection"):
            return _ALLOW  # NodeRestriction checks the slice's nodeName
        if verb in ("get", "update", "patch", "delete"):
            return self._related(node, "resourceslices", attrs)
        return _no("only the following verbs are allowed for a ResourceSlice: "
                   "get, watch, list, create, update, patch, delete, deletecollection")


__all__ = ["NODE_RULES", "NodeAuthorizer", "NodeGraph", "node_identity", "node_rules_as_policy_rules"]
