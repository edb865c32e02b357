"""When the proxier syncs, and whether fully: upstream's cadence (pkg/proxy/iptables/proxier.go and
pkg/proxy/nftables/proxier.go: `doFullSync := needFullSync || time.Since(lastFullSync) >
proxyutil.FullSyncPeriod`, kubernetes#138571's large-cluster exception for iptables; the sync runner's
maxInterval is FullSyncPeriod and syncPeriod only paces the iptables canary Monitor).

Against the fake netfilter, which refuses what the kernel refuses (a jump to a missing chain)."""

from __future__ import annotations

import asyncio
import time

import pytest

from knet.proxy.conntrack import FakeConntrack
from knet.proxy.netfilter import FakeNetfilter
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import FULL_SYNC_PERIOD, Proxier

from .proxy_objects import endpoint_slice, ep, service

OPTS = RenderOptions(node_name="node01", node_ip="192.168.0.2", cluster_cidr="10.244.0.0/16")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(mode: str, clock: Clock, **kw: float) -> tuple[Proxier, FakeNetfilter]:
    nf = FakeNetfilter()
    p = Proxier(mode, OPTS, nf, hostname="node01", conntrack=FakeConntrack(), clock=clock, **kw)
    p.services_synced = p.endpoints_synced = True
    return p, nf


