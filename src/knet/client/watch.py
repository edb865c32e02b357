"""Watch events and the newline-delimited JSON framing of watch streams. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
EVENT_TYPES: frozenset[str] = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: dict[str, Any]


def parse_event(line: bytes) -> WatchEvent:
    raw = orjson.loads(line)
    etype = raw.get("type")
    if etype not in EVENT_TYPES:
        raise ValueError(f"unknown watch event type {etype!r}")
    return WatchEvent(etype, raw.get("object") or {})


class LineSplitter:
    """Cuts a byte stream into complete lines; keeps the unfinished tail for the next chunk."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._tail + chunk
        *lines, self._tail = data.split(b"\n")
        return [ln for ln in lines if ln.strip()]

    def flush(self) -> list[bytes]:
        rest, self._tail = self._tail, b""
        return [rest] if rest.strip() else []
