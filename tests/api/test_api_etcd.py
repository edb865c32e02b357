"""The etcd store against a real etcd: the Store contract (revisions, conflicts, watch replay,
TooOld once compacted), two stores sharing one etcd, and two `knet apiserver` processes on one
etcd seen through real kubectl, including a kill -9 that loses no acknowledged write."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from etcd_process import ETCD, EtcdProcess, free_port
from raw_http import post

from knet.api.storage import AlreadyExists, Conflict, NotFound, StoreError, TooOld, open_store
from knet.api.storage.etcd import EtcdStore, parse_url

pytestmark = pytest.mark.api

class Etcd(EtcdProcess):
    """etcd over plain HTTP."""

    def argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [ETCD, "--name=test", f"--data-dir={self.root / 'data'}",
                f"--listen-client-urls=http://{self.endpoint}", f"--advertise-client-urls=http://{self.endpoint}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}"]

    def health_url(self) -> str:
        return f"http://{self.endpoint}/health"

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(f"http://{self.endpoint}{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    if not Path(ETCD).exists():
        pytest.skip("etcd is not installed")
    server = Etcd(tmp_path_factory.mktemp("etcd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def url(etcd) -> str:
    """A fresh key prefix per test, so tests share one etcd without seeing each other."""
    return f"etcd://{etcd.endpoint}/t{uuid.uuid4().hex[:8]}"


def obj(name: str, namespace: str = "", **extra) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, **extra}


def test_parse_url():
    assert parse_url("etcd://a:1,b:2/x/y") == (["http://a:1", "http://b:2"], "/x/y")
    assert parse_url("etcd://127.0.0.1:2379") == (["http://127.0.0.1:2379"], "/registry")


async def test_revisions_and_conflicts(url):
    s = open_store(url)
    assert isinstance(s, EtcdStore)
    a = await s.create("pods", "ns", "a", obj("a", "ns"))
    b = await s.create("pods", "ns", "b", obj("b", "ns"))
    assert b.revision == a.revision + 1 and a.obj["metadata"]["resourceVersion"] == str(a.revision)
    assert s.get("pods", "ns", "a").revision == a.revision
    with pytest.raises(AlreadyExists):
        await s.create("pods", "ns", "a", obj("a", "ns"))
    with pytest.raises(Conflict):
        await s.update("pods", "ns", "a", obj("a", "ns", x=1), expected_revision=a.revision - 1)
    a2 = await s.update("pods", "ns", "a", obj("a", "ns", x=1), expected_revision=a.revision)
    assert a2.revision == b.revision + 1 and s.get("pods", "ns", "a").obj["x"] == 1
    with pytest.raises(NotFound):
        await s.update("pods", "ns", "zz", obj("zz", "ns"))
    with pytest.raises(NotFound):
        await s.delete("pods", "ns", "zz")
    entries, rev = s.list("pods", "ns")
    assert [e.obj["metadata"]["name"] for e in entries] == ["a", "b"] and rev == a2.revision
    d = await s.delete("pods", "ns", "b", expected_revision=b.revision)
    assert d.revision == a2.revision + 1 and d.obj["metadata"]["resourceVersion"] == str(d.revision)
    assert s.get("pods", "ns", "b") is None
    # A group's bucket holds a `/`; cluster-scoped objects have no namespace segment.
    await s.create("apps/deployments", "ns", "d", obj("d", "ns"))
    await s.create("rbac.authorization.k8s.io/clusterroles", "", "system:x", obj("system:x"))
    assert [e.obj["metadata"]["name"] for e in s.list("apps/deployments")[0]] == ["d"]
    await s.close()


async def test_an_unreachable_endpoint_is_skipped(etcd):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    s = open_store(f"etcd://{dead},{etcd.endpoint}/t{uuid.uuid4().hex[:8]}")
    created = await s.create("cm", "", "x", obj("x"))
    assert s.get("cm", "", "x").revision == created.revision
    await s.close()


async def test_the_store_rides_out_an_etcd_restart(tmp_path):
    own = Etcd(tmp_path)
    try:
        own.start()
        url = f"etcd://{own.endpoint}"
        s = open_store(url)
        first = await s.create("cm", "", "before", obj("before"))
        own.stop()  # kill -9: etcd acknowledged after its fsync, so nothing is lost
        with pytest.raises(StoreError):
            await s.create("cm", "", "while-down", obj("while-down"))
        own.start()
        deadline = time.monotonic() + 10
        while True:  # the first request may still meet a connection etcd closed
            try:
                await s.create("cm", "", "after", obj("after"))
                break
            except StoreError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        other = open_store(url)
        await other.create("cm", "", "from-other", obj("from-other"))
        deadline = time.monotonic() + 10
        while s.get("cm", "", "from-other") is None:  # s's watch resumed after the restart
            assert time.monotonic() < deadline, "the watch did not resume after etcd restarted"
            await asyncio.sleep(0.02)
        assert [e.obj["metadata"]["name"] for e in s.list("cm")[0]] == ["after", "before", "from-other"]
        assert s.get("cm", "", "before").revision == first.revision
        await s.close()
        await other.close()
    finally:
        own.stop()


async def test_data_survives_reopen(url):
    s = open_store(url)
    await asyncio.gather(*(s.create("cm", "", f"c{i}", obj(f"c{i}")) for i in range(50)))
    await s.create("apps/deployments", "ns", "d", obj("d", "ns"))
    d = await s.delete("cm", "", "c3")
    await s.close()
    s2 = open_store(url)
    assert s2.revision >= d.revision
    assert len(s2.list("cm")[0]) == 49 and s2.get("cm", "", "c3") is None
    assert s2.get("apps/deployments", "ns", "d").obj["metadata"]["name"] == "d"
    await s2.close()


async def test_watch_replays_then_streams(url):
    s = open_store(url)
    first = await s.create("cm", "a", "x", obj("x", "a"))
    await s.update("cm", "a", "x", obj("x", "a", v=2))
    await s.create("cm", "b", "y", obj("y", "b"))
    events = []

    async def consume():
        async for ev in s.watch("cm", "a", first.revision):
            events.append((ev.type, ev.name, ev.revision))
            if len(events) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    deleted = await s.delete("cm", "a", "x")
    await asyncio.wait_for(task, 5)
    assert [e[:2] for e in events] == [("MODIFIED", "x"), ("DELETED", "x")]
    assert events[-1][2] == deleted.revision
    await s.close()


async def test_two_stores_share_one_etcd(url):
    a, b = open_store(url), open_store(url)
    b.list("cm")  # starts b's watch
    heard = []
    b.add_listener(lambda ev: heard.append((ev.type, ev.name)))
    created = await a.create("cm", "ns", "shared", obj("shared", "ns", data={"k": "v"}))
    deadline = time.monotonic() + 5
    while b.get("cm", "ns", "shared") is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    seen = b.get("cm", "ns", "shared")
    assert seen is not None and seen.revision == created.revision and seen.obj["data"] == {"k": "v"}
    assert ("ADDED", "shared") in heard
    # b's watch streams what a writes; a stale writer through b gets a Conflict from etcd.
    got = []

    async def consume():
        async for ev in b.watch("cm", "ns", created.revision):
            got.append((ev.type, ev.revision))
            return

    task = asyncio.create_task(consume())
    updated = await a.update("cm", "ns", "shared", obj("shared", "ns", data={"k": "2"}),
                             expected_revision=created.revision)
    await asyncio.wait_for(task, 5)
    assert got == [("MODIFIED", updated.revision)]
    with pytest.raises(Conflict):
        await b.update("cm", "ns", "shared", obj("shared", "ns"), expected_revision=created.revision)
    await a.close()
    await b.close()


async def test_watch_older_than_the_cache_is_too_old(url):
    a = open_store(url)
    first = await a.create("cm", "", "old", obj("old"))
    await a.update("cm", "", "old", obj("old", v=1))
    # A store opened later (another apiserver, or this one restarted) keeps no history before
    # its start: 410 Gone, as kube-apiserver's watch cache answers, and the client relists.
    late = open_store(url)
    with pytest.raises(TooOld):
        async for _ in late.watch("cm", None, first.revision):
            pass
    # From its own revision on it streams, writes through the other store included.
    stream = late.watch("cm", None, late.revision).__aiter__()
    next_event = asyncio.create_task(stream.__anext__())
    updated = await a.update("cm", "", "old", obj("old", v=2))
    ev = await asyncio.wait_for(next_event, 5)
    assert (ev.type, ev.name, ev.revision, ev.entry.obj["v"]) == ("MODIFIED", "old", updated.revision, 2)
    await stream.aclose()
    await a.close()
    await late.close()


async def test_a_compaction_while_away_reloads_the_cache(url, etcd):
    a, b = open_store(url), open_store(url)
    await a.create("cm", "", "kept", obj("kept"))
    gone = await a.create("cm", "", "gone", obj("gone"))
    heard = []
    a.add_listener(lambda ev: heard.append((ev.type, ev.name)))
    # a's etcd watch is away while b writes and etcd compacts past a's revision.
    a._watch_task.cancel()
    await asyncio.gather(a._watch_task, return_exceptions=True)
    await b.delete("cm", "", "gone")
    await b.create("cm", "", "new", obj("new"))
    await b.update("cm", "", "kept", obj("kept", v=2))
    etcd.post("/v3/kv/compaction", {"revision": str(b.revision), "physical": True})
    a._watch_task = None
    a.list("cm")  # restarts a's watch: etcd says compacted, so a reloads
    deadline = time.monotonic() + 5
    while a.revision < b.revision and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert [e.obj["metadata"]["name"] for e in a.list("cm")[0]] == ["kept", "new"]
    assert a.get("cm", "", "kept").obj["v"] == 2
    assert sorted(heard) == [("ADDED", "new"), ("DELETED", "gone"), ("MODIFIED", "kept")]
    with pytest.raises(TooOld):
        async for _ in a.watch("cm", None, gone.revision):
            pass
    # ... and a follows etcd again afterwards.
    await b.create("cm", "", "later", obj("later"))
    deadline = time.monotonic() + 5
    while a.get("cm", "", "later") is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert a.get("cm", "", "later") is not None
    await a.close()
    await b.close()


# --- two apiservers on one etcd ------------------------------------------------------------------
def test_two_apiservers_share_one_etcd(apiserver_factory, url):
    first = apiserver_factory([f"--storage={url}"])
    second = apiserver_factory([f"--storage={url}"])
    ns = f"e-{uuid.uuid4().hex[:6]}"
    first.kubectl_ok("create", "namespace", ns)
    first.kubectl_ok("-n", ns, "create", "configmap", "from-first", "--from-literal=k=v")
    # The second apiserver lists it (its cache follows etcd's watch, so poll a moment).
    deadline = time.monotonic() + 10
    while second.kubectl("-n", ns, "get", "configmap", "from-first").returncode != 0:
        assert time.monotonic() < deadline, "the second apiserver never listed the ConfigMap"
        time.sleep(0.05)
    got = json.loads(second.kubectl_ok("-n", ns, "get", "configmaps", "-o", "json"))
    assert [(c["metadata"]["name"], c["data"]) for c in got["items"]] == [("from-first", {"k": "v"})]
    # A watch through the second apiserver streams a change made through the first.
    watch = subprocess.Popen(["kubectl", f"--kubeconfig={second.kubeconfig}", "-n", ns, "get", "configmap",
                              "from-first", "--watch", "--no-headers", "--request-timeout=30s",
                              "-o", "custom-columns=NAME:.metadata.name,STEP:.metadata.labels.step"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout.readline().split() == ["from-first", "<none>"]  # the initial state
        first.kubectl_ok("-n", ns, "label", "configmap", "from-first", "step=2")
        line = watch.stdout.readline()
        assert line.split() == ["from-first", "2"], line + watch.stderr.read()
    finally:
        watch.kill()
        watch.wait(5)

    # kill -9 of the first apiserver while writes are in flight loses no acknowledged write.
    path = f"/api/v1/namespaces/{ns}/configmaps"
    acked: list[str] = []

    def create(i: int) -> None:
        if post(first, path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"d{i}"}}) == 201:
            acked.append(f"d{i}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(create, i) for i in range(300)]
        deadline = time.monotonic() + 30
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.stop(kill=True)
        for f in futures:
            f.result()
    assert len(acked) >= 60
    # The second apiserver's cache follows etcd's watch: poll (bounded) until it has caught up.
    deadline = time.monotonic() + 10
    while True:
        stored = {c["metadata"]["name"] for c in json.loads(second.kubectl_ok("get", "--raw", path))["items"]}
        missing = set(acked) - stored
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:5]}"


async def test_concurrent_unconditional_writes_never_conflict(apiserver_factory, url):
    """On etcd a write is a compare-and-swap after a network round trip, so concurrent writers
    really race; patches and updates without a resourceVersion are re-applied (no 409), as
    kube-apiserver's GuaranteedUpdate does, while a stale resourceVersion still conflicts."""
    from knet.client import ApiClient, ApiError, load_config

    server = apiserver_factory([f"--storage={url}"])
    writers = 40
    async with ApiClient(load_config(kubeconfig=str(server.kubeconfig))) as api:
        first = await api.create("v1", "configmaps", {"metadata": {"name": "shared"}, "data": {}},
                                 namespace="default")
        await asyncio.gather(*(
            api.patch("v1", "configmaps", "shared", {"data": {f"k{i}": str(i)}}, namespace="default")
            for i in range(writers)))
        await asyncio.gather(*(
            api.update("v1", "configmaps", {"metadata": {"name": "shared"}, "data": {"n": str(i), **{
                f"k{j}": str(j) for j in range(writers)}}}, namespace="default")
            for i in range(writers)))
        cm = await api.get("v1", "configmaps", "shared", namespace="default")
        assert {k: v for k, v in cm["data"].items() if k != "n"} == {f"k{i}": str(i) for i in range(writers)}
        stale = {"metadata": {"name": "shared", "resourceVersion": first["metadata"]["resourceVersion"]},
                 "data": {"x": "1"}}
        with pytest.raises(ApiError) as caught:
            await api.update("v1", "configmaps", stale, namespace="default")
        assert caught.value.status == 409


