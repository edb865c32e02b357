"""The watch cache's subscriptions: replay then live events in batches, namespace filtering,
timeouts that keep the watch open, and cutting off a watcher that falls too far behind."""

from __future__ import annotations

import asyncio

import pytest

from knet.api.storage import Entry, Event, TooOld, watchcache
from knet.api.storage.watchcache import WatchCache


def event(rev: int, name: str = "x", ns: str = "a", bucket: str = "cm") -> Event:
    return Event("ADDED", bucket, ns, name, Entry({"metadata": {"name": name}}, b"{}", rev), None, rev)


async def test_replay_and_live_events_come_in_batches():
    cache = WatchCache(100, 1)
    for rev in (2, 3, 4):
        cache.publish(event(rev, ns="a" if rev != 3 else "b"))
    sub = cache.subscribe("cm", "a", 2)
    assert [e.revision for e in await sub.next_batch()] == [4]  # history after 2, namespace a only
    cache.publish(event(5))
    cache.publish(event(6, bucket="other"))
    cache.publish(event(7))
    assert [e.revision for e in await sub.next_batch()] == [5, 7]
    sub.close()
    cache.publish(event(8))
    assert await sub.next_batch() is None


async def test_a_timeout_returns_nothing_and_the_watch_goes_on():
    cache = WatchCache(100, 1)
    sub = cache.subscribe("cm", None, 1)
    assert await sub.next_batch(0.01) == []
    waiting = asyncio.create_task(sub.next_batch(5))
    await asyncio.sleep(0.01)
    cache.publish(event(2))
    assert [e.revision for e in await asyncio.wait_for(waiting, 1)] == [2]
    sub.close()


async def test_too_old_and_reset():
    cache = WatchCache(2, 1)
    for rev in (2, 3, 4):
        cache.publish(event(rev))
    with pytest.raises(TooOld):
        cache.subscribe("cm", None, 1)
    sub = cache.subscribe("cm", None, 3)
    cache.reset(10)
    assert [e.revision for e in await sub.next_batch()] == [4]  # what was queued, then the end
    assert await sub.next_batch() is None


async def test_a_watcher_too_far_behind_is_cut_off(monkeypatch):
    monkeypatch.setattr(watchcache, "MAX_PENDING", 3)
    cache = WatchCache(100, 1)
    sub = cache.subscribe("cm", None, 1)
    for rev in range(2, 8):
        cache.publish(event(rev))
    assert [e.revision for e in await sub.next_batch()] == [2, 3, 4]
    assert await sub.next_batch() is None


async def test_watch_iterates_events_one_by_one():
    cache = WatchCache(100, 1)
    cache.publish(event(2))
    seen = []

    async def consume():
        async for ev in cache.watch("cm", None, 1):
            seen.append(ev.revision)
            if len(seen) == 3:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    cache.publish(event(3))
    cache.publish(event(4))
    await asyncio.wait_for(task, 1)
    assert seen == [2, 3, 4]
    assert not cache._by_bucket["cm"]  # the finished watch unsubscribed


async def test_published_revision_is_the_newest_event_handed_out():
    cache = WatchCache(100, 5)
    sub = cache.subscribe("cm", "a", 5)
    assert sub.published_revision == 5
    cache.publish(event(6, bucket="other"))
    cache.publish(event(7))
    assert sub.published_revision == 7
    cache.reset(9)
    assert sub.published_revision == 9
