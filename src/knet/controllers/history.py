"""ControllerRevisions, as upstream's pkg/controller/history and the StatefulSet/DaemonSet
controllers make them. Pure: names, hashes, data, ordering and the history to truncate.

A revision's data is the strategic merge patch that restores its pod template,
`{"spec":{"template":{"$patch":"replace",...}}}`, serialised as Go's encoding/json writes a
map (keys sorted, compact, <>& escaped): `kubectl rollout undo` applies it as is, and the
StatefulSet revision's name hashes those bytes (FNV-1 32, then the collision count) exactly as
HashControllerRevision does, so a knet revision is named as kube-controller-manager names it.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from knet.controllers.base import owner_reference

Obj = dict[str, Any]
# The label a StatefulSet's revisions carry their hash in (history.ControllerRevisionHashLabel).
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
# k8s.io/apimachinery/pkg/util/rand SafeEncodeString: no vowels, no 0/1/3 (no words, no confusion)
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def go_json(value: Any) -> bytes:
    """json.Marshal of a map[string]interface{}: sorted keys, compact, HTML-safe escapes."""
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    for plain, escaped in _GO_ESCAPES:
        raw = raw.replace(plain, escaped)
    return raw


def fnv1_32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHANUMS[b % len(_SAFE_ALPHANUMS)] for b in text.encode())


def template_patch(owner: Obj) -> Obj:
    """getPatch: the owner's pod template, as a patch that replaces the whole template."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return orjson.loads(go_json({"spec": {"template": template}}))


def hash_revision(data: Obj, collision_count: int | None) -> str:
    """HashControllerRevision over the data's bytes (and the collision count, when given)."""
    h = go_json(data)
    if collision_count is not None:
        h += str(collision_count).encode()
    return safe_encode(str(fnv1_32(h)))


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:223]}-{hash_}"


def new_revision(owner: Obj, data: Obj, revision: int, *, hash_: str, hash_label: str) -> Obj:
    """A ControllerRevision for `owner` (history.NewControllerRevision): its template's labels plus
    the hash label, the owner's annotations (so `rollout history` shows kubernetes.io/change-cause),
    owned by it."""
    meta = owner["metadata"]
    labels = dict(((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
    labels[hash_label] = hash_
    out_meta: Obj = {"name": revision_name(meta["name"], hash_), "namespace": meta["namespace"], "labels": labels,
                     "ownerReferences": [owner_reference(owner)]}
    if meta.get("annotations"):
        out_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": out_meta, "data": data,
            "revision": revision}


def sort_key(rev: Obj) -> tuple:
    """SortControllerRevisions: by revision, then creation time, then name."""
    meta = rev.get("metadata") or {}
    return int(rev.get("revision") or 0), meta.get("creationTimestamp") or "", meta.get("name") or ""


def sorted_revisions(revisions: list[Obj]) -> list[Obj]:
    return sorted(revisions, key=sort_key)


def next_revision(revisions: list[Obj]) -> int:
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


def equal_revisions(revisions: list[Obj], data: Obj) -> list[Obj]:
    """FindEqualRevisions: those holding the same template (in `revisions`' order)."""
    return [r for r in revisions if r.get("data") == data]


def template_of(revision: Obj) -> Obj:
    """The pod template a revision restores (ApplyRevision, for the template-only patches)."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revisions_to_delete(revisions: list[Obj], live: set[str], limit: int) -> list[Obj]:
    """truncateHistory: the oldest non-live revisions beyond the history limit (`revisions` sorted)."""
    history = [r for r in revisions if r["metadata"]["name"] not in live]
    if limit < 0 or len(history) <= limit:
        return []
    return history[:len(history) - limit]
