"""Garbage collection through ownerReferences (background propagation, as kubectl uses by default),
plus the `orphan` and `foregroundDeletion` finalizers, and pods bound to nodes that no longer exist.

The dependents watched are the kinds knet's controllers create (pods, replicasets, endpointslices);
upstream GC discovers every kind, here the list is explicit (DEPENDENTS).
Before deleting, the owner's absence is confirmed with a live GET, so a lagging cache never
deletes a dependent of a freshly created owner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from knet.client import Api, ApiError
from knet.client.informer import object_key
from knet.controllers.base import InformerFactory

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEPENDENTS = (("v1", "pods"), ("apps/v1", "replicasets"), ("discovery.k8s.io/v1", "endpointslices"))
OWNER_KINDS = {
    "Deployment": ("apps/v1", "deployments"), "ReplicaSet": ("apps/v1", "replicasets"),
    "DaemonSet": ("apps/v1", "daemonsets"), "StatefulSet": ("apps/v1", "statefulsets"),
    "Service": ("v1", "services"), "Pod": ("v1", "pods"), "Node": ("v1", "nodes"),
    "Job": ("batch/v1", "jobs"), "CronJob": ("batch/v1", "cronjobs"), "Namespace": ("v1", "namespaces"),
}
CLUSTER_SCOPED_KINDS = {"Node", "Namespace"}
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


def owner_refs(obj: Obj) -> list[Obj]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or [])


class GarbageCollector:
    name = "garbagecollector"

    def __init__(self, api: Api, informers: InformerFactory, *, period: float = 10.0,
                 dependents: tuple[tuple[str, str], ...] = DEPENDENTS, owners: bool = True) -> None:
        self.api = api
        self.period = period
        self.owners = owners  # False: only pod GC (pods bound to deleted nodes)
        if not owners:
            dependents = (("v1", "pods"),)
        self.dependents = {d: informers.get(*d) for d in dependents}
        self.nodes = informers.get("v1", "nodes")
        self._wake = asyncio.Event()
        for inf in self.dependents.values():
            inf.add_handler(on_delete=lambda o: self._wake.set(),
                            on_update=lambda o, n: self._wake.set() if n["metadata"].get("deletionTimestamp") else None)

    def _all_objects(self) -> dict[str, Obj]:
        """uid -> object, over every cache we hold (owners are often also dependents)."""
        index: dict[str, Obj] = {}
        for inf in self.dependents.values():
            for obj in inf.list():
                index[obj["metadata"].get("uid", "")] = obj
        return index

    async def run(self) -> None:
        while True:
            try:
                await self.collect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("garbage collection pass failed: %s", exc)
            self._wake.clear()
            # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a cancellation that races
            # with the wake-up, and the collector would then never stop
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                done, _ = await asyncio.wait({waiter}, timeout=self.period)
            finally:
                waiter.cancel()
            if done:
                await asyncio.sleep(0.05)  # let a burst of deletions settle into one pass

    async def collect_once(self) -> None:
        known = self._all_objects()
        node_names = {n["metadata"]["name"] for n in self.nodes.list()} if self.nodes.has_synced else None
        for (api_version, resource), inf in self.dependents.items():
            for obj in inf.list():
                try:
                    await self._collect(api_version, resource, obj, known, node_names)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one object's failure must not stop the rest
                    # (upstream queues each object on its own; a pass that gave up at the first
                    # refused patch left every later dependent uncollected until that one healed)
                    log.warning("garbage collecting %s %s failed: %s", resource, object_key(obj), exc)

    async def _collect(self, api_version: str, resource: str, obj: Obj, known: dict[str, Obj],
                       node_names: set[str] | None) -> None:
        meta = obj["metadata"]
        if self.owners and meta.get("deletionTimestamp"):
            await self._finish_finalizers(api_version, resource, obj, known)
        refs = owner_refs(obj) if self.owners else []
        if refs and await self._all_owners_gone(meta.get("namespace"), refs, known):
            await self._delete(api_version, resource, obj)
            return
        if resource == "pods" and node_names is not None:
            node = (obj.get("spec") or {}).get("nodeName")
            if node and node not in node_names and await self._node_gone(node):
                # pod GC: nothing will ever run or clean up a pod on a deleted node
                await self._delete(api_version, resource, obj, grace_period_seconds=0)

    async def _node_gone(self, name: str) -> bool:
        try:
            await self.api.get("v1", "nodes", name)
            return False
        except ApiError as exc:
            return exc.not_found

    async def _all_owners_gone(self, namespace: str | None, refs: list[Obj], known: dict[str, Obj]) -> bool:
        for ref in refs:
            owner = known.get(ref.get("uid", ""))
            if owner is not None and not self._owner_wants_dependents_gone(owner):
                return False
            if owner is not None:
                continue  # foreground deletion of the owner: dependents go first
            if ref.get("kind") not in OWNER_KINDS:
                return False  # a kind we cannot look up: leave it alone
            api_version, resource = OWNER_KINDS[ref["kind"]]
            ns = None if ref["kind"] in CLUSTER_SCOPED_KINDS else namespace
            try:
                live = await self.api.get(api_version, resource, ref["name"], namespace=ns)
            except ApiError as exc:
                if exc.not_found:
                    continue
                return False
            if live["metadata"].get("uid") == ref.get("uid") and not self._owner_wants_dependents_gone(live):
                return False
        return True

    @staticmethod
    def _owner_wants_dependents_gone(owner: Obj) -> bool:
        meta = owner["metadata"]
        return bool(meta.get("deletionTimestamp")) and FOREGROUND_FINALIZER in (meta.get("finalizers") or [])

    async def _finish_finalizers(self, api_version: str, resource: str, obj: Obj, known: dict[str, Obj]) -> None:
        """An owner being deleted with orphan/foreground policy: do the dependents' part, then let it go."""
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if ORPHAN_FINALIZER not in finalizers and FOREGROUND_FINALIZER not in finalizers:
            return
        uid = meta.get("uid")
        dependents = [(d, o) for d, inf in self.dependents.items() for o in inf.list()
                      if any(r.get("uid") == uid for r in owner_refs(o))]
        if ORPHAN_FINALIZER in finalizers:
            for (dav, dres), dep in dependents:
                refs = [r for r in owner_refs(dep) if r.get("uid") != uid]
                try:
                    await self.api.patch(dav, dres, dep["metadata"]["name"],
                                         {"metadata": {"ownerReferences": refs or None}},
                                         namespace=dep["metadata"].get("namespace"))
                except ApiError as exc:
                    if not exc.not_found:
                        raise
            finalizers.remove(ORPHAN_FINALIZER)
        elif dependents:
            return  # foreground: wait for dependents to disappear (they are deleted above)
        else:
            finalizers.remove(FOREGROUND_FINALIZER)
        try:
            await self.api.patch(api_version, resource, meta["name"], {"metadata": {"finalizers": finalizers or None}},
                                 namespace=meta.get("namespace"))
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def _delete(self, api_version: str, resource: str, obj: Obj, **kwargs: Any) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not kwargs:
            return
        log.info("garbage collecting %s %s", resource, object_key(obj))
        try:
            await self.api.delete(api_version, resource, meta["name"], namespace=meta.get("namespace"),
                                  propagation_policy="Background",
                                  preconditions={"uid": meta["uid"]} if meta.get("uid") else None, **kwargs)
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                raise