async def test_graceful_delete_racing_other_writers_never_conflicts(apiserver_factory, url):
    """A delete that must write (a finalizer holds the object) while others patch it, as the
    kubelet and the job controller do to a Job's pod the moment the Job goes: kube-apiserver
    re-reads and lands the delete; a 409 here once left such a pod running forever."""
    from knet.client import ApiClient, ApiError, load_config

    server = apiserver_factory([f"--storage={url}"])
    async with ApiClient(load_config(kubeconfig=str(server.kubeconfig))) as api:
        for round_ in range(10):
            name = f"held-{round_}"
            await api.create("v1", "configmaps", {"metadata": {"name": name, "finalizers": ["example.com/hold"]}},
                             namespace="default")
            results = await asyncio.gather(
                *(api.patch("v1", "configmaps", name, {"metadata": {"labels": {f"w{i}": "x"}}}, namespace="default")
                  for i in range(10)),
                api.delete("v1", "configmaps", name, namespace="default"), return_exceptions=True)
            assert not [r for r in results if isinstance(r, ApiError) and r.status != 404], results
            cm = await api.get("v1", "configmaps", name, namespace="default")
            assert cm["metadata"].get("deletionTimestamp")
            await api.patch("v1", "configmaps", name, {"metadata": {"finalizers": None}}, namespace="default")


