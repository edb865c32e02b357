"""Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch
(lists merged by the built-in types' merge keys, with the $patch, $retainKeys,
$deleteFromPrimitiveList and $setElementOrder directives kubectl sends)."""

from __future__ import annotations

import orjson

from knet.api import schema


def json_copy(value):
    """A deep copy of decoded JSON (dicts, lists and immutable scalars): patches copy every value
    they take from a request body, and copy.deepcopy's generality costs several times more."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


class PatchError(Exception):
    """The patch cannot be applied (kube-apiserver answers 422 or 400)."""


# --- JSON merge patch ------------------------------------------------------------------------
def merge_patch(target, patch, *, copy_values: bool = True):
    """RFC 7386. The result shares nothing with `patch` unless `copy_values` is False (for a
    patch the caller owns and will not change: its lists then go into the result as they are)."""
    if not isinstance(patch, dict):
        return json_copy(patch) if copy_values else patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v, copy_values=copy_values)
    return result


# --- JSON patch -----------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc, parts: list[str]):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError(f"doc is missing path: \"/{'/'.join(parts)}\": missing value")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"doc is missing path: \"/{'/'.join(parts)}\": missing value") from exc
        else:
            raise PatchError(f"doc is missing path: \"/{'/'.join(parts)}\": missing value")
    return cur


def _add(doc, parts, value, replace=False):
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: /{'/'.join(parts)}: missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError as exc:
                raise PatchError(f"invalid array index {last!r}") from exc
            if replace:
                if not 0 <= idx < len(parent):
                    raise PatchError("replace operation does not apply: doc is missing key")
                parent[idx] = value
            else:
                if not 0 <= idx <= len(parent):
                    raise PatchError(f"add operation does not apply: doc is missing path: \"/{'/'.join(parts)}\": missing value")
                parent.insert(idx, value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: \"/{'/'.join(parts)}\": missing value")
    return doc


def _remove(doc, parts):
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"remove operation does not apply: doc is missing path: \"/{'/'.join(parts)}\": missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise PatchError(f"remove operation does not apply: doc is missing path: \"/{'/'.join(parts)}\": missing value") from exc
    raise PatchError("remove operation does not apply")


def json_patch(target, ops) -> object:
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = json_copy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("Unexpected kind: missing op")
        kind = op["op"]
        path = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, path, json_copy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, json_copy(op.get("value")), replace=True)
        elif kind == "move":
            value = _remove(doc, _pointer(op.get("from", "")))
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, json_copy(_resolve(doc, _pointer(op.get("from", "")))))
        elif kind == "test":
            if _resolve(doc, path) != op.get("value"):
                raise PatchError(f"testing value /{'/'.join(path)} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


# --- strategic merge patch ------------------------------------------------------------------
def strategic_merge_patch(target: dict, patch: dict, model: str) -> dict:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _smp_map(target if isinstance(target, dict) else {}, patch, model)


def _smp_map(original: dict, patch: dict, model: str) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: json_copy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    result = dict(original)
    retain = patch.get("$retainKeys")
    if retain is not None and not isinstance(retain, list):
        raise PatchError("$retainKeys must be a list")
    fields = schema.model_fields(model) if model else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if value is not None and not isinstance(value, list):
                raise PatchError(f"invalid type for {key}: expected a list")
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
            continue
        field = fields.get(key)
        ftype = field.type if field else None
        strategy, merge_key = schema.patch_meta(model, key) if model else ("", None)
        if ftype is not None and ftype.kind == "model" and isinstance(value, dict):
            current = result.get(key)
            result[key] = _smp_map(current if isinstance(current, dict) else {}, value, ftype.name)
        elif ftype is not None and ftype.kind == "map" and isinstance(value, dict):
            current = result.get(key)
            item_model = ftype.item.name if ftype.item and ftype.item.kind == "model" else ""
            base = dict(current) if isinstance(current, dict) else {}
            if value.get("$patch") == "replace":
                result[key] = {k: v for k, v in value.items() if k != "$patch"}
                continue
            for mk, mv in value.items():
                if mv is None:
                    base.pop(mk, None)
                elif item_model and isinstance(mv, dict):
                    base[mk] = _smp_map(base.get(mk) or {}, mv, item_model)
                else:
                    base[mk] = json_copy(mv)
            result[key] = base
        elif isinstance(value, list) and "merge" in strategy:
            item_model = ftype.item.name if ftype and ftype.item and ftype.item.kind == "model" else ""
            order = patch.get(f"$setElementOrder/{key}")
            if order is not None and not isinstance(order, list):
                raise PatchError(f"invalid type for $setElementOrder/{key}: expected a list")
            result[key] = _merge_list(result.get(key) or [], value, merge_key, item_model, order)
        elif ftype is None and isinstance(value, dict) and isinstance(result.get(key), dict) and not model:
            result[key] = _smp_map(result[key], value, "")
        elif isinstance(value, dict) and ftype is not None and ftype.kind == "primitive" and ftype.name == "object" \
                and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = _strip_directives(json_copy(value))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return value


def _merge_list(original: list, patch: list, merge_key: str | None, item_model: str, order: list | None) -> list:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip_directives(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    if merge_key is None:
        # A list of primitives merged as a set (finalizers, podCIDRs): union, original order first.
        out = list(original)
        for v in patch:
            if v not in out:
                out.append(json_copy(v))
        if order:
            out = sorted(out, key=lambda v: order.index(v) if v in order else len(order))
        return out
    out = [json_copy(o) for o in original]
    index = {_merge_key_of(o, merge_key): i for i, o in enumerate(out) if isinstance(o, dict)}
    deleted: set = set()
    for p in patch:
        if not isinstance(p, dict):
            raise PatchError(f"unable to find api field in struct for the merge key {merge_key!r}")
        if merge_key not in p:
            raise PatchError(f"map: {p} does not contain declared merge key: {merge_key}")
        k = _merge_key_of(p, merge_key)
        if p.get("$patch") == "delete":
            deleted.add(k)
            continue
        if k in index:
            out[index[k]] = _smp_map(out[index[k]], p, item_model)
        else:
            index[k] = len(out)
            out.append(_smp_map({}, p, item_model))
    out = [o for o in out if not (isinstance(o, dict) and _merge_key_of(o, merge_key) in deleted)]
    if order:
        keys = [_merge_key_of(o, merge_key) for o in order if isinstance(o, dict)]
        pos = {k: i for i, k in enumerate(keys)}
        out.sort(key=lambda o: pos.get(_merge_key_of(o, merge_key) if isinstance(o, dict) else None, len(keys)))
    return out


def _merge_key_of(item: dict, merge_key: str):
    """An item's merge key value, hashable whatever a patch put there (a list or a map is a
    wrong type the type check refuses after the merge; the merge itself must not fail on it)."""
    value = item.get(merge_key)
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return value


def go_format(value) -> str:
    """A decoded patch as Go's fmt %+v prints a map[string]interface{} (how kube-apiserver
    shows a strategic merge patch it could not apply): map[k:v ...] with sorted keys."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
