"""The kubelet's own iptables chains, as upstream v1.29's kubelet makes them
(pkg/kubelet/kubelet_network_linux.go, syncIPTablesRules, and pkg/util/iptables Monitor):

- `KUBE-IPTABLES-HINT` in mangle (IPv4 and IPv6): tells other components which iptables
  (legacy or nft) the node uses;
- IPv4 only: `KUBE-FIREWALL` in filter, jumped to from the start of OUTPUT and INPUT, holding the
  "block incoming localnet connections" rule (issues.k8s.io/90259: route_localnet, which
  kube-proxy sets for localhost NodePorts, must not let other hosts reach 127.0.0.0/8). Since
  v1.28 (IPTablesOwnershipCleanup) the kubelet makes no KUBE-MARK-DROP/-MASQ and no 0x8000 drop.
- the canary `KUBE-KUBELET-CANARY` in mangle, nat and filter: when the one in mangle is gone
  (someone flushed the tables), the kubelet waits for the others to go too and makes all of the
  above again.

kube-proxy (knet.proxy) writes an identical copy of the KUBE-FIREWALL rule and the same jumps
when localhost NodePorts are on, and keeps this chain's rules and jumps otherwise (foreign to it,
knet.proxy.iptables.merge_with_foreign): both agree rule for rule, so neither undoes the other.

The rules are data (`setup`); `sync` applies them through a `Runner` (the real one runs
`iptables -w` in the kubelet's own network namespace, which is the node's), idempotently: a chain
is made when missing (`-N`), a rule added when `-C` does not find it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

HINT_CHAIN = "KUBE-IPTABLES-HINT"
FIREWALL_CHAIN = "KUBE-FIREWALL"
CANARY_CHAIN = "KUBE-KUBELET-CANARY"
CANARY_TABLES = ("mangle", "nat", "filter")
LOCALNET_RULE = ("-m", "comment", "--comment", "block incoming localnet connections",
                 "--dst", "127.0.0.0/8", "!", "--src", "127.0.0.0/8",
                 "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")
# upstream checks every minute; knet's nodes are cheap to check and users flush to see it come back
MONITOR_INTERVAL = 5.0
FLUSH_WAIT = 0.1      # iptablesFlushPollTime
FLUSH_TIMEOUT = 5.0   # iptablesFlushTimeout


@dataclass(frozen=True)
class EnsureChain:
    table: str
    chain: str


@dataclass(frozen=True)
class EnsureRule:
    table: str
    chain: str
    args: tuple[str, ...]
    prepend: bool = False  # upstream's Prepend (-I CHAIN 1), else Append (-A)


Step = EnsureChain | EnsureRule


def setup(ipv6: bool) -> list[Step]:
    """syncIPTablesRules' steps, in its order. Pure."""
    steps: list[Step] = [EnsureChain("mangle", HINT_CHAIN)]
    if not ipv6:  # "ipv6 doesn't have this issue"
        steps += [
            EnsureChain("filter", FIREWALL_CHAIN),
            EnsureRule("filter", "OUTPUT", ("-j", FIREWALL_CHAIN), prepend=True),
            EnsureRule("filter", "INPUT", ("-j", FIREWALL_CHAIN), prepend=True),
            EnsureRule("filter", FIREWALL_CHAIN, LOCALNET_RULE),
        ]
    return steps


class Runner(Protocol):
    def __call__(self, args: list[str]) -> int:
        """Run `iptables ARGS` (or ip6tables); its exit code."""
        ...


def ensure_argv(step: Step) -> tuple[list[str] | None, list[str]]:
    """(the check that says it is there already, or None for a chain; the command that makes it)."""
    if isinstance(step, EnsureChain):
        return None, ["-t", step.table, "-N", step.chain]
    position = ["-I", step.chain, "1"] if step.prepend else ["-A", step.chain]
    return ["-t", step.table, "-C", step.chain, *step.args], ["-t", step.table, *position, *step.args]


def sync(run: Runner, ipv6: bool = False) -> bool:
    """Apply setup(ipv6); False when a step failed (as upstream, the rest are not tried)."""
    for step in setup(ipv6):
        check, make = ensure_argv(step)
        if isinstance(step, EnsureChain):
            if run(make) != 0 and not chain_exists(run, step.table, step.chain):
                log.error("iptables: failed to ensure that %s chain %s exists", step.table, step.chain)
                return False
        elif run(check) != 0 and run(make) != 0:  # type: ignore[arg-type]
            log.error("iptables: failed to ensure rule %s in %s chain %s", " ".join(step.args), step.table, step.chain)
            return False
    return True


def chain_exists(run: Runner, table: str, chain: str) -> bool:
    return run(["-t", table, "-L", chain, "-n"]) == 0


def ensure_canaries(run: Runner) -> bool:
    ok = True
    for table in CANARY_TABLES:
        if run(["-t", table, "-N", CANARY_CHAIN]) != 0 and not chain_exists(run, table, CANARY_CHAIN):
            log.error("iptables: could not set up the canary in table %s", table)
            ok = False
    return ok


async def monitor(run: Runner, reload: Callable[[], object], *, interval: float = MONITOR_INTERVAL,
                  flush_wait: float = FLUSH_WAIT, flush_timeout: float = FLUSH_TIMEOUT) -> None:
    """pkg/util/iptables Monitor: canaries in every table; when the first table's is gone, wait
    (up to flush_timeout) for the others to go too, then reload and set the canaries again."""
    while True:
        while not await asyncio.to_thread(ensure_canaries, run):
            await asyncio.sleep(interval)
        while await asyncio.to_thread(chain_exists, run, CANARY_TABLES[0], CANARY_CHAIN):
            await asyncio.sleep(interval)
        log.info("iptables canary deleted (table %s): waiting for the other canaries", CANARY_TABLES[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout
        while loop.time() < deadline:
            others = [await asyncio.to_thread(chain_exists, run, t, CANARY_CHAIN) for t in CANARY_TABLES[1:]]
            if not any(others):
                break
            await asyncio.sleep(flush_wait)
        else:
            log.info("inconsistent iptables state detected")
        log.info("reloading the kubelet's iptables rules after a flush")
        await asyncio.to_thread(reload)


def real_runner(binary: str = "iptables") -> Runner:
    def run(args: list[str]) -> int:
        try:
            return subprocess.run([binary, "-w", "5", *args], capture_output=True).returncode
        except OSError:
            return 127
    return run


def in_knet_node(netns_dir: str = "/run/netns", prefix: str = "knet-") -> bool:
    """Whether this process's network namespace is a knet node's (`ip netns` names them knet-...):
    the kubelet writes rules only there, never in the host's own tables."""
    try:
        own = os.stat("/proc/self/ns/net")
        names = os.listdir(netns_dir)
    except OSError:
        return False
    for name in names:
        if name.startswith(prefix):
            try:
                st = os.stat(os.path.join(netns_dir, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                return True
    return False


async def run_forever() -> None:
    """initNetworkUtil: sync IPv4 and IPv6, then watch each protocol's canaries."""
    tasks = []
    for binary, ipv6 in (("iptables", False), ("ip6tables", True)):
        run = real_runner(binary)
        if await asyncio.to_thread(sync, run, ipv6):
            log.info("Initialized iptables rules. protocol=%s", "IPv6" if ipv6 else "IPv4")
            tasks.append(asyncio.create_task(monitor(run, lambda run=run, ipv6=ipv6: sync(run, ipv6))))
        else:
            log.info("Failed to initialize iptables rules; some functionality may be missing. protocol=%s",
                     "IPv6" if ipv6 else "IPv4")
    if tasks:
        await asyncio.gather(*tasks)
