"""Watch streams: resourceVersion semantics (""/"0" replay the current state as ADDED,
N resumes after N, a compacted N is a 410 ERROR event), selector transitions
(an object leaving the selection is DELETED for that watcher) and periodic BOOKMARKs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

from knet.api.registry import ResourceType
from knet.api.rest import ObjectService, field_value
from knet.api.selectors import FieldSelector, LabelSelector
from knet.api.storage import TooOld

# Idle watches get a BOOKMARK this often (kube-apiserver: about once a minute; shorter here so
# informers' resume points stay fresh). KNET_WATCH_BOOKMARK_SECONDS overrides it (tests).
BOOKMARK_INTERVAL = float(os.environ.get("KNET_WATCH_BOOKMARK_SECONDS", "10"))


def _matches(obj: dict, labels: LabelSelector, fields: FieldSelector) -> bool:
    meta = obj.get("metadata") or {}
    if not labels.empty and not labels.matches(meta.get("labels")):
        return False
    return fields.empty or fields.matches(lambda f: field_value(obj, f))


async def watch_events(
    service: ObjectService,
    rt: ResourceType,
    ns: str | None,
    *,
    resource_version: str | None,
    labels: LabelSelector,
    fields: FieldSelector,
    bookmarks: bool,
    timeout: float | None,
    convert: Callable[[dict], dict] = lambda o: o,
    send_initial_events: bool = False,
) -> AsyncIterator[tuple[str, dict]]:
    """(type, object) pairs; ends at the timeout. Raises nothing: a too-old version yields
    one ERROR event (410 Expired) as kube-apiserver streams it."""
    store = service.store
    deadline = time.monotonic() + timeout if timeout else None
    ns_filter = ns if rt.namespaced else None
    if resource_version in (None, "", "0") or send_initial_events:
        entries, since = store.list(rt.bucket, ns_filter)
        for e in entries:
            if _matches(e.obj, labels, fields):
                yield "ADDED", convert(e.obj)
        if send_initial_events:
            # WatchList (sendInitialEvents=true): a bookmark marks the end of the initial state.
            yield "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                               "metadata": {"resourceVersion": str(since),
                                            "annotations": {"k8s.io/initial-events-end": "true"}}}
    else:
        try:
            since = int(resource_version)
        except ValueError:
            yield "ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": f"invalid resource version: {resource_version}", "reason": "BadRequest", "code": 400}
            return
    stream = store.watch(rt.bucket, ns_filter, since)
    last_rv = since
    it = stream.__aiter__()
    try:
        while True:
            wait = BOOKMARK_INTERVAL if bookmarks else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, left) if wait else left
            try:
                ev = await asyncio.wait_for(it.__anext__(), wait) if wait else await it.__anext__()
            except TimeoutError:
                if bookmarks and (deadline is None or time.monotonic() < deadline):
                    yield "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                       "metadata": {"resourceVersion": str(max(last_rv, store.revision))}}
                continue
            except TooOld as exc:
                yield "ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": f"too old resource version: {exc.requested} ({exc.oldest})",
                                "reason": "Expired", "code": 410}
                return
            except StopAsyncIteration:
                return
            last_rv = ev.revision
            new_match = ev.type != "DELETED" and _matches(ev.entry.obj, labels, fields)
            old_match = ev.prev is not None and _matches(ev.prev.obj, labels, fields)
            if ev.type == "ADDED":
                if new_match:
                    yield "ADDED", convert(ev.entry.obj)
            elif ev.type == "MODIFIED":
                if new_match and old_match:
                    yield "MODIFIED", convert(ev.entry.obj)
                elif new_match:
                    yield "ADDED", convert(ev.entry.obj)
                elif old_match:
                    yield "DELETED", convert(ev.entry.obj)
            elif ev.type == "DELETED" and (old_match or _matches(ev.entry.obj, labels, fields)):
                yield "DELETED", convert(ev.entry.obj)
    finally:
        await it.aclose()
