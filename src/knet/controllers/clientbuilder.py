"""Clients for the controller-manager's controllers, as upstream's controller-manager
clientbuilder makes them (staging/src/k8s.io/controller-manager/pkg/clientbuilder).

- `SimpleClientBuilder`: every controller writes with the controller-manager's own client.
- `ServiceAccountClientBuilder` (`--use-service-account-credentials=true`, which kubeadm passes):
  each controller writes with its own client, authenticated by a bound token of the service
  account `kube-system/<name>` (upstream's DynamicControllerClientBuilder). The controller-manager's
  own client creates the account when it is missing and asks for the token through TokenRequest
  (`POST .../serviceaccounts/NAME/token`, an hour's expiry, the apiserver's default audience); the
  token is renewed when 20 % of its life is left, or at once after a 401. So RBAC judges each
  controller by its `system:controller:*` role, and the shared informers stay on the
  controller-manager's identity (`system:kube-controller-manager` may list and watch everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from knet.client import Api, ApiClient, ApiError, ClientConfig
from knet.client.config import TokenSource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONTROLLER_NAMESPACE = "kube-system"
DEFAULT_EXPIRATION_SECONDS = 3600  # upstream's defaultExpirationSeconds
DEFAULT_LEEWAY_PERCENT = 20        # renew with this share of the token's life left (defaultLeewayPercent)
MIN_LIFETIME = 600.0               # the life assumed for a token that seems expired already (clock skew)
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # upstream's wait.Backoff{500ms, factor 2, 4 steps}


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


class ControllerClientBuilder(Protocol):
    async def client(self, service_account: str) -> Api: ...

    async def close(self) -> None: ...


class SimpleClientBuilder:
    """Without --use-service-account-credentials: one identity (and client) for everything."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def client(self, service_account: str) -> Api:
        return self.api

    async def close(self) -> None:
        return None


