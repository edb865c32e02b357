"""The cluster cache: stripped objects and the indexes the lookup reads (CoreDNS's dnsController).

Written only by the ingest side (`sync.py`, or fixtures in tests), read by `lookup.py`. Every
change bumps `generation`, which is how the wire-answer cache knows to forget its answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from knet.dns.objects import Endpoints, Pod, Service


class ClusterCache:
    def __init__(self) -> None:
        self._services: dict[str, Service] = {}  # by service_key
        self._endpoints: dict[str, dict[str, Endpoints]] = {}  # service_key -> slice name -> slice
        self._svc_by_ip: dict[str, list[Service]] = {}
        self._eps_by_ip: dict[str, list[Endpoints]] = {}
        self._pods: dict[str, Pod] = {}  # by "ns/name"
        self._pods_by_ip: dict[str, list[Pod]] = {}
        self.namespaces: set[str] = set()
        self._synced: dict[str, bool] = {}
        self.generation = 0
        self.modified = int(time.time())  # the SOA serial, as CoreDNS's Modified()
        self._listeners: list[Callable[[], None]] = []

    # ---- reads (the dnsController interface) ----
    def svc_index(self, key: str) -> list[Service]:
        svc = self._services.get(key)
        return [svc] if svc is not None else []

    def ep_index(self, key: str) -> list[Endpoints]:
        return list(self._endpoints.get(key, {}).values())

    def svc_index_reverse(self, ip: str) -> list[Service]:
        return self._svc_by_ip.get(ip, [])

    def ep_index_reverse(self, ip: str) -> list[Endpoints]:
        return self._eps_by_ip.get(ip, [])

    def pod_index(self, ip: str) -> list[Pod]:
        return self._pods_by_ip.get(ip, [])

    def namespace_exists(self, name: str) -> bool:
        return name in self.namespaces

    def services(self) -> list[Service]:
        return list(self._services.values())

    def has_synced(self) -> bool:
        return bool(self._synced) and all(self._synced.values())

    # ---- writes ----
    def expect(self, *kinds: str) -> None:
        """Declare the kinds that must have synced before has_synced() is true."""
        for kind in kinds:
            self._synced.setdefault(kind, False)

    def mark_synced(self, kind: str) -> None:
        self._synced[kind] = True
        self._changed()

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        self._listeners.append(listener)

    def off_change(self, listener: Callable[[str | None], None]) -> None:
        self._listeners = [fn for fn in self._listeners if fn != listener]

    def _changed(self, key: str | None = None) -> None:
        """Tell listeners what changed: a service_key (the Service or its endpoints), "pod" (a Pod),
        or None (anything may have: namespaces, sync state)."""
        self.generation += 1
        self.modified = int(time.time())
        for listener in self._listeners:
            listener(key)

    def upsert_service(self, svc: Service) -> None:
        self._drop_service(svc.key)
        self._services[svc.key] = svc
        for ip in svc.cluster_ips:
            self._svc_by_ip.setdefault(ip, []).append(svc)
        self._changed(svc.key)

    def delete_service(self, key: str) -> None:
        self._drop_service(key)
        self._changed(key)

    def _drop_service(self, key: str) -> None:
        old = self._services.pop(key, None)
        if old is None:
            return
        for ip in old.cluster_ips:
            _remove(self._svc_by_ip, ip, old)

    def upsert_endpoints(self, eps: Endpoints) -> None:
        old_index = self._drop_endpoints(eps.namespace, eps.name)
        self._endpoints.setdefault(eps.index, {})[_slice_id(eps.namespace, eps.name)] = eps
        for ip in {a.ip for a in eps.addresses}:
            self._eps_by_ip.setdefault(ip, []).append(eps)
        if old_index is not None and old_index != eps.index:
            self._changed(old_index)
        self._changed(eps.index)

    def delete_endpoints(self, namespace: str, name: str) -> None:
        self._changed(self._drop_endpoints(namespace, name))

    def _drop_endpoints(self, namespace: str, name: str) -> str | None:
        """Forget one slice; returns the service_key it belonged to (None if unknown)."""
        sid = _slice_id(namespace, name)
        for index, slices in list(self._endpoints.items()):
            old = slices.pop(sid, None)
            if old is None:
                continue
            if not slices:
                del self._endpoints[index]
            for ip in {a.ip for a in old.addresses}:
                _remove(self._eps_by_ip, ip, old)
            return index
        return None

    def upsert_pod(self, pod: Pod) -> None:
        self._drop_pod(pod.namespace, pod.name)
        self._pods[f"{pod.namespace}/{pod.name}"] = pod
        for ip in pod.ips:
            self._pods_by_ip.setdefault(ip, []).append(pod)
        self._changed("pod")

    def delete_pod(self, namespace: str, name: str) -> None:
        self._drop_pod(namespace, name)
        self._changed("pod")

    def _drop_pod(self, namespace: str, name: str) -> None:
        old = self._pods.pop(f"{namespace}/{name}", None)
        if old is not None:
            for ip in old.ips:
                _remove(self._pods_by_ip, ip, old)

    def add_namespace(self, name: str) -> None:
        if name not in self.namespaces:
            self.namespaces.add(name)
            self._changed()

    def delete_namespace(self, name: str) -> None:
        self.namespaces.discard(name)
        self._changed()

    def load(self, *, services: Iterable[Service] = (), endpoints: Iterable[Endpoints] = (),
             namespaces: Iterable[str] = (), pods: Iterable[Pod] = ()) -> None:
        """Fill the cache in one go (fixtures, benchmarks) and mark it synced."""
        for svc in services:
            self.upsert_service(svc)
        for eps in endpoints:
            self.upsert_endpoints(eps)
        for ns in namespaces:
            self.add_namespace(ns)
        for pod in pods:
            self.upsert_pod(pod)
        self.mark_synced("fixtures")


def _slice_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _remove(index: dict[str, list], key: str, item: object) -> None:
    items = index.get(key)
    if not items:
        return
    items[:] = [i for i in items if i is not item]
    if not items:
        del index[key]
