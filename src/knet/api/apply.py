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


# --- ownership: flattened field paths ---------------------------------------------------------
Path = tuple[str, ...]


def flatten(tree: dict, prefix: Path = ()) -> set[Path]:
    """FieldsV1 tree -> the set of owned paths (leaves, and list items marked with ".")."""
    out: set[Path] = set()
    for key, sub in tree.items():
        if key == ".":
            continue
        path = prefix + (key,)
        if not sub:
            out.add(path)
        else:
            if "." in sub:
                out.add(path)
            out |= flatten(sub, path)
    return out


def unflatten(paths: set[Path]) -> dict:
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(key, {})
    # A list item owned as a whole and through its fields carries the "." marker.
    def mark(node: dict, path: Path) -> None:
        for key, sub in node.items():
            if key.startswith("k:") and sub and path + (key,) in paths:
                sub["."] = {}
            if sub:
                mark(sub, path + (key,))
    mark(tree, ())
    return tree


_MISSING = object()


def value_at(obj, path: Path):
    cur = obj
    for key in path:
        if key.startswith("f:") and isinstance(cur, dict):
            cur = cur.get(key[2:], _MISSING)
        elif key.startswith("k:") and isinstance(cur, list):
            match = orjson.loads(key[2:])
            cur = next((i for i in cur if isinstance(i, dict) and all(i.get(k) == v for k, v in match.items())),
                       _MISSING)
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def path_text(path: Path) -> str:
    """`.spec.containers[name="nginx"].image`, as field manager conflicts are worded."""
    out = ""
    for key in path:
        if key.startswith("f:"):
            out += "." + key[2:]
        elif key.startswith("k:"):
            match = orjson.loads(key[2:])
            out += "[" + ",".join(f"{k}={orjson.dumps(v).decode()}" for k, v in match.items()) + "]"
    return out


def changed_paths(old: dict | None, new: dict, model: str) -> set[Path]:
    """The paths an update (or create, when `old` is None) set or changed."""
    new_paths = flatten(fields_v1(new, model))
    if old is None:
        return new_paths
    return {p for p in new_paths if value_at(new, p) != value_at(old, p)}


def managers(obj: dict | None) -> list[dict]:
    return list(((obj or {}).get("metadata") or {}).get("managedFields") or [])


def record_update(new: dict, old: dict | None, manager: str, api_version: str, model: str, now: str,
                  subresource: str | None = None) -> None:
    """Give `manager` (operation Update, through `subresource`) the fields this write changed;
    others lose them. A manager's writes through the main resource and through a subresource
    (status, scale) are separate entries, as kube-apiserver keeps them."""
    changed = changed_paths(old, new, model)
    if old is not None and not changed:
        new.setdefault("metadata", {})["managedFields"] = managers(old)  # a no-op write stays one
        return
    entries = []
    mine: set[Path] = set()
    for e in managers(old):
        owned = flatten(e.get("fieldsV1") or {})
        if e.get("manager") == manager and e.get("operation") == "Update" and e.get("subresource") == subresource:
            mine = owned
            continue
        owned -= changed
        if owned or e.get("operation") == "Apply":
            entries.append({**e, "fieldsV1": unflatten(owned)})
    mine = {p for p in mine | changed if value_at(new, p) is not _MISSING}
    entry = {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": now,
             "fieldsType": "FieldsV1", "fieldsV1": unflatten(mine)}
    if subresource:
        entry["subresource"] = subresource
    entries.append(entry)
    new.setdefault("metadata", {})["managedFields"] = entries


FIELD_MANAGER_MAX_LENGTH = 128  # validation.FieldManagerMaxLength, in bytes


def manager_from_user_agent(user_agent: str) -> str:
    """kube-apiserver's prefixFromUserAgent: the User-Agent up to its first "/", without
    non-printable characters, cut to what fits in 128 bytes of UTF-8
    ("kubectl/v1.32.0 (linux/amd64) kubernetes/abc" -> "kubectl")."""
    out, size = [], 0
    for ch in user_agent.split("/", 1)[0]:
        if not ch.isprintable():
            continue
        n = len(ch.encode())
        if size + n > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(ch)
        size += n
    return "".join(out)


def conflicts(live: dict, applied: dict, manager: str, model: str) -> list[tuple[str, Path]]:
    """(other manager, path) for each field the configuration sets to a value that another
    manager owns with a different live value."""
    out = []
    wanted = flatten(fields_v1(applied, model))
    for e in managers(live):
        if e.get("manager") == manager:
            continue
        for p in sorted(flatten(e.get("fieldsV1") or {}) & wanted):
            theirs, ours = value_at(live, p), value_at(applied, p)
            if isinstance(ours, dict | list):
                continue  # a parent: its leaves are compared on their own
            if theirs != ours:
                out.append((e.get("manager", ""), p))
    return out


def take_over(live_entries: list[dict], manager: str, paths: set[Path]) -> list[dict]:
    """Forced apply: other managers lose `paths`."""
    out = []
    for e in live_entries:
        if e.get("manager") != manager:
            owned = flatten(e.get("fieldsV1") or {}) - paths
            e = {**e, "fieldsV1": unflatten(owned)}
            if not owned and e.get("operation") != "Apply":
                continue
        out.append(e)
    return out


def others_own(live: dict | None, manager: str) -> set[Path]:
    owned: set[Path] = set()
    for e in managers(live):
        if e.get("manager") != manager:
            owned |= flatten(e.get("fieldsV1") or {})
    return owned


def keep_co_owned(removed: dict, owned: set[Path], prefix: Path = ()) -> dict:
    """Drop from `removed` what another manager also owns (it stays)."""
    out: dict = {}
    for key, sub in removed.items():
        path = prefix + (key,)
        if any(o[:len(path)] == path for o in owned):
            if sub is None:
                continue
            nested = keep_co_owned(sub, owned, path)
            if nested:
                out[key] = nested
        else:
            out[key] = sub
    return out


def conflict_message(found: list[tuple[str, Path]], api_version: str) -> str:
    def who(m: str) -> str:
        return f'"{m}" using {api_version}'

    if len(found) == 1:
        return f"Apply failed with 1 conflict: conflict with {who(found[0][0])}: {path_text(found[0][1])}"
    lines = []
    for m in sorted({m for m, _ in found}):
        lines.append(f"conflicts with {who(m)}:")
        lines += [f"- {path_text(p)}" for mm, p in found if mm == m]
    return f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
