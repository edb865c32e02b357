"""Issue #19 item 1: deleting Services never fails a partial sync, and a failed apply keeps its
conntrack cleanup for the retry. The proxier runs against FakeNetfilter, whose nft model refuses
what the kernel refuses (flushing a chain that is gone, deleting one still pointed at; with
`release_delay`, as kernels before 6.2: a deleted map element holds its chain a moment longer).
"""

from __future__ import annotations

import pytest

from knet.proxy.conntrack import FakeConntrack
from knet.proxy.netfilter import FakeNetfilter, FakeNft, NetfilterError
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import Proxier

from .proxy_objects import endpoint_slice, ep, service

OPTS = RenderOptions(node_name="node01", node_ip="192.168.0.2", cluster_cidr="10.244.0.0/16")
UDP = [{"name": "dns", "port": 53, "protocol": "UDP"}]
P = "ip kube-proxy"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(mode: str, release_delay: float = 0.0) -> tuple[Proxier, FakeNetfilter, FakeConntrack, Clock]:
    clock = Clock()
    nf, ct = FakeNetfilter(nf=FakeNft(release_delay=release_delay, clock=clock)), FakeConntrack()
    p = Proxier(mode, OPTS, nf, hostname="node01", conntrack=ct, clock=clock)
    p.services_synced = p.endpoints_synced = True
    return p, nf, ct, clock


def nft_state(nf: FakeNetfilter) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    t = nf.nf.tables[P]
    return ({c: sorted(r) for c, r in t.chains.items()}, {s: set(e) for s, e in t.sets.items()})


def namespace_objects(i: int) -> list[tuple[dict, dict]]:
    """A namespace's Services (TCP with two endpoints, UDP with one) and their slices."""
    ns = f"loop{i}"
    return [(service("web", f"10.96.{i}.10", ns=ns),
             endpoint_slice("web", [ep(f"10.244.{i}.10"), ep(f"10.244.{i}.11")], ns=ns)),
            (service("dns", f"10.96.{i}.53", ns=ns, ports=UDP),
             endpoint_slice("dns", [ep(f"10.244.{i}.53")], ns=ns, ports=UDP))]


# -- the fake fails where the kernel fails -----------------------------------------------------------

def test_fake_nft_refuses_what_the_kernel_refuses() -> None:
    clock = Clock()
    nft = FakeNft(release_delay=0.5, clock=clock)
    nft.apply(f"add table {P}\nadd chain {P} a\nadd chain {P} b\nadd rule {P} a goto b\n"
              f"add map {P} m {{ type ipv4_addr : verdict ; }}\nadd element {P} m {{ 10.0.0.1 : goto b }}\n")
    with pytest.raises(NetfilterError, match="No such file or directory"):
        nft.apply(f"flush chain {P} gone\n")
    with pytest.raises(NetfilterError, match="No such file or directory"):
        nft.apply(f"delete element {P} m {{ 10.0.0.9 }}\n")
    with pytest.raises(NetfilterError, match="Device or resource busy"):
        nft.apply(f"delete chain {P} b\n")  # a's rule and the element point at it
    # kernels < 6.2: the deleted element still holds b after the commit, for a moment
    with pytest.raises(NetfilterError, match="Device or resource busy"):
        nft.apply(f"flush chain {P} a\ndelete element {P} m {{ 10.0.0.1 }}\ndelete chain {P} b\n")
    nft.apply(f"flush chain {P} a\ndelete element {P} m {{ 10.0.0.1 }}\n")
    with pytest.raises(NetfilterError, match="Device or resource busy"):
        nft.apply(f"delete chain {P} b\n")
    clock.now += 0.5
    nft.apply(f"delete chain {P} b\n")
    with pytest.raises(NetfilterError, match="No such file or directory"):
        nft.apply(f"delete chain {P} b\n")
    assert set(nft.tables[P].chains) == {"a"}


# -- deletions in partial syncs ------------------------------------------------------------------------

