"""Leader election over FakeApi: one leader at a time, takeover after expiry or release."""

from __future__ import annotations

import asyncio

import pytest

from knet.client.fake import FakeApi
from knet.client.leaderelection import LeaderElector, LostLeadershipError, run_as_leader


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def elector(api, who, clock):
    return LeaderElector(api, "kube-controller-manager", identity=who, lease_duration=15, renew_deadline=10,
                         retry_period=2, clock=clock)


async def test_only_one_holder_until_the_lease_expires():
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b first sees the record now: it must wait 15s
    clock.t = 10
    assert await a.try_acquire_or_renew()  # a renews: the record changes
    clock.t = 20
    assert not await b.try_acquire_or_renew()  # b saw that renewal at t=20 (changed): not expired
    clock.t = 36
    assert await b.try_acquire_or_renew()  # a went silent for more than 15s
    lease = await api.get("coordination.k8s.io/v1", "leases", "kube-controller-manager", namespace="kube-system")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert not await a.try_acquire_or_renew()


async def test_release_lets_a_successor_in_at_once():
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    await a.acquire()
    await a.release()
    assert await b.try_acquire_or_renew()


async def test_run_as_leader_runs_work_and_releases_on_cancel():
    api, clock = FakeApi(), Clock()
    a = LeaderElector(api, "kube-scheduler", identity="a", lease_duration=3, renew_deadline=2, retry_period=0.05,
                      clock=clock)
    started = asyncio.Event()

    async def work():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_as_leader(a, work))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    lease = await api.get("coordination.k8s.io/v1", "leases", "kube-scheduler", namespace="kube-system")
    assert lease["spec"]["holderIdentity"] == ""


async def test_losing_the_lease_raises_and_stops_the_work():
    api, clock = FakeApi(), Clock()
    a = LeaderElector(api, "kube-scheduler", identity="a", lease_duration=3, renew_deadline=2, retry_period=0.05,
                      clock=clock)
    await a.acquire()
    # someone else takes the lease behind a's back (e.g. a was paused longer than the lease)
    lease = await api.get("coordination.k8s.io/v1", "leases", "kube-scheduler", namespace="kube-system")
    lease["spec"]["holderIdentity"] = "b"
    await api.update("coordination.k8s.io/v1", "leases", lease, namespace="kube-system")

    async def advance():
        while True:
            clock.t += 0.25
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(advance())
    try:
        with pytest.raises(LostLeadershipError):
            await asyncio.wait_for(a.keep_renewing(), 5)
    finally:
        ticker.cancel()
    assert not a.is_leader

    # and run_as_leader stops the work when renewing fails
    b = LeaderElector(FakeApi(), "x", identity="b", lease_duration=3, renew_deadline=2, retry_period=0.05)
    stopped = asyncio.Event()

    async def lose():
        raise LostLeadershipError("gone")

    async def work():
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    b.keep_renewing = lose  # type: ignore[method-assign]
    with pytest.raises(LostLeadershipError):
        await asyncio.wait_for(run_as_leader(b, work), 5)
    assert stopped.is_set()
