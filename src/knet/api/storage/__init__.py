"""API object storage: the `Store` interface and its backends (SQLite embedded by default)."""

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

__all__ = ["AlreadyExists", "Conflict", "Entry", "Event", "NotFound", "Store", "StoreError", "TooOld",
           "open_store"]


def open_store(url: str) -> Store:
    """`sqlite:///path/to/file.db` (or a plain path); `memory:` keeps nothing on disk;
    `etcd://HOST:PORT[,HOST:PORT...][/prefix]` shares one etcd between apiservers."""
    from knet.api.storage.sqlite import SqliteStore

    if url.startswith("etcd://"):
        from knet.api.storage.etcd import EtcdStore

        return EtcdStore(url)
    if url.startswith("sqlite://"):
        return SqliteStore(url[len("sqlite://"):])
    if url == "memory:":
        return SqliteStore(":memory:")
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r} (supported: sqlite://PATH, memory:, etcd://HOST:PORT[,...][/prefix])")
    return SqliteStore(url)
