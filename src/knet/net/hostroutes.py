"""The host's side of a real cluster's network (docs/contracts.md s.7; issue #15 item 4).

Routes into the cluster. The host routes the cluster's pod and Service ranges to the controlplane
node's address on the cluster bridge, as a kubeadm controlplane's own shell reaches them:
`curl <ClusterIP>` is DNATed by the controlplane's kube-proxy (which masquerades it, the source
being outside --cluster-cidr), `ping <podIP>` is forwarded by the controlplane. A pod on another
node would answer the host straight over the bridge, a path the controlplane never sees, and the
controlplane's conntrack would call the connection INVALID (kube-proxy drops those): so the
controlplane masquerades the host's traffic to pods that leaves it by eth0 (chain
KNET-HOST-ACCESS in its nat table), and the reply comes back the way it went.

Nothing leaks. Nodes have a default route to the host's address on the bridge. A policy rule
`iif BRIDGE prohibit`, looked up after the local table (so packets to the host's own
addresses are delivered) and before every routing table, refuses every packet from the bridge the
host would otherwise route (ICMP "packet filtered", a hard error: a node's connect() or
resolver fails at once, where "net unreachable" is a soft error UDP sockets ignore): nothing of the cluster is forwarded beyond its
bridge (to the uplink, to another cluster), whatever ip_forward and NAT rules the host has.
The bridge itself gets forwarding=1 (its own sysctl, gone with it): a host that does not forward
drops such packets without a word, and a node's resolver asking the host's nameserver would wait
out its timeouts; a host that forwards on the bridge sends the ICMP refusal the rule chose,
so a node learns at once. Packets from the bridge are routed by this rule only, so forwarding on
the bridge forwards nothing (tests/e2e/test_host_leak_guard.py shows both).

The host's nameservers. A node's /etc/resolv.conf names the host's nameservers, which it cannot
reach; with a default route its resolver would send to the host and wait out its timeouts
(the host's refusals are ICMP, which the kernel rate-limits: `iptables --list` in a node, which
looks up every address, took a minute). So each node has an `unreachable` route for each of
them: the lookup fails at once inside the node, as before nodes had a default route.

Removal. Routes through the bridge go with the bridge. The rule names the bridge and outlives it
(iproute2 shows it "detached"), so teardown deletes every rule whose iif is the bridge; the name
comes from the cluster's name, which works after kill -9 and without the state dir.

Decisions are pure functions; the iproute2/iptables calls go through a `Runner`.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterable, Sequence

# Before any table a user or VPN adds rules for (main is 32766, Tailscale 52xx, wg-quick 3276x),
# after the local table (0).
LEAK_GUARD_PRIORITY = 100
LEAK_GUARD_ACTION = "prohibit"  # ICMP destination unreachable, code 13 (communication administratively prohibited)
HOST_ACCESS_CHAIN = "KNET-HOST-ACCESS"

Runner = Callable[[Sequence[str], str | None], subprocess.CompletedProcess[str]]


def run_command(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=20)


# ---- pure decisions -----------------------------------------------------------------------------

def route_args(bridge: str, via: str, cidrs: Iterable[str]) -> list[list[str]]:
    """`ip` argv (without `ip`) routing each range to `via` on the cluster bridge."""
    return [["route", "replace", cidr, "via", via, "dev", bridge] for cidr in cidrs]


def guard_rule_args(bridge: str) -> list[str]:
    return ["rule", "add", "iif", bridge, "priority", str(LEAK_GUARD_PRIORITY), LEAK_GUARD_ACTION]


def rules_of_bridge(rules: list[dict], bridge: str) -> list[list[str]]:
    """`ip` argv deleting every policy rule that matches packets from `bridge` (from `ip -j rule`)."""
    return [["rule", "del", "priority", str(r["priority"]), "iif", bridge]
            for r in rules if r.get("iif") == bridge and "priority" in r]


def has_guard(rules: list[dict], bridge: str) -> bool:
    return any(r.get("iif") == bridge and r.get("action") == LEAK_GUARD_ACTION
               and r.get("priority") == LEAK_GUARD_PRIORITY for r in rules)


def added_routes_of_bridge(routes: list[dict], bridge: str) -> list[list[str]]:
    """`ip` argv deleting the routes through `bridge` that the kernel did not make (from `ip -j
    route show table all dev BRIDGE`)."""
    out = []
    for r in routes:
        if r.get("protocol") == "kernel" or r.get("type") in ("local", "broadcast") or "dst" not in r:
            continue
        args = ["route", "del", r["dst"], "dev", bridge]
        if r.get("table") not in (None, "main"):
            args += ["table", str(r["table"])]
        out.append(args)
    return out


def nameserver_addresses(resolv_conf: str) -> list[str]:
    """The IPv4 nameservers of a resolv.conf, in order."""
    found = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                found.append(str(ipaddress.IPv4Address(fields[1])))
            except ValueError:
                continue
    return found


def node_nameserver_routes(nameservers: Iterable[str], node_network: str) -> list[str]:
    """`ip -batch` lines for a node: an unreachable route to each nameserver it cannot reach
    (not loopback, not on the node network)."""
    net = ipaddress.IPv4Network(node_network, strict=False)
    lines = []
    for ns in dict.fromkeys(nameservers):
        address = ipaddress.IPv4Address(ns)
        if not address.is_loopback and address not in net:
            lines.append(f"route replace unreachable {address}/32")
    return lines


def host_access_restore(host_ip: str, pod_cidr: str) -> str:
    """iptables-restore input (with --noflush) for the controlplane node: masquerade the host's
    traffic to pods on other nodes so that their replies come back through the controlplane."""
    return "\n".join([
        "*nat",
        f":{HOST_ACCESS_CHAIN} - [0:0]",
        f"-A {HOST_ACCESS_CHAIN} -s {host_ip}/32 -d {pod_cidr} -o eth0 "
        '-m comment --comment "knet: the host\'s traffic to pods on other nodes" -j MASQUERADE',
        "COMMIT",
        "",
    ])


def host_access_jump() -> list[str]:
    return ["-t", "nat", "POSTROUTING", "-j", HOST_ACCESS_CHAIN]


# ---- side effects -------------------------------------------------------------------------------

def _ip(run: Runner, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run(["ip", *args], None)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _json(run: Runner, args: Sequence[str]) -> list[dict]:
    result = _ip(run, ["-j", *args], check=False)
    try:
        return json.loads(result.stdout or "[]")
    except ValueError:
        return []


def bridge_forwarding_args(bridge: str) -> list[str]:
    return ["sysctl", "-qw", f"net.ipv4.conf.{bridge}.forwarding=1"]


def install_leak_guard(bridge: str, run: Runner = run_command) -> None:
    """The rule that keeps packets from the bridge on this machine, then forwarding on the bridge
    (so that the rule's refusal is told, never before the rule is in place). Idempotent."""
    if not has_guard(_json(run, ["-4", "rule", "show"]), bridge):
        _ip(run, guard_rule_args(bridge))
    if not has_guard(_json(run, ["-4", "rule", "show"]), bridge):
        raise RuntimeError(f"the policy rule for {bridge} did not appear; not enabling forwarding on it")
    result = run(bridge_forwarding_args(bridge), None)
    if result.returncode != 0:
        raise RuntimeError(f"sysctl net.ipv4.conf.{bridge}.forwarding=1: {result.stderr.strip()}")


def route_into_cluster(bridge: str, via: str, cidrs: Iterable[str], run: Runner = run_command) -> None:
    """Route the cluster's ranges from the host to `via` (the controlplane) on the bridge."""
    for args in route_args(bridge, via, cidrs):
        _ip(run, args)


def remove_host_side(bridge: str, run: Runner = run_command) -> list[str]:
    """Delete every rule and added route of the bridge; returns what it deleted (for the user).
    Forwarding on the bridge (if it still exists) goes off first: the rule never goes while the
    bridge forwards."""
    run(["sysctl", "-qw", f"net.ipv4.conf.{bridge}.forwarding=0"], None)  # fails if the bridge is gone: fine
    done = []
    for args in added_routes_of_bridge(_json(run, ["-4", "route", "show", "table", "all", "dev", bridge]), bridge):
        if _ip(run, args, check=False).returncode == 0:
            done.append(f"route {args[2]}")
    for args in rules_of_bridge(_json(run, ["-4", "rule", "show"]), bridge):
        if _ip(run, args, check=False).returncode == 0:
            done.append(f"rule iif {bridge}")
    return done


def install_host_access(netns: str, host_ip: str, pod_cidr: str, run: Runner = run_command) -> None:
    """In the controlplane node: the KNET-HOST-ACCESS chain and its jump from POSTROUTING. Idempotent."""
    in_ns = ["ip", "netns", "exec", netns]
    result = run([*in_ns, "iptables-restore", "-w", "--noflush"], host_access_restore(host_ip, pod_cidr))
    if result.returncode != 0:
        raise RuntimeError(f"iptables-restore in {netns}: {result.stderr.strip()}")
    jump = host_access_jump()
    if run([*in_ns, "iptables", "-w", *jump[:2], "-C", *jump[2:]], None).returncode != 0:
        result = run([*in_ns, "iptables", "-w", *jump[:2], "-A", *jump[2:]], None)
        if result.returncode != 0:
            raise RuntimeError(f"iptables in {netns}: {result.stderr.strip()}")
