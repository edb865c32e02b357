"""Watch streams: resourceVersion semantics (""/"0" replay the current state as ADDED,
N resumes after N, a compacted N is a 410 ERROR event), selector transitions
(an object leaving the selection is DELETED for that watcher) and periodic BOOKMARKs."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable

from knet.api.registry import ResourceType
from knet.api.rest import ObjectService
from knet.api.selectors import FieldSelector, LabelSelector
from knet.api.storage import Entry, Event, TooOld
from knet.selectors import field_value

# Idle watches get a BOOKMARK this often (kube-apiserver: about once a minute; shorter here so
# informers' resume points stay fresh). KNET_WATCH_BOOKMARK_SECONDS overrides it (tests).
BOOKMARK_INTERVAL = float(os.environ.get("KNET_WATCH_BOOKMARK_SECONDS", "10"))


INITIAL_BATCH = 500  # initial ADDED events per write of a watch that starts with the current state

# One watch event: (type, object, its JSON or None). The JSON is the stored bytes when the
# object is served as stored, so an event is encoded once for all of its watchers.
WatchItem = tuple[str, dict, bytes | None]


def _matches(obj: dict, labels: LabelSelector, fields: FieldSelector) -> bool:
    meta = obj.get("metadata") or {}
    if not labels.empty and not labels.matches(meta.get("labels")):
        return False
    return fields.empty or fields.matches(lambda f: field_value(obj, f))


def _error(message: str, reason: str, code: int) -> WatchItem:
    return "ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message, "reason": reason, "code": code}, None


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
    convert: Callable[[dict], dict] | None = None,
    send_initial_events: bool = False,
) -> AsyncIterator[list[WatchItem]]:
    """Batches of (type, object, raw JSON or None) for one watch, each batch what is ready to
    send at once; ends at the timeout. Raises nothing: a too-old version yields one ERROR event
    (410 Expired) as kube-apiserver streams it. `convert` maps a stored object to the served
    version (then the raw JSON is None: the caller encodes the converted object)."""
    store = service.store
    deadline = time.monotonic() + timeout if timeout else None
    ns_filter = ns if rt.namespaced else None
    selecting = not (labels.empty and fields.empty)

    def item(etype: str, entry: Entry) -> WatchItem:
        if convert is None:
            return etype, entry.obj, entry.raw
        return etype, convert(entry.obj), None

    if resource_version in (None, "", "0") or send_initial_events:
        entries, since = store.list(rt.bucket, ns_filter)
        if selecting:
            entries = [e for e in entries if _matches(e.obj, labels, fields)]
        for i in range(0, len(entries), INITIAL_BATCH):
            yield [item("ADDED", e) for e in entries[i:i + INITIAL_BATCH]]
        if send_initial_events:
            # WatchList (sendInitialEvents=true): a bookmark marks the end of the initial state.
            yield [("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                 "metadata": {"resourceVersion": str(since),
                                              "annotations": {"k8s.io/initial-events-end": "true"}}}, None)]
    else:
        try:
            since = int(resource_version)
        except ValueError:
            yield [_error(f"invalid resource version: {resource_version}", "BadRequest", 400)]
            return
    try:
        sub = store.subscribe(rt.bucket, ns_filter, since)
    except TooOld as exc:
        yield [_error(f"too old resource version: {exc.requested} ({exc.oldest})", "Expired", 410)]
        return
    last_rv = since
    try:
        while True:
            wait = BOOKMARK_INTERVAL if bookmarks else None
            until_deadline = False  # this wait ends at the watch's timeout, not at a bookmark
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if wait is None or left < wait:
                    wait, until_deadline = left, True
            batch = await sub.next_batch(wait)
            if batch is None:
                return
            if not batch:
                # Timers may fire a little early: the deadline's wait never makes a bookmark (it
                # once made several in the last millisecond of a watch).
                if bookmarks and not until_deadline:
                    # The newest published revision, not the store's: a write still on its way to
                    # the disk has a revision already, and a client resuming from a bookmark past
                    # it would never see it.
                    yield [("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                         "metadata": {"resourceVersion": str(max(last_rv, sub.published_revision))}},
                                        None)]
                continue
            last_rv = batch[-1].revision
            out = [item(ev.type, ev.entry) for ev in batch] if not selecting else _selected(batch, labels, fields, item)
            if out:
                yield out
    finally:
        sub.close()


def _selected(batch: list[Event], labels: LabelSelector, fields: FieldSelector,
              item: Callable[[str, Entry], WatchItem]) -> list[WatchItem]:
    """The events a selecting watcher sees: an object entering the selection is ADDED, one
    leaving it DELETED (as kube-apiserver's watch cache filters)."""
    out: list[WatchItem] = []
    for ev in batch:
        new_match = ev.type != "DELETED" and _matches(ev.entry.obj, labels, fields)
        old_match = ev.prev is not None and _matches(ev.prev.obj, labels, fields)
        if ev.type == "ADDED":
            if new_match:
                out.append(item("ADDED", ev.entry))
        elif ev.type == "MODIFIED":
            if new_match and old_match:
                out.append(item("MODIFIED", ev.entry))
            elif new_match:
                out.append(item("ADDED", ev.entry))
            elif old_match:
                out.append(item("DELETED", ev.entry))
        elif ev.type == "DELETED" and (old_match or _matches(ev.entry.obj, labels, fields)):
            out.append(item("DELETED", ev.entry))
    return out
