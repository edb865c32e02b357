"""ApiClient and Informer against a small real HTTP server on loopback (aiohttp), not a mock."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web

from knet.client import ApiClient, ApiError, ClientConfig, Informer


class TinyApiServer:
    """Just enough of kube-apiserver for pods: list, watch (NDJSON), get, create, patch, delete."""

    def __init__(self) -> None:
        self.rv = 0
        self.pods: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.compacted_below = 0
        self.watchers: list[asyncio.Queue[tuple[str, dict[str, Any]] | None]] = []
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.between_pages: Any = None  # called after a page that has a continue token

    def mutate(self, etype: str, pod: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        pod = orjson.loads(orjson.dumps(pod))
        pod["metadata"]["resourceVersion"] = str(self.rv)
        name = pod["metadata"]["name"]
        if etype == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        self.history.append((self.rv, etype, pod))
        for q in self.watchers:
            q.put_nowait((etype, pod))
        return pod

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/default/pods", self.collection)
        app.router.add_route("*", "/api/v1/namespaces/default/pods/{name}", self.item)
        return app

    def status(self, code: int, reason: str, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                "reason": reason, "message": message}
        return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")

    async def collection(self, req: web.Request) -> web.StreamResponse:
        self.requests.append((req.method, req.path, dict(req.query), dict(req.headers)))
        if req.method == "POST":
            pod = orjson.loads(await req.read())
            if pod["metadata"]["name"] in self.pods:
                return self.status(409, "AlreadyExists", f'pods "{pod["metadata"]["name"]}" already exists')
            return web.json_response(self.mutate("ADDED", pod), status=201, dumps=lambda o: orjson.dumps(o).decode())
        if req.query.get("watch") == "true":
            return await self.watch(req)
        items = sorted(self.pods.values(), key=lambda p: p["metadata"]["name"])
        items = [p for p in items if p["metadata"]["name"] > req.query.get("continue", "")]
        meta = {"resourceVersion": str(self.rv)}  # each page as of now, as knet's apiserver pages
        limit = int(req.query.get("limit") or 0)
        if limit and len(items) > limit:
            items = items[:limit]
            meta["continue"] = items[-1]["metadata"]["name"]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}
        if self.between_pages is not None and "continue" in meta:
            self.between_pages()
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def watch(self, req: web.Request) -> web.StreamResponse:
        since = int(req.query.get("resourceVersion") or 0)
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(req)
        if since < self.compacted_below:
            err = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                               "message": "too old resource version"}}
            await resp.write(orjson.dumps(err) + b"\n")
            return resp
        q: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        for rv, etype, pod in self.history:
            if rv > since:
                q.put_nowait((etype, pod))
        self.watchers.append(q)
        try:
            while (item := await q.get()) is not None:
                line = orjson.dumps({"type": item[0], "object": item[1]}) + b"\n"
                # Split each event over two writes: the client must reassemble lines.
                await resp.write(line[:7])
                await resp.write(line[7:])
        finally:
            self.watchers.remove(q)
        return resp

    def end_watches(self) -> None:
        for q in self.watchers:
            q.put_nowait(None)

    async def item(self, req: web.Request) -> web.Response:
        self.requests.append((req.method, req.path, dict(req.query), dict(req.headers)))
        name = req.match_info["name"]
        pod = self.pods.get(name)
        if pod is None:
            return self.status(404, "NotFound", f'pods "{name}" not found')
        if req.method == "GET":
            return web.Response(body=orjson.dumps(pod), content_type="application/json")
        if req.method == "PATCH":
            assert req.headers["Content-Type"] == "application/merge-patch+json"
            patch = orjson.loads(await req.read())
            merged = {**pod, "metadata": {**pod["metadata"], **patch.get("metadata", {})}}
            return web.Response(body=orjson.dumps(self.mutate("MODIFIED", merged)), content_type="application/json")
        if req.method == "DELETE":
            self.mutate("DELETED", pod)
            return web.Response(body=orjson.dumps(pod), content_type="application/json")
        return self.status(405, "MethodNotAllowed", "no")


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels}}


@pytest.fixture
async def tiny():
    server = TinyApiServer()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield server
    server.end_watches()
    await runner.cleanup()


async def until(cond, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_verbs_round_trip_and_errors(tiny):
    async with ApiClient(ClientConfig(server=tiny.url, token="s3cret")) as api:
        created = await api.create("v1", "pods", pod("web-0", app="web"), namespace="default")
        assert created["metadata"]["resourceVersion"] == "1"
        got = await api.get("v1", "pods", "web-0", namespace="default")
        assert got["metadata"]["labels"] == {"app": "web"}
        patched = await api.patch("v1", "pods", "web-0", {"metadata": {"labels": {"app": "db"}}},
                                  namespace="default")
        assert patched["metadata"]["labels"] == {"app": "db"}
        listed = await api.list("v1", "pods", namespace="default", label_selector="app=db")
        assert [p["metadata"]["name"] for p in listed["items"]] == ["web-0"]
        with pytest.raises(ApiError) as err:
            await api.create("v1", "pods", pod("web-0"), namespace="default")
        assert err.value.status == 409 and err.value.already_exists
        await api.delete("v1", "pods", "web-0", namespace="default")
        with pytest.raises(ApiError) as err:
            await api.get("v1", "pods", "web-0", namespace="default")
        assert err.value.not_found and err.value.body["kind"] == "Status"
    method, path, query, headers = tiny.requests[3]
    assert (method, path, query["labelSelector"]) == ("GET", "/api/v1/namespaces/default/pods", "app=db")
    assert headers["Authorization"] == "Bearer s3cret"


async def test_watch_yields_typed_events_from_split_lines(tiny):
    tiny.mutate("ADDED", pod("a"))
    async with ApiClient(ClientConfig(server=tiny.url)) as api:
        seen = []

        async def consume():
            async for ev in api.watch("v1", "pods", namespace="default", resource_version="0"):
                seen.append((ev.type, ev.object["metadata"]["name"]))

        task = asyncio.create_task(consume())
        await until(lambda: len(seen) == 1)
        tiny.mutate("DELETED", tiny.pods["a"])
        await until(lambda: len(seen) == 2)
        tiny.end_watches()
        await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "a"), ("DELETED", "a")]


async def test_informer_lists_watches_and_relists_after_gone(tiny):
    tiny.mutate("ADDED", pod("a"))
    tiny.mutate("ADDED", pod("b"))
    events: list[tuple[str, str]] = []
    async with ApiClient(ClientConfig(server=tiny.url)) as api:
        inf = Informer(api, "v1", "pods", namespace="default")

        async def on_update(old, new):  # async handlers are awaited
            events.append(("update", new["metadata"]["name"]))

        inf.add_handler(on_add=lambda o: events.append(("add", o["metadata"]["name"])),
                        on_update=on_update,
                        on_delete=lambda o: events.append(("delete", o["metadata"]["name"])))
        task = asyncio.create_task(inf.run())
        try:
            await inf.wait_synced(5)
            assert sorted(inf.keys()) == ["default/a", "default/b"]
            assert inf.get("default/a")["kind"] == "Pod"
            tiny.mutate("ADDED", pod("c"))
            await until(lambda: inf.get("default/c") is not None)
            # The server forgets history and drops the stream while "b" is deleted and "a" changes:
            # the informer must re-list (410) and report what it missed.
            tiny.compacted_below = tiny.rv + 10
            tiny.end_watches()
            tiny.mutate("DELETED", tiny.pods["b"])
            tiny.mutate("MODIFIED", {**tiny.pods["a"], "spec": {"nodeName": "node01"}})
            tiny.compacted_below = tiny.rv + 1
            await until(lambda: ("delete", "b") in events and ("update", "a") in events)
            assert sorted(inf.keys()) == ["default/a", "default/c"]
            assert inf.get("default/a")["spec"] == {"nodeName": "node01"}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert events[:3] == [("add", "a"), ("add", "b"), ("add", "c")]


async def test_a_paged_list_is_as_of_its_first_page_so_changes_meanwhile_are_watched(tiny):
    for name in ("a", "b", "c"):
        tiny.mutate("ADDED", pod(name))
    # "a" (already served on page 1) changes before page 2 is fetched
    tiny.between_pages = lambda: tiny.mutate("MODIFIED", pod("a", changed="yes"))
    async with ApiClient(ClientConfig(server=tiny.url)) as api:
        informer = Informer(api, "v1", "pods", namespace="default")
        informer.list_limit = 2
        listed = await api.list("v1", "pods", namespace="default", limit=2)
        assert [p["metadata"]["name"] for p in listed["items"]] == ["a", "b", "c"]
        assert listed["metadata"]["resourceVersion"] == "3"
        tiny.between_pages = None
        task = asyncio.create_task(informer.run())
        try:
            tiny.between_pages = lambda: tiny.mutate("MODIFIED", pod("a", changed="again"))
            await until(lambda: (informer.get("default/a") or {}).get("metadata", {}).get("labels") ==
                        {"changed": "again"})
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_silent_watch_is_dropped_and_the_informer_relists():
    """A watch stream that stops sending (a half-open connection, a stalled server) would leave the
    cache stale forever: with bookmarks asked for, silence past the idle limit breaks the watch
    and the informer re-lists."""
    pods: dict[str, dict[str, Any]] = {"a": pod("a")}
    watches = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal watches
        if request.query.get("watch"):
            watches += 1
            resp = web.StreamResponse()
            await resp.prepare(request)
            await asyncio.sleep(3600)  # never a byte: the stream is alive but dead
            return resp
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                  "items": list(pods.values())})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default/pods", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with ApiClient(ClientConfig(server=f"http://127.0.0.1:{port}"), watch_idle_seconds=0.3) as api:
            inf = Informer(api, "v1", "pods", namespace="default")
            task = asyncio.create_task(inf.run())
            await inf.wait_synced()
            pods["b"] = pod("b")  # only a re-list can see it: the watch says nothing
            await until(lambda: inf.get("default/b") is not None, timeout=5)
            await until(lambda: watches >= 2, timeout=5)  # and it watches again
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await runner.cleanup()
