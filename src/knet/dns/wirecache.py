"""Precomputed wire answers, keyed by the query's bytes after its ID.

Two identical queries (same name, case, type, flags, EDNS) get byte-identical answers apart
from the ID, so a hit is `query[:2] + tail`: no parsing, no rendering. Cluster answers live
until what they were computed from changes: each is tagged with a dependency (the Service key
NAME.NAMESPACE for names of a Service, "pod", "static" for names that cannot exist, "*" for
everything else such as PTR), and a change forgets the entries of its key and of "*"; a change
of unknown scope (namespaces, sync state) forgets all. No stale Service survives a change;
forwarded answers live for their TTL, capped by the Corefile's `cache` plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ENTRIES = 50_000


@dataclass(slots=True)
class WireEntry:
    tails: tuple[bytes, ...]  # the answer minus its ID; several when `loadbalance` rotates records
    expires: float  # time.perf_counter() deadline; inf for cluster answers
    qtype: str  # metric labels
    rcode: str
    denial: bool
    turn: int = 0

    def next_tail(self) -> bytes:
        tails = self.tails
        if len(tails) == 1:
            return tails[0]
        self.turn = (self.turn + 1) % len(tails)
        return tails[self.turn]


class WireCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.cluster: dict[bytes, WireEntry] = {}
        self.forwarded: dict[bytes, WireEntry] = {}
        self.deps: dict[str, list[bytes]] = {}

    def get(self, key: bytes, now: float) -> WireEntry | None:
        entry = self.cluster.get(key)
        if entry is not None:
            return entry
        entry = self.forwarded.get(key)
        if entry is not None and entry.expires <= now:
            del self.forwarded[key]
            return None
        return entry

    def put_cluster(self, key: bytes, entry: WireEntry, dep: str = "*") -> None:
        if len(self.cluster) >= self.max_entries:  # a flood of distinct names: start over
            self.cluster, self.deps = {}, {}
        self.cluster[key] = entry
        self.deps.setdefault(dep, []).append(key)

    def put_forwarded(self, key: bytes, entry: WireEntry) -> None:
        if len(self.forwarded) >= self.max_entries:
            self.forwarded = {}
        self.forwarded[key] = entry

    def forget_cluster(self, dep: str | None = None) -> None:
        """Forget the cluster answers that depend on DEP (and the "*" ones); None: all of them."""
        if dep is None:
            self.cluster, self.deps = {}, {}
            return
        for tag in (dep, "*"):
            for key in self.deps.pop(tag, ()):
                self.cluster.pop(key, None)

    def __len__(self) -> int:
        return len(self.cluster) + len(self.forwarded)
