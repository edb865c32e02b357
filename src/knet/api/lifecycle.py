"""What kube-apiserver and kube-controller-manager do to objects after a delete: namespace
termination (delete the contents, then drop the `kubernetes` finalizer) and ownerReference
garbage collection (background, foreground and orphan propagation)."""

from __future__ import annotations

import asyncio
import logging

from knet.api import errors
from knet.api.registry import Registry, ResourceType
from knet.api.rest import ObjectService, Options, deep_copy
from knet.api.storage import Event

log = logging.getLogger("knet.api.lifecycle")

Key = tuple[str, str, str]  # bucket, namespace, name


class Lifecycle:
    def __init__(self, registry: Registry, service: ObjectService) -> None:
        self.registry, self.service = registry, service
        self.store = service.store
        # The registry's own (live) map: custom resources come and go while serving.
        self._by_bucket = registry.bucket_types
        self._dependents: dict[str, set[Key]] = {}  # owner uid -> dependents
        self._uid_of: dict[Key, str] = {}
        self._queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._terminating: set[str] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        for rt in self.registry.types:
            entries, _ = self.store.list(rt.bucket)
            for e in entries:
                self._index(rt.bucket, e.obj, None)
        self.store.add_listener(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._run())
        # Finish what a restart interrupted: terminating namespaces, orphaned dependents.
        for e in self.store.list("namespaces")[0]:
            if (e.obj.get("metadata") or {}).get("deletionTimestamp"):
                self._queue.put_nowait(("namespace", e.obj["metadata"]["name"]))
        for key in {k for deps in self._dependents.values() for k in deps}:
            self._queue.put_nowait(("dependent", key))
        for rt in self.registry.types:
            for e in self.store.list(rt.bucket)[0]:
                fin = (e.obj.get("metadata") or {}).get("finalizers") or []
                if (e.obj["metadata"].get("deletionTimestamp") and
                        ("foregroundDeletion" in fin or "orphan" in fin)):
                    self._queue.put_nowait(("owner", (rt.bucket, e.obj["metadata"].get("namespace", ""),
                                                      e.obj["metadata"]["name"])))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _index(self, bucket: str, obj: dict | None, prev: dict | None) -> None:
        for o, add in ((prev, False), (obj, True)):
            if o is None:
                continue
            meta = o.get("metadata") or {}
            key = (bucket, meta.get("namespace", ""), meta.get("name", ""))
            for ref in meta.get("ownerReferences") or []:
                uid = ref.get("uid")
                if not uid:
                    continue
                deps = self._dependents.setdefault(uid, set())
                if add:
                    deps.add(key)
                else:
                    deps.discard(key)
                    if not deps:
                        del self._dependents[uid]

    def _on_event(self, ev: Event) -> None:
        if ev.type == "DELETED":
            self._index(ev.bucket, None, ev.prev.obj if ev.prev else None)
            uid = (ev.entry.obj.get("metadata") or {}).get("uid")
            if uid and uid in self._dependents:
                for key in list(self._dependents[uid]):
                    self._queue.put_nowait(("dependent", key))
            return
        self._index(ev.bucket, ev.entry.obj, ev.prev.obj if ev.prev else None)
        meta = ev.entry.obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            if ev.bucket == "namespaces" and meta["name"] not in self._terminating:
                self._queue.put_nowait(("namespace", meta["name"]))
            fin = meta.get("finalizers") or []
            if "foregroundDeletion" in fin or "orphan" in fin:
                self._queue.put_nowait(("owner", (ev.bucket, meta.get("namespace", ""), meta["name"])))

    async def _run(self) -> None:
        while True:
            kind, arg = await self._queue.get()
            try:
                if kind == "namespace":
                    if arg not in self._terminating:
                        self._terminating.add(arg)
                        asyncio.get_running_loop().create_task(self._terminate_namespace(arg))
                elif kind == "dependent":
                    await self._collect(arg)
                elif kind == "owner":
                    await self._finish_owner(arg)
            except errors.ApiError as exc:
                if exc.code == 409 and kind in ("dependent", "owner"):
                    # another writer changed the object between our read and write: look again
                    # (dropping it here left a dependent of a deleted owner behind for good)
                    asyncio.get_running_loop().call_later(0.1, self._queue.put_nowait, (kind, arg))
                elif exc.code not in (404, 409):
                    log.warning("lifecycle %s %s: %s", kind, arg, exc.message)
            except Exception:  # keep collecting; one bad object must not stop the collector
                log.exception("lifecycle %s %s failed", kind, arg)

    def _owner_exists(self, ns: str, ref: dict) -> bool:
        uid = ref.get("uid")
        for rt in self.registry.types:
            if rt.kind != ref.get("kind"):
                continue
            e = self.store.get(rt.bucket, ns if rt.namespaced else "", ref.get("name", ""))
            if e is not None and e.obj["metadata"].get("uid") == uid:
                return True
        return False

    async def _collect(self, key: Key) -> None:
        """A dependent whose owner went away: delete it once no owner remains (background
        propagation), else drop the dangling reference."""
        bucket, ns, name = key
        rt = self._by_bucket.get(bucket)
        if rt is None:
            return
        e = self.store.get(bucket, ns, name)
        if e is None:
            return
        refs = e.obj["metadata"].get("ownerReferences") or []
        alive = [r for r in refs if self._owner_exists(ns, r)]
        if len(alive) == len(refs):
            return
        if alive:
            new = deep_copy(e.obj)
            new["metadata"]["ownerReferences"] = alive
            await self.service._write_update(rt, e, new, Options(field_validation="Ignore"), None, e.revision)
            return
        await self.service.delete(rt, ns, name, {"propagationPolicy": "Background"}, Options())

    def _dependents_of(self, uid: str) -> list[tuple[ResourceType, Key]]:
        return [(self._by_bucket[k[0]], k) for k in self._dependents.get(uid, ()) if k[0] in self._by_bucket]

    async def _finish_owner(self, key: Key) -> None:
        bucket, ns, name = key
        rt = self._by_bucket[bucket]
        e = self.store.get(bucket, ns, name)
        if e is None:
            return
        meta = e.obj["metadata"]
        fin = list(meta.get("finalizers") or [])
        uid = meta.get("uid", "")
        if "orphan" in fin:
            for drt, (db, dns, dname) in self._dependents_of(uid):
                d = self.store.get(db, dns, dname)
                if d is None:
                    continue
                new = deep_copy(d.obj)
                new["metadata"]["ownerReferences"] = [r for r in new["metadata"].get("ownerReferences") or []
                                                      if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                await self.service._write_update(drt, d, new, Options(field_validation="Ignore"), None, d.revision)
            fin.remove("orphan")
        elif "foregroundDeletion" in fin:
            deps = self._dependents_of(uid)
            if deps:
                for drt, (db, dns, dname) in deps:
                    d = self.store.get(db, dns, dname)
                    if d is not None and not d.obj["metadata"].get("deletionTimestamp"):
                        await self.service.delete(drt, dns, dname, {"propagationPolicy": "Foreground"}, Options())
                asyncio.get_running_loop().call_later(0.2, self._queue.put_nowait, ("owner", key))
                return
            fin.remove("foregroundDeletion")
        else:
            return
        e = self.store.get(bucket, ns, name)
        if e is None:
            return
        new = deep_copy(e.obj)
        new["metadata"]["finalizers"] = [f for f in fin if f in (new["metadata"].get("finalizers") or [])]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        await self.service._write_update(rt, e, new, Options(field_validation="Ignore"), None, e.revision)

    async def _delete_quietly(self, rt: ResourceType, ns: str, name: str) -> None:
        try:
            await self.service.delete(rt, ns, name, {"propagationPolicy": "Background"}, Options())
        except errors.ApiError:
            pass  # already gone, or held: the next round looks again

    async def _terminate_namespace(self, ns: str) -> None:
        """The namespace controller's job: delete everything in it, wait until it is gone
        (pods may terminate gracefully), then finalize the namespace."""
        try:
            delay = 0.05
            while True:
                remaining = 0
                for rt in self.registry.types:
                    if not rt.namespaced or rt.stored_as:
                        continue
                    entries, _ = self.store.list(rt.bucket, ns)
                    remaining += len(entries)
                    names = [e.obj["metadata"]["name"] for e in entries
                             if not e.obj["metadata"].get("deletionTimestamp")]
                    # Deletes in parallel share commits (group commit) instead of one fsync each.
                    for i in range(0, len(names), 200):
                        await asyncio.gather(*(self._delete_quietly(rt, ns, n) for n in names[i:i + 200]))
                if remaining == 0:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            e = self.store.get("namespaces", "", ns)
            if e is None:
                return
            new = deep_copy(e.obj)
            new.setdefault("spec", {})["finalizers"] = [f for f in (new["spec"].get("finalizers") or [])
                                                        if f != "kubernetes"]
            rt = self._by_bucket["namespaces"]
            await self.service._write_update(rt, e, new, Options(field_validation="Ignore"), "finalize", e.revision)
        finally:
            self._terminating.discard(ns)
