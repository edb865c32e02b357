"""`knet trace --probe`: a real TCP connection from the source, in its own network namespace, and
what the kernel did with it, checked against the walk: the outcome (connected, refused, timed out),
for a connection the endpoint conntrack recorded on the source's node (the reply's source is the
address kube-proxy's DNAT chose), and the rules the kernel itself says the first packet matched on
the source's node (iptables: a raw-table TRACE rule and `xtables-monitor --trace`; nftables: a
`meta nftrace set 1` table and `nft monitor trace`), in order, against the walk's rules there.

The side effects (finding the namespace, connecting, reading conntrack) sit behind Prober; the
comparison (`compare`) is pure.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Protocol

from knet.trace.path import TraceResult
from knet.trace.view import Place

CONNECT = r"""
import socket, sys
s = socket.socket(); s.settimeout(float(sys.argv[3]))
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[4]))); port = s.getsockname()[1]
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected", port)
except ConnectionRefusedError:
    print("refused", port)
except (socket.timeout, TimeoutError):
    print("timeout", port)
except OSError as e:
    print("error", port, e.errno)
"""


@dataclass
class ProbeResult:
    outcome: str          # connected, refused, timeout, error
    endpoint: str = ""    # "ip:port" the connection reached (conntrack's reply source)
    detail: str = ""
    kernel: list[tuple[str, str, str]] = field(default_factory=list)  # (table, chain, rule) on the source node
    kernel_node: str = ""


_XT = re.compile(r"^\s*TRACE: \d+ (\w+) (\w+):(\S+?):rule:0x[0-9a-f]+:\S*\s+-4 -t \w+ (-A .*)$")
_NFT = re.compile(r"^trace id (\w+) (ip|inet) (\S+) (\S+) rule (.*?)(?: \(verdict [^)]*\))?$")
NFT_TABLES = ("kube-proxy", "knet-netpol")  # what the walk reads in nftables mode (not iptables-nft's tables)
# The traced packet's id changes on the way (the bridge hands the IP layer another skb), so the
# first packet's lines are those from the tracing rule's first match to its second (a retransmit).


def parse_xtables_trace(text: str) -> list[tuple[str, str, str]]:
    """`xtables-monitor --trace` -> the rules the first traced packet matched (nat and filter)."""
    out: list[tuple[str, str, str]] = []
    started = False
    for line in text.splitlines():
        m = _XT.match(line)
        if not m:
            continue
        if m.group(2) == "raw" and m.group(4).endswith("-j TRACE"):
            if started:
                break
            started = True
        elif m.group(2) in ("nat", "filter"):
            out.append((m.group(2), m.group(3), m.group(4).strip()))
    return out


def parse_nft_trace(text: str, tables: tuple[str, ...] = NFT_TABLES) -> list[tuple[str, str, str]]:
    """`nft monitor trace` -> the rules of `tables` the first traced packet matched."""
    out: list[tuple[str, str, str]] = []
    started = False
    for line in text.splitlines():
        m = _NFT.match(line.strip())
        if not m:
            continue
        if m.group(3) == "knet-trace":
            if started:
                break
            started = True
        elif m.group(3) in tables:
            out.append((f"{m.group(2)} {m.group(3)}", m.group(4), m.group(5).strip()))
    return out


def _norm(rule: str) -> str:
    """A rule without its comment (xtables-monitor prints some comments as a bare `--`) or counters."""
    rule = re.sub(r'-m comment --comment (?:"[^"]*"|\S+)\s*', "", rule)
    rule = re.sub(r"-m comment --(?:\s+|$)", "", rule)
    rule = re.sub(r'\s*comment "[^"]*"', "", rule)
    rule = re.sub(r"\s*counter packets \d+ bytes \d+", "", rule)
    return " ".join(rule.split())


def compare_rules(result: TraceResult, probe: ProbeResult) -> tuple[bool, str]:
    """The kernel's matched rules on the source node against the walk's, for the path the kernel took."""
    if not probe.kernel:
        return False, f"the kernel traced no rule on node {probe.kernel_node} (is the trace supported there?)"
    path = next((p for p in result.paths if probe.endpoint and p.endpoint == probe.endpoint), result.paths[0])
    walked = []
    for hop in path.hops:
        if hop.node != probe.kernel_node or hop.hook == "route" and "-> node" in hop.note:
            if walked:
                break
            continue
        walked += [(s.table, s.chain, _norm(s.rule)) for s in hop.steps]
    kernel = [(t, c, _norm(r)) for t, c, r in probe.kernel]
    if kernel == walked:
        return True, f"the kernel matched the same {len(kernel)} rules on node {probe.kernel_node}"
    i = next((i for i, (a, b) in enumerate(zip(kernel, walked, strict=False)) if a != b), min(len(kernel), len(walked)))
    k = " ".join(kernel[i]) if i < len(kernel) else "(nothing more)"
    w = " ".join(walked[i]) if i < len(walked) else "(nothing more)"
    return False, f"on node {probe.kernel_node}, rule {i + 1}: the kernel matched {k}; the walk {w}"


class Prober(Protocol):
    def connect(self, source: Place, dst: str, port: int, timeout: float) -> ProbeResult: ...


def parse_conntrack(text: str, src: str, sport: int, dst: str = "") -> str:
    """`conntrack -L` lines -> the reply's source "ip:port" of the connection from src:sport (src ""
    on another node: any source, as a node on the way may have masqueraded it; then dst says which)."""
    for line in text.splitlines():
        fields = re.findall(r"(src|dst|sport|dport)=(\S+)", line)
        if (len(fields) >= 8 and (not src or fields[0] == ("src", src)) and ("sport", str(sport)) in fields[:4]
                and (not dst or fields[1] == ("dst", dst))):
            reply = dict(fields[4:8])
            return f"{reply['src']}:{reply['sport']}"
    return ""


def compare(result: TraceResult, probe: ProbeResult) -> tuple[bool, str]:
    """Does the kernel agree with the walk? (agreed, what to print)"""
    paths = result.paths
    if probe.outcome == "connected":
        match = next((p for p in paths if p.endpoint == probe.endpoint), None)
        if match is None:
            return False, (f"the kernel connected to {probe.endpoint}, which no walked path reaches "
                           f"({', '.join(p.endpoint for p in paths)})")
        if match.verdict != "delivered":
            return False, f"the kernel connected to {probe.endpoint}; the walk says {match.reason}"
        return True, f"connected to {probe.endpoint}: the walk's path with probability {match.probability:.4g}"
    want = {"refused": "rejected", "timeout": "dropped"}.get(probe.outcome)
    if want and all(p.verdict in (want, "unrouted") if want == "dropped" else p.verdict == want for p in paths):
        return True, f"{probe.outcome}, as the walk says ({paths[0].reason})"
    return False, (f"the kernel's answer was {probe.outcome}{' ' + probe.detail if probe.detail else ''}; "
                   f"the walk says {'; '.join(sorted({p.reason for p in paths}))}")


def _pause_pids() -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.path.basename(os.readlink(f"/proc/{name}/exe")).startswith("knet-pause"):
                    out.append(int(name))
            except OSError:
                continue
    return out


def _has_address(pid: int, ip: str) -> bool:
    try:
        with open(f"/proc/{pid}/net/fib_trie") as f:
            text = f.read()
    except OSError:
        return False
    return re.search(rf"\|-- {re.escape(ip)}\n\s+/32 host LOCAL", text) is not None


@dataclass
class RealProber:
    """Connects from the source's network namespace (a pod's pause process, or the node's init)."""
    cluster: str
    mode: str = "iptables"

    def _netns_pid(self, source: Place) -> int:
        from knet.net.machines import load_machine

        if source.kind == "node":
            machine = load_machine(self.cluster, source.name)
            if machine is None:
                raise LookupError(f"node {source.name} is not running")
            return machine.init_pid
        if source.kind == "pod":
            for pid in _pause_pids():
                if _has_address(pid, source.ip):
                    return pid
            raise LookupError(f"no network namespace holds pod {source.name}'s address {source.ip}")
        raise LookupError("--probe sends from a pod or a node")

    def connect(self, source: Place, dst: str, port: int, timeout: float, nat_node: str = "") -> ProbeResult:
        """nat_node: the node whose kube-proxy translates the destination, when it is not the
        source's (a NodePort at another node's address): its conntrack names the endpoint."""
        import random
        import sys
        import time

        pid = self._netns_pid(source)
        node = source.node or source.name
        node_pid = self._netns_pid(Place("node", "", node, node))
        sport = random.randint(40000, 59999)
        hook = "OUTPUT" if source.kind == "node" else "PREROUTING"
        # the SYN only: the connection's later packets may reuse the traced skb's id
        match = f"-p tcp -s {source.ip} --sport {sport} --syn"

        def in_node(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["nsenter", f"--target={node_pid}", "--net", "--", *argv], input=stdin,
                                  capture_output=True, text=True, check=False, timeout=10)

        if self.mode == "nftables":
            hook_name = "output" if hook == "OUTPUT" else "prerouting"
            in_node("nft", "-f", "-", stdin=(
                f"table ip knet-trace {{\n chain c {{\n  type filter hook {hook_name} priority -400 ;\n"
                f"  ip saddr {source.ip} tcp sport {sport} tcp flags & (fin|syn|rst|ack) == syn "
                f"meta nftrace set 1\n }}\n}}\n"))
            monitor_argv = ["nft", "monitor", "trace"]
        else:
            in_node("iptables", "-w", "5", "-t", "raw", "-I", hook, "1", *match.split(), "-j", "TRACE")
            monitor_argv = ["xtables-monitor", "--trace"]
        monitor = subprocess.Popen(["nsenter", f"--target={node_pid}", "--net", "--", *monitor_argv],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(0.3)  # the monitor subscribes before the packet
            p = subprocess.run(["nsenter", f"--target={pid}", "--net", "--", sys.executable, "-c", CONNECT,
                                dst, str(port), str(timeout), str(sport)], capture_output=True, text=True,
                               check=False, timeout=timeout + 10)
            time.sleep(0.2)
        finally:
            monitor.terminate()
            traced, _ = monitor.communicate(timeout=5)
            if self.mode == "nftables":
                in_node("nft", "delete", "table", "ip", "knet-trace")
            else:
                in_node("iptables", "-w", "5", "-t", "raw", "-D", hook, *match.split(), "-j", "TRACE")
        kernel = parse_nft_trace(traced) if self.mode == "nftables" else parse_xtables_trace(traced)
        words = p.stdout.split()
        if p.returncode != 0 or len(words) < 2:
            return ProbeResult("error", detail=p.stderr.strip()[:300], kernel=kernel, kernel_node=node)
        outcome = words[0]
        if outcome != "connected":
            return ProbeResult(outcome, detail=" ".join(words[2:]), kernel=kernel, kernel_node=node)
        ct = in_node("conntrack", "-L", "-p", "tcp", "--orig-src", source.ip, "--sport", str(sport))
        endpoint = parse_conntrack(ct.stdout, source.ip, sport)
        if nat_node and nat_node != node and endpoint == f"{dst}:{port}":  # not translated here
            nat_pid = self._netns_pid(Place("node", "", nat_node, nat_node))
            ct = subprocess.run(["nsenter", f"--target={nat_pid}", "--net", "--", "conntrack", "-L", "-p", "tcp",
                                 "--orig-dst", dst, "--dport", str(port)],
                                capture_output=True, text=True, check=False, timeout=10)
            endpoint = parse_conntrack(ct.stdout, "", sport, dst)
        return ProbeResult("connected", endpoint, "" if ct.returncode == 0 else ct.stderr.strip()[:300], kernel, node)
