"""Static pods from --pod-manifest-path and their mirror pods. Pure apart from reading files."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
MIRROR = "kubernetes.io/config.mirror"
HASH = "kubernetes.io/config.hash"


def read_manifests(directory: str | None) -> dict[str, str]:
    """file name -> text of every manifest (*.yaml, *.yml, *.json; dotfiles skipped, as kubelet)."""
    out: dict[str, str] = {}
    if not directory:
        return out
    root = Path(directory)
    if not root.is_dir():
        return out
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        try:
            out[path.name] = path.read_text()
        except OSError:
            continue
    return out


def static_pod(text: str, node: str) -> Obj:
    """A manifest as the kubelet runs it: name `NAME-NODE`, uid = hash of node + manifest."""
    pod = yaml.safe_load(text)
    if not isinstance(pod, dict) or pod.get("kind", "Pod") != "Pod":
        raise ValueError("manifest is not a Pod")
    pod = copy.deepcopy(pod)
    meta = pod.setdefault("metadata", {})
    meta["name"] = f"{meta['name']}-{node}"
    meta.setdefault("namespace", "default")
    digest = hashlib.md5((node + json.dumps(pod, sort_keys=True)).encode()).hexdigest()
    meta["uid"] = digest
    annotations = meta.setdefault("annotations", {})
    annotations[HASH] = digest
    annotations["kubernetes.io/config.seen"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    annotations["kubernetes.io/config.source"] = "file"
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("tolerations", [{"operator": "Exists", "effect": "NoExecute"}])
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    return pod


def mirror_pod(pod: Obj, node_uid: str | None) -> Obj:
    mirror = copy.deepcopy(pod)
    meta = mirror["metadata"]
    meta.pop("uid", None)
    meta.pop("resourceVersion", None)
    meta["annotations"][MIRROR] = meta["annotations"][HASH]
    if node_uid:
        # The kubelet's mirror client: the Node as controller, which NodeRestriction requires.
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": mirror["spec"]["nodeName"],
                                    "uid": node_uid, "controller": True}]
    mirror.pop("status", None)
    return mirror


def is_mirror(pod: Obj) -> bool:
    return MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})
