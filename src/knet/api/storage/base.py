"""The Store interface: a small revisioned key-value store of API objects, modelled on etcd so
an etcd backend can follow the SQLite one.

Keys are (bucket, namespace, name): the bucket names a resource (`pods`, `apps/deployments`),
the namespace is "" for cluster-scoped objects. Every write bumps one global revision; an
object's `metadata.resourceVersion` is the revision of its last write (etcd's mod_revision).
Watches replay events newer than a revision from a bounded history, or fail with `TooOld`
(which the API turns into 410 Gone) once that revision has been compacted away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from knet.api.storage.watchcache import Subscription

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class Conflict(StoreError):
    """The object's revision is not the one the writer expected."""


class TooOld(StoreError):
    """The requested revision is older than the watch history kept."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested, self.oldest = requested, oldest


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored object: its decoded dict (never mutate it) and its JSON bytes."""

    obj: dict
    raw: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    bucket: str
    namespace: str
    name: str
    entry: Entry  # for DELETED: the last state, stamped with the deletion revision
    prev: Entry | None
    revision: int


class Store(Protocol):
    @property
    def revision(self) -> int: ...

    def get(self, bucket: str, namespace: str, name: str) -> Entry | None: ...

    def list(self, bucket: str, namespace: str | None = None) -> tuple[list[Entry], int]:
        """All objects of a bucket (in one namespace, or all when None), ordered by
        namespace then name, with the store's current revision."""
        ...

    async def create(self, bucket: str, namespace: str, name: str, obj: dict) -> Entry: ...

    async def update(self, bucket: str, namespace: str, name: str, obj: dict,
                     expected_revision: int | None = None) -> Entry: ...

    async def delete(self, bucket: str, namespace: str, name: str,
                     expected_revision: int | None = None) -> Entry: ...

    def watch(self, bucket: str, namespace: str | None, since: int) -> AsyncIterator[Event]:
        """Events of the bucket after revision `since` (raises TooOld), then live ones."""
        ...

    def subscribe(self, bucket: str, namespace: str | None, since: int) -> Subscription:
        """The same events as `watch`, taken in batches (`Subscription.next_batch`); raises
        TooOld. The caller closes it."""
        ...

    def add_listener(self, listener) -> None:
        """`listener(event: Event)` is called synchronously for every durable event, in order."""
        ...

    def connection_error(self) -> str | None:
        """Why the store cannot serve right now, when it knows without asking (etcd's watch
        connection is down), else None. Cheap: the health checks call it on every probe."""
        ...

    async def check_health(self, timeout: float) -> None:
        """Ask the backend whether it serves (a read of it, within `timeout` seconds); raise
        StoreError when not. The health checks rate-limit it."""
        ...

    async def close(self) -> None: ...
