"""The kubelet's service-account token manager (upstream pkg/kubelet/token/token_manager.go):
TokenRequests cached per (service account, audiences, lifetime, bound pod) and renewed once
older than 80 % of their life or 24 h, so projected token volumes stay valid for a pod's
whole life. `requires_refresh` is the pure rule; `TokenManager` holds the cache."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("knet.node.tokens")

MAX_TTL_SECONDS = 24 * 3600  # upstream maxTTL: refresh a day-old token whatever its lifetime
MAX_JITTER_SECONDS = 10.0    # upstream maxJitter
RETRY_SECONDS = 10.0         # a failed renewal is tried again this much later (the old token stays)

Obj = dict[str, Any]
Key = tuple[str, str, tuple[str, ...], int, str, str]


def _expiry(tr: Obj) -> float | None:
    text = (tr.get("status") or {}).get("expirationTimestamp")
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def requires_refresh(tr: Obj, now: float, jitter: float = 0.0) -> bool:
    """upstream Manager.requiresRefresh: the token was issued at exp - spec.expirationSeconds
    (the lifetime the apiserver granted); renew after 24 h, or within 20 % of that lifetime of
    its expiry, each less the jitter."""
    seconds = (tr.get("spec") or {}).get("expirationSeconds")
    exp = _expiry(tr)
    if not isinstance(seconds, int) or exp is None:
        return True
    iat = exp - seconds
    if now > iat + MAX_TTL_SECONDS - jitter:
        return True
    return now > exp - seconds * 20 // 100 - jitter


def expired(tr: Obj, now: float) -> bool:
    exp = _expiry(tr)
    return exp is None or now >= exp


def key_of(namespace: str, service_account: str, spec: Obj) -> Key:
    """upstream keyFunc: what makes two pods' token requests the same."""
    ref = spec.get("boundObjectRef") or {}
    return (namespace, service_account, tuple(spec.get("audiences") or ()), int(spec.get("expirationSeconds") or 0),
            ref.get("kind", ""), ref.get("uid", ""))


class TokenManager:
    def __init__(self, clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random) -> None:
        self._cache: dict[Key, Obj] = {}
        self._failed: dict[Key, float] = {}  # when a renewal last failed
        self._clock = clock
        self._rand = rand

    def _jitter(self, tr: Obj) -> float:
        # Upstream draws up to 10 s. knet's test clusters use tokens of a few seconds, where 10 s
        # would be all of their life: at most a tenth of the lifetime then.
        seconds = (tr.get("spec") or {}).get("expirationSeconds") or 0
        return self._rand() * min(MAX_JITTER_SECONDS, seconds / 10)

    def cached(self, namespace: str, service_account: str, spec: Obj) -> Obj | None:
        return self._cache.get(key_of(namespace, service_account, spec))

    def due(self, namespace: str, service_account: str, spec: Obj) -> bool:
        key = key_of(namespace, service_account, spec)
        tr = self._cache.get(key)
        now = self._clock()
        if now - self._failed.get(key, now - RETRY_SECONDS) < RETRY_SECONDS:
            return False  # the last request failed a moment ago: not again every second
        return tr is None or requires_refresh(tr, now, self._jitter(tr))

    async def token(self, api: Any, namespace: str, service_account: str, spec: Obj) -> str:
        """The token for this request: the cached one unless it is due for renewal. A failed
        renewal keeps a cached token that has not expired (upstream GetServiceAccountToken)."""
        key = key_of(namespace, service_account, spec)
        tr = self._cache.get(key)
        now = self._clock()
        if tr is not None and not requires_refresh(tr, now, self._jitter(tr)):
            return tr["status"]["token"]
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            fresh = await api.create("v1", "serviceaccounts", request, namespace=namespace, name=service_account,
                                     subresource="token")
        except Exception as exc:
            self._failed[key] = now
            if tr is not None and not expired(tr, now):
                log.warning("renewing the token of %s/%s failed, keeping the current one: %s", namespace,
                            service_account, exc)
                return tr["status"]["token"]
            raise
        self._cache[key] = fresh
        self._failed.pop(key, None)
        return fresh["status"]["token"]

    def retain(self, pod_uids: Iterable[str]) -> None:
        """Drop the tokens of pods that are gone, and expired ones (upstream's cleanup)."""
        live = set(pod_uids)
        now = self._clock()
        for key, tr in list(self._cache.items()):
            if (key[4] == "Pod" and key[5] not in live) or expired(tr, now):
                del self._cache[key]
        for key in [k for k in self._failed if k[4] == "Pod" and k[5] not in live]:
            del self._failed[key]

    def __len__(self) -> int:
        return len(self._cache)