def test_custom_resources_on_etcd(apiserver_factory, url, tmp_path):
    """A CRD applied through one apiserver is served by another on the same etcd, and both
    serve it (and its objects) again after a restart."""
    from test_api_crd import crd_manifest, widget

    first = apiserver_factory([f"--storage={url}"])
    second = apiserver_factory([f"--storage={url}"])
    group = f"e{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    first.kubectl_ok("apply", "-f", "-", input=json.dumps(manifest))
    first.kubectl_ok("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=20s")
    first.kubectl_ok("-n", "default", "create", "-f", "-", input=widget(group, "on-etcd", color="blue"))
    path = f"/apis/{group}/v1/namespaces/default/widgets/on-etcd"
    deadline = time.monotonic() + 10
    while second.kubectl("get", "--raw", path).returncode != 0:
        assert time.monotonic() < deadline, "the second apiserver never served the custom resource"
        time.sleep(0.05)
    for server in (first, second):
        server.stop()
        server.start()
        got = json.loads(server.kubectl_ok("get", "--raw", path))
        assert got["spec"] == {"color": "blue", "replicas": 1, "size": "M"}
        table = server.kubectl_ok(f"--cache-dir={tmp_path / server.root.name}", "-n", "default", "get", "widgets")
        assert table.split()[:5] == ["NAME", "COLOR", "REPLICAS", "PHASE", "AGE"]
