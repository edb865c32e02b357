"""The interface every component programs against; `ApiClient` and `FakeApi` both implement it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from knet.client.watch import WatchEvent


class Api(Protocol):
    async def get(self, api_version: str, resource: str, name: str, *, namespace: str | None = None,
                  subresource: str | None = None) -> dict[str, Any]: ...

    async def list(self, api_version: str, resource: str, *, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   resource_version: str | None = None, limit: int | None = None) -> dict[str, Any]: ...

    def watch(self, api_version: str, resource: str, *, namespace: str | None = None,
              resource_version: str | None = None, field_selector: str | None = None,
              label_selector: str | None = None, allow_bookmarks: bool = True,
              timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]: ...

    async def create(self, api_version: str, resource: str, obj: dict[str, Any], *,
                     namespace: str | None = None, name: str | None = None,
                     subresource: str | None = None, field_manager: str | None = None) -> dict[str, Any]: ...

    async def update(self, api_version: str, resource: str, obj: dict[str, Any], *,
                     namespace: str | None = None, subresource: str | None = None,
                     field_manager: str | None = None) -> dict[str, Any]: ...

    async def patch(self, api_version: str, resource: str, name: str, patch: Any, *,
                    patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None, namespace: str | None = None,
                    force: bool | None = None) -> dict[str, Any]: ...

    async def delete(self, api_version: str, resource: str, name: str, *, namespace: str | None = None,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]: ...
