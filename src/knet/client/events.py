"""core/v1 Events as upstream components record them (client-go's EventRecorder, simplified).

Repeats of the same (object, reason, message) from one component within the cache's lifetime
bump `count` and `lastTimestamp` on the existing Event instead of creating a new one, which is
what `kubectl describe` shows as "x3 over 2m".
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from knet.client.errors import ApiError
from knet.client.protocol import Api

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "name": meta.get("name"),
           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return {k: v for k, v in ref.items() if v}


def build_event(involved: Obj, event_type: str, reason: str, message: str, component: str,
                host: str | None = None, timestamp: str | None = None) -> Obj:
    ref = object_reference(involved)
    ts = timestamp or _now()
    name = ref.get("name", "unknown")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": ref.get("namespace", "default")},
        "involvedObject": ref, "reason": reason, "message": message, "type": event_type,
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component, "reportingInstance": host or "",
        "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
    }


class EventRecorder:
    def __init__(self, api: Api, component: str, host: str | None = None) -> None:
        self.api = api
        self.component = component
        self.host = host
        self._seen: dict[tuple[str, str, str, str], Obj] = {}

    async def event(self, involved: Obj, event_type: str, reason: str, message: str) -> None:
        """Record; never raises (events are best-effort, as upstream)."""
        ref = object_reference(involved)
        key = (ref.get("namespace", ""), str(ref.get("uid") or ref.get("name")), reason, message)
        try:
            prev = self._seen.get(key)
            if prev is not None:
                patch = {"count": int(prev.get("count", 1)) + 1, "lastTimestamp": _now()}
                try:
                    updated = await self.api.patch("v1", "events", prev["metadata"]["name"], patch,
                                                   namespace=prev["metadata"]["namespace"])
                    self._seen[key] = updated
                    return
                except ApiError as exc:
                    if not exc.not_found:
                        raise
            ev = build_event(involved, event_type, reason, message, self.component, self.host)
            self._seen[key] = await self.api.create("v1", "events", ev, namespace=ev["metadata"]["namespace"])
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record event %s %s: %s", reason, ref.get("name"), exc)


__all__ = ["EventRecorder", "build_event", "object_reference"]