async def get_or_create_service_account(api: Api, namespace: str, name: str) -> Obj:
    """upstream getOrCreateServiceAccount: the account, created (with its namespace, if that is
    missing and may be created) when it does not exist."""
    try:
        return await api.get("v1", "serviceaccounts", name, namespace=namespace)
    except ApiError as exc:
        if not exc.not_found:
            raise
    try:
        await api.get("v1", "namespaces", namespace)
    except ApiError as exc:
        if exc.not_found:
            # Tolerated: the controller-manager's role may not allow it (upstream's does not).
            with contextlib.suppress(ApiError):
                await api.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": namespace}})
    try:
        return await api.create("v1", "serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
            namespace=namespace)
    except ApiError as exc:
        if not exc.already_exists:
            raise
        return await api.get("v1", "serviceaccounts", name, namespace=namespace)


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ServiceAccountTokenSource:
    """A bound token of one service account, kept fresh (upstream's tokenSourceImpl behind a
    cached, resettable token source). `token()` is what each request sends; `run()` renews it."""

    def __init__(self, api: Api, namespace: str, name: str, *,
                 expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
                 leeway_percent: int = DEFAULT_LEEWAY_PERCENT,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.api = api  # the controller-manager's own client: it creates accounts and asks for tokens
        self.namespace = namespace
        self.name = name
        self.expiration_seconds = expiration_seconds
        self.leeway_percent = leeway_percent
        self.clock = clock
        self._sleep = sleep
        self._token: str | None = None
        self.refresh_at = 0.0  # when the token is due for renewal (wall clock)
        self.expires_at = 0.0
        self._reset = asyncio.Event()

    @property
    def username(self) -> str:
        return service_account_username(self.namespace, self.name)

    def token(self) -> str | None:
        return self._token

    def reset(self) -> bool:
        """The server refused the token (401): renew it now. The new token comes from a
        TokenRequest, later: nothing to retry the refused request with at once."""
        self.refresh_at = 0.0
        self._reset.set()
        return False

    async def refresh(self) -> None:
        """Ask for a new token (one attempt)."""
        await get_or_create_service_account(self.api, self.namespace, self.name)
        answer = await self.api.create("v1", "serviceaccounts", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": self.expiration_seconds}},
            namespace=self.namespace, name=self.name, subresource="token")
        status = answer.get("status") or {}
        token, expiry = status.get("token"), status.get("expirationTimestamp")
        if not token or not expiry:
            raise ApiError(500, "InternalError", f"TokenRequest for {self.username} answered without a token")
        now = self.clock()
        lifetime = _parse_time(expiry) - now
        if lifetime < 1.0:
            # Upstream pins any life under 10 minutes to 10 minutes, taking it for clock skew.
            # knet's processes share one clock, and its short-token test setting
            # (serviceAccountTokenMaxExpiration) caps lives below 10 minutes for real: only a
            # token that seems already expired is taken for skew here.
            lifetime = MIN_LIFETIME
        self._token = token
        self.expires_at = now + lifetime
        self.refresh_at = now + lifetime - lifetime * self.leeway_percent / 100
        self._reset.clear()

    async def refresh_with_retries(self) -> None:
        """refresh(), retried as upstream (0.5 s, 1 s, 2 s, 4 s apart) before giving up."""
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                await self.refresh()
                return
            except (ApiError, OSError, TimeoutError, aiohttp.ClientError) as exc:
                log.info("token for %s: attempt %d failed: %s", self.username, attempt + 1, exc)
                if delay is None:
                    raise
                await self._sleep(delay)

    async def run(self) -> None:
        """Renew the token when it is due (or refused) until cancelled. A failed renewal keeps
        the current token (it may still be valid) and is tried again after a short pause."""
        while True:
            delay = self.refresh_at - self.clock()
            if delay > 0 and not self._reset.is_set():
                await self._sleep_or_reset(delay)
                if self.refresh_at - self.clock() > 0 and not self._reset.is_set():
                    continue
            try:
                await self.refresh_with_retries()
            except Exception as exc:  # noqa: BLE001 -- the renewer must outlive any one failure
                log.warning("could not renew the token of %s: %s", self.username, exc)
                self._reset.clear()
                await self._sleep(RETRY_DELAYS[-1])

    async def _sleep_or_reset(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waiter = asyncio.ensure_future(self._reset.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)


ClientFactory = Callable[[TokenSource, str], Api]


class ServiceAccountClientBuilder:
    """--use-service-account-credentials: one client per service account (controllers sharing
    an account, like nodeipam and nodelifecycle's node-controller, share its client and token)."""

    def __init__(self, api: Api, config: ClientConfig | None = None, *, namespace: str = CONTROLLER_NAMESPACE,
                 user_agent: str = "kube-controller-manager", make_client: ClientFactory | None = None,
                 expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if make_client is None and config is None:
            raise ValueError("ServiceAccountClientBuilder needs the root client's config or a client factory")
        self.api = api
        self.config = config
        self.namespace = namespace
        self.user_agent = user_agent
        self._make_client = make_client or self._api_client
        self.expiration_seconds = expiration_seconds
        self.clock = clock
        self.sleep = sleep
        self.sources: dict[str, ServiceAccountTokenSource] = {}
        self._clients: dict[str, Api] = {}
        self._opened: list[ApiClient] = []
        self._renewers: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    def _api_client(self, source: TokenSource, service_account: str) -> Api:
        assert self.config is not None
        # upstream's AnonymousClientConfig: the server and its CA, none of the root credentials
        # (a client certificate would win over the token and make every controller the
        # controller-manager again).
        config = dataclasses.replace(self.config, client_cert_data=None, client_key_data=None, token=None,
                                     token_file=None, token_source=source)
        client = ApiClient(config, user_agent=f"{self.user_agent}/"
                                              f"{service_account_username(self.namespace, service_account)}")
        self._opened.append(client)
        return client

    async def client(self, service_account: str) -> Api:
        async with self._lock:
            if service_account in self._clients:
                return self._clients[service_account]
            source = ServiceAccountTokenSource(self.api, self.namespace, service_account,
                                               expiration_seconds=self.expiration_seconds,
                                               clock=self.clock, sleep=self.sleep)
            await source.refresh_with_retries()
            client = self._make_client(source, service_account)
            if isinstance(client, ApiClient):
                await client.open()
            self.sources[service_account] = source
            self._clients[service_account] = client
            self._renewers.append(asyncio.create_task(source.run(), name=f"token:{service_account}"))
            log.info("controller client for %s", source.username)
            return client

    async def close(self) -> None:
        for task in self._renewers:
            task.cancel()
        await asyncio.gather(*self._renewers, return_exceptions=True)
        self._renewers.clear()
        for client in self._opened:
            await client.close()
        self._opened.clear()
        self._clients.clear()


__all__ = ["ControllerClientBuilder", "ServiceAccountClientBuilder", "ServiceAccountTokenSource",
           "SimpleClientBuilder", "get_or_create_service_account", "service_account_username"]
