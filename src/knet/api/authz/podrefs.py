"""The API objects a pod names (pkg/api/pod: VisitPodSecretNames, VisitPodConfigmapNames, plus its
PersistentVolumeClaims and ServiceAccount): what the Node authorizer lets the pod's node read and
what NodeRestriction forbids in a node's mirror pods. Pure: wire dicts in, names out."""

from __future__ import annotations

from dataclasses import dataclass

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

# Volume sources holding a secret reference, and where the name is (podutil.VisitPodSecretNames).
_SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


@dataclass(frozen=True, slots=True)
class PodRefs:
    """What one pod bound to a node references, in the pod's namespace."""

    node: str
    uid: str
    mirror: bool
    secrets: frozenset[str]
    configmaps: frozenset[str]
    pvcs: frozenset[str]
    service_account: str


def _containers(spec: dict):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def _name(obj: object, key: str = "name") -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def secret_names(pod: dict) -> set[str]:
    spec = pod.get("spec") or {}
    out = {_name(ref) for ref in spec.get("imagePullSecrets") or ()}
    for c in _containers(spec):
        for src in c.get("envFrom") or ():
            if isinstance(src, dict):
                out.add(_name(src.get("secretRef")))
        for var in c.get("env") or ():
            if isinstance(var, dict):
                out.add(_name((var.get("valueFrom") or {}).get("secretKeyRef")))
    for vol in spec.get("volumes") or ():
        if not isinstance(vol, dict):
            continue
        out.add(_name(vol.get("secret"), "secretName"))
        out.add(_name(vol.get("azureFile"), "secretName"))
        for key in _SECRET_REF_VOLUMES:
            out.add(_name((vol.get(key) or {}).get("secretRef")))
        out.add(_name((vol.get("csi") or {}).get("nodePublishSecretRef")))
        for src in (vol.get("projected") or {}).get("sources") or ():
            if isinstance(src, dict):
                out.add(_name(src.get("secret")))
    out.discard("")
    return out


def configmap_names(pod: dict) -> set[str]:
    spec = pod.get("spec") or {}
    out: set[str] = set()
    for c in _containers(spec):
        for src in c.get("envFrom") or ():
            if isinstance(src, dict):
                out.add(_name(src.get("configMapRef")))
        for var in c.get("env") or ():
            if isinstance(var, dict):
                out.add(_name((var.get("valueFrom") or {}).get("configMapKeyRef")))
    for vol in spec.get("volumes") or ():
        if not isinstance(vol, dict):
            continue
        out.add(_name(vol.get("configMap")))
        for src in (vol.get("projected") or {}).get("sources") or ():
            if isinstance(src, dict):
                out.add(_name(src.get("configMap")))
    out.discard("")
    return out


def pvc_names(pod: dict) -> set[str]:
    """Claims of persistentVolumeClaim volumes, and the `<pod>-<volume>` claims of generic
    ephemeral volumes (ephemeral.VolumeClaimName)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    out: set[str] = set()
    for vol in spec.get("volumes") or ():
        if not isinstance(vol, dict):
            continue
        if isinstance(vol.get("persistentVolumeClaim"), dict):
            out.add(_name(vol["persistentVolumeClaim"], "claimName"))
        elif isinstance(vol.get("ephemeral"), dict):
            out.add(f"{_name(meta)}-{_name(vol)}")
    out.discard("")
    return out


def is_mirror(pod: dict) -> bool:
    return MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


def pod_refs(pod: dict) -> PodRefs | None:
    """The references of a pod bound to a node (None when it is not bound). A mirror pod gets
    none: a node must never gain rights through a pod it created itself (graph.AddPod)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    node = spec.get("nodeName")
    if not isinstance(node, str) or not node:
        return None
    uid = meta.get("uid") if isinstance(meta.get("uid"), str) else ""
    if is_mirror(pod):
        return PodRefs(node, uid, True, frozenset(), frozenset(), frozenset(), "")
    sa = spec.get("serviceAccountName")
    return PodRefs(node, uid, False, frozenset(secret_names(pod)), frozenset(configmap_names(pod)),
                   frozenset(pvc_names(pod)), sa if isinstance(sa, str) else "")