@pytest.mark.parametrize("release_delay", [0.0, 0.5], ids=["kernel-6.2+", "kernel-before-6.2"])
def test_nftables_deleting_namespaces_in_a_loop_never_fails_a_sync(release_delay: float) -> None:
    # The e2e symptom: after a Service with endpoints was deleted, every other partial sync failed
    # with "flush chain ... endpoint-...: No such file or directory" (the chains deleted by one
    # sync stayed in the proxier's list, so the next flushed them again).
    p, nf, _, clock = make("nftables", release_delay)
    p.on_service(None, service("kubernetes", "10.96.0.1", ns="default"))
    p.on_endpoint_slice(None, endpoint_slice("kubernetes", [ep("192.168.0.2")], ns="default"))
    assert p.sync().ok
    outcomes = []
    live: dict[int, list[tuple[dict, dict]]] = {}
    for i in range(12):
        live[i] = namespace_objects(i)
        for svc, sl in live[i]:
            p.on_service(None, svc)
            p.on_endpoint_slice(None, sl)
        outcomes.append(p.sync())
        clock.now += 0.3 * (i % 5)  # bursts of syncs and syncs a second or more apart
        if i >= 1:  # a namespace deletion: slices and Services go, in one sync or two
            for svc, sl in live.pop(i - 1):
                p.on_endpoint_slice(sl, None)
                if i % 2:
                    outcomes.append(p.sync())
                p.on_service(svc, None)
            outcomes.append(p.sync())
        clock.now += 0.3
        outcomes.append(p.sync())  # nothing changed: only the stale chains' deletion, if due
    failed = [o.error for o in outcomes if not o.ok]
    assert not failed, failed
    assert not any(o.full for o in outcomes)
    assert p.metrics.counters.get("kubeproxy_sync_proxy_rules_nftables_sync_failures_total", 0) == 0
    # the rules equal a fresh full sync's of the same state, and the deleted chains are gone
    clock.now += 2
    assert p.sync().ok
    fresh, fresh_nf, _, _ = make("nftables")
    fresh.on_service(None, service("kubernetes", "10.96.0.1", ns="default"))
    fresh.on_endpoint_slice(None, endpoint_slice("kubernetes", [ep("192.168.0.2")], ns="default"))
    for svc, sl in live[11]:
        fresh.on_service(None, svc)
        fresh.on_endpoint_slice(None, sl)
    assert fresh.sync().ok
    assert nft_state(nf) == nft_state(fresh_nf)


def test_nftables_stale_chains_are_flushed_first_and_deleted_a_second_later() -> None:
    p, nf, _, clock = make("nftables", release_delay=0.5)
    svc, sl = service("s0", "10.96.0.10"), endpoint_slice("s0", [ep("10.244.1.10")])
    p.on_service(None, svc)
    p.on_endpoint_slice(None, sl)
    assert p.sync().ok
    p.on_service(svc, None)
    p.on_endpoint_slice(sl, None)
    assert p.sync().ok
    script = nf.nf.scripts[-1]
    mine = sorted(c for c in nf.nf.tables[P].chains if "ns1/s0/" in c)
    assert len(mine) == 2  # service- and endpoint- chains: flushed, elements gone, still there
    assert all(f"flush chain {P} {c}" in script for c in mine) and "delete chain" not in script
    assert all(nf.nf.tables[P].chains[c] == [] for c in mine)
    # a sync right after (upstream's burst of 2) neither deletes nor flushes them again
    p.on_service(None, service("s1", "10.96.0.11"))
    assert p.sync().ok
    assert not any("ns1/s0/" in line for line in nf.nf.scripts[-1].splitlines())
    clock.now += 1.0
    p.on_service(None, service("s2", "10.96.0.12"))
    scripts_before = len(nf.nf.scripts)
    assert p.sync().ok
    deletion = nf.nf.scripts[scripts_before]  # a transaction of its own, before the sync's
    assert deletion.splitlines() == [f"delete chain {P} {c}" for c in mine]
    assert not any("ns1/s0/" in c for c in nf.nf.tables[P].chains)
    # and the next syncs do not name them at all
    p.on_service(None, service("s3", "10.96.0.13"))
    clock.now += 1.0
    assert p.sync().ok
    assert "ns1/s0/" not in nf.nf.scripts[-1]


