"""Feed the ClusterCache from the API: informers for Namespaces, Services, EndpointSlices (and
Pods in `pods verified` mode, as CoreDNS watches Pods only then), stripping objects at ingest."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from knet.client import Informer
from knet.dns.cache import ClusterCache
from knet.dns.objects import to_endpoints, to_pod, to_service

log = logging.getLogger("knet.dns")
Obj = dict[str, Any]


def _meta(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", "") or "", meta.get("name", "") or ""


def informers_for(api: Any, cache: ClusterCache, *, watch_pods: bool) -> list[Informer]:
    namespaces = Informer(api, "v1", "namespaces")
    namespaces.add_handler(on_add=lambda o: cache.add_namespace(_meta(o)[1]),
                           on_update=lambda _old, o: cache.add_namespace(_meta(o)[1]),
                           on_delete=lambda o: cache.delete_namespace(_meta(o)[1]))
    services = Informer(api, "v1", "services")
    services.add_handler(on_add=lambda o: cache.upsert_service(to_service(o)),
                         on_update=lambda _old, o: cache.upsert_service(to_service(o)),
                         on_delete=lambda o: cache.delete_service(to_service(o).key))
    slices = Informer(api, "discovery.k8s.io/v1", "endpointslices")
    slices.add_handler(on_add=lambda o: cache.upsert_endpoints(to_endpoints(o)),
                       on_update=lambda _old, o: cache.upsert_endpoints(to_endpoints(o)),
                       on_delete=lambda o: cache.delete_endpoints(*_meta(o)))
    out = [namespaces, services, slices]
    if watch_pods:
        pods = Informer(api, "v1", "pods")
        pods.add_handler(on_add=lambda o: cache.upsert_pod(to_pod(o)),
                         on_update=lambda _old, o: cache.upsert_pod(to_pod(o)),
                         on_delete=lambda o: cache.delete_pod(*_meta(o)))
        out.append(pods)
    return out


async def run_sync(api: Any, cache: ClusterCache, *, watch_pods: bool) -> None:
    """Run the informers forever; mark each kind synced once its first list is in."""
    informers = informers_for(api, cache, watch_pods=watch_pods)
    cache.expect(*(i.resource for i in informers))

    async def synced(informer: Informer) -> None:
        await informer.wait_synced()
        # Handlers fire as tasks: let the ones from the initial list land first.
        await asyncio.sleep(0)
        cache.mark_synced(informer.resource)
        log.info("synced %s", informer.resource)

    tasks = [asyncio.create_task(i.run()) for i in informers]
    tasks += [asyncio.create_task(synced(i)) for i in informers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
