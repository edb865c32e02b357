"""The proxier: applies the model to the kernel, one sync at a time (upstream's syncProxyRules).

A sync drains the change trackers into the service/endpoint maps, renders (only the changed
Services' chains on a partial sync; everything on a full sync) and applies atomically
(iptables-restore --noflush, or one `nft -f` transaction). Syncs are rate limited by
minSyncPeriod (upstream's BoundedFrequencyRunner, burst 2).

The cadence is upstream's (pkg/proxy/{iptables,nftables}/proxier.go, pkg/proxy/runner): a sync
runs when something changed, and at least once per FULL_SYNC_PERIOD (proxyutil.FullSyncPeriod,
an hour: the runner's maxInterval). A sync is full at start, after a failure, when the iptables
canary went missing, or when the last full sync is more than FULL_SYNC_PERIOD ago; in iptables
mode not the last of these in large-cluster mode (kubernetes#138571: at 10,000 Services a full
sync costs seconds, and the canary check covers a flushed table). Every other sync is partial.
syncPeriod only paces the housekeeping between syncs (upstream's iptables Monitor): the canary
check in iptables mode and, in both modes, removing what a predecessor in the other mode wrote.

A failed apply leaves the previous ruleset in place (both tools are all-or-nothing), is counted,
and is retried as a full sync after minSyncPeriod; what the failed sync drained (its conntrack
cleanup above all) waits in a PendingBatch and is acted on once the retry has succeeded.

iptables: a partial sync also deletes the per-service chains that went out of use (upstream does
the same from an iptables-save; knet knows which chains it wrote), so with full syncs an hour
apart deleted Services leave no chains behind.

nftables: a per-service chain that goes out of use is flushed in the sync that drops the map
elements and rules pointing at it, and deleted by a transaction of its own at the start of a sync
at least a second later (upstream's staleChains: kernels before 6.2 release a deleted map
element's chain only a moment after the commit). The proxier knows which chains exist (it wrote
them; full syncs re-read the kernel's list), so a partial sync never names a chain that is gone.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from knet.proxy import iptables, nftables
from knet.proxy.conntrack import Conntrack, plan_cleanup
from knet.proxy.metrics import Metrics
from knet.proxy.model import (
    EndpointsChangeTracker,
    EndpointsMap,
    NamespacedName,
    Obj,
    ProxyState,
    ServiceChangeTracker,
    ServicePortMap,
)
from knet.proxy.netfilter import Netfilter, NetfilterError
from knet.proxy.options import RenderOptions
from knet.proxy.pending import PendingBatch

log = logging.getLogger("knet.proxy")

IPTABLES_OWN_CHAINS = {
    "filter": (iptables.KUBE_SERVICES, iptables.KUBE_EXTERNAL_SERVICES, iptables.KUBE_FORWARD,
               iptables.KUBE_NODEPORTS, iptables.KUBE_PROXY_FIREWALL),
    "nat": (iptables.KUBE_SERVICES, iptables.KUBE_NODEPORTS, iptables.KUBE_POSTROUTING, iptables.KUBE_MARK_MASQ),
}
CANARY_TABLES = ("mangle", "nat", "filter")
STALE_CHAIN_DELAY = 1.0  # seconds between flushing a stale nftables chain and deleting it (upstream's)
FULL_SYNC_PERIOD = 3600.0  # upstream proxyutil.FullSyncPeriod: full syncs at most this far apart


@dataclass
class SyncOutcome:
    full: bool
    ok: bool
    seconds: float
    written_services: int
    error: str = ""


class Proxier:
    def __init__(self, mode: str, opts: RenderOptions, netfilter: Netfilter, *, hostname: str,
                 sync_period: float = 30.0, min_sync_period: float = 1.0, metrics: Metrics | None = None,
                 conntrack: Conntrack | None = None, clock: Callable[[], float] = time.monotonic,
                 full_sync_period: float = FULL_SYNC_PERIOD) -> None:
        if mode not in ("iptables", "nftables"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.opts = opts
        self.netfilter = netfilter
        self.sync_period = sync_period
        self.min_sync_period = min_sync_period
        self.full_sync_period = full_sync_period
        self.metrics = metrics or Metrics()
        self.conntrack = conntrack
        self.services = ServicePortMap()
        self.endpoints = EndpointsMap()
        self.service_changes = ServiceChangeTracker()
        self.endpoint_changes = EndpointsChangeTracker(hostname)
        self.services_synced = False
        self.endpoints_synced = False
        self.need_full_sync = True
        self.last_full_sync: float | None = None  # clock() of the last successful full sync
        self.large_cluster_mode = False  # as of the last sync (upstream's largeClusterMode)
        self.last_sync_ok = 0.0  # time.time() of the last successful sync
        self.queued_since = 0.0  # time.time() of the oldest change not yet programmed (0: none)
        self._ipt = iptables.Renderer(opts)
        self._nft = nftables.Renderer(opts)
        self._clock = clock
        self._nft_chains: set[str] = set()  # per-service chains the kernel has (in use or stale)
        self._nft_stale: dict[str, float] = {}  # flushed, out-of-use chain -> when it went stale
        self._nft_sets: set[str] = set()
        self._nft_elements: dict[nftables.Element, str] = {}
        self._ipt_chains: set[str] = set()  # per-service nat chains the kernel has (iptables mode)
        self._pending = PendingBatch()  # drained by a sync that failed: for the next one
        self._wake = asyncio.Event()
        # handlers run on the event loop, sync() in a worker thread: the trackers are shared
        self._lock = threading.Lock()
        self._sync_times: list[float] = []

    # -- inputs --------------------------------------------------------------------------------------

    def on_service(self, previous: Obj | None, current: Obj | None) -> None:
        with self._lock:
            changed = self.service_changes.update(previous, current)
        if changed:
            self.metrics.inc("kubeproxy_sync_proxy_rules_service_changes_total")
            self._queue()

    def on_endpoint_slice(self, previous: Obj | None, current: Obj | None) -> None:
        with self._lock:
            changed = self.endpoint_changes.update(previous, current)
        if changed:
            self.metrics.inc("kubeproxy_sync_proxy_rules_endpoint_changes_total")
            self._queue()

    def _queue(self) -> None:
        now = time.time()
        if not self.queued_since:
            self.queued_since = now
        self.metrics.set("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", now)
        self._wake.set()

    @property
    def initialized(self) -> bool:
        return self.services_synced and self.endpoints_synced

    def state(self) -> ProxyState:
        return ProxyState(self.services, self.endpoints)

    # -- one sync ---------------------------------------------------------------------------------------

    def full_sync_due(self, now: float | None = None) -> bool:
        """Whether the next sync is a full one (upstream syncProxyRules' doFullSync)."""
        if self.need_full_sync or self.last_full_sync is None:
            return True
        now = self._clock() if now is None else now
        if now - self.last_full_sync <= self.full_sync_period:
            return False
        # kubernetes#138571: the iptables proxier skips the periodic full sync in large-cluster mode
        return not (self.mode == "iptables" and self.large_cluster_mode)

    def sync(self) -> SyncOutcome:
        start = time.monotonic()
        full = self.full_sync_due()
        with self._lock:
            changed = self.service_changes.pending() | self.endpoint_changes.pending()
            self.metrics.set("kubeproxy_sync_proxy_rules_service_changes_pending", len(self.service_changes.items))
            self.metrics.set("kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                             len(self.endpoint_changes.changed))
            triggers = list(self.endpoint_changes.trigger_times)
            self.endpoint_changes.trigger_times.clear()
            svc_result = self.services.apply(self.service_changes)
            ep_result = self.endpoints.apply(self.endpoint_changes)
        batch, self._pending = self._pending.merged(changed, svc_result, ep_result, triggers), PendingBatch()
        changed = batch.changed
        queued_since, self.queued_since = self.queued_since, 0.0
        if full:
            # Also at every full sync, not only at start: a predecessor in the other mode (a pod
            # being replaced by a mode switch) may have written rules after our start-up cleanup,
            # and its stale DNATs would shadow ours.
            try:
                if self.other_mode_present():
                    self.cleanup_other_mode()
            except NetfilterError as exc:
                log.warning("cleaning up the other mode's rules: %s", exc)
        if full:
            # A full sync writes every chain, but from the renderers' per-service caches: the
            # Services that changed since the last sync are rendered anew, or their old rules are
            # written again (and stay until the Service changes once more).
            self._ipt.invalidate(changed)
            self._nft.invalidate(changed)
        try:
            if self.mode == "iptables":
                written = self._sync_iptables(None if full else changed)
            else:
                written = self._sync_nftables(None if full else changed)
        except NetfilterError as exc:
            # the kernel still has the previous ruleset; retry everything on the next sync, and keep
            # this batch's conntrack cleanup for after that
            self._pending = batch
            self.need_full_sync = True
            self.queued_since = queued_since or time.time()
            if self.mode == "iptables":
                self.metrics.inc("kubeproxy_sync_proxy_rules_iptables_restore_failures_total")
                if not full:
                    self.metrics.inc("kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total")
            else:
                self.metrics.inc("kubeproxy_sync_proxy_rules_nftables_sync_failures_total")
            log.error("sync failed (%s sync), will retry as a full sync: %s", "full" if full else "partial", exc)
            return SyncOutcome(full, False, time.monotonic() - start, 0, str(exc))
        except BaseException:
            self._pending = batch  # run() retries after a crash too
            raise
        self.need_full_sync = False
        if full:
            self.last_full_sync = self._clock()
        # only the iptables proxier's periodic full sync depends on it; its renderer just computed it
        if self.mode == "iptables":
            self.large_cluster_mode = self._ipt.large_cluster
        if self.conntrack is not None:
            # only now: a flow deleted while the old rules still DNAT to a gone endpoint comes back
            for args in plan_cleanup(self.services, batch.services, batch.endpoints):
                self.conntrack.run(args)
        elapsed = time.monotonic() - start
        self.metrics.observe_sync(elapsed, full)
        now = time.time()
        for t in batch.trigger_times:
            try:
                when = datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            self.metrics.programming.observe(max(0.0, now - when))
        self.last_sync_ok = now
        log.info("synced %s rules (%s sync, %d service ports written) in %.3fs", self.mode,
                 "full" if full else "partial", written, elapsed)
        return SyncOutcome(full, True, elapsed, written)

    def _sync_iptables(self, changed: set[NamespacedName] | None) -> int:
        nf = self.netfilter
        try:
            if changed is None:
                # whole tables, other components' rules kept (iptables.merge_with_foreign), streamed
                # into iptables-restore as the services are rendered
                # one iptables-save of every table: iptables-nft dumps the whole ruleset whichever
                # table is asked for (~3 s each at 10,000 Services)
                saved = nf.iptables_save("")
                whole = self._ipt.whole_tables(self.state(), {"filter": saved, "nat": saved})
                nf.iptables_restore_lines(whole.lines(), noflush=False)
                assert whole.result is not None
                result = whole.result
            else:
                # a partial sync also deletes the chains the last sync left out of use (a full
                # sync's whole-table restore drops them anyway)
                result = self._ipt.render(self.state(), changed, stale_chains=self._ipt_chains)
                nf.iptables_restore(result.text, noflush=True)
        except NetfilterError:
            self._ipt.invalidate()
            raise
        self._ipt_chains = result.nat_chains
        if changed is None:
            # the restore wrote the jumps (iptables.merge_with_foreign); only the canaries are left
            self._ensure_canaries()
        self.metrics.set_labelled("kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                                  'traffic_policy="internal"', result.no_local_internal)
        self.metrics.set_labelled("kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                                  'traffic_policy="external"', result.no_local_external)
        return result.written_services

    def _ensure_canaries(self) -> None:
        for table in CANARY_TABLES:
            self.netfilter.iptables("-t", table, "-N", iptables.KUBE_PROXY_CANARY)

    def _nft_existing(self) -> tuple[set[str], set[str]]:
        """The chains and sets of our table, as the kernel has them (a full sync's starting point).
        Listed apart, sets without their elements: `nft list table` printed every rule and element
        (13-21 s at 10,000 Services × 10), `list chains` + `-t list sets` take ~0.85 s."""
        try:
            chains = _names_in_table(self.netfilter.nft_list("list", "chains", "ip"), "chain")
            sets = _names_in_table(self.netfilter.nft_list("-t", "list", "sets", "ip"), "set")
        except NetfilterError:
            return set(), set()
        return chains, sets

    def _sync_nftables(self, changed: set[NamespacedName] | None) -> int:
        self._delete_stale_nft_chains()
        if changed is None:
            chains, sets = self._nft_existing()
            script = self._nft.sync(self.state(), existing_chains=chains, existing_sets=sets)
        else:
            script = self._nft.sync(self.state(), changed=changed, existing_chains=self._nft_chains,
                                    existing_sets=self._nft_sets, existing_elements=self._nft_elements,
                                    stale_chains=self._nft_stale)
        try:
            for transaction in script.transactions:
                self.netfilter.nft(transaction)
        except NetfilterError:
            self._nft.invalidate()
            raise
        now = self._clock()
        # a chain keeps the time it first went stale: flushing it again refers to nothing new
        self._nft_stale = {c: self._nft_stale.get(c, now) for c in script.stale_chains}
        self._nft_chains = script.chains | script.stale_chains
        self._nft_sets, self._nft_elements = script.sets, script.elements
        self.metrics.set_labelled("kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                                  'traffic_policy="internal"', script.no_local_internal)
        self.metrics.set_labelled("kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                                  'traffic_policy="external"', script.no_local_external)
        return script.written_services

    def _delete_stale_nft_chains(self) -> None:
        """Delete the chains stale for STALE_CHAIN_DELAY, in a transaction of their own whose
        failure (a kernel still holding one) only postpones them: it must not fail the sync."""
        now = self._clock()
        due = sorted(c for c, since in self._nft_stale.items() if now - since >= STALE_CHAIN_DELAY)
        if not due:
            return
        try:
            self.netfilter.nft(nftables.delete_chains_script(due))
        except NetfilterError as exc:
            log.warning("deleting %d stale nftables chains failed, will retry: %s", len(due), exc)
            self._nft_stale.update((c, now) for c in due)
            return
        for c in due:
            del self._nft_stale[c]
        self._nft_chains = self._nft_chains - set(due)
        log.info("deleted %d stale nftables chains", len(due))

    # -- the other mode's leftovers ------------------------------------------------------------------

    def other_mode_present(self) -> bool:
        """A cheap look for the other mode's rules (milliseconds at 10,000 Services, where the full
        cleanup's `nft list table` / `iptables-save` take seconds: both tools read every chain of
        the ruleset): the nftables table's `services` chain, or iptables' KUBE-SERVICES / canary."""
        nf = self.netfilter
        if self.mode == "iptables":
            for family in ("ip", "ip6"):
                try:
                    nf.nft_list("list", "chain", family, nftables.TABLE, "services")
                    return True
                except NetfilterError:
                    pass
            return False
        return any(nf.iptables("-t", table, "-L", chain, "-n") for table, chain in (
            ("nat", iptables.KUBE_SERVICES), ("filter", iptables.KUBE_SERVICES),
            ("mangle", iptables.KUBE_PROXY_CANARY)))

    def cleanup_other_mode(self) -> bool:
        """Remove the other mode's rules; True if there were any."""
        if self.mode == "iptables":
            return cleanup_nftables(self.netfilter)
        return cleanup_iptables(self.netfilter)

    # -- the loop -------------------------------------------------------------------------------------------

    def housekeeping(self) -> None:
        """What runs every syncPeriod between syncs (upstream's iptables Monitor, and knet's guard
        against a predecessor in the other mode). Sets need_full_sync when the rules must be
        rewritten: the iptables canary is gone (someone flushed the tables), or the other mode's
        rules had to be removed (the DNATs they shadowed may be gone too)."""
        if self.other_mode_present():
            try:
                self.cleanup_other_mode()
            except NetfilterError as exc:
                log.warning("cleaning up the other mode's rules: %s", exc)
            log.info("removed the other proxy mode's rules; forcing a full sync")
            self.need_full_sync = True
        # upstream polls the first canary table (mangle); `-N` succeeds only if it was missing
        if self.mode == "iptables" and self.last_sync_ok and \
                self.netfilter.iptables("-t", CANARY_TABLES[0], "-N", iptables.KUBE_PROXY_CANARY):
            log.info("iptables canary %s/%s was deleted; forcing a full sync", CANARY_TABLES[0],
                     iptables.KUBE_PROXY_CANARY)
            self.need_full_sync = True

    async def run(self) -> None:
        """Sync when something changed (at most 2 syncs per minSyncPeriod) and at least once per
        FULL_SYNC_PERIOD; run housekeeping() every syncPeriod in between."""
        loop = asyncio.get_running_loop()
        last_housekeeping = time.monotonic()
        while True:
            if not self.initialized:
                self._wake.clear()
                await self._wait(1.0)
                continue
            now = time.monotonic()
            self._sync_times = [t for t in self._sync_times if now - t < self.min_sync_period]
            if len(self._sync_times) >= 2:
                await asyncio.sleep(self.min_sync_period - (now - self._sync_times[0]))
                continue
            self._wake.clear()
            full = self.full_sync_due()
            try:
                outcome = await loop.run_in_executor(None, self.sync)
            except Exception as exc:  # noqa: BLE001 -- a bug in one sync must not stop the proxy
                log.exception("sync crashed; retrying as a full sync")
                self.need_full_sync = True
                self._ipt.invalidate()
                self._nft.invalidate()
                outcome = SyncOutcome(full, False, 0.0, 0, repr(exc))
            last_sync = time.monotonic()
            self._sync_times.append(last_sync)
            if not outcome.ok:
                await asyncio.sleep(self.min_sync_period or 1.0)
                continue
            # wait for a change, the runner's maxInterval, or housekeeping asking for a full sync
            while True:
                now = time.monotonic()
                next_housekeeping = last_housekeeping + self.sync_period
                next_sync = last_sync + self.full_sync_period
                if now >= next_sync:
                    break
                if now >= next_housekeeping:
                    last_housekeeping = now
                    try:
                        await loop.run_in_executor(None, self.housekeeping)
                    except Exception:  # noqa: BLE001 -- housekeeping must not stop the proxy
                        log.exception("proxier housekeeping failed")
                    if self.need_full_sync:
                        break
                    continue
                if await self._wait(min(next_sync, next_housekeeping) - now):
                    break

    async def _wait(self, timeout: float) -> bool:
        """Wait for a change up to `timeout` seconds; True if one came."""
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, timeout))
        except TimeoutError:
            return False
        return True


def _names_in_table(listing: str, kind: str) -> set[str]:
    """Names of the `kind` ("chain", "set") objects of table ip kube-proxy in an `nft list` output
    that may hold other tables of the family too (iptables-nft's, the network policy's)."""
    out: set[str] = set()
    inside = False
    for line in listing.splitlines():
        if line.startswith("table "):
            inside = line.split()[1:3] == ["ip", nftables.TABLE]
        elif inside and (m := re.match(rf"\s+{kind} (\S+) {{", line)):
            out.add(m.group(1))
    return out


def cleanup_nftables(nf: Netfilter) -> bool:
    found = False
    for family in ("ip", "ip6"):
        try:
            nf.nft_list("list", "table", family, nftables.TABLE)
        except NetfilterError:
            continue
        nf.nft(f"delete table {family} {nftables.TABLE}\n")
        found = True
    return found


def cleanup_iptables(nf: Netfilter) -> bool:
    """Remove the iptables mode's jump rules and chains (upstream CleanupLeftovers); KUBE-FIREWALL is
    the kubelet's and stays. True if there was anything to remove."""
    found = False
    for jump in iptables.JUMP_RULES:
        if jump.chain == iptables.KUBE_FIREWALL:
            continue
        while nf.iptables("-t", jump.table, "-D", jump.source, *jump.args()):
            found = True
    lines: list[str] = []
    for table in ("filter", "nat", "mangle"):
        try:
            saved = nf.iptables_save(table)
        except NetfilterError:
            continue
        own = [c for c in re.findall(r"^:(\S+)", saved, re.M)
               if c in IPTABLES_OWN_CHAINS.get(table, ()) or c == iptables.KUBE_PROXY_CANARY
               or c.startswith(iptables.SERVICE_CHAIN_PREFIXES)]
        if not own:
            continue
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in own]
        lines += [f"-X {c}" for c in own]
        lines.append("COMMIT")
    if lines:
        nf.iptables_restore("\n".join(lines) + "\n", noflush=True)
    return found or bool(lines)
