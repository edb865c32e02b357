"""The Informer over FakeApi: indexes follow adds/updates/deletes; FakeApi keeps API semantics."""

from __future__ import annotations

import asyncio

import pytest

from knet.client import ApiError, Informer
from knet.client.fake import FakeApi, merge_patch


def pod(name, ns="default", node=None, **labels):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node} if node else {}}


async def until(cond, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_indexes_follow_the_cache():
    api = FakeApi()
    api.seed("v1", "pods", pod("a", node="node01"))
    api.seed("v1", "pods", pod("b", ns="kube-system", node="node02"))
    inf = Informer(api, "v1", "pods")
    inf.add_indexer("node", lambda o: [o["spec"]["nodeName"]] if o["spec"].get("nodeName") else [])
    task = asyncio.create_task(inf.run())
    try:
        await inf.wait_synced(5)
        assert [p["metadata"]["name"] for p in inf.in_namespace("default")] == ["a"]
        assert [p["metadata"]["name"] for p in inf.by_index("node", "node02")] == ["b"]
        await api.patch("v1", "pods", "a", {"spec": {"nodeName": "node02"}}, namespace="default")
        await until(lambda: len(inf.by_index("node", "node02")) == 2)
        assert inf.by_index("node", "node01") == []
        await api.delete("v1", "pods", "b", namespace="kube-system")
        await until(lambda: inf.in_namespace("kube-system") == [])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_fake_api_conflicts_selectors_and_binding():
    api = FakeApi()
    created = await api.create("v1", "pods", {"metadata": {"generateName": "web-"}, "spec": {}}, namespace="default")
    name = created["metadata"]["name"]
    assert name.startswith("web-") and len(name) == 9 and created["metadata"]["uid"]
    stale = dict(created)
    await api.patch("v1", "pods", name, {"metadata": {"labels": {"app": "web"}}}, namespace="default")
    with pytest.raises(ApiError) as err:
        await api.update("v1", "pods", stale, namespace="default")
    assert err.value.conflict
    listed = await api.list("v1", "pods", label_selector="app in (web,db),!canary")
    assert [p["metadata"]["name"] for p in listed["items"]] == [name]
    binding = {"target": {"kind": "Node", "name": "node01"}}
    await api.create("v1", "pods", binding, namespace="default", name=name, subresource="binding")
    got = await api.get("v1", "pods", name, namespace="default")
    assert got["spec"]["nodeName"] == "node01"
    with pytest.raises(ApiError) as err:
        await api.create("v1", "pods", binding, namespace="default", name=name, subresource="binding")
    assert err.value.conflict


def test_merge_patch_rfc7386():
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == \
        {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
