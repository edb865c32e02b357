"""The async Kubernetes REST client (aiohttp + orjson) of docs/contracts.md s.2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from yarl import URL

from knet.client.config import ClientConfig, TokenFile, TokenSource, ssl_context
from knet.client.errors import ApiError
from knet.client.paths import PATCH_CONTENT_TYPES, list_params, resource_path, watch_params
from knet.client.watch import LineSplitter, WatchEvent, parse_event

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
WATCH_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
# A watch with bookmarks hears from the apiserver at least every 10 s (a BOOKMARK when idle): a
# stream silent for this long is dead (a half-open connection, a stalled server stream), and
# waiting on it would leave an informer's cache stale with nothing logged. The read times out,
# and the informer re-lists and watches again, as client-go's reflector does after a broken watch.
WATCH_IDLE_SECONDS = 60.0


class ApiClient:
    """One connection pool to one API server. Use as `async with ApiClient(config) as api:`."""

    def __init__(self, config: ClientConfig, *, user_agent: str = "knet",
                 watch_idle_seconds: float = WATCH_IDLE_SECONDS) -> None:
        self.config = config
        self._user_agent = user_agent
        self._watch_idle = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=watch_idle_seconds)
        self._session: aiohttp.ClientSession | None = None
        # A token that is renewed: a bound service-account token (config.token_source), or a
        # token file that a kubelet rotates (reread each minute and after a 401).
        self._token_source: TokenSource | None = config.token_source or (
            TokenFile(config.token_file, config.token) if config.token_file else None)

    async def __aenter__(self) -> ApiClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _url(self, path: str) -> URL:
        # resource_path() percent-encodes every segment: telling yarl so skips its re-quoting and
        # normalising of each request's URL (a few % of a busy component's CPU).
        return URL(self.config.server.rstrip("/") + path, encoded=True)

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self.config) or False, limit=64)
            self._session = aiohttp.ClientSession(
                base_url=self.config.server, connector=connector, json_serialize=lambda o: orjson.dumps(o).decode()
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        token = self._token_source.token() if self._token_source is not None else self.config.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ApiClient is not open: use `async with ApiClient(config)`")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        data = orjson.dumps(body) if body is not None else None
        for attempt in (0, 1):
            async with self.session.request(
                method,
                self._url(path),
                params=params,
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=REQUEST_TIMEOUT,
            ) as resp:
                raw = await resp.read()
                if resp.status == 401 and attempt == 0 and self._token_rotated():
                    continue  # refused before anything was done: once more with the new token
                return _decode(resp.status, raw)
        raise AssertionError("unreachable")

    def _token_rotated(self) -> bool:
        """After a 401: the token may have expired or been revoked, so ask its source for a new
        one (client-go's ResettableTokenSourceWrapTransport); True when there is one to retry with."""
        return self._token_source is not None and self._token_source.reset()

    # -- verbs --------------------------------------------------------------------------------

    async def get(self, api_version: str, resource: str, name: str, *, namespace: str | None = None,
                  subresource: str | None = None) -> dict[str, Any]:
        path = resource_path(api_version, resource, namespace=namespace, name=name, subresource=subresource)
        return await self.request("GET", path)

    async def list(
        self,
        api_version: str,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """A whole list; follows `continue` tokens when `limit` pages it."""
        path = resource_path(api_version, resource, namespace=namespace)
        params = list_params(label_selector=label_selector, field_selector=field_selector,
                             resource_version=resource_version, limit=limit)
        result = await self.request("GET", path, params=params)
        items = list(result.get("items") or [])
        # The whole list is as of the first page's resourceVersion: a watch from there replays
        # whatever changed while later pages were fetched. (Taking the last page's version lost
        # changes made meanwhile to objects of earlier pages when pages are not one snapshot: an
        # informer kept a node without its podCIDR for good.)
        first_version = (result.get("metadata") or {}).get("resourceVersion")
        while (token := (result.get("metadata") or {}).get("continue")) and limit:
            params = list_params(label_selector=label_selector, field_selector=field_selector,
                                 limit=limit, continue_token=token)
            result_page = await self.request("GET", path, params=params)
            items.extend(result_page.get("items") or [])
            result = {**result, "metadata": result_page.get("metadata") or {}}
        if first_version is not None:
            result["metadata"] = {**(result.get("metadata") or {}), "resourceVersion": first_version}
        result["items"] = items
        return result

    async def watch(
        self,
        api_version: str,
        resource: str,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Yields events until the server ends the stream; ERROR events are yielded, not raised."""
        path = resource_path(api_version, resource, namespace=namespace)
        params = watch_params(resource_version=resource_version, label_selector=label_selector,
                              field_selector=field_selector, allow_bookmarks=allow_bookmarks,
                              timeout_seconds=timeout_seconds)
        async with self.session.get(self._url(path), params=params, headers=self._headers(),
                                    timeout=self._watch_idle if allow_bookmarks else WATCH_TIMEOUT) as resp:
            if resp.status >= 300:
                if resp.status == 401:
                    self._token_rotated()  # the next watch (the informer retries) uses the new token
                _decode(resp.status, await resp.read())
            splitter = LineSplitter()
            async for chunk in resp.content.iter_any():
                for line in splitter.feed(chunk):
                    yield parse_event(line)
            for line in splitter.flush():
                yield parse_event(line)

    async def create(self, api_version: str, resource: str, obj: dict[str, Any], *,
                     namespace: str | None = None, name: str | None = None,
                     subresource: str | None = None, field_manager: str | None = None) -> dict[str, Any]:
        """POST a new object; `name` + `subresource` post to a subresource (pods/NAME/binding)."""
        path = resource_path(api_version, resource, namespace=namespace, name=name, subresource=subresource)
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request("POST", path, params=params, body=obj)

    async def update(self, api_version: str, resource: str, obj: dict[str, Any], *,
                     namespace: str | None = None, subresource: str | None = None,
                     field_manager: str | None = None) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if namespace is None:
            namespace = obj["metadata"].get("namespace")
        path = resource_path(api_version, resource, namespace=namespace, name=name, subresource=subresource)
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request("PUT", path, params=params, body=obj)

    async def patch(self, api_version: str, resource: str, name: str, patch: Any, *,
                    patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None, namespace: str | None = None,
                    force: bool | None = None) -> dict[str, Any]:
        path = resource_path(api_version, resource, namespace=namespace, name=name, subresource=subresource)
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force is not None:
            params["force"] = "true" if force else "false"
        return await self.request("PATCH", path, params=params or None, body=patch,
                                  content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, api_version: str, resource: str, name: str, *, namespace: str | None = None,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]:
        path = resource_path(api_version, resource, namespace=namespace, name=name)
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = preconditions
        return await self.request("DELETE", path, body=options)


def _decode(status: int, raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {"message": raw.decode(errors="replace")[:500]}
    if status >= 300:
        if not isinstance(body, dict) or body.get("kind") != "Status":
            message = body.get("message", "") if isinstance(body, dict) else ""
            raise ApiError(status, _REASONS.get(status, "Unknown"), message or f"HTTP {status}", None)
        raise ApiError.from_status(status, body)
    return body if isinstance(body, dict) else {"items": body}


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}

__all__ = ["ApiClient"]
