"""What apiextensions-apiserver's controllers do for each CustomResourceDefinition: accept its
names unless another kind of its group uses them (NamesAccepted), serve its versions (the
registry gets one ResourceType per served version: discovery, OpenAPI and the generic REST
verbs follow) and say so (Established, acceptedNames, storedVersions); on delete, remove its
custom objects, then its finalizer, then stop serving it. Established CRDs are served again
when the apiserver starts."""

from __future__ import annotations

import asyncio
import logging

from knet.api import errors
from knet.api.crd import serving
from knet.api.registry import Registry, ResourceType
from knet.api.resources import crds
from knet.api.rest import ObjectService, Options, deep_copy
from knet.api.storage import Event

log = logging.getLogger("knet.api.crd")


class CrdController:
    def __init__(self, registry: Registry, service: ObjectService) -> None:
        self.registry, self.service, self.store = registry, service, service.store
        self.crd_type = registry.lookup(crds.GROUP, "v1", "customresourcedefinitions")
        self._served: dict[str, list[tuple[str, str, str]]] = {}  # CRD name -> the gvrs it serves
        # CRD name -> (uid, generation, terminating) it is served for: a status write changes none
        self._served_for: dict[str, tuple[str, int, bool]] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._cleaning: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None

    @property
    def bucket(self) -> str:
        return self.crd_type.bucket

    async def start(self) -> None:
        """Serve the CRDs already established (before anything else reads the registry), then
        keep up with their changes."""
        for e in self.store.list(self.bucket)[0]:
            if crds.condition(e.obj, "Established") and self._conflict(e.obj) is None:
                self._serve(e.obj)
            self._queue.put_nowait(e.obj["metadata"]["name"])
        self.store.add_listener(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    def _on_event(self, ev: Event) -> None:
        if ev.bucket == self.bucket:
            self._queue.put_nowait(ev.name)

    async def _run(self) -> None:
        while True:
            name = await self._queue.get()
            try:
                await self.reconcile(name)
            except errors.ApiError as exc:
                if exc.code == 409:  # changed meanwhile: its event queues it again
                    continue
                log.warning("crd %s: %s", name, exc.message)
            except Exception:  # one bad CRD must not stop serving the others
                log.exception("crd %s failed", name)

    # --- names -------------------------------------------------------------------------------
    def _conflict(self, crd: dict) -> tuple[str, str] | None:
        """(reason, message) when another kind of the group already has this CRD's plural or kind."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
        own = set(self._served.get(crd["metadata"]["name"], ()))
        for rt in self.registry.types:
            if rt.group != group or (rt.group, rt.version, rt.resource) in own:
                continue
            if rt.resource == plural:
                return "PluralConflict", f'"{plural}" is already in use'
            if rt.kind == kind:
                return "KindConflict", f'"{kind}" is already in use'
        return None

    # --- serving -------------------------------------------------------------------------------
    def _serve(self, crd: dict) -> None:
        meta = crd["metadata"]
        name = meta["name"]
        terminating = bool(meta.get("deletionTimestamp"))
        served_for = (meta.get("uid", ""), meta.get("generation", 0), terminating)
        if self._served_for.get(name) == served_for:
            return
        types = serving.resource_types(crd, terminating)
        gvrs = [(rt.group, rt.version, rt.resource) for rt in types]
        for gvr in self._served.get(name, ()):
            if gvr not in gvrs:
                self.registry.remove(*gvr)
        for rt in types:
            self.registry.add(rt)
        self._served[name] = gvrs
        self._served_for[name] = served_for

    def _unserve(self, name: str) -> None:
        self._served_for.pop(name, None)
        for gvr in self._served.pop(name, ()):
            self.registry.remove(*gvr)

    def storage_type(self, name: str) -> ResourceType | None:
        gvrs = self._served.get(name)
        return self.registry.lookup(*gvrs[0]) if gvrs else None

    async def reconcile(self, name: str) -> None:
        e = self.store.get(self.bucket, "", name)
        if e is None:
            self._unserve(name)
            # its names are free again: a CRD refused for them may be accepted now
            for other in self.store.list(self.bucket)[0]:
                if (crds.condition(other.obj, "NamesAccepted") or {}).get("status") == "False":
                    self._queue.put_nowait(other.obj["metadata"]["name"])
            return
        crd = e.obj
        conflict = self._conflict(crd)
        new = deep_copy(crd)
        if conflict is None:
            self._serve(crd)
            crds.set_condition(new, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
            crds.set_condition(new, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
            names = dict((crd.get("spec") or {}).get("names") or {})
            new["status"]["acceptedNames"] = names
        else:
            crds.set_condition(new, "NamesAccepted", "False", *conflict)
            if not crds.condition(crd, "Established"):
                crds.set_condition(new, "Established", "False", "NotAccepted", "not all names are accepted")
            new["status"].setdefault("acceptedNames", {"plural": "", "kind": ""})
        storage = crds.storage_version(crd)
        stored = list(new["status"].get("storedVersions") or [])
        if storage and storage not in stored:
            stored.append(storage)
        new["status"]["storedVersions"] = stored
        if new["status"] != (crd.get("status") or {}):
            await self.service._write_update(self.crd_type, e, new, Options(field_validation="Ignore"), "status",
                                             e.revision)
        fin = crd["metadata"].get("finalizers") or []
        if crd["metadata"].get("deletionTimestamp") and crds.CLEANUP_FINALIZER in fin and name not in self._cleaning:
            self._cleaning.add(name)
            task = asyncio.get_running_loop().create_task(self._clean_up(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- deletion ------------------------------------------------------------------------------
    async def _clean_up(self, name: str) -> None:
        """Delete every object of a deleted CRD (all namespaces), wait until they are gone
        (their own finalizers may hold them), then drop the cleanup finalizer."""
        try:
            delay = 0.05
            while True:
                rt = self.storage_type(name)
                remaining = 0
                if rt is not None:
                    entries, _ = self.store.list(rt.bucket)
                    remaining = len(entries)
                    pending = [e.obj["metadata"] for e in entries if not e.obj["metadata"].get("deletionTimestamp")]
                    for i in range(0, len(pending), 200):
                        await asyncio.gather(*(self._delete_quietly(rt, m.get("namespace", ""), m["name"])
                                               for m in pending[i:i + 200]))
                if remaining == 0:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            while True:
                e = self.store.get(self.bucket, "", name)
                if e is None:
                    return
                new = deep_copy(e.obj)
                new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or []
                                                 if f != crds.CLEANUP_FINALIZER]
                try:
                    await self.service._write_update(self.crd_type, e, new, Options(field_validation="Ignore"), None,
                                                     e.revision)
                    return
                except errors.ApiError as exc:
                    if exc.code != 409:
                        raise
        finally:
            self._cleaning.discard(name)

    async def _delete_quietly(self, rt: ResourceType, ns: str, name: str) -> None:
        try:
            await self.service.delete(rt, ns, name, {"propagationPolicy": "Background"}, Options())
        except errors.ApiError:
            pass  # already gone, or held: the next round looks again
