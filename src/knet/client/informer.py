"""List + watch into a local cache, with handlers: the shared informer every component uses.

The informer lists, then watches from the list's resourceVersion. A 410 Gone (as a status or an
ERROR event) or a broken stream makes it re-list (with back-off), and the re-list is diffed
against the cache so handlers see the adds, updates and deletes they missed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable
from typing import Any

from knet.client.errors import ApiError
from knet.client.protocol import Api

log = logging.getLogger(__name__)

Obj = dict[str, Any]
AddHandler = Callable[[Obj], Any]
UpdateHandler = Callable[[Obj, Obj], Any]
DeleteHandler = Callable[[Obj], Any]


def object_key(obj: Obj) -> str:
    """"ns/name" for namespaced objects, "name" for cluster-scoped ones (client-go's MetaNamespaceKey)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class _Resync(Exception):
    """The watch cannot continue from where it is: list again."""


class Informer:
    list_limit = 500  # page size of the initial list (as client-go's pager)

    def __init__(
        self,
        api: Api,
        api_version: str,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        watch_timeout_seconds: int = 300,
        max_backoff: float = 10.0,
    ) -> None:
        self.api = api
        self.api_version = api_version
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout_seconds = watch_timeout_seconds
        self.max_backoff = max_backoff
        self._cache: dict[str, Obj] = {}
        # indexers (client-go's cache.Indexers): name -> fn(obj) -> values; index: name -> value -> keys
        self._indexers: dict[str, Callable[[Obj], list[str]]] = {"namespace": _namespace_of}
        self._index: dict[str, dict[str, set[str]]] = {"namespace": {}}
        self._handlers: list[tuple[AddHandler | None, UpdateHandler | None, DeleteHandler | None]] = []
        self._synced = asyncio.Event()
        self._kind: str | None = None
        self.resource_version = ""

    # -- reading ------------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        if self._synced.is_set():
            return
        # asyncio.wait rather than wait_for, which on 3.11 can swallow a racing cancellation
        waiter = asyncio.ensure_future(self._synced.wait())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()
        if not done:
            raise TimeoutError(f"informer {self.api_version}/{self.resource} not synced after {timeout}s")

    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def list(self) -> list[Obj]:
        return list(self._cache.values())

    def keys(self) -> list[str]:
        return list(self._cache)

    def add_indexer(self, name: str, fn: Callable[[Obj], list[str]]) -> None:
        """Index the cache by fn(obj) (e.g. pods by spec.nodeName); add before run()."""
        self._indexers[name] = fn
        self._index[name] = {}
        for key, obj in self._cache.items():
            self._index_add(key, obj, only=name)

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._index[name].get(value, ())
        return [self._cache[k] for k in keys if k in self._cache]

    def in_namespace(self, namespace: str) -> list[Obj]:
        return self.by_index("namespace", namespace)

    def _index_add(self, key: str, obj: Obj, only: str | None = None) -> None:
        for name, fn in self._indexers.items():
            if only is None or name == only:
                for value in fn(obj):
                    self._index[name].setdefault(value, set()).add(key)

    def _index_remove(self, key: str, obj: Obj | None) -> None:
        if obj is None:
            return
        for name, fn in self._indexers.items():
            for value in fn(obj):
                bucket = self._index[name].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._index[name][value]

    def _store(self, key: str, obj: Obj | None) -> Obj | None:
        """Put (or with None, remove) one object, keeping the indexes in step; returns the previous."""
        prev = self._cache.pop(key, None)
        self._index_remove(key, prev)
        if obj is not None:
            self._cache[key] = obj
            self._index_add(key, obj)
        return prev

    def add_handler(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> None:
        self._handlers.append((on_add, on_update, on_delete))
        if self.has_synced and on_add is not None:
            # A late handler still sees the current state, as client-go replays the store.
            for obj in list(self._cache.values()):
                _fire_soon(on_add, obj)

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 0.1  # first retries quick: components often start together with the apiserver
        while True:
            try:
                await self._list_and_replace()
                backoff = 0.1
                while True:
                    await self._watch_once()
            except asyncio.CancelledError:
                raise
            except _Resync:
                continue
            except Exception as exc:  # noqa: BLE001 -- any failure: back off, re-list
                log.warning("informer %s/%s: %s; re-listing in %.1fs", self.api_version, self.resource,
                            exc, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)

    async def _list_and_replace(self) -> None:
        result = await self.api.list(self.api_version, self.resource, namespace=self.namespace,
                                     label_selector=self.label_selector, field_selector=self.field_selector,
                                     limit=self.list_limit)
        kind = str(result.get("kind") or "")
        self._kind = kind[:-4] if kind.endswith("List") else (self._kind or None)
        fresh: dict[str, Obj] = {}
        for item in result.get("items") or []:
            self._fill_type(item)
            fresh[object_key(item)] = item
        old = self._cache
        self._cache = fresh
        self._index = {name: {} for name in self._indexers}
        for key, obj in fresh.items():
            self._index_add(key, obj)
        self.resource_version = str((result.get("metadata") or {}).get("resourceVersion") or "")
        for key, obj in old.items():
            if key not in fresh:
                await self._dispatch("DELETED", obj, None)
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None:
                await self._dispatch("ADDED", obj, None)
            elif _rv(prev) != _rv(obj):
                await self._dispatch("MODIFIED", obj, prev)
        self._synced.set()

    async def _watch_once(self) -> None:
        timeout = int(self.watch_timeout_seconds * (1 + random.random()))
        try:
            async for ev in self.api.watch(self.api_version, self.resource, namespace=self.namespace,
                                           resource_version=self.resource_version,
                                           label_selector=self.label_selector,
                                           field_selector=self.field_selector, allow_bookmarks=True,
                                           timeout_seconds=timeout):
                obj = ev.object
                if ev.type == "ERROR":
                    err = ApiError.from_status(int(obj.get("code") or 500), obj)
                    if err.gone:
                        raise _Resync()
                    raise err
                rv = _rv(obj)
                if ev.type == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                self._fill_type(obj)
                key = object_key(obj)
                if ev.type == "DELETED":
                    prev = self._store(key, None)
                    await self._dispatch("DELETED", obj, prev)
                else:
                    prev = self._store(key, obj)
                    await self._dispatch("MODIFIED" if prev is not None else "ADDED", obj, prev)
                if rv:
                    self.resource_version = rv
        except ApiError as exc:
            if exc.gone:
                raise _Resync() from exc
            raise

    def _fill_type(self, obj: Obj) -> None:
        # Items of a list come without apiVersion/kind; fill them so consumers see whole objects.
        obj.setdefault("apiVersion", self.api_version)
        if self._kind:
            obj.setdefault("kind", self._kind)

    async def _dispatch(self, etype: str, obj: Obj, prev: Obj | None) -> None:
        for on_add, on_update, on_delete in self._handlers:
            try:
                if etype == "ADDED" and on_add:
                    result = on_add(obj)
                elif etype == "MODIFIED" and on_update:
                    result = on_update(prev if prev is not None else obj, obj)
                elif etype == "DELETED" and on_delete:
                    result = on_delete(prev if prev is not None else obj)
                else:
                    continue
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 -- one broken handler must not stop the informer
                log.exception("informer %s handler failed", self.resource)


def _namespace_of(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def _fire_soon(fn: Callable[..., Any], *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        asyncio.ensure_future(result)
