"""etcd backend of the Store, over etcd's v3 JSON gRPC gateway (`/v3/kv/*`, `/v3/watch`), so
several apiservers can share one etcd.

Keys are `<prefix>/<bucket>/<namespace>/<name>` (`<prefix>/<bucket>/<name>` when cluster-scoped),
prefix `/registry` by default; values are the objects' JSON without `resourceVersion`, which is
the key's mod_revision (as kube-apiserver stores them). etcd acknowledges a write only after its
own fsync, so an acknowledged write is durable.

Reads are synchronous (the Store interface), so every object is cached in memory: an initial
range of the prefix, then one etcd watch on it from the next revision. Writes are checked by
etcd itself (txn compares on create/mod revision) and a writer returns only once the watch has
applied its revision, so a reader sees its own writes and every event (ours and other
apiservers') reaches the cache, the listeners and the watchers once, in revision order.

With TLS (kube-apiserver's --etcd-cafile/--etcd-certfile/--etcd-keyfile) every request goes
over HTTPS with the apiserver's client certificate, etcd's server certificate checked against
etcd's CA; connections are kept and reused as over plain HTTP (one aiohttp session).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson

from knet.api.storage.base import AlreadyExists, Conflict, Entry, Event, NotFound, StoreError
from knet.api.storage.watchcache import Subscription, WatchCache

log = logging.getLogger(__name__)

HISTORY_SIZE = 10_000  # events kept for watch resume (each holds an object: memory is the limit)
PAGE = 500  # keys per range request of the initial load
CONNECT_DEADLINE = 60.0  # seconds to wait for etcd at startup (it may start with us)


@dataclass(frozen=True)
class EtcdTLS:
    """How to reach etcd over TLS: its CA (None: the system's) and our client certificate."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx


def parse_url(url: str, scheme: str = "http") -> tuple[list[str], str]:
    """`etcd://h1:p1,h2:p2/prefix` -> (["http://h1:p1", "http://h2:p2"], "/prefix")
    (`https://` endpoints when `scheme` is https: the store was given TLS)."""
    if not url.startswith("etcd://"):
        raise ValueError(f"not an etcd URL: {url!r}")
    rest = url[len("etcd://"):]
    hosts, _, path = rest.partition("/")
    endpoints = [f"{scheme}://{h}" for h in hosts.split(",") if h]
    if not endpoints:
        raise ValueError(f"no etcd endpoint in {url!r}")
    prefix = "/" + path.strip("/") if path.strip("/") else "/registry"
    return endpoints, prefix


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _range_end(prefix: bytes) -> bytes:
    """The first key after every key starting with `prefix` (etcd's prefix range end)."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\x00"


def _decode(value_b64: str, revision: int) -> Entry:
    obj = orjson.loads(base64.b64decode(value_b64))
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return Entry(obj, orjson.dumps(obj), revision)


def _encode(obj: dict, namespace: str) -> str:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    if namespace:  # the key's namespace is in the object too: it tells the key's parts apart
        meta["namespace"] = namespace
    return _b64(orjson.dumps({**obj, "metadata": meta}))


def etcd_url(servers: list[str], prefix: str = "/registry") -> tuple[str, str]:
    """kube-apiserver's `--etcd-servers=https://h1:p1,https://h2:p2` (and --etcd-prefix) as
    (`etcd://h1:p1,h2:p2/prefix`, scheme): one scheme for all, as etcd serves one per cluster."""
    schemes, hosts = set(), []
    for server in servers:
        scheme, sep, host = server.partition("://")
        if not sep or scheme not in ("http", "https") or not host.strip("/"):
            raise ValueError(f"etcd server {server!r}: expected http://HOST:PORT or https://HOST:PORT")
        schemes.add(scheme)
        hosts.append(host.strip("/"))
    if not hosts:
        raise ValueError("no etcd server given")
    if len(schemes) > 1:
        raise ValueError(f"etcd servers mix http and https: {','.join(servers)}")
    return f"etcd://{','.join(hosts)}/{prefix.strip('/')}", schemes.pop()


class EtcdStore:
    def __init__(self, url: str, tls: EtcdTLS | None = None) -> None:
        self._ssl = tls.context() if tls is not None else None
        self._endpoints, self._prefix = parse_url(url, "https" if tls is not None else "http")
        self._watch_error: str | None = None  # why the cache's etcd watch is down, while it is
        self._endpoint = 0
        self._objects: dict[str, dict[tuple[str, str], Entry]] = collections.defaultdict(dict)
        self._where: dict[bytes, tuple[str, str, str]] = {}  # etcd key -> (bucket, namespace, name)
        self._listeners: list = []
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._session: aiohttp.ClientSession | None = None
        self._watch_task: asyncio.Task | None = None
        self._closed = False
        self._revision = self._load()
        self._watch = WatchCache(HISTORY_SIZE, self._revision)  # the cache's history starts here

    # --- keys --------------------------------------------------------------------------------
    def _key(self, bucket: str, namespace: str, name: str) -> bytes:
        tail = f"{bucket}/{namespace}/{name}" if namespace else f"{bucket}/{name}"
        return f"{self._prefix}/{tail}".encode()

    def _locate(self, key: bytes, obj: dict | None) -> tuple[str, str, str] | None:
        """(bucket, namespace, name) of a key. Buckets may hold a `/` (`apps/deployments`), so a
        key's middle is told apart from its namespace by the object's metadata.namespace."""
        known = self._where.get(key)
        if known is not None:
            return known
        text = key.decode()
        if not text.startswith(self._prefix + "/"):
            return None
        middle, _, name = text[len(self._prefix) + 1:].rpartition("/")
        if not middle or obj is None:
            return None
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        if ns and middle.endswith("/" + ns):
            return middle[:-len(ns) - 1], ns, name
        return middle, "", name

    # --- etcd requests -------------------------------------------------------------------------
    def _post_sync(self, path: str, body: dict) -> dict:
        last: Exception | None = None
        for _ in range(len(self._endpoints)):
            url = self._endpoints[self._endpoint] + path
            req = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10, context=self._ssl) as r:
                    return orjson.loads(r.read())
            except urllib.error.HTTPError as exc:
                raise StoreError(f"etcd {path}: {exc.code} {exc.read()[:300]!r}") from exc
            except OSError as exc:
                last = exc
                self._endpoint = (self._endpoint + 1) % len(self._endpoints)
        raise ConnectionError(f"etcd unreachable at {', '.join(self._endpoints)}: {last}")

    def _client(self) -> aiohttp.ClientSession:
        """The one session (its pooled connections, TLS ones included, are reused)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def _post(self, path: str, body: dict, timeout: float | None = None) -> dict:
        session = self._client()
        # (aiohttp reads timeout=None as "no timeout": leave it out for the session's 30 s)
        extra = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout is not None else {}
        last: Exception | None = None
        for _ in range(len(self._endpoints)):
            url = self._endpoints[self._endpoint] + path
            try:
                async with session.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"},
                                        **extra) as r:
                    data = await r.read()
                    if r.status != 200:
                        raise StoreError(f"etcd {path}: {r.status} {data[:300]!r}")
                    return orjson.loads(data)
            except aiohttp.ClientConnectorError as exc:  # never sent: safe to try the next endpoint
                last = exc
                self._endpoint = (self._endpoint + 1) % len(self._endpoints)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Maybe applied, maybe not (as an etcd client's timeout): the caller's write failed.
                self._endpoint = (self._endpoint + 1) % len(self._endpoints)
                raise StoreError(f"etcd {path}: {type(exc).__name__}: {exc}") from exc
        raise StoreError(f"etcd unreachable at {', '.join(self._endpoints)}: {last}")

    def _load(self) -> int:
        """Range the whole prefix (paged, at one revision) into the cache; its revision."""
        prefix = (self._prefix + "/").encode()
        end = _b64(_range_end(prefix))
        deadline = time.monotonic() + CONNECT_DEADLINE
        start, revision = prefix, 0
        while True:
            body = {"key": _b64(start), "range_end": end, "limit": str(PAGE)}
            if revision:
                body["revision"] = str(revision)
            try:
                resp = self._post_sync("/v3/kv/range", body)
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                log.warning("waiting for etcd at %s", ", ".join(self._endpoints))
                time.sleep(0.5)
                continue
            revision = revision or int(resp["header"]["revision"])
            kvs = resp.get("kvs", [])
            for kv in kvs:
                key = base64.b64decode(kv["key"])
                entry = _decode(kv["value"], int(kv["mod_revision"]))
                where = self._locate(key, entry.obj)
                if where is not None:
                    self._where[key] = where
                    self._objects[where[0]][(where[1], where[2])] = entry
            if not resp.get("more") or not kvs:
                return revision
            start = base64.b64decode(kvs[-1]["key"]) + b"\x00"

    # --- reads -------------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    def get(self, bucket: str, namespace: str, name: str) -> Entry | None:
        self._ensure_watching()
        return self._objects[bucket].get((namespace, name))

    def list(self, bucket: str, namespace: str | None = None) -> tuple[list[Entry], int]:
        self._ensure_watching()
        objs = self._objects[bucket]
        keys = sorted(objs) if namespace is None else sorted(k for k in objs if k[0] == namespace)
        return [objs[k] for k in keys], self._revision

    def buckets(self) -> list[str]:
        return [b for b, objs in self._objects.items() if objs]

    # --- writes ------------------------------------------------------------------------------
    async def create(self, bucket: str, namespace: str, name: str, obj: dict) -> Entry:
        key = _b64(self._key(bucket, namespace, name))
        resp = await self._txn(
            [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": key, "value": _encode(obj, namespace)}}], [])
        if not resp.get("succeeded"):
            raise AlreadyExists(name)
        rev = int(resp["header"]["revision"])
        await self._caught_up(rev)
        return self._stamp(obj, rev)

    async def update(self, bucket: str, namespace: str, name: str, obj: dict,
                     expected_revision: int | None = None) -> Entry:
        key = _b64(self._key(bucket, namespace, name))
        resp = await self._txn(self._compare(key, expected_revision),
                               [{"request_put": {"key": key, "value": _encode(obj, namespace)}}],
                               [{"request_range": {"key": key, "keys_only": True}}])
        self._raise_failure(resp, name)
        rev = int(resp["header"]["revision"])
        await self._caught_up(rev)
        return self._stamp(obj, rev)

    async def delete(self, bucket: str, namespace: str, name: str,
                     expected_revision: int | None = None) -> Entry:
        key = _b64(self._key(bucket, namespace, name))
        resp = await self._txn(self._compare(key, expected_revision),
                               [{"request_delete_range": {"key": key, "prev_kv": True}}],
                               [{"request_range": {"key": key, "keys_only": True}}])
        self._raise_failure(resp, name)
        rev = int(resp["header"]["revision"])
        prev_kvs = resp["responses"][0]["response_delete_range"].get("prev_kvs") or []
        if not prev_kvs:
            raise NotFound(name)
        await self._caught_up(rev)
        # The last state at the deletion's revision, as the DELETED event carries it.
        return _decode(prev_kvs[0]["value"], rev)

    @staticmethod
    def _compare(key: str, expected_revision: int | None) -> list[dict]:
        if expected_revision is None:
            return [{"key": key, "target": "CREATE", "result": "GREATER", "create_revision": "0"}]
        return [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(expected_revision)}]

    @staticmethod
    def _raise_failure(resp: dict, name: str) -> None:
        if resp.get("succeeded"):
            return
        found = resp["responses"][0]["response_range"].get("kvs")
        raise Conflict(name) if found else NotFound(name)

    async def _txn(self, compare: list, success: list, failure: list) -> dict:
        if self._closed:
            raise RuntimeError("store closed")
        self._ensure_watching()
        return await self._post("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure})

    @staticmethod
    def _stamp(obj: dict, rev: int) -> Entry:
        obj["metadata"]["resourceVersion"] = str(rev)
        return Entry(obj, orjson.dumps(obj), rev)

    async def _caught_up(self, rev: int) -> None:
        """Wait until the watch has applied revision `rev` (our own write) to the cache."""
        if self._revision >= rev:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((rev, fut))
        await fut

    # --- the cache's etcd watch ----------------------------------------------------------------
    def _ensure_watching(self) -> None:
        if self._watch_task is None and not self._closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop yet: the first call inside one starts it (nothing is missed)
            self._watch_task = loop.create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        prefix = (self._prefix + "/").encode()
        backoff = 0.1
        while not self._closed:
            try:
                async for result in self._etcd_watch(prefix, self._revision + 1):
                    if result.get("compact_revision") and result.get("canceled"):
                        await self._resync()
                        break
                    for ev in result.get("events") or []:
                        self._apply(ev)
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # etcd restarted or unreachable: resume from our revision
                self._watch_error = f"{type(exc).__name__}: {exc}"
                log.warning("etcd watch interrupted (%s); resuming from revision %d", exc, self._revision + 1)
                self._endpoint = (self._endpoint + 1) % len(self._endpoints)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _etcd_watch(self, prefix: bytes, start: int) -> AsyncIterator[dict]:
        """The `result` messages of one etcd watch stream on a key prefix from `start`."""
        session = self._client()
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(_range_end(prefix)),
                                   "start_revision": str(start)}}
        url = self._endpoints[self._endpoint] + "/v3/watch"
        async with session.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)) as r:
            if r.status != 200:
                raise StoreError(f"etcd watch: {r.status} {(await r.read())[:300]!r}")
            self._watch_error = None
            buf = bytearray()
            async for chunk in r.content.iter_any():
                buf += chunk
                while (i := buf.find(b"\n")) >= 0:
                    line = bytes(buf[:i])
                    del buf[:i + 1]
                    if not line.strip():
                        continue
                    msg = orjson.loads(line)
                    if "result" not in msg:
                        raise StoreError(f"etcd watch: {msg.get('error') or msg}")
                    yield msg["result"]
                    if msg["result"].get("canceled"):
                        return
        raise ConnectionError("etcd watch stream ended")

    def _apply(self, ev: dict) -> None:
        kv = ev["kv"]
        key = base64.b64decode(kv["key"])
        rev = int(kv["mod_revision"])
        if rev < self._revision:
            return  # already applied (a watch resumes after our revision; a txn's keys share one)
        if ev.get("type") == "DELETE":
            where = self._where.pop(key, None)
            prev = self._objects[where[0]].pop((where[1], where[2]), None) if where else None
            if where is None or prev is None:
                self._advance(rev)
                return
            last = dict(prev.obj)
            last["metadata"] = {**prev.obj.get("metadata", {}), "resourceVersion": str(rev)}
            event = Event("DELETED", where[0], where[1], where[2], Entry(last, orjson.dumps(last), rev), prev, rev)
        else:
            entry = _decode(kv["value"], rev)
            where = self._locate(key, entry.obj)
            if where is None:
                self._advance(rev)
                return
            self._where[key] = where
            objs = self._objects[where[0]]
            prev = objs.get((where[1], where[2]))
            objs[(where[1], where[2])] = entry
            event = Event("ADDED" if prev is None else "MODIFIED", where[0], where[1], where[2], entry, prev, rev)
        self._advance(rev)
        self._publish(event)

    def _advance(self, rev: int) -> None:
        self._revision = rev
        if self._waiters:
            ready = [f for r, f in self._waiters if r <= rev]
            self._waiters = [(r, f) for r, f in self._waiters if r > rev]
            for fut in ready:
                if not fut.done():
                    fut.set_result(None)

    async def _resync(self) -> None:
        """etcd compacted past our revision while we were away: reload the cache and end every
        watch (its client resumes, gets 410 Gone and relists)."""
        old = {key: (where, self._objects[where[0]].get((where[1], where[2]))) for key, where in self._where.items()}
        self._objects.clear()
        self._where.clear()
        revision = await asyncio.to_thread(self._load)
        log.warning("etcd compacted past revision %d: cache reloaded at %d", self._revision, revision)
        # Listeners (garbage collection, namespace cleanup) still hear what changed meanwhile.
        for where, prev in old.values():
            now = self._objects[where[0]].get((where[1], where[2]))
            if now is None and prev is not None:
                self._notify(Event("DELETED", *where, prev, prev, revision))
            elif now is not None and (prev is None or prev.revision != now.revision):
                self._notify(Event("MODIFIED", *where, now, prev, now.revision))
        for key, where in self._where.items():
            if key not in old:
                now = self._objects[where[0]][(where[1], where[2])]
                self._notify(Event("ADDED", *where, now, None, now.revision))
        self._watch.reset(revision)
        self._advance(revision)

    # --- health ------------------------------------------------------------------------------
    def connection_error(self) -> str | None:
        """Why the cache's etcd watch is down right now (etcd stopped, unreachable), else None:
        known at once, without asking etcd, since the watch's connection breaks with it."""
        return self._watch_error

    async def check_health(self, timeout: float) -> None:
        """kube-apiserver's etcd check: a linearizable read of PREFIX/health (etcd answers only
        with a leader and a quorum), within `timeout`; StoreError when it cannot."""
        if self._closed:
            raise StoreError("store closed")
        key = _b64(f"{self._prefix}/health")
        try:
            await self._post("/v3/kv/range", {"key": key, "keys_only": True}, timeout=timeout)
        except StoreError:
            raise
        except Exception as exc:  # a timeout, a refused connection, a TLS failure
            raise StoreError(f"etcd health: {type(exc).__name__}: {exc}") from exc

    # --- watch -------------------------------------------------------------------------------
    def _publish(self, event: Event) -> None:
        self._watch.publish(event)
        self._notify(event)

    def _notify(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # one listener's bug must not stall the cache for everyone
                log.exception("store listener failed on %s %s/%s", event.type, event.bucket, event.name)

    def add_listener(self, listener) -> None:
        """`listener(event)` is called synchronously for every event, in revision order."""
        self._listeners.append(listener)

    def oldest_revision(self) -> int:
        return self._watch.oldest

    def subscribe(self, bucket: str, namespace: str | None, since: int) -> Subscription:
        self._ensure_watching()
        return self._watch.subscribe(bucket, namespace, since)

    async def watch(self, bucket: str, namespace: str | None, since: int) -> AsyncIterator[Event]:
        self._ensure_watching()
        # A revision older than this cache's history (it starts when the apiserver does, or after
        # a compaction caught it away) is TooOld: 410 Gone, as kube-apiserver's watch cache answers.
        async for ev in self._watch.watch(bucket, namespace, since):
            yield ev

    async def close(self) -> None:
        self._closed = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):
                pass
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        if self._session is not None:
            await self._session.close()
