"""Pure request building: URL paths and query strings for the Kubernetes REST API. No I/O."""

from __future__ import annotations

import re
from urllib.parse import quote

_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def _segment(text: str) -> str:
    """`text` percent-encoded as one path segment; names are nearly always DNS labels that need
    nothing, and quote() was a measurable part of every request of a busy client."""
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def resource_path(
    api_version: str,
    resource: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """`v1` lives under /api/v1, every group under /apis/GROUP/VERSION (as kube-apiserver serves)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace is not None and resource != "namespaces":
        parts.append(f"namespaces/{_segment(namespace)}")
    parts.append(resource)
    if name is not None:
        parts.append(_segment(name))
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


def list_params(
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    resource_version: str | None = None,
    limit: int | None = None,
    continue_token: str | None = None,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    if resource_version is not None:
        params["resourceVersion"] = resource_version
    if limit:
        params["limit"] = str(limit)
    if continue_token:
        params["continue"] = continue_token
    return params


def watch_params(
    *,
    resource_version: str | None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    allow_bookmarks: bool = True,
    timeout_seconds: int | None = None,
) -> dict[str, str]:
    params = list_params(
        label_selector=label_selector, field_selector=field_selector, resource_version=resource_version
    )
    params["watch"] = "true"
    if allow_bookmarks:
        params["allowWatchBookmarks"] = "true"
    if timeout_seconds is not None:
        params["timeoutSeconds"] = str(timeout_seconds)
    return params


PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
