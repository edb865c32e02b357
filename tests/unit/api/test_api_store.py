"""The SQLite store: revisions, optimistic concurrency, durability across reopen, watch
replay and live events, TooOld for compacted revisions."""

from __future__ import annotations

import asyncio

import pytest

from knet.api.storage import AlreadyExists, Conflict, NotFound, TooOld
from knet.api.storage import sqlite as sqlite_store
from knet.api.storage.sqlite import SqliteStore


def obj(name: str, **extra) -> dict:
    return {"metadata": {"name": name}, **extra}


async def test_revisions_and_conflicts(tmp_path):
    s = SqliteStore(str(tmp_path / "db"))
    a = await s.create("pods", "ns", "a", obj("a"))
    b = await s.create("pods", "ns", "b", obj("b"))
    assert b.revision == a.revision + 1 and a.obj["metadata"]["resourceVersion"] == str(a.revision)
    with pytest.raises(AlreadyExists):
        await s.create("pods", "ns", "a", obj("a"))
    with pytest.raises(Conflict):
        await s.update("pods", "ns", "a", obj("a", x=1), expected_revision=a.revision - 1)
    a2 = await s.update("pods", "ns", "a", obj("a", x=1), expected_revision=a.revision)
    assert a2.revision == b.revision + 1
    with pytest.raises(NotFound):
        await s.delete("pods", "ns", "zz")
    entries, rev = s.list("pods", "ns")
    assert [e.obj["metadata"]["name"] for e in entries] == ["a", "b"] and rev == a2.revision
    await s.close()


async def test_data_survives_reopen(tmp_path):
    path = str(tmp_path / "db")
    s = SqliteStore(path)
    await asyncio.gather(*(s.create("cm", "", f"c{i}", obj(f"c{i}")) for i in range(50)))
    d = await s.delete("cm", "", "c3")
    rev = s.revision
    await s.close()
    s2 = SqliteStore(path)
    assert s2.revision == rev == d.revision
    assert len(s2.list("cm")[0]) == 49 and s2.get("cm", "", "c3") is None
    await s2.close()


async def test_watch_replays_then_streams(tmp_path):
    s = SqliteStore(str(tmp_path / "db"))
    first = await s.create("cm", "a", "x", obj("x"))
    await s.update("cm", "a", "x", obj("x", v=2))
    await s.create("cm", "b", "y", obj("y"))
    events = []

    async def consume():
        async for ev in s.watch("cm", "a", first.revision):
            events.append((ev.type, ev.name, ev.revision))
            if len(events) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    deleted = await s.delete("cm", "a", "x")
    await asyncio.wait_for(task, 2)
    # Namespace "a" only: the update (replayed from history), then the live delete.
    assert [e[:2] for e in events] == [("MODIFIED", "x"), ("DELETED", "x")]
    assert events[-1][2] == deleted.revision
    await s.close()


async def test_too_old(tmp_path, monkeypatch):
    s = SqliteStore(str(tmp_path / "db"))
    s._watch.history = type(s._watch.history)(maxlen=3)
    for i in range(6):
        await s.create("cm", "", f"c{i}", obj(f"c{i}"))
    with pytest.raises(TooOld):
        async for _ in s.watch("cm", None, 1):
            pass
    assert sqlite_store.HISTORY_SIZE > 1000
    await s.close()


async def test_a_failed_commit_is_undone_in_memory(tmp_path):
    s = SqliteStore(str(tmp_path / "db"))
    kept = await s.create("cm", "", "kept", obj("kept"))

    def broken(events):
        raise OSError("disk full")

    s._write_batch = broken
    with pytest.raises(OSError):
        await s.create("cm", "", "lost", obj("lost"))
    with pytest.raises(OSError):
        await s.update("cm", "", "kept", obj("kept", v=2))
    assert s.get("cm", "", "lost") is None
    assert s.get("cm", "", "kept") == kept
    await s.close()
