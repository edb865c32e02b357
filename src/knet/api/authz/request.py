"""A request's authorization verb, and the 403 a denial answers with, as kube-apiserver's
RequestInfoFactory and responsewriters.forbiddenMessage word them."""

from __future__ import annotations

from knet.api.authz.attributes import Attributes
from knet.api.errors import ApiError

_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
# Streaming subresources opened with a WebSocket GET: kube-apiserver also requires `create`
# on them (AuthorizePodWebsocketUpgradeCreatePermission, on by default since 1.31), which is
# what every RBAC role grants for them; knet checks that one verb.
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})


def resource_verb(method: str, has_name: bool, watch: bool, subresource: str | None) -> str:
    """The verb of a request on a resource path (RequestInfoFactory.NewRequestInfo)."""
    if subresource in _CONNECT_SUBRESOURCES:
        return "create"
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return _WRITE_VERBS.get(method, method.lower())


def name_from_field_selector(selector: str | None) -> str:
    """A list or watch narrowed to one object by `metadata.name=X` is authorized for that name,
    as upstream does (so a role limited by resourceNames can `kubectl get pod x -w`)."""
    if not selector:
        return ""
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if key.strip() == "metadata.name" and sep and not value.startswith("="):
            return value.strip()
        if key.strip() == "metadata.name" and value.startswith("="):
            return value[1:].strip()
    return ""


def forbidden_message(attrs: Attributes) -> str:
    user = attrs.user.name if attrs.user is not None else ""
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    if attrs.namespace:
        return (f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" '
                f'in the namespace "{attrs.namespace}"')
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" at the cluster scope'


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """errors.NewForbidden of the request's group-resource and name, as the apiserver's
    authorization filter answers a denial."""
    message = forbidden_message(attrs) + (f": {reason}" if reason else "")
    if not attrs.resource_request:
        return ApiError(403, "Forbidden", f"forbidden: {message}", {})
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict = {"name": attrs.name} if attrs.name else {}
    if attrs.api_group:
        details["group"] = attrs.api_group
    details["kind"] = attrs.resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {message}", details)
