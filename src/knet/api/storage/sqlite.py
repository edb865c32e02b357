"""SQLite backend of the Store: one file, WAL journal, synchronous=FULL (a write is on disk
before it is acknowledged), one table of (key, value, revision) plus the global revision.

All objects are also held in memory (reads and LISTs never touch the disk). Writes are
checked and applied in memory on the event loop (so revision checks are race-free), then
committed in batches by one writer thread (group commit: many concurrent writes share one
fsync); a write's caller and the watchers hear of it only once its batch is durable.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from knet.api.storage.base import AlreadyExists, Conflict, Entry, Event, NotFound, StoreError
from knet.api.storage.watchcache import Subscription, WatchCache

HISTORY_SIZE = 10_000  # events kept for watch resume (each holds an object: memory is the limit)


def _db_key(bucket: str, namespace: str, name: str) -> str:
    return f"/registry/{bucket}/{namespace}/{name}" if namespace else f"/registry/{bucket}/{name}"


class SqliteStore:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, bucket TEXT NOT NULL, ns TEXT NOT NULL,"
            " name TEXT NOT NULL, value BLOB NOT NULL, revision INTEGER NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        row = self._db.execute("SELECT v FROM meta WHERE k='revision'").fetchone()
        self._revision = row[0] if row else 1
        # bucket -> (namespace, name) -> Entry
        self._objects: dict[str, dict[tuple[str, str], Entry]] = collections.defaultdict(dict)
        for bucket, ns, name, value, rev in self._db.execute("SELECT bucket, ns, name, value, revision FROM kv"):
            self._objects[bucket][(ns, name)] = Entry(orjson.loads(value), bytes(value), rev)
        self._watch = WatchCache(HISTORY_SIZE, self._revision)
        self._listeners: list = []
        self._pending: list[tuple[Event, asyncio.Future]] = []
        self._flushing = False  # a batch is with the writer thread
        self._loop: asyncio.AbstractEventLoop | None = None
        # One writer thread fed batches through a queue, answering with call_soon_threadsafe: a
        # thread pool's futures cost more than the small commits they carry.
        self._batches: queue.SimpleQueue[list[tuple[Event, asyncio.Future]] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._writer_loop, name="knet-sqlite", daemon=True)
        self._writer.start()
        self._closed = False
        self._write_error: str | None = None  # the last commit's failure, until one succeeds

    # --- reads -------------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    def get(self, bucket: str, namespace: str, name: str) -> Entry | None:
        return self._objects[bucket].get((namespace, name))

    def list(self, bucket: str, namespace: str | None = None) -> tuple[list[Entry], int]:
        objs = self._objects[bucket]
        if namespace is None:
            keys = sorted(objs)
        else:
            keys = sorted(k for k in objs if k[0] == namespace)
        return [objs[k] for k in keys], self._revision

    def buckets(self) -> list[str]:
        return [b for b, objs in self._objects.items() if objs]

    # --- writes ------------------------------------------------------------------------------
    async def create(self, bucket: str, namespace: str, name: str, obj: dict) -> Entry:
        objs = self._objects[bucket]
        if (namespace, name) in objs:
            raise AlreadyExists(name)
        rev = self._next_revision()
        entry = self._stamp(obj, rev)
        objs[(namespace, name)] = entry
        return await self._commit(Event("ADDED", bucket, namespace, name, entry, None, rev))

    async def update(self, bucket: str, namespace: str, name: str, obj: dict,
                     expected_revision: int | None = None) -> Entry:
        objs = self._objects[bucket]
        prev = objs.get((namespace, name))
        if prev is None:
            raise NotFound(name)
        if expected_revision is not None and expected_revision != prev.revision:
            raise Conflict(name)
        rev = self._next_revision()
        entry = self._stamp(obj, rev)
        objs[(namespace, name)] = entry
        return await self._commit(Event("MODIFIED", bucket, namespace, name, entry, prev, rev))

    async def delete(self, bucket: str, namespace: str, name: str,
                     expected_revision: int | None = None) -> Entry:
        objs = self._objects[bucket]
        prev = objs.get((namespace, name))
        if prev is None:
            raise NotFound(name)
        if expected_revision is not None and expected_revision != prev.revision:
            raise Conflict(name)
        rev = self._next_revision()
        del objs[(namespace, name)]
        # The DELETED event carries the last state at the deletion's revision, as etcd3 watch does.
        last = dict(prev.obj)
        last["metadata"] = {**prev.obj.get("metadata", {}), "resourceVersion": str(rev)}
        entry = Entry(last, orjson.dumps(last), rev)
        return await self._commit(Event("DELETED", bucket, namespace, name, entry, prev, rev))

    def _next_revision(self) -> int:
        if self._closed:
            raise RuntimeError("store closed")
        self._revision += 1
        return self._revision

    @staticmethod
    def _stamp(obj: dict, rev: int) -> Entry:
        obj["metadata"]["resourceVersion"] = str(rev)
        return Entry(obj, orjson.dumps(obj), rev)

    async def _commit(self, event: Event) -> Entry:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((event, fut))
        if not self._flushing:
            self._loop = loop
            self._send_batch()
        await fut
        return event.entry

    def _send_batch(self) -> None:
        """Hand everything pending to the writer thread as one transaction (group commit)."""
        batch, self._pending = self._pending, []
        self._flushing = True
        self._batches.put(batch)

    def _writer_loop(self) -> None:
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            error: Exception | None = None
            try:
                self._write_batch([e for e, _ in batch])
            except Exception as exc:  # the disk failed: no caller may believe its write landed
                error = exc
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._written, batch, error)

    def _written(self, batch: list[tuple[Event, asyncio.Future]], error: Exception | None) -> None:
        """On the event loop, once a batch is durable (or failed): publish it, answer its
        writers, and send what queued up meanwhile."""
        self._write_error = f"{type(error).__name__}: {error}" if error is not None else None
        if error is not None:
            self._revert([e for e, _ in batch])
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
        else:
            for event, fut in batch:
                self._publish(event)
                if not fut.done():
                    fut.set_result(None)
        self._flushing = False
        if self._pending:
            self._send_batch()

    def _revert(self, events: list[Event]) -> None:
        """Undo in memory what a failed commit applied, newest first, so reads match the disk."""
        for ev in reversed(events):
            objs = self._objects[ev.bucket]
            if ev.prev is None:
                objs.pop((ev.namespace, ev.name), None)
            else:
                objs[(ev.namespace, ev.name)] = ev.prev

    def _write_batch(self, events: list[Event]) -> None:
        # Only each key's last write in the batch reaches the disk (the batch commits whole), so
        # deletes and upserts touch distinct keys and go in two statements, whatever their order.
        last: dict[str, Event] = {}
        for ev in events:
            last[_db_key(ev.bucket, ev.namespace, ev.name)] = ev
        deletes = [(key,) for key, ev in last.items() if ev.type == "DELETED"]
        upserts = [(key, ev.bucket, ev.namespace, ev.name, ev.entry.raw, ev.revision)
                   for key, ev in last.items() if ev.type != "DELETED"]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if deletes:
                db.executemany("DELETE FROM kv WHERE key=?", deletes)
            if upserts:
                db.executemany(
                    "INSERT OR REPLACE INTO kv (key, bucket, ns, name, value, revision) VALUES (?,?,?,?,?,?)", upserts)
            db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('revision', ?)", (events[-1].revision,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- health ------------------------------------------------------------------------------
    def connection_error(self) -> str | None:
        if not self._writer.is_alive():
            return "the SQLite writer thread has stopped"
        return self._write_error

    async def check_health(self, timeout: float) -> None:
        """The writer is alive, the last commit did not fail, and the database file reads (on a
        connection of its own, so the writer's transactions are not disturbed)."""
        problem = self.connection_error()
        if problem is not None:
            raise StoreError(problem)
        if self._closed:
            raise StoreError("store closed")
        if self._path == ":memory:":
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self._read_meta, timeout), timeout)
        except (sqlite3.Error, OSError, TimeoutError) as exc:
            raise StoreError(f"sqlite health: {type(exc).__name__}: {exc}") from exc

    def _read_meta(self, timeout: float) -> None:
        db = sqlite3.connect(Path(self._path).resolve().as_uri() + "?mode=ro", uri=True, timeout=timeout)
        try:
            db.execute("SELECT v FROM meta WHERE k='revision'").fetchone()
        finally:
            db.close()

    # --- watch -------------------------------------------------------------------------------
    def _publish(self, event: Event) -> None:
        self._watch.publish(event)
        for listener in self._listeners:
            listener(event)

    def add_listener(self, listener) -> None:
        """`listener(event)` is called synchronously for every durable event, in order."""
        self._listeners.append(listener)

    def oldest_revision(self) -> int:
        return self._watch.oldest

    def subscribe(self, bucket: str, namespace: str | None, since: int) -> Subscription:
        return self._watch.subscribe(bucket, namespace, since)

    async def watch(self, bucket: str, namespace: str | None, since: int) -> AsyncIterator[Event]:
        async for ev in self._watch.watch(bucket, namespace, since):
            yield ev

    async def close(self) -> None:
        self._closed = True
        while self._flushing:
            await asyncio.sleep(0.005)
        self._batches.put(None)
        await asyncio.to_thread(self._writer.join)
        self._db.close()
