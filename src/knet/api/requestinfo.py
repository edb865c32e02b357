"""What a request asks for, from its method, path and query alone: kube-apiserver's RequestInfo
(k8s.io/apiserver/pkg/endpoints/request/requestinfo.go, RequestInfoFactory.NewRequestInfo with
APIPrefixes {api, apis} and GrouplessAPIPrefixes {api}, as the kube-apiserver configures it).

The apiserver decides once per request what it is -- resource or not, the verb (list, watch,
get, create, update, patch, delete, deletecollection, or a path-prefix verb such as the legacy
/watch/), group, version, namespace, resource, subresource and name -- and both authorization
and dispatch read that one answer, so a path cannot be authorized as one thing and served as
another.

Pure: no I/O; `query` is anything with `getall` (aiohttp's MultiDict) or a dict of lists."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knet import selectors

API_PREFIXES = frozenset({"api", "apis"})
GROUPLESS_API_PREFIXES = frozenset({"api"})
# Path segments that are verbs (/api/v1/watch/pods, the long-removed /api/v1/proxy/...).
SPECIAL_VERBS = frozenset({"proxy", "watch"})
SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
# /api/v1/namespaces/NS/status is the namespace's subresource, not a resource in NS.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
VERBS_WITH_SELECTORS = frozenset({"list", "watch", "deletecollection"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_INT64 = re.compile(r"[+-]?[0-9]+")
# content.IsPathSegmentName: a name from a field selector becomes the request's name only if it
# could be a path segment.
_NOT_PATH_SEGMENT_NAMES = frozenset({".", ".."})
_NOT_IN_PATH_SEGMENT = ("/", "%")


class RequestInfoError(ValueError):
    """NewRequestInfo's error: kube-apiserver answers it with a 500 (`failed to create
    RequestInfo: ...`) before authorization."""


@dataclass(frozen=True, slots=True)
class RequestInfo:
    is_resource_request: bool
    path: str
    # The Kubernetes verb for resource requests; the lower-case HTTP method for the others.
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    # The name in the path, or (list/watch) the one a `metadata.name=` field selector asks for.
    name: str = ""
    # From the resource on: resource/name/subresource/anything/else.
    parts: tuple[str, ...] = ()
    # Unparsed selectors, for the verbs that take them (not via the legacy /watch/ prefix).
    field_selector: str = ""
    label_selector: str = ""
    # knet's, for dispatch: the verb came from a path segment (/watch/...), not the method; the
    # path named the namespace before the resource (namespaces/NS/pods, not namespaces/NS).
    verb_via_path: bool = False
    namespace_in_path: bool = False

    @property
    def path_name(self) -> str:
        """The object name the path itself names ("" for a collection), unlike `name`, which a
        list's field selector may fill in."""
        return self.parts[1] if len(self.parts) > 1 else ""

    @property
    def scope(self) -> str:
        """The metrics' scope label (upstream's CleanScope): resource for one object or a
        create, namespace, cluster, or "" for a non-resource request."""
        if self.name or self.verb == "create":
            return "resource"
        if self.namespace:
            return "namespace"
        return "cluster" if self.is_resource_request else ""

    def subpath(self) -> str:
        """A connect subresource's trailing path (pods/NAME/proxy/PATH -> /PATH), as
        handlers.getRequestOptions builds it: the parts after the subresource, a leading slash
        when not empty, and the request's trailing slash kept."""
        p = "/".join(self.parts[3:])
        if p and not p.startswith("/"):
            p = "/" + p
        if self.path.endswith("/") and not p.endswith("/"):
            p += "/"
        return p


def split_path(path: str) -> list[str]:
    """Upstream splitPath: the segments between slashes (inner empty segments kept)."""
    path = path.strip("/")
    return path.split("/") if path else []


def _values(query: Any, key: str) -> list[str]:
    getall = getattr(query, "getall", None)
    if getall is not None:
        return list(getall(key, ()))
    value = query.get(key) if isinstance(query, Mapping) else None
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _go_bool(values: Sequence[str]) -> bool:
    """runtime.Convert_Slice_string_To_bool: only absent, "0" and "false" are false."""
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


def _list_options(query: Any) -> tuple[bool, str | None]:
    """(watch, the metadata.name the field selector requires) as ParameterCodec decodes
    metav1.ListOptions; raises ValueError where that decoding fails."""
    for key in ("timeoutSeconds", "limit"):
        values = _values(query, key)
        if values and (not _INT64.fullmatch(values[0]) or not -(2**63) <= int(values[0]) < 2**63):
            raise ValueError(f"invalid {key}")
    labels = _values(query, "labelSelector")
    if labels:
        selectors.parse_label_selector(labels[0])
    fields = _values(query, "fieldSelector")
    name = selectors.parse_field_selector(fields[0]).value_of("metadata.name") if fields else None
    return _go_bool(_values(query, "watch")), name


def _is_path_segment_name(name: str) -> bool:
    return name not in _NOT_PATH_SEGMENT_NAMES and not any(c in name for c in _NOT_IN_PATH_SEGMENT)


def parse(method: str, path: str, query: Any = None) -> RequestInfo:
    """NewRequestInfo for METHOD PATH?QUERY. Raises RequestInfoError where upstream errs (a
    path-prefix verb with nothing after it)."""
    query = {} if query is None else query
    method = method.upper()
    verb = method.lower()
    current = split_path(path)
    if len(current) < 3 or current[0] not in API_PREFIXES:
        return RequestInfo(False, path, verb)
    prefix, current = current[0], current[1:]
    group = ""
    if prefix not in GROUPLESS_API_PREFIXES:
        if len(current) < 3:  # the prefix is consumed: "do we have four parts?"
            return RequestInfo(False, path, verb)
        group, current = current[0], current[1:]
    version, current = current[0], current[1:]

    via_path = False
    if current[0] in SPECIAL_VERBS:
        if len(current) < 2:
            raise RequestInfoError(f"unable to determine kind and namespace from url, {path}")
        verb, current, via_path = current[0], current[1:], True
    else:
        verb = _METHOD_VERBS.get(method, "")

    namespace, in_path = "", False
    if current[0] == "namespaces":
        if len(current) > 1:
            namespace = current[1]
            # namespaces/NS/RESOURCE...: the parts start at the resource, unless it is one of
            # the namespace's own subresources.
            if len(current) > 2 and current[2] not in NAMESPACE_SUBRESOURCES:
                current, in_path = current[2:], True
    parts = tuple(current)

    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb not in SPECIAL_VERBS_NO_SUBRESOURCES else ""

    if not name and verb == "get":
        # No name: a list or a watch. A `metadata.name=` field selector names the object (so
        # RBAC resourceNames apply to `kubectl get pod x -w`); options that do not decode leave
        # a list (or a watch, if ?watch= says so) and no name.
        try:
            watch, selected = _list_options(query)
        except (ValueError, selectors.SelectorError):
            watch, selected = _go_bool(_values(query, "watch")[:1]), None
        verb = "watch" if watch else "list"
        if selected is not None and _is_path_segment_name(selected):
            name = selected
    if not name and verb == "delete":
        verb = "deletecollection"

    field_selector = label_selector = ""
    if not via_path and verb in VERBS_WITH_SELECTORS:
        # Read straight from the query (a value that does not parse is still reported).
        field_selector = next(iter(_values(query, "fieldSelector")), "")
        label_selector = next(iter(_values(query, "labelSelector")), "")

    return RequestInfo(True, path, verb, prefix, group, version, namespace, resource, subresource, name, parts,
                       field_selector, label_selector, via_path, in_path)


__all__ = ["RequestInfo", "RequestInfoError", "parse", "split_path"]