def test_nftables_a_stale_chain_deletion_the_kernel_refuses_is_retried_without_failing_syncs() -> None:
    # a kernel slower to let go than upstream's one second: the deletion is put off, the syncs go on
    p, nf, _, clock = make("nftables", release_delay=3.0)
    svc, sl = service("s0", "10.96.0.10"), endpoint_slice("s0", [ep("10.244.1.10")])
    p.on_service(None, svc)
    p.on_endpoint_slice(None, sl)
    assert p.sync().ok
    p.on_service(svc, None)
    p.on_endpoint_slice(sl, None)
    assert p.sync().ok
    for i in range(5):
        clock.now += 1.0
        p.on_service(None, service(f"n{i}", f"10.96.0.{20 + i}"))
        out = p.sync()
        assert out.ok and not out.full, out
    assert not any("ns1/s0/" in c for c in nf.nf.tables[P].chains)


def test_nftables_a_service_back_before_its_stale_chains_are_deleted() -> None:
    # the loop deletes and re-creates namespaces of the same name: the chains go stale, then are in
    # use again (same names) before the deletion comes due; they must not be deleted then
    p, nf, _, clock = make("nftables", release_delay=0.5)
    svc, sl = service("s0", "10.96.0.10"), endpoint_slice("s0", [ep("10.244.1.10")])
    p.on_service(None, svc)
    p.on_endpoint_slice(None, sl)
    assert p.sync().ok
    p.on_service(svc, None)
    p.on_endpoint_slice(sl, None)
    assert p.sync().ok
    clock.now += 0.5
    p.on_service(None, svc)
    p.on_endpoint_slice(None, sl)
    assert p.sync().ok
    clock.now += 2.0
    p.on_service(None, service("s1", "10.96.0.11"))
    assert p.sync().ok
    chains = nf.nf.tables[P].chains
    endpoint_chain = next(c for c in chains if c.startswith("endpoint-") and "ns1/s0/" in c)
    assert chains[endpoint_chain][-1] == "meta l4proto tcp dnat to 10.244.1.10:80"
    assert "10.96.0.10 . tcp . 80 -> goto service-" in " ".join(nf.nf.tables[P].sets["service-ips"])


def test_nftables_full_sync_flushes_stale_chains_and_deletes_them_later() -> None:
    # a full sync (every syncPeriod, after a failure, at start-up with an old table) no longer
    # deletes a chain in the transaction that drops the map elements pointing at it
    p, nf, _, clock = make("nftables", release_delay=0.5)
    svc, sl = service("s0", "10.96.0.10"), endpoint_slice("s0", [ep("10.244.1.10")])
    p.on_service(None, svc)
    p.on_endpoint_slice(None, sl)
    assert p.sync().ok
    p.on_service(svc, None)
    p.on_endpoint_slice(sl, None)
    p.need_full_sync = True
    out = p.sync()
    assert out.ok and out.full, out
    assert any("ns1/s0/" in c for c in nf.nf.tables[P].chains)
    clock.now += 1.0
    p.need_full_sync = True
    assert p.sync().ok
    assert not any("ns1/s0/" in c for c in nf.nf.tables[P].chains)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_deleting_namespaces_in_a_loop_both_modes(mode: str) -> None:
    p, _, ct, clock = make(mode)
    outcomes = []
    for i in range(6):
        objs = namespace_objects(i)
        for svc, sl in objs:
            p.on_service(None, svc)
            p.on_endpoint_slice(None, sl)
        outcomes.append(p.sync())
        clock.now += 0.4
        for svc, sl in objs:
            p.on_service(svc, None)
            p.on_endpoint_slice(sl, None)
        outcomes.append(p.sync())
        # the deleted UDP Service's flows are flushed, once its rules are gone
        assert ["-D", "--orig-dst", f"10.96.{i}.53", "-p", "udp"] in ct.calls
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]


# -- a failed apply keeps its batch -------------------------------------------------------------------

