"""NodeRestriction admission (plugin/pkg/admission/noderestriction, kube-apiserver v1.29): what
the Node authorizer lets every node write, narrowed to the node's own objects. A node
(`system:node:<name>` in `system:nodes`) may

- create, update and delete only its own Node, without adding or changing labels outside the
  kubelet's allowed set (no `node-restriction.kubernetes.io/`, no other kubernetes.io / k8s.io
  label) and, on update, without changing its taints;
- create only mirror pods bound to itself, owned (as controller) by its own Node, that reference
  no service account, secret, configmap, PVC, cluster trust bundle or resource claim;
- update the status of, evict and delete only pods bound to itself;
- request service-account tokens only bound to a pod bound to itself (uid checked);
- write only its own Lease in kube-node-lease (and its own CSINode), and of a PVC only status.

knet's addition: a node may set `knet.io/kubelet-endpoint` (where the apiserver reaches a
simulated node's kubelet, knet.api.nodeproxy) only when it registers its Node, and never add,
change or remove it afterwards; with it a node could otherwise point the apiserver's kubelet
client certificate (exec, logs, nodes/proxy) at any port of the apiserver's host. Nodes cannot
delete Node objects (bootstrap policy), so registering again is no way around it. Apiservers of
a real dataplane ignore the annotation altogether (--kubelet-endpoint-annotation=false).

Everyone else passes untouched. Refusals are 403 Forbidden worded as upstream
(`pods "web" is forbidden: node "node01" can only delete pods with spec.nodeName set to itself`).
"""

from __future__ import annotations

from knet.api.authz.node import NODE_LEASE_NAMESPACE, node_identity
from knet.api.authz.podrefs import configmap_names, is_mirror, secret_names
from knet.api.errors import ApiError, not_found, qualified
from knet.api.nodeproxy import SIM_ENDPOINT_ANNOTATION
from knet.api.rest import AdmissionRequest

