"""What a response is encoded as: kube-apiserver's output negotiation (endpoints/handlers/
negotiation: NegotiateOutputMediaType, NegotiateOutputMediaTypeStream, with goautoneg's
ParseAccept, and RequestScope.AllowsMediaTypeTransform) and its transforms (handlers/response.go:
asPartialObjectMetadata, asPartialObjectMetadataList; Table is knet.api.tables), for the media
types knet encodes: JSON and YAML.

- No Accept: JSON. Otherwise the Accept clauses, best first (q, then specificity), each against
  the served types; the first clause whose parameters are acceptable wins: `as`/`g`/`v` may ask
  for a Table (JSON or YAML), PartialObjectMetadata or PartialObjectMetadataList of meta.k8s.io
  v1 or v1beta1; `stream` must be `watch` and only JSON streams.
- Nothing acceptable is upstream's 406 NotAcceptable. knet has no protobuf encoder, so
  `Accept: application/vnd.kubernetes.protobuf` alone is 406, as upstream answers it for
  custom resources; a protobuf clause before a JSON one (client-go's protobuf clients, its
  metadata client) falls through to the JSON one.
- A watch negotiates the same way, then the chosen type must stream (YAML does not: 406).

Pure: header in, `Output` or ApiError out; dicts in, dicts/bytes out."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import yaml

from knet.api.errors import ApiError
from knet.api.registry import ResourceType

JSON, YAML = "application/json", "application/yaml"
SERVED = (JSON, YAML)  # in upstream's order (its protobuf and CBOR are not served)
STREAMING = (JSON,)  # media types with a stream serializer (YAML has none upstream)
META_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
TABLE, PARTIAL, PARTIAL_LIST = "Table", "PartialObjectMetadata", "PartialObjectMetadataList"


@dataclass(frozen=True, slots=True)
class Output:
    media_type: str = JSON
    convert: str | None = None  # TABLE, PARTIAL, PARTIAL_LIST
    group_version: str = META_VERSIONS[0]  # of the conversion

    @property
    def plain_json(self) -> bool:
        return self.media_type == JSON and self.convert is None


@dataclass(frozen=True, slots=True)
class Clause:
    type: str
    subtype: str
    q: float
    params: dict


def parse_accept(header: str) -> list[Clause]:
    """goautoneg.ParseAccept: clauses sorted best first (higher q, then a concrete type, then a
    concrete subtype); malformed media ranges are dropped, parameters without `=` ignored."""
    clauses = []
    for part in header.split(","):
        pieces = part.split(";")
        media = pieces[0].split("/")
        kind = media[0].strip()
        if len(media) == 1 and kind == "*":
            subtype = "*"
        elif len(media) == 2:
            subtype = media[1].strip()
        else:
            continue
        q, params = 1.0, {}
        for param in pieces[1:]:
            key, sep, value = param.partition("=")
            if not sep:
                continue
            key = key.strip()
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params[key] = value.strip()
        clauses.append(Clause(kind, subtype, q, params))
    return sorted(clauses, key=lambda c: (-c.q, c.type == "*", c.subtype == "*"))


def _options(params: dict, media_type: str) -> Output | None:
    """acceptMediaTypeOptions: the clause's output, or None when the server cannot honor it."""
    convert: dict[str, str] = {}
    for key, value in params.items():
        if key in ("as", "g", "v"):
            convert[key] = value
        elif key == "stream" and value and (media_type not in STREAMING or value != "watch"):
            return None
    if not convert:
        return Output(media_type)
    kind, group_version = convert.get("as", ""), f"{convert.get('g', '')}/{convert.get('v', '')}"
    # AllowsMediaTypeTransform: Tables as JSON or YAML, partial metadata in any served type.
    if group_version not in META_VERSIONS or kind not in (TABLE, PARTIAL, PARTIAL_LIST):
        return None
    return Output(media_type, kind, group_version)


def not_acceptable(accepted: tuple[str, ...]) -> ApiError:
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: {', '.join(accepted)}", {})


def negotiate(accept: str | None, watch: bool = False) -> Output:
    """The response's encoding for an Accept header (of a watch when `watch`), or 406."""
    if not accept:
        return Output()
    for clause in parse_accept(accept):
        for media_type in SERVED:
            kind, subtype = media_type.split("/")
            if (clause.type == kind and clause.subtype in (subtype, "*")) or (clause.type, clause.subtype) == ("*", "*"):
                out = _options(clause.params, media_type)
                if out is not None:
                    if watch and out.media_type not in STREAMING:
                        raise not_acceptable(tuple(f"{t};stream=watch" for t in STREAMING))
                    return out
    raise not_acceptable(SERVED)


# --- transforms ---------------------------------------------------------------------------
def _go_type(rt: ResourceType, is_list: bool) -> str:
    """The %T upstream's messages name: the internal Go type the storage returns."""
    if rt.decode is not None:  # a custom resource
        return "*unstructured.UnstructuredList" if is_list else "*unstructured.Unstructured"
    package = rt.group.split(".")[0] if rt.group else "core"
    return f"*{package}.{rt.kind}{'List' if is_list else ''}"


def list_refused(rt: ResourceType) -> ApiError:
    """asPartialObjectMetadata of a list."""
    return ApiError(406, "NotAcceptable", f"you requested {PARTIAL}, but the requested object is a list "
                    f"({_go_type(rt, True)})", {})


def object_refused(rt: ResourceType) -> ApiError:
    """asPartialObjectMetadataList of one object."""
    return ApiError(406, "NotAcceptable", f"you requested {PARTIAL_LIST}, but the requested object is not a list "
                    f"({_go_type(rt, False)})", {})


def partial(obj: dict, group_version: str) -> dict:
    """meta.AsPartialObjectMetadata: the object's kind replaced, its metadata whole."""
    return {"kind": PARTIAL, "apiVersion": group_version, "metadata": obj.get("metadata") or {}}


def partial_list(objs: list[dict], list_meta: dict, group_version: str) -> dict:
    """asPartialObjectMetadataList: resourceVersion, continue and remainingItemCount kept."""
    meta = {k: list_meta[k] for k in ("resourceVersion", "continue", "remainingItemCount") if k in list_meta}
    return {"kind": PARTIAL_LIST, "apiVersion": group_version, "metadata": meta,
            "items": [partial(o, group_version) for o in objs]}


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def encode(media_type: str, body: dict | bytes) -> bytes:
    """The body in the media type: JSON as given (stored bytes pass through), YAML as
    sigs.k8s.io/yaml writes JSON (keys sorted, block style)."""
    if media_type == YAML:
        obj = orjson.loads(body) if isinstance(body, bytes | bytearray | memoryview) else body
        return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True).encode()
    return body if isinstance(body, bytes) else orjson.dumps(body)


__all__ = ["JSON", "SERVED", "YAML", "Output", "encode", "list_refused", "negotiate", "not_acceptable",
           "object_refused", "parse_accept", "partial", "partial_list"]
