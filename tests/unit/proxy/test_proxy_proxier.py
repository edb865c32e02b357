"""The proxier against the fake netfilter: partial vs full syncs, stale chains, failures, cleanup."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from knet.proxy.conntrack import FakeConntrack
from knet.proxy.netfilter import FakeNetfilter, NetfilterError
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import Proxier

from .proxy_objects import endpoint_slice, ep, service

OPTS = RenderOptions(node_name="node01", node_ip="192.168.0.2", cluster_cidr="10.244.0.0/16")


def make(mode: str, clock: Callable[[], float] = time.monotonic) -> tuple[Proxier, FakeNetfilter, FakeConntrack]:
    nf, ct = FakeNetfilter(), FakeConntrack()
    p = Proxier(mode, OPTS, nf, hostname="node01", conntrack=ct, clock=clock)
    p.services_synced = p.endpoints_synced = True
    return p, nf, ct


def nat_chains(nf: FakeNetfilter) -> set[str]:
    return set(nf.ipt.tables["nat"])


def test_iptables_full_then_partial_sync_writes_only_changed_services() -> None:
    p, nf, _ = make("iptables")
    for i in range(3):
        p.on_service(None, service(f"s{i}", f"10.96.0.{10 + i}"))
        p.on_endpoint_slice(None, endpoint_slice(f"s{i}", [ep(f"10.244.1.{10 + i}")]))
    first = p.sync()
    assert first.ok and first.full and first.written_services == 3
    # the jump rules from the built-in chains exist, and the canary
    assert any("KUBE-SERVICES" in r for r in nf.ipt.tables["nat"]["PREROUTING"])
    assert "KUBE-PROXY-CANARY" in nf.ipt.tables["mangle"]
    p.on_endpoint_slice(endpoint_slice("s1", [ep("10.244.1.11")]),
                        endpoint_slice("s1", [ep("10.244.1.11"), ep("10.244.2.7")]))
    second = p.sync()
    assert second.ok and not second.full and second.written_services == 1
    restore = nf.ipt.restores[-1]
    assert "ns1/s1:p80 -> 10.244.2.7:80" in restore and "ns1/s0:p80 ->" not in restore
    # the unchanged services' chains are still there (--noflush), the new endpoint has its chain
    svc_rules = [r for c, rs in nf.ipt.tables["nat"].items() if c.startswith("KUBE-SVC-") for r in rs]
    assert sum("->" in r for r in svc_rules) == 4


def test_iptables_full_syncs_keep_one_copy_of_each_jump_and_foreign_rules_in_place() -> None:
    p, nf, _ = make("iptables")
    p.on_service(None, service("s0", "10.96.0.10"))
    p.sync()
    # a CNI rule added above ours after the first sync stays above it
    nf.iptables("-t", "nat", "-I", "PREROUTING", "-m", "comment", "--comment", "cni hostport", "-j", "ACCEPT")
    for _ in range(2):
        p.need_full_sync = True
        assert p.sync().ok
    prerouting = nf.ipt.tables["nat"]["PREROUTING"]
    assert prerouting == ['-m comment --comment "cni hostport" -j ACCEPT',
                          '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    # INPUT: each jump once, in the order upstream's successive `-I INPUT 1` leave them
    assert [r.rsplit("-j ", 1)[1] for r in nf.ipt.tables["filter"]["INPUT"]] == [
        "KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES"]
    # a partial sync writes no jump: they are only checked at full syncs
    p.on_service(None, service("s1", "10.96.0.11"))
    assert p.sync().ok and "PREROUTING" not in nf.ipt.restores[-1]


def test_iptables_deleted_service_chains_are_removed_on_full_sync() -> None:
    p, nf, _ = make("iptables")
    svc = service("s0", "10.96.0.10")
    p.on_service(None, svc)
    p.on_endpoint_slice(None, endpoint_slice("s0", [ep("10.244.1.10")]))
    p.sync()
    assert any(c.startswith("KUBE-SEP-") for c in nat_chains(nf))
    p.on_service(svc, None)
    p.on_endpoint_slice(endpoint_slice("s0", [ep("10.244.1.10")]), None)
    p.sync()  # partial: it deletes the chains it took out of use
    assert not any("10.96.0.10" in r for r in nf.ipt.tables["nat"]["KUBE-SERVICES"])
    assert not any(c.startswith(("KUBE-SEP-", "KUBE-SVC-")) for c in nat_chains(nf))
    p.need_full_sync = True
    p.sync()
    assert not any(c.startswith(("KUBE-SEP-", "KUBE-SVC-")) for c in nat_chains(nf))


def test_failed_apply_keeps_old_rules_counts_and_retries_full() -> None:
    p, nf, _ = make("iptables")
    p.on_service(None, service("s0", "10.96.0.10"))
    p.on_endpoint_slice(None, endpoint_slice("s0", [ep("10.244.1.10")]))
    assert p.sync().ok
    before = {t: {c: list(r) for c, r in cs.items()} for t, cs in nf.ipt.tables.items()}
    nf.fail_next = 1
    p.on_service(None, service("s1", "10.96.0.11"))
    out = p.sync()
    assert not out.ok and p.need_full_sync
    assert nf.ipt.tables == before  # nothing half-applied
    assert p.metrics.counters["kubeproxy_sync_proxy_rules_iptables_restore_failures_total"] == 1
    assert p.metrics.counters["kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total"] == 1
    retry = p.sync()
    assert retry.ok and retry.full
    assert any("10.96.0.11" in r for r in nf.ipt.tables["filter"]["KUBE-SERVICES"])  # no endpoints: REJECT


def test_fake_iptables_rejects_jump_to_missing_chain() -> None:
    nf = FakeNetfilter()
    with pytest.raises(NetfilterError, match="non-existent chain"):
        nf.iptables_restore("*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-NOPE\nCOMMIT\n")


def test_nftables_incremental_sync_changes_only_what_changed() -> None:
    now = [0.0]
    p, nf, _ = make("nftables", clock=lambda: now[0])
    for i in range(3):
        p.on_service(None, service(f"s{i}", f"10.96.0.{10 + i}"))
        p.on_endpoint_slice(None, endpoint_slice(f"s{i}", [ep(f"10.244.1.{10 + i}")]))
    assert p.sync().full
    table = nf.nf.tables["ip kube-proxy"]
    assert len(table.sets["service-ips"]) == 3
    old = endpoint_slice("s2", [ep("10.244.1.12")])
    p.on_endpoint_slice(old, endpoint_slice("s2", [ep("10.244.1.99")]))
    out = p.sync()
    assert out.ok and not out.full and out.written_services == 1
    script = nf.nf.scripts[-1]
    assert "s0" not in script and "10.244.1.99" in script
    # the old endpoint chain is flushed now and deleted by a sync a second or more later
    stale = [c for c in table.chains if "10.244.1.12" in c]
    table = nf.nf.tables["ip kube-proxy"]
    assert any("10.244.1.12" in c for c in table.chains)
    now[0] += 1.0
    p.on_service(None, service("s3", "10.96.0.13"))
    assert p.sync().ok
    table = nf.nf.tables["ip kube-proxy"]
    assert stale and not any("10.244.1.12" in c for c in table.chains)
    # scaling to zero: the ClusterIP moves to the reject map
    p.on_endpoint_slice(endpoint_slice("s0", [ep("10.244.1.10")]), None)
    assert p.sync().ok
    assert "10.96.0.10 . tcp . 80 -> goto reject-chain" in table.sets["no-endpoint-services"] or \
        "10.96.0.10 . tcp . 80 -> goto reject-chain" in nf.nf.tables["ip kube-proxy"].sets["no-endpoint-services"]


def test_switching_modes_cleans_up_the_other_mode() -> None:
    p, nf, _ = make("iptables")
    p.on_service(None, service("s0", "10.96.0.10"))
    p.on_endpoint_slice(None, endpoint_slice("s0", [ep("10.244.1.10")]))
    p.sync()
    q = Proxier("nftables", OPTS, nf, hostname="node01")
    q.cleanup_other_mode()
    assert not any(c.startswith("KUBE-") and c != "KUBE-FIREWALL" for t in nf.ipt.tables.values() for c in t)
    assert not any("KUBE-SERVICES" in r for t in nf.ipt.tables.values() for rs in t.values() for r in rs)
    q.services_synced = q.endpoints_synced = True
    q.on_service(None, service("s0", "10.96.0.10"))
    assert q.sync().ok and "ip kube-proxy" in nf.nf.tables
    r = Proxier("iptables", OPTS, nf, hostname="node01")
    r.cleanup_other_mode()
    assert "ip kube-proxy" not in nf.nf.tables


def test_udp_endpoint_removal_clears_conntrack() -> None:
    p, _, ct = make("iptables")
    udp = [{"name": "dns", "port": 53, "protocol": "UDP"}]
    p.on_service(None, service("dns", "10.96.0.10", ports=udp, type="NodePort"))
    a = endpoint_slice("dns", [ep("10.244.1.5"), ep("10.244.1.6")], ports=udp)
    p.on_endpoint_slice(None, a)
    p.sync()
    assert ["-D", "--orig-dst", "10.96.0.10", "-p", "udp"] in ct.calls  # newly active UDP service
    ct.calls.clear()
    p.on_endpoint_slice(a, endpoint_slice("dns", [ep("10.244.1.5")], ports=udp))
    p.sync()
    assert ct.calls == [["-D", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.6", "-p", "udp"]]


def test_metrics_text_has_upstream_names() -> None:
    p, _, _ = make("iptables")
    p.on_service(None, service("s0", "10.96.0.10"))
    p.sync()
    text = p.metrics.text()
    for name in ("kubeproxy_sync_proxy_rules_duration_seconds_bucket", "kubeproxy_sync_full_proxy_rules_duration_seconds",
                 "kubeproxy_sync_partial_proxy_rules_duration_seconds", "kubeproxy_network_programming_duration_seconds",
                 "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "kubeproxy_sync_proxy_rules_service_changes_total 1"):
        assert name in text


def test_iptables_partial_sync_patches_top_level_chains_in_place() -> None:
    p, nf, _ = make("iptables")
    for i in range(4):
        p.on_service(None, service(f"s{i}", f"10.96.0.{10 + i}"))
        p.on_endpoint_slice(None, endpoint_slice(f"s{i}", [ep(f"10.244.1.{10 + i}")]))
    p.sync()
    # a new Service: its KUBE-SERVICES rule is inserted, nothing else in the chain is rewritten
    p.on_service(None, service("s9", "10.96.0.19"))
    p.on_endpoint_slice(None, endpoint_slice("s9", [ep("10.244.1.19")]))
    assert p.sync().ok
    restore = nf.ipt.restores[-1]
    assert ":KUBE-SERVICES" not in restore and "-I KUBE-SERVICES 1 " in restore
    services = nf.ipt.tables["nat"]["KUBE-SERVICES"]
    assert any("10.96.0.19" in r for r in services) and "nodeports" in services[-1]
    # deleted: its rule goes with -D and its chains with -X on the next full sync
    p.on_service(service("s9", "10.96.0.19"), None)
    assert p.sync().ok
    assert "-D KUBE-SERVICES " in nf.ipt.restores[-1]
    assert not any("10.96.0.19" in r for r in nf.ipt.tables["nat"]["KUBE-SERVICES"])
    # the result equals what a full sync writes
    partial_state = {c: sorted(r) for c, r in nf.ipt.tables["nat"].items() if c.startswith("KUBE-SERV")}
    p.need_full_sync = True
    assert p.sync().ok
    assert partial_state == {c: sorted(r) for c, r in nf.ipt.tables["nat"].items() if c.startswith("KUBE-SERV")}


async def test_run_loop_syncs_on_changes_and_rate_limits() -> None:
    import asyncio
    nf = FakeNetfilter()
    p = Proxier("iptables", OPTS, nf, hostname="node01", sync_period=30, min_sync_period=0.5)
    task = asyncio.create_task(p.run())
    try:
        p.on_service(None, service("s0", "10.96.0.10"))
        await asyncio.sleep(0.1)
        assert nf.ipt.restores == []  # nothing before the informers have synced
        p.services_synced = p.endpoints_synced = True
        p._wake.set()
        for _ in range(100):
            if nf.ipt.restores:
                break
            await asyncio.sleep(0.02)
        assert len(nf.ipt.restores) == 1 and p.last_sync_ok > 0
        # a burst of changes: at most 2 syncs per minSyncPeriod (upstream's burst), the last change wins
        for i in range(1, 6):
            p.on_service(None, service(f"s{i}", f"10.96.0.{10 + i}"))
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.2)
        assert len(nf.ipt.restores) <= 3
        for _ in range(100):
            if any("10.96.0.15" in r for r in nf.ipt.tables["filter"]["KUBE-SERVICES"]):
                break
            await asyncio.sleep(0.05)
        assert any("10.96.0.15" in r for r in nf.ipt.tables["filter"]["KUBE-SERVICES"])
    finally:
        task.cancel()


def test_nftables_repeated_full_syncs_keep_the_fixed_chains() -> None:
    # Every full sync (at start, after a failure, hourly) works from what the kernel has; fixed chains such as
    # firewall-check and service-endpoints-check share the per-service prefixes but are no service's,
    # and deleting them fails (they are in use), which used to fail every full sync after the first.
    now = [0.0]
    p, nf, _ = make("nftables", clock=lambda: now[0])
    p.on_service(None, service("s0", "10.96.0.10"))
    p.on_endpoint_slice(None, endpoint_slice("s0", [ep("10.244.1.10")]))
    assert p.sync().ok
    p.on_service(None, service("s1", "10.96.0.11"))
    for _ in range(2):
        p.need_full_sync = True
        out = p.sync()
        assert out.ok and out.full, out
    final = nf.nf.scripts[-1]
    assert "delete chain ip kube-proxy firewall-check" not in final
    assert "delete chain ip kube-proxy service-endpoints-check" not in final
    # a service's own chains are still removed once it is gone (flushed, and deleted a second later)
    p.on_service(service("s0", "10.96.0.10"), None)
    p.on_endpoint_slice(endpoint_slice("s0", [ep("10.244.1.10")]), None)
    for _ in range(2):
        p.need_full_sync = True
        assert p.sync().ok
        now[0] += 1.0
    assert not any("ns1/s0/" in c for c in nf.nf.tables["ip kube-proxy"].chains)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_full_sync_with_pending_changes_writes_the_new_endpoints(mode: str) -> None:
    # The e2e flake of test_services_in_both_modes: endpoints that changed just before the periodic
    # full sync came due were written from the renderer's cache of the previous sync, and every
    # later full sync wrote the same stale rules until the Service changed again.
    p, nf, _ = make(mode)
    p.on_service(None, service("s0", "10.96.0.10"))
    p.on_endpoint_slice(None, endpoint_slice("s0", [ep("10.244.1.10")]))
    assert p.sync().ok
    p.on_endpoint_slice(endpoint_slice("s0", [ep("10.244.1.10")]),
                        endpoint_slice("s0", [ep("10.244.1.10"), ep("10.244.2.7")]))
    for _ in range(2):  # the full sync that takes the change, then one with nothing pending
        p.need_full_sync = True
        out = p.sync()
        assert out.ok and out.full
        if mode == "iptables":
            rules = [r for rs in nf.ipt.tables["nat"].values() for r in rs]
        else:
            rules = [r for c in nf.nf.tables["ip kube-proxy"].chains.values() for r in c]
        assert any("10.244.2.7" in r for r in rules), rules
