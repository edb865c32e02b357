"""Server-side apply, simplified: the applied configuration is merged into the live object
(strategic merge by the built-in merge keys), and fields this field manager applied last
time but left out now are removed -- ownership is tracked per manager in managedFields
(FieldsV1, as kube-apiserver writes it), without conflict detection between managers."""

from __future__ import annotations

import orjson

from knet.api import schema

SKIP_TOP = {"apiVersion", "kind"}
SKIP_META = {"name", "namespace", "resourceVersion", "uid", "managedFields", "creationTimestamp", "generation"}


def fields_v1(obj, model: str = "", top: bool = True) -> dict:
    """The set of field paths an object sets, in FieldsV1 form ({"f:spec": {"f:replicas": {}}})."""
    out: dict = {}
    if not isinstance(obj, dict):
        return out
    fields = schema.model_fields(model) if model else {}
    for key, value in obj.items():
        if top and key in SKIP_TOP:
            continue
        if top and key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in SKIP_META}
            sub = fields_v1(meta, "V1ObjectMeta", top=False)
            if sub:
                out["f:metadata"] = sub
            continue
        f = fields.get(key)
        ftype = f.type if f else None
        strategy, merge_key = schema.patch_meta(model, key) if model else ("", None)
        if isinstance(value, dict) and (ftype is None or ftype.kind in ("model", "map")):
            sub_model = ftype.name if ftype is not None and ftype.kind == "model" else ""
            if ftype is not None and ftype.kind == "map":
                sub = {f"f:{k}": fields_v1(v, ftype.item.name if ftype.item and ftype.item.kind == "model" else "", False)
                       if isinstance(v, dict) else {} for k, v in value.items()}
            else:
                sub = fields_v1(value, sub_model, top=False)
            out[f"f:{key}"] = sub
        elif isinstance(value, list) and merge_key and "merge" in strategy:
            item_model = ftype.item.name if ftype and ftype.item and ftype.item.kind == "model" else ""
            sub = {}
            for item in value:
                if isinstance(item, dict) and merge_key in item:
                    k = "k:" + orjson.dumps({merge_key: item[merge_key]}).decode()
                    sub[k] = {".": {}, **fields_v1(item, item_model, top=False)}
            out[f"f:{key}"] = sub
        else:
            out[f"f:{key}"] = {}
    return out


def removed_fields(previous: dict, current: dict) -> dict:
    """Paths in `previous` that `current` no longer sets (a subtree where a whole field went)."""
    out: dict = {}
    for key, sub in previous.items():
        if key == ".":
            continue
        if key not in current:
            out[key] = None  # remove the whole field or list item
        elif sub and current[key]:
            nested = removed_fields(sub, current[key])
            if nested:
                out[key] = nested
    return out


def prune(obj, removed: dict) -> None:
    """Delete the `removed` paths (FieldsV1 keys) from a wire dict in place."""
    if not isinstance(obj, dict):
        return
    for key, sub in removed.items():
        if key.startswith("f:"):
            name = key[2:]
            if name not in obj:
                continue
            if sub is None:
                del obj[name]
            elif isinstance(obj[name], dict):
                prune(obj[name], sub)
            elif isinstance(obj[name], list):
                _prune_list(obj[name], sub)


def _prune_list(items: list, removed: dict) -> None:
    for key, sub in removed.items():
        if not key.startswith("k:"):
            continue
        match = orjson.loads(key[2:])
        for i, item in enumerate(items):
            if isinstance(item, dict) and all(item.get(k) == v for k, v in match.items()):
                if sub is None:
                    del items[i]
                else:
                    prune(item, sub)
                break


def previous_apply(live: dict | None, manager: str) -> dict:
    for entry in ((live or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            return entry.get("fieldsV1") or {}
    return {}
