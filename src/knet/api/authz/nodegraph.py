"""Which objects each node may read because a pod bound to it references them: the Node
authorizer's graph (plugin/pkg/auth/authorizer/node/graph.go), kept as reference counts.

Upstream keeps a general graph and walks it (node <- pod <- secret, node <- pod <- pvc <- pv <-
secret). knet stores the same relations flattened, so that a question costs a dict lookup:
`refs[(resource, namespace, name)]` counts, per node, the pods bound to that node that reference
the object. A pod's references are fixed once it is bound (its spec is immutable but for
ephemeral containers), so a pod update that keeps node, uid and ephemeral containers costs nothing.

The graph follows the apiserver's own store (`attach`): the store calls its listeners
synchronously for every durable write, before any watcher sees it, so a kubelet that sees its new
pod and fetches the pod's Secret at once is already allowed.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from knet.api.authz.podrefs import PodRefs, pod_refs

log = logging.getLogger(__name__)

SECRETS, CONFIGMAPS, PVCS, PVS, SERVICEACCOUNTS = (
    "secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes", "serviceaccounts")

Key = tuple[str, str, str]  # (resource, namespace, name)

# PersistentVolume sources whose secret the kubelet reads (pvutil.VisitPVSecretNames, the
# kubeletVisible ones): source -> (secret reference field, whether it names a namespace).
_PV_SECRET_FIELDS = {
    "azureFile": ("secretName", "secretNamespace"), "cephfs": ("secretRef", None), "cinder": ("secretRef", None),
    "flexVolume": ("secretRef", None), "rbd": ("secretRef", None), "scaleIO": ("secretRef", None),
    "iscsi": ("secretRef", None), "storageos": ("secretRef", None),
}
_CSI_KUBELET_SECRETS = ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef")


class NodeGraph:
    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], PodRefs] = {}
        self._refs: dict[Key, dict[str, int]] = {}
        # PersistentVolumes: pv -> (claim namespace, claim name), and secret -> the pvs naming it.
        self._pv_claim: dict[str, tuple[str, str]] = {}
        self._pv_secrets: dict[str, frozenset[tuple[str, str]]] = {}
        self._secret_pvs: dict[tuple[str, str], set[str]] = defaultdict(set)

    # -- following the store ---------------------------------------------------------------
    def attach(self, store) -> NodeGraph:
        """Fill from the store's pods and PersistentVolumes and follow its writes from now on.
        One list at start; after that, each write costs O(references of the written pod)."""
        store.add_listener(self.on_event)
        for entry in store.list("persistentvolumes")[0]:
            self.add_pv(entry.obj)
        for entry in store.list("pods")[0]:
            self.add_pod(entry.obj)
        return self

    def on_event(self, event) -> None:
        """A Store listener (storage.Event). Never raises: a bad object must not stop writes."""
        bucket = event.bucket
        if bucket != "pods" and bucket != "persistentvolumes":
            return
        try:
            obj = event.entry.obj
            if bucket == "pods":
                if event.type == "DELETED":
                    self.delete_pod(event.namespace, event.name)
                else:
                    self.update_pod(event.prev.obj if event.prev is not None else None, obj)
            elif event.type == "DELETED":
                self.delete_pv(event.name)
            else:
                self.add_pv(obj)
        except Exception:  # noqa: BLE001 -- logged; the graph stays as it was for this object
            log.exception("node authorizer graph: %s %s %s/%s", event.type, bucket, event.namespace, event.name)

    # -- pods ------------------------------------------------------------------------------
    def update_pod(self, old: dict | None, pod: dict) -> None:
        """graphPopulator.updatePod: unbound pods are not in the graph; a bound pod is (re)added
        when its node or uid changed (or its ephemeral containers, which may name secrets)."""
        spec = pod.get("spec") or {}
        if not spec.get("nodeName"):
            return
        if old is not None:
            old_spec, old_meta, meta = old.get("spec") or {}, old.get("metadata") or {}, pod.get("metadata") or {}
            if (old_spec.get("nodeName") == spec.get("nodeName") and old_meta.get("uid") == meta.get("uid")
                    and old_spec.get("ephemeralContainers") == spec.get("ephemeralContainers")
                    and (meta.get("namespace", ""), meta.get("name", "")) in self._pods):
                return
        self.add_pod(pod)

    def add_pod(self, pod: dict) -> None:
        refs = pod_refs(pod)
        if refs is None:
            return
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        self.delete_pod(ns, name)
        self._pods[(ns, name)] = refs
        for key in _keys(ns, refs):
            counts = self._refs.setdefault(key, {})
            counts[refs.node] = counts.get(refs.node, 0) + 1

    def delete_pod(self, namespace: str, name: str) -> None:
        refs = self._pods.pop((namespace, name), None)
        if refs is None:
            return
        for key in _keys(namespace, refs):
            counts = self._refs.get(key)
            if counts is None:
                continue
            left = counts.get(refs.node, 0) - 1
            if left > 0:
                counts[refs.node] = left
            else:
                counts.pop(refs.node, None)
                if not counts:
                    del self._refs[key]

    # -- persistent volumes ----------------------------------------------------------------
    def add_pv(self, pv: dict) -> None:
        """graph.AddPV: pv -> its bound claim; the secrets the kubelet uses for it -> pv."""
        name = (pv.get("metadata") or {}).get("name", "")
        self.delete_pv(name)
        spec = pv.get("spec") or {}
        claim = spec.get("claimRef")
        if not isinstance(claim, dict) or not claim.get("name"):
            return
        claim_ns = claim.get("namespace", "")
        self._pv_claim[name] = (claim_ns, claim["name"])
        secrets = frozenset(_pv_secrets(spec, claim_ns))
        self._pv_secrets[name] = secrets
        for secret in secrets:
            self._secret_pvs[secret].add(name)

    def delete_pv(self, name: str) -> None:
        self._pv_claim.pop(name, None)
        for secret in self._pv_secrets.pop(name, ()):
            pvs = self._secret_pvs.get(secret)
            if pvs is not None:
                pvs.discard(name)
                if not pvs:
                    del self._secret_pvs[secret]

    # -- questions -------------------------------------------------------------------------
    def has_path(self, node: str, resource: str, namespace: str, name: str) -> bool:
        """Whether a pod bound to `node` references the object (directly, or a secret through the
        PersistentVolume of a claim such a pod uses)."""
        counts = self._refs.get((resource, namespace, name))
        if counts is not None and node in counts:
            return True
        if resource == PVS:
            claim = self._pv_claim.get(name)
            return claim is not None and self.has_path(node, PVCS, *claim)
        if resource == SECRETS:
            return any(self.has_path(node, PVS, "", pv) for pv in self._secret_pvs.get((namespace, name), ()))
        return False

    def pods_of(self, node: str) -> int:
        """How many pods bound to `node` the graph holds (for tests and debugging)."""
        return sum(1 for refs in self._pods.values() if refs.node == node)


def _keys(namespace: str, refs: PodRefs):
    for name in refs.secrets:
        yield (SECRETS, namespace, name)
    for name in refs.configmaps:
        yield (CONFIGMAPS, namespace, name)
    for name in refs.pvcs:
        yield (PVCS, namespace, name)
    if refs.service_account:
        yield (SERVICEACCOUNTS, namespace, refs.service_account)


def _pv_secrets(spec: dict, claim_ns: str) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for source, (field, ns_field) in _PV_SECRET_FIELDS.items():
        src = spec.get(source)
        if not isinstance(src, dict):
            continue
        ref = src.get(field)
        if isinstance(ref, str):  # azureFile: a name, in secretNamespace or the claim's namespace
            out.add((src.get(ns_field) or claim_ns if ns_field else claim_ns, ref))
        elif isinstance(ref, dict) and ref.get("name"):
            out.add((ref.get("namespace") or claim_ns, ref["name"]))
    csi = spec.get("csi")
    if isinstance(csi, dict):
        for field in _CSI_KUBELET_SECRETS:
            ref = csi.get(field)
            if isinstance(ref, dict) and ref.get("name"):
                out.add((ref.get("namespace") or claim_ns, ref["name"]))
    out.discard((claim_ns, ""))
    return out
