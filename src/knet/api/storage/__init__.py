"""API object storage: the `Store` interface and its backends (SQLite embedded by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from knet.api.storage.base import (
    AlreadyExists,
    Conflict,
    Entry,
    Event,
    NotFound,
    Store,
    StoreError,
    TooOld,
)

if TYPE_CHECKING:
    from knet.api.storage.etcd import EtcdTLS

__all__ = ["AlreadyExists", "Conflict", "Entry", "Event", "NotFound", "Store", "StoreError", "TooOld",
           "open_store"]


def open_store(url: str, etcd_tls: EtcdTLS | None = None) -> Store:
    """`sqlite:///path/to/file.db` (or a plain path); `memory:` keeps nothing on disk;
    `etcd://HOST:PORT[,HOST:PORT...][/prefix]` shares one etcd between apiservers (over HTTPS
    with `etcd_tls`)."""
    from knet.api.storage.sqlite import SqliteStore

    if url.startswith("etcd://"):
        from knet.api.storage.etcd import EtcdStore

        return EtcdStore(url, etcd_tls)
    if url.startswith("sqlite://"):
        return SqliteStore(url[len("sqlite://"):])
    if url == "memory:":
        return SqliteStore(":memory:")
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r} (supported: sqlite://PATH, memory:, etcd://HOST:PORT[,...][/prefix])")
    return SqliteStore(url)
