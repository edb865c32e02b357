"""/healthz, /livez, /readyz answers (knet.api.health), and the store probe behind the etcd check."""

from __future__ import annotations

import asyncio

import pytest

from knet.api.health import Check, HealthChecks, StoreProbe, aggregate, single
from knet.api.storage.sqlite import SqliteStore

PING = Check("ping", lambda: None)
BAD = Check("bad", lambda: "this will fail")


# Ported from k8s.io/apiserver/pkg/server/healthz/healthz_test.go testMultipleChecks: (path and
# query, answer, status, with the failing check "bad").
UPSTREAM = [
    ("?verbose", "[+]ping ok\n{name} check passed\n", 200, False),
    ("?exclude=dontexist", "ok", 200, False),
    ("?exclude=bad", "ok", 200, True),
    ("?verbose=true&exclude=bad", "[+]ping ok\n[+]bad excluded: ok\n{name} check passed\n", 200, True),
    ("?verbose=true&exclude=dontexist",
     '[+]ping ok\nwarn: some health checks cannot be excluded: no matches for "dontexist"\n{name} check passed\n',
     200, False),
    ("/ping", "ok", 200, False),
    ("", "ok", 200, False),
    ("?verbose", "[+]ping ok\n[-]bad failed: reason withheld\n{name} check failed\n", 500, True),
    ("/ping", "ok", 200, True),
    ("/bad", "internal server error: this will fail\n", 500, True),
    ("", "[+]ping ok\n[-]bad failed: reason withheld\n{name} check failed\n", 500, True),
]


@pytest.mark.parametrize(("tail", "want", "status", "with_bad"), UPSTREAM)
@pytest.mark.parametrize("name", ["healthz", "readyz"])
def test_upstreams_multiple_checks_table(name, tail, want, status, with_bad):
    from urllib.parse import parse_qs, urlsplit

    checks = [PING, BAD] if with_bad else [PING]
    parts = urlsplit(tail)
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path:
        answer = single(checks, parts.path.lstrip("/"))
    else:
        answer = aggregate(name, checks, verbose="verbose" in query, exclude=query.get("exclude", []))
    assert (answer.text, answer.status) == (want.format(name=name), status)


def test_unknown_single_check_is_none():
    assert single([PING], "etcd") is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def endpoint_lists(checks: HealthChecks) -> dict[str, list[str]]:
    return {e: [c.name for c in cs] for e, cs in checks.lists.items()}


async def test_the_check_lists_are_upstreams(tmp_path):
    store = SqliteStore(str(tmp_path / "knet.db"))
    try:
        checks = HealthChecks(StoreProbe(store), started=lambda: True, serving=lambda: True)
        hooks = ["poststarthook/start-system-namespaces-controller",
                 "poststarthook/start-service-ip-repair-controllers", "poststarthook/bootstrap-controller"]
        assert endpoint_lists(checks) == {
            "healthz": ["ping", "log", "etcd", *hooks],
            "livez": ["ping", "log", "etcd", *hooks],
            "readyz": ["ping", "log", "etcd", "etcd-readiness", "informer-sync", *hooks, "shutdown"],
        }
        answer = checks.answer("/readyz", verbose=True, exclude=())
        assert answer.status == 200 and answer.text.endswith("[+]shutdown ok\nreadyz check passed\n")
        assert checks.answer("/livez/poststarthook/bootstrap-controller", False, ()).text == "ok"
        assert checks.answer("/livez/shutdown", False, ()) is None  # readyz's alone
        assert checks.answer("/metrics", False, ()) is None
        await checks.close()
    finally:
        await store.close()


async def test_readyz_fails_shutdown_once_the_server_stops_serving(tmp_path):
    store = SqliteStore(str(tmp_path / "knet.db"))
    serving = True
    try:
        checks = HealthChecks(StoreProbe(store), started=lambda: True, serving=lambda: serving)
        serving = False
        answer = checks.answer("/readyz", verbose=False, exclude=())
        assert answer.status == 500 and "[-]shutdown failed: reason withheld\n" in answer.text
        assert checks.answer("/livez", verbose=False, exclude=()).status == 200  # alive while draining
        await checks.close()
    finally:
        await store.close()


async def test_the_probe_really_reads_the_store_at_most_once_per_interval(tmp_path):
    """A SQLite file that disappears fails the etcd check, seen by the next probe; probes in
    between answer the last result instead of reading again."""
    db = tmp_path / "knet.db"
    store = SqliteStore(str(db))
    clock = Clock()
    probe = StoreProbe(store, interval=1.0, timeout=1.0, clock=clock)
    try:
        assert probe.error() is None
        await probe.wait()
        assert probe.error() is None
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"knet.db{suffix}").unlink(missing_ok=True)
        clock.now += 0.5
        assert probe.error() is None  # within the interval: the last answer, no new read
        await probe.wait()
        assert probe.error() is None
        clock.now += 0.6  # the interval has passed: this call sends a probe
        probe.error()
        await probe.wait()
        error = probe.error()
        assert error is not None and "sqlite health" in error
        # Many asks within one interval send no further read while the answer is cached.
        for _ in range(100):
            probe.error()
        assert probe._task is None
    finally:
        await probe.close()
        await store.close()


async def test_a_dead_writer_fails_the_check_at_once(tmp_path):
    store = SqliteStore(str(tmp_path / "knet.db"))
    probe = StoreProbe(store)
    store._batches.put(None)  # the writer thread ends, as if it had crashed
    await asyncio.to_thread(store._writer.join)
    assert probe.error() == "the SQLite writer thread has stopped"
    await probe.close()
    store._db.close()