# k8s.io/kubelet/pkg/apis: the labels (and label namespaces) a kubelet may set on its Node.
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os",
    "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    """kubeletapis.IsKubeletLabel: a label a kubelet may set on its own Node."""
    if key in KUBELET_LABELS:
        return True
    namespace = _label_namespace(key)
    return any(_in_namespace(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES)


def modified_labels(new: dict | None, old: dict | None) -> set[str]:
    """The label keys added, removed or changed between two label maps."""
    new, old = new or {}, old or {}
    return {k for k in new.keys() | old.keys() if new.get(k) != old.get(k) or (k in new) != (k in old)}


def forbidden_labels(modified: set[str]) -> list[str]:
    """getForbiddenLabels: node-restriction labels, and kubernetes.io / k8s.io labels that are
    not kubelet labels; sorted, as upstream lists them."""
    out = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_LABEL_NAMESPACE):
            out.add(key)
        kubernetes = _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")
        if kubernetes and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


class _Forbidden(Exception):
    pass


class NodeRestriction:
    """`NodeRestriction(store)`: a validating admission plugin for `ObjectService.admission`;
    `store` (the apiserver's Store) answers which node a pod is bound to and the Node's uid."""

    def __init__(self, store) -> None:
        self.store = store

    def __call__(self, req: AdmissionRequest) -> None:
        node, is_node = node_identity(req.user)
        if not is_node:
            return
        try:
            if not node:
                raise _Forbidden(f'could not determine node from user "{req.user.name}"')
            self._admit(node, req)
        except _Forbidden as exc:
            raise _forbidden(req, str(exc)) from None

    def _admit(self, node: str, req: AdmissionRequest) -> None:
        group, resource, sub = req.rt.group, req.rt.resource, req.subresource or ""
        if group == "":
            if resource == "pods":
                if sub == "":
                    return self._pod(node, req)
                if sub == "status":
                    return self._pod_status(node, req)
                if sub == "eviction":
                    return self._pod_eviction(node, req)
                raise _Forbidden(f"unexpected pod subresource \"{sub}\", only 'status' and 'eviction' are allowed")
            if resource == "nodes":
                return self._node(node, req)
            if resource == "persistentvolumeclaims":
                if sub != "status":
                    raise _Forbidden("may only update PVC status")
                return self._pvc_status(node, req)
            if resource == "serviceaccounts":
                return self._service_account(node, req)
        elif group == "coordination.k8s.io" and resource == "leases":
            return self._named_after_node(node, req, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" '
                                          "system namespace", "can only access node lease with the same name as "
                                          "the requesting node", namespace=NODE_LEASE_NAMESPACE)
        elif group == "storage.k8s.io" and resource == "csinodes":
            return self._named_after_node(node, req, "", "can only access CSINode with the same name as the "
                                          "requesting node", namespace=None)
        return None

    # -- pods --------------------------------------------------------------------------------
    def _existing_pod(self, req: AdmissionRequest, name: str) -> dict:
        entry = self.store.get("pods", req.namespace, name)
        if entry is None:
            raise not_found("pods", "", name)
        return entry.obj

    def _pod(self, node: str, req: AdmissionRequest) -> None:
        if req.operation == "CREATE":
            return self._mirror_pod_create(node, req.obj or {})
        if req.operation == "DELETE":
            existing = req.old if req.old is not None else self._existing_pod(req, req.name)
            if _node_name(existing) != node:
                raise _Forbidden(f'node "{node}" can only delete pods with spec.nodeName set to itself')
            return None
        raise _Forbidden(f'unexpected operation "{req.operation}", node "{node}" can only create and delete '
                         "mirror pods")

    def _mirror_pod_create(self, node: str, pod: dict) -> None:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if not is_mirror(pod):
            raise _Forbidden(f'pod does not have "kubernetes.io/config.mirror" annotation, node "{node}" can only '
                             "create mirror pods")
        if spec.get("nodeName") != node:
            raise _Forbidden(f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise _Forbidden(f'node "{node}" can only create pods with a single owner reference set to itself')
        if not owners:
            raise _Forbidden(f'node "{node}" can only create pods with an owner reference set to itself')
        owner = owners[0] if isinstance(owners[0], dict) else {}
        if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
            raise _Forbidden(f'node "{node}" can only create pods with an owner reference set to itself')
        if owner.get("controller") is not True:
            raise _Forbidden(f'node "{node}" can only create pods with a controller owner reference set to itself')
        if owner.get("blockOwnerDeletion") is True:
            raise _Forbidden(f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        entry = self.store.get("nodes", "", node)
        if entry is None:
            raise not_found("nodes", "", node)
        node_uid = entry.obj["metadata"].get("uid", "")
        if owner.get("uid") != node_uid:
            raise _Forbidden(f"node {node} UID mismatch: expected {owner.get('uid', '')} got {node_uid}")
        # A node must not create a pod that would let it read other API objects.
        if spec.get("serviceAccountName"):
            raise _Forbidden(f'node "{node}" can not create pods that reference a service account')
        if secret_names(pod):
            raise _Forbidden(f'node "{node}" can not create pods that reference secrets')
        if configmap_names(pod):
            raise _Forbidden(f'node "{node}" can not create pods that reference configmaps')
        volumes = [v for v in spec.get("volumes") or () if isinstance(v, dict)]
        for vol in volumes:
            for src in (vol.get("projected") or {}).get("sources") or ():
                if isinstance(src, dict) and src.get("clusterTrustBundle") is not None:
                    raise _Forbidden(f'node "{node}" can not create pods that reference clustertrustbundles')
        if any(vol.get("persistentVolumeClaim") is not None for vol in volumes):
            raise _Forbidden(f'node "{node}" can not create pods that reference persistentvolumeclaims')
        if spec.get("resourceClaims"):
            raise _Forbidden(f'node "{node}" can not create pods that reference resourceclaims')

    def _pod_status(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != "UPDATE":
            raise _Forbidden(f'unexpected operation "{req.operation}"')
        old, new = req.old or {}, req.obj or {}
        if _node_name(old) != node:
            raise _Forbidden(f'node "{node}" can only update pod status for pods with spec.nodeName set to itself')
        if ((old.get("metadata") or {}).get("labels") or {}) != ((new.get("metadata") or {}).get("labels") or {}):
            raise _Forbidden(f'node "{node}" cannot update labels through pod status')
        old_claims = (old.get("status") or {}).get("resourceClaimStatuses") or []
        if old_claims != ((new.get("status") or {}).get("resourceClaimStatuses") or []):
            raise _Forbidden(f'node "{node}" cannot update resource claim statues')

    def _pod_eviction(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != "CREATE":
            raise _Forbidden(f"unexpected operation {req.operation}")
        name = req.name or ((req.obj or {}).get("metadata") or {}).get("name") or ""
        if not name:
            raise _Forbidden("could not determine pod from request data")
        if _node_name(self._existing_pod(req, name)) != node:
            raise _Forbidden(f"node {node} can only evict pods with spec.nodeName set to itself")

    # -- nodes -------------------------------------------------------------------------------
    def _node(self, node: str, req: AdmissionRequest) -> None:
        name = req.name or ((req.obj or {}).get("metadata") or {}).get("name") or ""
        if name != node:
            raise _Forbidden(f'node "{node}" is not allowed to modify node "{name}"')
        new, old = req.obj or {}, req.old or {}
        if req.operation == "CREATE":
            if (new.get("spec") or {}).get("configSource") is not None:
                raise _Forbidden(f'node "{node}" is not allowed to create pods with a non-nil configSource')
            bad = forbidden_labels(modified_labels((new.get("metadata") or {}).get("labels"), None))
            if bad:
                raise _Forbidden(f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}')
        elif req.operation == "UPDATE":
            spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
            if spec.get("configSource") is not None and spec.get("configSource") != old_spec.get("configSource"):
                raise _Forbidden(f'node "{node}" is not allowed to update configSource to a new non-nil '
                                 "configSource")
            if (spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise _Forbidden(f'node "{node}" is not allowed to modify taints')
            bad = forbidden_labels(modified_labels((new.get("metadata") or {}).get("labels"),
                                                   (old.get("metadata") or {}).get("labels")))
            if bad:
                raise _Forbidden(f"is not allowed to modify labels: {', '.join(bad)}")
            if SIM_ENDPOINT_ANNOTATION in modified_labels((new.get("metadata") or {}).get("annotations"),
                                                          (old.get("metadata") or {}).get("annotations")):
                raise _Forbidden(f'node "{node}" is not allowed to modify annotation {SIM_ENDPOINT_ANNOTATION}')

    # -- other kinds -------------------------------------------------------------------------
    def _pvc_status(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != "UPDATE":
            raise _Forbidden(f'unexpected operation "{req.operation}"')
        if _without_pvc_status_fields(req.old or {}) != _without_pvc_status_fields(req.obj or {}):
            raise _Forbidden(f'node "{node}" is not allowed to update fields other than status.capacity and '
                             "status.conditions")

    def _service_account(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != "CREATE" or req.subresource != "token":
            return
        ref = ((req.obj or {}).get("spec") or {}).get("boundObjectRef")
        if not isinstance(ref, dict) or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" \
                or not ref.get("name"):
            raise _Forbidden("node requested token not bound to a pod")
        if not ref.get("uid"):
            raise _Forbidden("node requested token with a pod binding without a uid")
        pod = self._existing_pod(req, ref["name"])
        uid = (pod.get("metadata") or {}).get("uid")
        if ref["uid"] != uid:
            raise _Forbidden(f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                             "record. The object might have been deleted and then recreated")
        if _node_name(pod) != node:
            raise _Forbidden("node requested token bound to a pod scheduled on a different node")

    def _named_after_node(self, node: str, req: AdmissionRequest, namespace_reason: str, name_reason: str,
                          namespace: str | None) -> None:
        """Leases (in kube-node-lease) and CSINodes: only the object named after the node."""
        if namespace is not None and req.namespace != namespace:
            raise _Forbidden(namespace_reason)
        if req.operation == "CREATE":
            name = ((req.obj or {}).get("metadata") or {}).get("name")
        else:
            name = req.name
        if name != node:
            raise _Forbidden(name_reason)


def _node_name(pod: dict | None) -> str:
    return ((pod or {}).get("spec") or {}).get("nodeName") or ""


def _without_pvc_status_fields(pvc: dict) -> dict:
    """The PVC without what a node may change: status.capacity and status.conditions (and
    resourceVersion and managedFields, which the comparison ignores upstream)."""
    meta = {k: v for k, v in (pvc.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    status = {k: v for k, v in (pvc.get("status") or {}).items() if k not in ("capacity", "conditions")}
    return {**pvc, "metadata": meta, "status": status}


def _forbidden(req: AdmissionRequest, why: str) -> ApiError:
    """admission.NewForbidden: `<resource> "<name>" is forbidden: <why>`, Status reason Forbidden."""
    name = req.name or ((req.obj or {}).get("metadata") or {}).get("name") or ""
    resource = qualified(req.rt.resource, req.rt.group)
    message = f'{resource} "{name}" is forbidden: {why}' if name else f"{resource} is forbidden: {why}"
    details: dict = {"name": name} if name else {}
    if req.rt.group:
        details["group"] = req.rt.group
    details["kind"] = req.rt.resource
    return ApiError(403, "Forbidden", message, details)


__all__ = ["NodeRestriction", "forbidden_labels", "is_kubelet_label", "modified_labels"]
