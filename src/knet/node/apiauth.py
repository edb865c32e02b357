"""Who may use the kubelet's API, decided as the upstream kubelet does
(pkg/kubelet/server/auth.go with `authorization.mode: Webhook`, as kubeadm configures it):

- every request is authenticated by its client certificate (signed by the cluster CA; CN is the
  user, O the groups); none gives 401 `Unauthorized`;
- every request is then authorized by a SubjectAccessReview sent to the apiserver: verb from the
  HTTP method, resource `nodes`, name the node, subresource `proxy` (exec, attach, portForward,
  run, containerLogs, pods, ...) or `stats`, `metrics`, `log` (/logs/), `spec`; a refusal is 403
  `Forbidden (user=X, verb=create, resource=nodes, subresource=proxy)`;
- answers are cached as the webhook authorizer does (allowed 5 min, denied 30 s).

Pure but for `KubeletAuthorizer.authorize`, which awaits the injected review call.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from knet.api.auth import User

ALLOWED_TTL = 300.0  # --authorization-webhook-cache-authorized-ttl (kubelet default 5m)
DENIED_TTL = 30.0  # --authorization-webhook-cache-unauthorized-ttl (kubelet default 30s)
CACHE_SIZE = 8192

# kubelet server paths with their own subresource (server.go: statsPath, metricsPath, logsPath,
# specPath); every other path is "proxy".
_SUBRESOURCE_PATHS = (("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"), ("/spec/", "spec"))
_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True, slots=True)
class NodeRequest:
    """A kubelet API request as authorizer.Attributes: the user, and what they ask of which node."""

    user: User
    verb: str
    name: str  # the node
    subresource: str
    path: str
    resource: str = "nodes"
    api_version: str = "v1"


def _is_subpath(path: str, prefix: str) -> bool:
    """kubelet's isSubpath: `path` is `prefix` (without its trailing slash) or below it."""
    prefix = prefix.rstrip("/")
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def request_attributes(user: User, method: str, path: str, node: str) -> NodeRequest:
    """nodeAuthorizerAttributesGetter.GetRequestAttributes."""
    subresource = "proxy"
    for prefix, sub in _SUBRESOURCE_PATHS:
        if _is_subpath(path, prefix):
            subresource = sub
            break
    return NodeRequest(user, _VERBS.get(method.upper(), ""), node, subresource, path)


def subject_access_review(req: NodeRequest) -> dict:
    """The SubjectAccessReview the kubelet's webhook authorizer posts for a request."""
    spec: dict = {"user": req.user.name, "groups": list(req.user.groups),
                  "resourceAttributes": {"verb": req.verb, "version": req.api_version, "resource": req.resource,
                                         "subresource": req.subresource, "name": req.name}}
    if req.user.uid:
        spec["uid"] = req.user.uid
    if req.user.extra:
        spec["extra"] = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in req.user.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def forbidden_message(req: NodeRequest) -> str:
    return (f"Forbidden (user={req.user.name}, verb={req.verb}, resource={req.resource}, "
            f"subresource={req.subresource})")


def error_message(req: NodeRequest) -> str:
    return (f"Authorization error (user={req.user.name}, verb={req.verb}, resource={req.resource}, "
            f"subresource={req.subresource})")


class DecisionCache:
    """The webhook authorizer's LRU of answers keyed by the review's spec: an allowed answer is
    kept `allowed_ttl` seconds, a denied one `denied_ttl`. Pure (time is passed in)."""

    def __init__(self, allowed_ttl: float = ALLOWED_TTL, denied_ttl: float = DENIED_TTL,
                 size: int = CACHE_SIZE) -> None:
        self.allowed_ttl, self.denied_ttl, self.size = allowed_ttl, denied_ttl, size
        self._entries: collections.OrderedDict[bytes, tuple[bool, float]] = collections.OrderedDict()

    @staticmethod
    def key(review: dict) -> bytes:
        return orjson.dumps(review["spec"], option=orjson.OPT_SORT_KEYS)

    def get(self, key: bytes, now: float) -> bool | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        allowed, expires = hit
        if now >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return allowed

    def put(self, key: bytes, allowed: bool, now: float) -> None:
        self._entries[key] = (allowed, now + (self.allowed_ttl if allowed else self.denied_ttl))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


Review = Callable[[dict], Awaitable[dict]]


class KubeletAuthorizer:
    """Asks the apiserver (`review`: POST a SubjectAccessReview, return the answer) and caches
    what it says; concurrent requests with the same question share one review."""

    def __init__(self, review: Review, cache: DecisionCache | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._review, self.cache, self._clock = review, cache or DecisionCache(), clock
        self._pending: dict[bytes, asyncio.Future[bool]] = {}

    async def allowed(self, req: NodeRequest) -> bool:
        """Whether the apiserver allows the request; raises when it cannot be asked."""
        review = subject_access_review(req)
        key = DecisionCache.key(review)
        cached = self.cache.get(key, self._clock())
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            answer = await self._review(review)
            allowed = bool((answer.get("status") or {}).get("allowed"))
            self.cache.put(key, allowed, self._clock())
            fut.set_result(allowed)
            return allowed
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(key, None)


__all__ = ["DecisionCache", "KubeletAuthorizer", "NodeRequest", "error_message", "forbidden_message",
           "request_attributes", "subject_access_review"]
