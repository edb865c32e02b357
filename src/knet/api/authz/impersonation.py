"""Impersonation (`kubectl --as/--as-group/--as-uid`), as k8s.io/apiserver's
filters/impersonation.go: every requested identity part needs the `impersonate` verb on it,
and the request then runs as the impersonated user."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import unquote

from knet.api.auth import User
from knet.api.authz.attributes import Attributes, Decision
from knet.api.authz.request import forbidden
from knet.api.errors import bad_request

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
SA_PREFIX = "system:serviceaccount:"
ANONYMOUS = "system:anonymous"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"


def requested(headers: Mapping) -> bool:
    return any(k.lower().startswith("impersonate-") for k in headers.keys())


def impersonate(headers, user: User, authorize: Callable[[Attributes], Decision]) -> User:
    """The user a request with Impersonate-* headers runs as; raises ApiError 400 for a malformed
    request and 403 for a part the requester may not impersonate. `headers` is a multidict
    (several Impersonate-Group headers), as aiohttp's request headers are."""
    name = headers.get(USER_HEADER, "")
    groups = list(headers.getall(GROUP_HEADER, []))
    uid = headers.get(UID_HEADER, "")
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(EXTRA_PREFIX):
            extra.setdefault(unquote(key[len(EXTRA_PREFIX):]).lower(), []).append(value)
    if not name and (groups or extra or uid):
        raise bad_request(f"requested {_describe(groups, extra, uid)} without impersonating a user")
    checks: list[Attributes] = []
    implied: list[str] = []  # a service account's groups come with it, unchecked
    if name.startswith(SA_PREFIX):
        ns, _, sa = name[len(SA_PREFIX):].partition(":")
        checks.append(Attributes(user, "impersonate", namespace=ns, resource="serviceaccounts", name=sa))
        if not groups:
            implied = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    else:
        checks.append(Attributes(user, "impersonate", resource="users", name=name))
    checks += [Attributes(user, "impersonate", resource="groups", name=g) for g in groups]
    checks += [Attributes(user, "impersonate", api_group="authentication.k8s.io", resource="userextras",
                          subresource=k, name=v) for k, vs in extra.items() for v in vs]
    if uid:
        checks.append(Attributes(user, "impersonate", api_group="authentication.k8s.io", resource="uids", name=uid))
    for attrs in checks:
        decision = authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
    groups += implied
    if name == ANONYMOUS:
        if UNAUTHENTICATED not in groups:
            groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return User(name, uid, tuple(groups), extra)


def _describe(groups: list[str], extra: dict, uid: str) -> str:
    parts = [f"group {g!r}" for g in groups] + [f"extra {k}={v}" for k, v in extra.items()]
    if uid:
        parts.append(f"uid {uid!r}")
    return ", ".join(parts)