def add(p: Proxier, i: int, endpoints: int = 1) -> None:
    p.on_service(None, service(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}"))
    p.on_endpoint_slice(None, endpoint_slice(
        f"s{i}", [ep(f"10.244.{i // 25}.{(i % 25) * 10 + k}", "node01") for k in range(endpoints)]))


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_full_at_start_then_partial_until_the_full_sync_period_has_passed(mode: str) -> None:
    clock = Clock()
    p, _ = make(mode, clock)
    add(p, 0)
    first = p.sync()
    assert first.ok and first.full
    # syncPeriod (30 s) after syncPeriod: every sync is partial, changes or not
    for i in range(1, 4):
        clock.now += 30
        add(p, i)
        out = p.sync()
        assert out.ok and not out.full and out.written_services == 1
    clock.now += 30
    out = p.sync()  # nothing changed: still a (cheap) partial sync
    assert out.ok and not out.full and out.written_services == 0
    # an hour after the last full sync, the next sync is full
    clock.now = 1000.0 + FULL_SYNC_PERIOD + 1
    assert p.full_sync_due()
    out = p.sync()
    assert out.ok and out.full
    assert not p.full_sync_due()
    clock.now += 30
    assert not p.sync().full
    text = p.metrics.text()
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 2" in text
    assert "kubeproxy_sync_partial_proxy_rules_duration_seconds_count 5" in text


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_a_failed_sync_makes_the_next_one_full(mode: str) -> None:
    clock = Clock()
    p, nf = make(mode, clock)
    add(p, 0)
    assert p.sync().full
    nf.fail_next = 1
    add(p, 1)
    failed = p.sync()
    assert not failed.ok and not failed.full
    retry = p.sync()
    assert retry.ok and retry.full  # well within the hour: full because the last one failed


def test_iptables_large_cluster_mode_skips_the_periodic_full_sync_nftables_does_not() -> None:
    # kubernetes#138571: more than 1000 endpoints (upstream's largeClusterEndpointsThreshold)
    for mode, periodic_full in (("iptables", False), ("nftables", True)):
        clock = Clock()
        p, _ = make(mode, clock)
        for i in range(101):
            add(p, i, endpoints=10)
        assert p.sync().full
        assert p.large_cluster_mode is (mode == "iptables")  # only the iptables proxier uses it
        clock.now += FULL_SYNC_PERIOD + 1
        out = p.sync()
        assert out.ok and out.full is periodic_full, mode
        # a failure still forces one
        p.need_full_sync = True
        assert p.sync().full


def test_iptables_partial_sync_deletes_the_chains_of_a_deleted_service() -> None:
    # with full syncs an hour apart, a deleted Service's KUBE-SVC/KUBE-SEP chains must not wait for one
    clock = Clock()
    p, nf = make("iptables", clock)
    add(p, 0, endpoints=2)
    add(p, 1, endpoints=2)
    assert p.sync().full
    before = {c for c in nf.ipt.tables["nat"] if c.startswith(("KUBE-SVC-", "KUBE-SEP-"))}
    assert len(before) == 6
    p.on_service(service("s0", "10.96.0.1"), None)
    p.on_endpoint_slice(endpoint_slice("s0", []), None)
    out = p.sync()
    assert out.ok and not out.full
    after = {c for c in nf.ipt.tables["nat"] if c.startswith(("KUBE-SVC-", "KUBE-SEP-"))}
    assert len(after) == 3 and after < before
    assert "-X KUBE-SVC-" in nf.ipt.restores[-1]
    # an endpoint going away: its KUBE-SEP chain goes, the Service's own chains stay
    p.on_endpoint_slice(endpoint_slice("s1", [ep("10.244.0.10", "node01"), ep("10.244.0.11", "node01")]),
                        endpoint_slice("s1", [ep("10.244.0.10", "node01")]))
    assert p.sync().ok
    left = {c for c in nf.ipt.tables["nat"] if c.startswith(("KUBE-SVC-", "KUBE-SEP-"))}
    assert len(left) == 2 and left < after
    # and the next partial sync names no chain that is gone (the fake refuses -X of a missing chain)
    add(p, 2)
    assert p.sync().ok and "-X" not in nf.ipt.restores[-1]


def test_iptables_housekeeping_forces_a_full_sync_when_the_canary_is_gone() -> None:
    clock = Clock()
    p, nf = make("iptables", clock)
    add(p, 0)
    assert p.sync().full
    p.housekeeping()
    assert not p.full_sync_due()  # the canary is there: nothing to do
    assert nf.iptables("-t", "mangle", "-X", "KUBE-PROXY-CANARY")  # someone flushed the tables
    p.housekeeping()
    assert p.full_sync_due()
    assert p.sync().full


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_housekeeping_removes_the_other_modes_rules_and_resyncs(mode: str) -> None:
    clock = Clock()
    p, nf = make(mode, clock)
    other, _ = make("nftables" if mode == "iptables" else "iptables", clock)
    other.netfilter = nf  # a predecessor in the other mode, still writing to the same node
    add(p, 0)
    add(other, 0)
    assert p.sync().full
    p.housekeeping()
    assert not p.full_sync_due()
    assert other.sync().ok
    p.housekeeping()
    assert p.full_sync_due()
    if mode == "iptables":
        assert "ip kube-proxy" not in nf.nf.tables
    else:
        assert not any("KUBE-SERVICES" in r for r in nf.ipt.tables["nat"]["PREROUTING"])


async def test_run_loop_idle_runs_housekeeping_not_syncs_then_syncs_at_the_max_interval() -> None:
    # syncPeriod 0.1 s, FullSyncPeriod 1.2 s (scaled down): idle, the loop only does housekeeping
    nf = FakeNetfilter()
    p = Proxier("iptables", OPTS, nf, hostname="node01", sync_period=0.1, min_sync_period=0.05,
                full_sync_period=1.2)
    housekeeping = []
    real = p.housekeeping
    p.housekeeping = lambda: (housekeeping.append(time.monotonic()), real())[1]  # type: ignore[method-assign]
    p.on_service(None, service("s0", "10.96.0.10"))
    p.services_synced = p.endpoints_synced = True
    task = asyncio.create_task(p.run())
    try:
        for _ in range(100):
            if nf.ipt.restores:
                break
            await asyncio.sleep(0.02)
        assert len(nf.ipt.restores) == 1 and p.last_sync_ok > 0
        await asyncio.sleep(0.55)
        assert len(nf.ipt.restores) == 1, "no sync without a change before the max interval"
        assert len(housekeeping) >= 3
        # a change is synced at once, partially
        p.on_service(None, service("s1", "10.96.0.11"))
        for _ in range(50):
            if len(nf.ipt.restores) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(nf.ipt.restores) == 2 and "*filter" in nf.ipt.restores[1]
        assert p.metrics.sync_partial.n == 1
        # the canary goes: the next housekeeping tick forces a full sync
        assert nf.iptables("-t", "mangle", "-X", "KUBE-PROXY-CANARY")
        for _ in range(50):
            if p.metrics.sync_full.n == 2:
                break
            await asyncio.sleep(0.02)
        assert p.metrics.sync_full.n == 2 and "KUBE-PROXY-CANARY" in nf.ipt.tables["mangle"]
        # then idle again until the runner's max interval: one more sync, with nothing changed
        syncs = p.metrics.sync.n
        await asyncio.sleep(1.5)
        assert p.metrics.sync.n == syncs + 1
    finally:
        task.cancel()


def test_nftables_full_sync_listing_keeps_only_our_tables_chains_and_sets() -> None:
    # `nft list chains ip` / `nft -t list sets ip` as nft 1.0.6 prints them, with iptables-nft's
    # tables beside ours: their chains must not count as our stale chains
    from knet.proxy.proxier import _names_in_table
    chains = """table ip kube-proxy {
\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t}
\tchain endpoint-NUGP3IYE-ns0/svc00000/tcp/http__10.200.0.0/8080 {
\t}
}
table ip filter {
\tchain KUBE-FIREWALL {
\t}
}
"""
    sets = """table ip kube-proxy {
\tset cluster-ips {
\t\ttype ipv4_addr
\t\tcomment "Active ClusterIPs"
\t}
\tset affinity-XYZ-ns1/s0/tcp/p80__10.0.0.1/80 {
\t\ttype ipv4_addr
\t}
}
table ip filter {
\tset other {
\t}
}
"""
    assert _names_in_table(chains, "chain") == {"nat-prerouting",
                                                 "endpoint-NUGP3IYE-ns0/svc00000/tcp/http__10.200.0.0/8080"}
    assert _names_in_table(sets, "set") == {"cluster-ips", "affinity-XYZ-ns1/s0/tcp/p80__10.0.0.1/80"}
