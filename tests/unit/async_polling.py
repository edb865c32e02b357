"""Unit-suite helper: wait in a running event loop until a condition holds."""

from __future__ import annotations

import asyncio


async def until(cond, timeout: float = 5.0, interval: float = 0.01):
    """cond()'s first truthy value; AssertionError when none comes within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := cond()):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)
    return value
