"""The ingest side: informers over the client's FakeApi feed the cache the lookup reads."""

from __future__ import annotations

import asyncio

import dns.rcode
import dns.rdatatype as T

from knet.client.fake import FakeApi
from knet.dns.answer import serve
from knet.dns.cache import ClusterCache
from knet.dns.sync import run_sync


async def wait_for(predicate, timeout=2.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def addresses(reply):
    return sorted(r.to_text() for _, _, r in reply.answer)


async def test_dns_sync_follows_the_api(dnskit):
    api = FakeApi()
    api.seed("v1", "namespaces", {"metadata": {"name": "default"}})
    api.seed("v1", "services", dnskit.service("web", "default", ["10.96.0.20"]))
    api.seed("v1", "services", dnskit.service("db", "default", ["None"]))
    api.seed("discovery.k8s.io/v1", "endpointslices", dnskit.endpoint_slice(
        "db", "default", [("10.244.1.5", "db-0"), ("10.244.2.6", None)]))
    cache = ClusterCache()
    plugin = dnskit.make_plugin(cache, namespaces=())
    task = asyncio.create_task(run_sync(api, cache, watch_pods=False))
    try:
        await wait_for(cache.has_synced)
        assert addresses(serve(plugin, "web.default.svc.cluster.local.", T.A)) == ["10.96.0.20"]
        assert addresses(serve(plugin, "db.default.svc.cluster.local.", T.A)) == ["10.244.1.5", "10.244.2.6"]
        assert addresses(serve(plugin, "db-0.db.default.svc.cluster.local.", T.A)) == ["10.244.1.5"]

        await api.create("v1", "services", dnskit.service("late", "default", ["10.96.0.30"]), namespace="default")
        await wait_for(lambda: serve(plugin, "late.default.svc.cluster.local.", T.A).rcode == dns.rcode.NOERROR)
        await api.delete("v1", "services", "web", namespace="default")
        await wait_for(lambda: serve(plugin, "web.default.svc.cluster.local.", T.A).rcode == dns.rcode.NXDOMAIN)
        # a namespace that appears later answers too
        await api.create("v1", "namespaces", {"metadata": {"name": "other"}})
        await api.create("v1", "services", dnskit.service("web", "other", ["10.96.0.40"]), namespace="other")
        await wait_for(lambda: addresses(serve(plugin, "web.other.svc.cluster.local.", T.A)) == ["10.96.0.40"])
        # endpoints going unready leave the headless answer
        await api.update("discovery.k8s.io/v1", "endpointslices", dnskit.endpoint_slice(
            "db", "default", [("10.244.1.5", "db-0")], ready=False), namespace="default")
        await wait_for(lambda: serve(plugin, "db-0.db.default.svc.cluster.local.", T.A).rcode == dns.rcode.NXDOMAIN)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
