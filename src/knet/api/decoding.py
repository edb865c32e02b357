"""Request bodies: read whole (up to kube-apiserver's 3 MiB limit, with or without a
Content-Length) and decoded from JSON or YAML with upstream's guards: YAML's alias expansion
limit (go-yaml's "excessive aliasing" rule, so a few hundred bytes of nested aliases cannot
become a huge object) and a nesting-depth limit, checked before anything is built."""

from __future__ import annotations

import asyncio
import datetime as dt

import orjson
import yaml
from aiohttp import web

from knet.api import errors

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's maxRequestBodyBytes
# A body past the limit is read on (and dropped) up to this much, so the client, still
# sending, reads the 413 instead of a reset connection; beyond it the connection is closed.
_DRAIN_LIMIT = 64 * 1024 * 1024

# Upstream's decoders allow 10000 levels (encoding/json's maxNestingDepth, go-yaml's
# max_flow_level/max_indents). knet stores and serves objects with orjson, which encodes at
# most 254 levels: a body nested deeper than that could not be stored or served, so it is
# refused when it is decoded, with upstream's wording.
MAX_DEPTH = 250

_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built with it


class _YamlLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader without YAML 1.1's implicit timestamps: sigs.k8s.io/yaml keeps
    `2024-01-01T00:00:00Z` a string (a metav1.Time field parses it), PyYAML made a datetime."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()}


async def read_body(request: web.Request) -> bytes:
    """The whole body. One `content.read(n)` returns what has arrived so far, not n bytes:
    bodies over ~64 KB were cut short at random. 413 past MAX_BODY, chunked bodies too."""
    length = request.content_length
    content = request.content
    if length is not None:
        if length > MAX_BODY:
            await _drain(request, length)
            raise errors.too_large()
        if length == 0:
            return b""
        try:
            return await content.readexactly(length)
        except asyncio.IncompleteReadError as exc:  # the body ended early: decoding refuses what came
            return exc.partial
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_BODY:
            await _drain(request, None)
            raise errors.too_large()
        chunks.append(chunk)


async def _drain(request: web.Request, length: int | None) -> None:
    if length is not None and length > _DRAIN_LIMIT:
        return
    read = 0
    while read < _DRAIN_LIMIT:
        chunk = await request.content.readany()
        if not chunk:
            return
        read += len(chunk)


# --- JSON --------------------------------------------------------------------------------------
def loads_json(raw: bytes):
    """orjson's decoding plus the depth limit. orjson refuses bad UTF-8, raw control characters
    in strings and more than 1024 levels itself; deeper than MAX_DEPTH is checked only when the
    body has that many brackets at all (a C-speed count), so ordinary bodies cost nothing."""
    value = orjson.loads(raw)
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth_of(value) > MAX_DEPTH:
        raise JsonDepthError("exceeded max depth")
    return value


class JsonDepthError(ValueError):
    pass


def depth_of(value) -> int:
    """The nesting depth of decoded JSON (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if d > deepest:
            deepest = d
            if d > MAX_DEPTH:
                return d
        stack.extend((c, d + 1) for c in children if isinstance(c, dict | list))
    return deepest


# --- YAML --------------------------------------------------------------------------------------
class YamlGuardError(yaml.YAMLError):
    pass


# go-yaml v2 (decode.go): the share of decode operations that may come from alias expansion
# shrinks from 99 % to 10 % as documents grow from 400,000 to 4,000,000 operations.
_ALIAS_RATIO_LOW, _ALIAS_RATIO_HIGH = 400_000, 4_000_000


def _allowed_alias_ratio(decodes: int) -> float:
    if decodes <= _ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * ((decodes - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW))


def _check_events(text: str) -> None:
    """One pass over the parser's events (iterative: no recursion however deep): the nesting
    depth, and go-yaml's alias rule counted without expanding anything. Every node counts as
    one decode; an alias counts as the whole (expanded) size of its anchor's node, all of it
    alias-driven; the rule is checked at every alias, as go-yaml checks it while decoding."""
    sizes: dict[str, int] = {}  # anchor -> expanded node count of its node
    open_nodes: list[list] = []  # [anchor, node count so far] of each open collection
    decodes = aliased = 0
    for event in yaml.parse(text, Loader=_YamlLoader):
        kind = type(event)
        if kind is yaml.ScalarEvent:
            decodes += 1
            if open_nodes:
                open_nodes[-1][1] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            decodes += 1
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > MAX_DEPTH:
                raise YamlGuardError(f"yaml: exceeded max depth of {MAX_DEPTH}")
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            anchor, size = open_nodes.pop()
            if anchor:
                sizes[anchor] = size
            if open_nodes:
                open_nodes[-1][1] += size
        elif kind is yaml.AliasEvent:
            size = sizes.get(event.anchor, 1)  # an unknown anchor: the composer reports it
            decodes += 1 + size
            aliased += size
            if open_nodes:
                open_nodes[-1][1] += 1 + size
            if aliased > 100 and decodes > 1000 and aliased / decodes > _allowed_alias_ratio(decodes):
                raise YamlGuardError("yaml: document contains excessive aliasing")


def loads_yaml(raw: bytes | str):
    """yaml.safe_load with go-yaml's guards checked first (YAMLError on a refused document)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    _check_events(text)
    value = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a safe loader
    if isinstance(value, dict | list) and depth_of(value) > MAX_DEPTH:  # merge keys can nest
        raise YamlGuardError(f"yaml: exceeded max depth of {MAX_DEPTH}")
    return _jsonable(value)


def _jsonable(value):
    """The decoded YAML as JSON values, as sigs.k8s.io/yaml converts it: scalar map keys
    become strings (1 -> "1", true -> "true"), anything JSON cannot hold is an error (a
    tagged !!binary or !!set, a list as a key), instead of a value the server cannot encode."""
    if isinstance(value, dict):
        return {_json_key(k, v): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.date):
        return value.isoformat().replace("+00:00", "Z")
    raise YamlGuardError(f"unsupported value of type {type(value).__name__}")


def _json_key(key, value) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float) or key is None:
        return "null" if key is None else repr(key) if isinstance(key, float) else str(key)
    raise YamlGuardError(f"unsupported map key of type: {type(key).__name__}, key: {key!r}, value: {value!r}"[:300])