class RecordingConntrack:
    """Records each cleanup, and whether the rules still sent traffic to its endpoint at that moment."""

    def __init__(self, nf: FakeNetfilter, mode: str) -> None:
        self.nf, self.mode = nf, mode
        self.calls: list[tuple[list[str], bool]] = []

    def rules_mention(self, ip: str) -> bool:
        if self.mode == "nftables":
            t = self.nf.nf.tables.get(P)
            return t is not None and any(ip in r for rs in t.chains.values() for r in rs)
        return any(ip in r for t in self.nf.ipt.tables.values() for rs in t.values() for r in rs)

    def run(self, args: list[str]) -> None:
        dnat = args[args.index("--dst-nat") + 1] if "--dst-nat" in args else ""
        self.calls.append((args, bool(dnat) and self.rules_mention(f"{dnat}:53")))


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("failures", [1, 2])
def test_failed_apply_keeps_the_conntrack_cleanup_for_the_retry(mode: str, failures: int) -> None:
    p, nf, _, clock = make(mode)
    ct = RecordingConntrack(nf, mode)
    p.conntrack = ct
    dns = service("dns", "10.96.0.10", ports=UDP)
    two = endpoint_slice("dns", [ep("10.244.1.5"), ep("10.244.1.6")], ports=UDP)
    gone = service("old", "10.96.0.20", ports=UDP)
    gone_sl = endpoint_slice("old", [ep("10.244.1.20")], ports=UDP)
    for obj in (dns, gone):
        p.on_service(None, obj)
    for obj in (two, gone_sl):
        p.on_endpoint_slice(None, obj)
    assert p.sync().ok
    ct.calls.clear()
    # one endpoint of dns goes, and Service old with its endpoint; then the apply fails
    p.on_endpoint_slice(two, endpoint_slice("dns", [ep("10.244.1.5")], ports=UDP))
    p.on_service(gone, None)
    p.on_endpoint_slice(gone_sl, None)
    nf.fail_next = failures
    for _ in range(failures):
        out = p.sync()
        assert not out.ok and p.need_full_sync
        assert ct.calls == []  # the old rules still DNAT to 10.244.1.6: nothing flushed yet
        clock.now += 1.0
    retry = p.sync()
    assert retry.ok and retry.full
    args = [a for a, _ in ct.calls]
    assert ["-D", "--orig-dst", "10.96.0.20", "-p", "udp"] in args  # the deleted Service
    assert ["-D", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.6", "-p", "udp"] in args
    assert not any(stale for _, stale in ct.calls)  # each ran after the rules stopped sending there
    # done once: the next sync has nothing left over
    ct.calls.clear()
    p.on_service(None, service("x", "10.96.0.30"))
    assert p.sync().ok and ct.calls == []


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_a_change_during_the_failure_is_merged_with_the_failed_batch(mode: str) -> None:
    p, nf, ct, _ = make(mode)
    a = endpoint_slice("dns", [ep("10.244.1.5"), ep("10.244.1.6"), ep("10.244.1.7")], ports=UDP)
    p.on_service(None, service("dns", "10.96.0.10", ports=UDP))
    p.on_endpoint_slice(None, a)
    assert p.sync().ok
    ct.calls.clear()
    b = endpoint_slice("dns", [ep("10.244.1.5"), ep("10.244.1.7")], ports=UDP)
    p.on_endpoint_slice(a, b)
    nf.fail_next = 1
    assert not p.sync().ok
    p.on_endpoint_slice(b, endpoint_slice("dns", [ep("10.244.1.5")], ports=UDP))
    assert p.sync().ok
    assert sorted(c[4] for c in ct.calls if "--dst-nat" in c) == ["10.244.1.6", "10.244.1.7"]


def test_failed_sync_keeps_the_programming_latency_samples() -> None:
    p, nf, _, _ = make("nftables")
    sl = endpoint_slice("s0", [ep("10.244.1.10")])
    sl["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"}
    p.on_service(None, service("s0", "10.96.0.10"))
    p.on_endpoint_slice(None, sl)
    nf.fail_next = 1
    assert not p.sync().ok
    assert p.metrics.programming.n == 0
    assert p.sync().ok
    assert p.metrics.programming.n == 1
