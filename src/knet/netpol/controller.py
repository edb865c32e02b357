"""The network policy controller of one node: the cache of NetworkPolicies, Pods and Namespaces ->
compile -> render -> apply, whenever something changed (debounced), through a Netfilter.

Atomic: every sync is one transaction (`iptables-restore --noflush` of the KNET chains, the
FORWARD jump included; or one `nft -f` script on table `ip knet-netpol`), so the kernel goes from
the old rule set to the new one with no state between: no isolated pod is ever open, no allowed
flow cut. Incremental in what it costs the kernel: a sync whose rendered rules equal what is
programmed applies nothing; a changed one writes only the chains whose rules changed (and
deletes the chains gone): in iptables mode without reading the kernel back except when verifying
(periodically, after an error or a start); nothing is applied before the caches have synced (a
restarted controller leaves the previous rules in place until it knows better, then rewrites every
chain once).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from knet.netpol import render
from knet.netpol.compiler import NodeRules, compile_node
from knet.proxy import restore
from knet.proxy.metrics import SYNC_BUCKETS, Histogram
from knet.proxy.netfilter import Netfilter, NetfilterError

log = logging.getLogger("knet.netpol")
Obj = dict[str, Any]


class NetpolMetrics:
    """Prometheus text: sync duration, rules programmed, errors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sync = Histogram("knet_netpol_sync_duration_seconds",
                              "Time to compile, render and apply the node's policy rules", SYNC_BUCKETS)
        self.gauges: dict[str, float] = {"knet_netpol_rules": 0, "knet_netpol_policies": 0,
                                         "knet_netpol_isolated_pods": 0,
                                         "knet_netpol_last_sync_timestamp_seconds": 0}
        self.counters: dict[str, float] = {"knet_netpol_syncs_total": 0, "knet_netpol_applies_total": 0,
                                           "knet_netpol_sync_errors_total": 0}

    def inc(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def text(self) -> str:
        with self._lock:
            out = self.sync.text()
            for name, v in self.gauges.items():
                out += [f"# TYPE {name} gauge", f"{name} {v}"]
            for name, v in self.counters.items():
                out += [f"# TYPE {name} counter", f"{name} {v}"]
            return "\n".join(out) + "\n"


def iptables_state(nf: Netfilter) -> tuple[dict[str, int], list[str]]:
    """(KNET chains in the filter table -> how many rules each has, the FORWARD rules in order)."""
    chains = restore.rules_by_table(nf.iptables_save("filter")).get("filter", {})
    counts = {c: len(rules) for c, rules in chains.items() if c.startswith(render.CHAIN_PREFIXES)}
    forward = chains.get("FORWARD", [])
    return counts, forward


def existing_iptables_chains(nf: Netfilter) -> tuple[set[str], list[str]]:
    """(KNET chains in the filter table, the FORWARD rules in order)."""
    counts, forward = iptables_state(nf)
    return set(counts), forward


def _ensure_jump_first(text: str, forward: list[str]) -> str:
    """Add to a restore the FORWARD jump as FORWARD's first rule (kube-proxy's KUBE-FORWARD accepts
    masqueraded packets; the policy checks must come before it), when it is not."""
    jump = render.jump_rule()
    if forward[:1] == [jump]:
        return text
    fix = [f"-D FORWARD {jump}"] * forward.count(jump) + [f"-I FORWARD 1 {jump}"]
    return text.replace("\nCOMMIT\n", "\n" + "\n".join(fix) + "\nCOMMIT\n")


def _move_jump_first(text: str) -> str:
    """Add to a restore: our FORWARD jump (there once, as last programmed) moved to the front."""
    jump = render.jump_rule()
    return text.replace("\nCOMMIT\n", f"\n-D FORWARD {jump}\n-I FORWARD 1 {jump}\nCOMMIT\n")


def cleanup(nf: Netfilter, mode: str) -> None:
    """Remove every rule of this controller in `mode` (iptables or nftables)."""
    if mode == "nftables":
        try:
            nf.nft(render.cleanup_nftables())
        except NetfilterError as exc:
            log.warning("removing table %s: %s", render.NFT_TABLE, exc)
        return
    chains, forward = existing_iptables_chains(nf)
    if chains or render.jump_rule() in forward:
        nf.iptables_restore(render.cleanup_iptables(chains, render.jump_rule() in forward))


@dataclass
class PolicyController:
    node: str
    mode: str                      # "iptables" or "nftables": the node's kube-proxy mode
    nf: Netfilter | None           # None: render only (the simulated dataplane)
    metrics: NetpolMetrics = field(default_factory=NetpolMetrics)
    policies: dict[str, Obj] = field(default_factory=dict)
    pods: dict[str, Obj] = field(default_factory=dict)
    namespaces: dict[str, Obj] = field(default_factory=dict)
    pod_cidr: str = ""             # this node's spec.podCIDR (the guard of pending isolated pods)
    applied: str = ""              # the last rendered text the kernel has
    programmed: dict[str, list[str]] | None = None  # iptables: the chains the kernel has (None: unknown)
    nft_programmed: render.NftTable | None = None     # nftables: the table the kernel has (None: unknown)
    last_rules: NodeRules | None = None
    last_error: str = ""
    changes: int = 0
    _summary: dict[str, str] = field(default_factory=dict)  # what _log_changes last said, per policy
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the caches (informer handlers) --
    def on_change(self, kind: str, key: str, obj: Obj | None) -> None:
        if kind == "nodes":  # only this node's: its podCIDR
            if (obj or {}).get("metadata", {}).get("name") == self.node:
                with self._lock:
                    self.pod_cidr = ((obj or {}).get("spec") or {}).get("podCIDR") or ""
                    self.changes += 1
            return
        store = {"networkpolicies": self.policies, "pods": self.pods, "namespaces": self.namespaces}[kind]
        with self._lock:
            if obj is None:
                store.pop(key, None)
            else:
                store[key] = obj
            self.changes += 1

    def compile(self) -> NodeRules:
        with self._lock:
            policies, pods, namespaces = list(self.policies.values()), list(self.pods.values()), list(
                self.namespaces.values())
            pod_cidr = self.pod_cidr
        return compile_node(self.node, policies, pods, namespaces, pod_cidr)

    def render(self, rules: NodeRules) -> str:
        return render.render_nftables(rules) if self.mode == "nftables" else render.render_iptables(rules)

    def sync(self, verify: bool = True) -> bool:
        """Compile, render and (if changed) apply. True when the kernel has the current rules.
        `verify`: also check the kernel still has them (the FORWARD jump in first place, every chain
        programmed there); without it an unchanged rendering costs no process at all (most pod
        updates change nothing), and a changed one restores only the chains that changed."""
        start = time.monotonic()
        self.metrics.inc("knet_netpol_syncs_total")
        rules = self.compile()
        chains: dict[str, list[str]] = {}
        table = render.NftTable()
        if self.mode == "nftables":
            table = render.nft_table(rules)
            text = render.nft_script(table)
        else:
            chains = render.iptables_chains(rules)
            text = render.restore_text(chains)
        ok = True
        if self.nf is not None:
            try:
                if text != self.applied or verify:
                    ok = self._apply_nftables(table, text) if self.mode == "nftables" else self._apply_iptables(
                        chains, text, verify)
            except NetfilterError as exc:
                ok = False
                self.programmed = self.nft_programmed = None  # the next sync rewrites every chain
                self.last_error = str(exc)
                self.metrics.inc("knet_netpol_sync_errors_total")
                log.error("programming %s rules failed: %s", self.mode, exc)
        if ok:
            self._log_changes(self.last_rules, rules)
            self.last_rules = rules
            self.last_error = ""
        elapsed = time.monotonic() - start
        with self.metrics._lock:
            self.metrics.sync.observe(elapsed)
            self.metrics.gauges.update({
                "knet_netpol_rules": rules.rule_count(), "knet_netpol_policies": len({p.policy for p in rules.policies}),
                "knet_netpol_isolated_pods": len({p.pod for p in rules.ingress + rules.egress}),
                "knet_netpol_last_sync_timestamp_seconds": time.time()})
        return ok

    def _apply_nftables(self, table: render.NftTable, text: str) -> bool:
        """The whole table replaced (the first sync, after a failure), else one script changing
        only what changed (render.nft_update)."""
        assert self.nf is not None
        if text == self.applied:
            return True
        script = text if self.nft_programmed is None else render.nft_update(self.nft_programmed, table)
        if script:
            self.nf.nft(script)
        self.nft_programmed = table
        self.applied = text
        self.metrics.inc("knet_netpol_applies_total")
        return True

    def _apply_iptables(self, chains: dict[str, list[str]], text: str, verify: bool) -> bool:
        """One iptables-restore of the chains that differ from what the kernel has, the chains gone
        deleted, and the FORWARD jump moved back in front (kube-proxy prepends its own FORWARD
        jumps when it starts; its KUBE-FORWARD accepts masqueraded packets). What the kernel has:
        what this controller programmed last, checked against iptables-save when verifying and when
        nothing is known yet (after a start or a failure): a chain missing there or holding another
        number of rules is written again, as when the restore built on what was programmed fails."""
        assert self.nf is not None
        if not verify and self.programmed is not None:
            write = [c for c in chains if self.programmed.get(c) != chains[c]]
            stale = render.stale_chains(set(self.programmed), chains)
            if write or stale:
                try:
                    self.nf.iptables_restore(_move_jump_first(render.restore_text(chains, write, stale)))
                except NetfilterError as exc:  # someone removed a chain or our jump: look
                    log.warning("restoring the changed chains failed, reading the kernel back: %s", exc)
                    return self._apply_iptables(chains, text, verify=True)
                self.metrics.inc("knet_netpol_applies_total")
            self.programmed = chains
            self.applied = text
            return True
        kernel, forward = iptables_state(self.nf)
        # a chain someone flushed, deleted or added to is written again
        base = {c: lines for c, lines in (self.programmed or {}).items() if kernel.get(c) == len(lines)}
        write = [c for c in chains if base.get(c) != chains[c]]
        stale = render.stale_chains(set(kernel), chains)
        if write or stale or forward[:1] != [render.jump_rule()]:
            self.nf.iptables_restore(_ensure_jump_first(render.restore_text(chains, write, stale), forward))
            self.metrics.inc("knet_netpol_applies_total")
        self.programmed = chains
        self.applied = text
        return True

    def _log_changes(self, old: NodeRules | None, new: NodeRules) -> None:
        """Log each policy whose rules or isolated pods changed: a pass over the new rules (policies +
        isolated pods), compared with what was said last time."""
        isolates: dict[tuple[str, str], list[str]] = {}
        for direction, pods in (("ingress", new.ingress), ("egress", new.egress)):
            for pod in pods:
                for policy in pod.policies:
                    isolates.setdefault((policy, direction), []).append(pod.pod)
        after = {}
        for pr in new.policies:
            pods = isolates.get((pr.policy, pr.direction), [])
            after[f"{pr.policy} {pr.direction}"] = (f"isolates {', '.join(pods)}; {len(pr.allows)} allow rule(s) in "
                                                    f"{render.policy_chain(pr.policy, pr.direction)}")
        before = self._summary if old is not None else {}
        for key in sorted(after):
            if before.get(key) != after[key]:
                log.info("programmed %s (%s): %s", key, self.mode, after[key])
        for key in sorted(set(before) - set(after)):
            log.info("removed %s (%s)", key, self.mode)
        guards_before = {g.direction: g.pending for g in old.guards} if old is not None else {}
        guards_after = {g.direction: g.pending for g in new.guards}
        for direction in ("ingress", "egress"):
            if guards_before.get(direction) != guards_after.get(direction):
                if direction in guards_after:
                    log.info("guard %s on (%s): %s pending isolated, new addresses of %s closed", direction,
                             self.mode, ", ".join(guards_after[direction]), new.guards[0].pod_cidr)
                else:
                    log.info("guard %s off (%s)", direction, self.mode)
        if old is None or before != after:
            log.info("node %s: %d policies, %d isolated pods, %d rules (%s%s)", self.node, len(after),
                     len({p.pod for p in new.ingress + new.egress}), new.rule_count(), self.mode,
                     "" if self.nf is not None else ", rendered only")
        self._summary = after
