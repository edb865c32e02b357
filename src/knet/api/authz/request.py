"""A request's authorization attributes, and the 403 a denial answers with, as kube-apiserver's
RequestInfoFactory and responsewriters.forbiddenMessage word them."""

from __future__ import annotations

from knet.api.auth import User
from knet.api.authz.attributes import Attributes
from knet.api.errors import ApiError
from knet.api.requestinfo import RequestInfo

# Streaming subresources opened with a WebSocket GET: kube-apiserver also requires `create`
# on them (AuthorizePodWebsocketUpgradeCreatePermission), which is what every RBAC role grants
# for them; knet checks that one verb.
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})


def request_attributes(user: User, info: RequestInfo) -> Attributes:
    """authorizer.Attributes of a request, from its RequestInfo (upstream's
    GetAuthorizerAttributes): the verb, name and namespace the apiserver also dispatches on."""
    if not info.is_resource_request:
        return Attributes(user, info.verb, resource_request=False, path=info.path)
    verb = "create" if info.subresource in _CONNECT_SUBRESOURCES else info.verb
    return Attributes(user, verb, namespace=info.namespace, api_group=info.api_group,
                      api_version=info.api_version, resource=info.resource, subresource=info.subresource,
                      name=info.name)  # no path: RBAC's decision cache keys on it


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
