"""A running harness for controller tests: FakeApi + shared informers + the controllers under test."""

from __future__ import annotations

import asyncio

import pytest

from knet.client.fake import FakeApi
from knet.controllers.base import InformerFactory


class Harness:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.informers = InformerFactory(self.api)
        self.tasks: list[asyncio.Task] = []

    async def start(self, *controllers) -> None:
        self.informers.start()
        await self.informers.wait_synced(5)
        for c in controllers:
            self.tasks.append(asyncio.create_task(c.run()))

    async def until(self, cond, timeout: float = 5.0):
        """Poll a (sync or async) condition until it returns a truthy value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = cond()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.tasks:
            # bounded: a controller that ignores cancellation fails the test instead of hanging the suite
            _, pending = await asyncio.wait(self.tasks, timeout=5)
            assert not pending, f"controllers did not stop when cancelled: {pending}"
        await self.informers.stop()


@pytest.fixture
async def harness():
    h = Harness()
    yield h
    await h.stop()
