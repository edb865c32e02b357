"""Creations and deletions a controller made that its informer has not shown yet.

Without this, a second sync right after creating pods would not see them in the cache and
create them again (client-go's ControllerExpectations solve the same race).
"""

from __future__ import annotations

import time

EXPECTATION_TIMEOUT = 30.0


class Expectations:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._creates: dict[str, dict[str, float]] = {}
        self._deletes: dict[str, dict[str, float]] = {}

    def expect_create(self, key: str, name: str) -> None:
        self._creates.setdefault(key, {})[name] = self._clock()

    def expect_delete(self, key: str, name: str) -> None:
        self._deletes.setdefault(key, {})[name] = self._clock()

    def pending(self, key: str, seen: set[str]) -> tuple[set[str], set[str]]:
        """(created but not yet seen, deleted but still seen); settles and expires the rest."""
        now = self._clock()
        creates = {n: t for n, t in self._creates.get(key, {}).items()
                   if n not in seen and now - t < EXPECTATION_TIMEOUT}
        deletes = {n: t for n, t in self._deletes.get(key, {}).items()
                   if n in seen and now - t < EXPECTATION_TIMEOUT}
        self._creates[key], self._deletes[key] = creates, deletes
        return set(creates), set(deletes)

    def forget(self, key: str) -> None:
        self._creates.pop(key, None)
        self._deletes.pop(key, None)
