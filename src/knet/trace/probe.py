"""`knet trace --probe`: a real TCP connection (or UDP datagram) from the source, in its own network
namespace, and what the kernel did with it, checked against the walk: the outcome (connected or
answered, refused, timed out), for a connection the endpoint conntrack recorded (the reply's source
is the address kube-proxy's DNAT chose), and the rules the kernel itself says the first packet
matched on every node it crossed (iptables: a raw-table TRACE rule and `xtables-monitor --trace`;
nftables: a `meta nftrace set 1` table and `nft monitor trace`, on each node the walk's paths
visit), in order, against the walk's rules on each of those nodes.

The side effects (finding the namespaces, connecting, tracing, reading conntrack) sit behind
RealProber; what the tracing rules match (`trace_match`, `nft_trace_table`, `iptables_trace_rules`),
the parsers and the comparisons (`compare`, `compare_rules`) are pure.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field

from knet.proxy.walk import Step
from knet.trace.path import Path, TraceResult
from knet.trace.view import Place

PROTOCOLS = ("tcp", "udp")  # what --probe sends (SCTP: see cli/trace.py)

CONNECT = r"""
import socket, sys
dst, port, timeout, sport, proto = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
s.settimeout(timeout)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", sport)); port_here = s.getsockname()[1]
try:
    s.connect((dst, port))
    if proto == "udp":  # agnhost netexec's UDP server answers "hostname" with the pod's name
        s.send(b"hostname")
        print("connected", port_here, s.recv(512).decode(errors="replace").strip()[:100])
    else:
        print("connected", port_here)
except ConnectionRefusedError:
    print("refused", port_here)
except (socket.timeout, TimeoutError):
    print("timeout", port_here)
except OSError as e:
    print("error", port_here, e.errno)
"""

Rule = tuple[str, str, str]  # (table, chain, rule text)


@dataclass
class ProbeResult:
    outcome: str          # connected (TCP: the handshake completed; UDP: an answer came), refused, timeout, error
    endpoint: str = ""    # "ip:port" the connection reached (conntrack's reply source)
    detail: str = ""
    kernel: list[Rule] = field(default_factory=list)  # the first packet's rules on the source node
    kernel_node: str = ""
    # node -> each pass of the first packet through it (a NodePort's packet may come back), in order
    segments: dict[str, list[list[Rule]]] = field(default_factory=dict)
    protocol: str = "tcp"

    def traced(self) -> dict[str, list[list[Rule]]]:
        if self.segments:
            return self.segments
        return {self.kernel_node: [self.kernel]} if self.kernel_node else {}


# -- what the tracing rule matches, on every node (pure) -------------------------------------------

@dataclass(frozen=True)
class TraceMatch:
    """The probe's first packet, as it arrives at any node of the walk: from the source (or, after a
    masquerade, from a node of the path), to the target or one of the walk's endpoints. The source
    port only when nothing on the way masquerades (kube-proxy's masquerade is fully random)."""
    proto: str
    saddrs: tuple[str, ...]
    daddrs: tuple[str, ...]
    dports: tuple[int, ...]
    sport: int | None


def trace_match(result: TraceResult, sport: int, node_ips: dict[str, str]) -> TraceMatch:
    saddrs = {result.source.ip}
    daddrs = {result.packet.dst}
    dports = {result.packet.dport}
    masqueraded = False
    for p in result.paths:
        ip, _, port = p.endpoint.rpartition(":")
        if ip:
            daddrs.add(ip)
        if port.isdigit():
            dports.add(int(port))
        if p.masquerade:
            masqueraded = True
            saddrs |= {node_ips[h.node] for h in p.hops if node_ips.get(h.node)}
    return TraceMatch(result.packet.proto, tuple(sorted(saddrs)), tuple(sorted(daddrs)), tuple(sorted(dports)),
                      None if masqueraded else sport)


def _nft_set(values: tuple[object, ...]) -> str:
    return str(values[0]) if len(values) == 1 else "{ " + ", ".join(str(v) for v in values) + " }"


def nft_trace_table(m: TraceMatch, output: bool = False) -> str:
    """`nft -f` input: a table whose chains (before everything else) set nftrace on the probe's packet."""
    match = (f"ip saddr {_nft_set(m.saddrs)} ip daddr {_nft_set(m.daddrs)} {m.proto} dport {_nft_set(m.dports)}"
             + (f" {m.proto} sport {m.sport}" if m.sport else "")
             + (" tcp flags & (fin|syn|rst|ack) == syn" if m.proto == "tcp" else ""))
    chains = [("pre", "prerouting")] + ([("out", "output")] if output else [])
    body = "".join(f" chain {name} {{\n  type filter hook {hook} priority -400 ;\n  {match} meta nftrace set 1\n }}\n"
                   for name, hook in chains)
    return f"table ip knet-trace {{\n{body}}}\n"


def iptables_trace_rules(m: TraceMatch, output: bool = False) -> list[list[str]]:
    """The raw-table TRACE rules (as `iptables -t raw -I CHAIN 1` arguments after the chain name);
    iptables expands the address lists into one rule per pair, and a packet matches one of them."""
    spec = ["-p", m.proto, "-s", ",".join(m.saddrs), "-d", ",".join(m.daddrs)]
    if m.sport:
        spec += ["--sport", str(m.sport)]
    if m.proto == "tcp":
        spec += ["--syn"]
    spec += ["-m", "multiport", "--dports", ",".join(str(p) for p in m.dports), "-j", "TRACE"]
    return [["PREROUTING", *spec]] + ([["OUTPUT", *spec]] if output else [])


# -- the kernel tracers' output (pure) -----------------------------------------------------------

_XT = re.compile(r"^\s*TRACE: \d+ (\w+) (\w+):(\S+?):rule:0x[0-9a-f]+:\S*\s+-4 -t \w+ (-A .*)$")
_NFT = re.compile(r"^trace id (\w+) (ip|inet) (\S+) (\S+) rule (.*?)(?: \(verdict [^)]*\))?$")
NFT_TABLES = ("kube-proxy", "knet-netpol")  # what the walk reads in nftables mode (not iptables-nft's tables)
# The traced packet's id changes on the way (the bridge hands the IP layer another skb), so a pass of
# the packet through the node is the lines from one match of the tracing rule to the next (the packet
# coming back, or a retransmit).


def xtables_segments(text: str) -> list[list[Rule]]:
    """`xtables-monitor --trace` -> the nat and filter rules of each traced pass, in order."""
    out: list[list[Rule]] = []
    for line in text.splitlines():
        m = _XT.match(line)
        if not m:
            continue
        if m.group(2) == "raw" and m.group(4).endswith("-j TRACE"):
            out.append([])
        elif m.group(2) in ("nat", "filter") and out:
            out[-1].append((m.group(2), m.group(3), m.group(4).strip()))
    return out


def nft_segments(text: str, tables: tuple[str, ...] = NFT_TABLES) -> list[list[Rule]]:
    """`nft monitor trace` -> the rules of `tables` each traced pass matched."""
    out: list[list[Rule]] = []
    for line in text.splitlines():
        m = _NFT.match(line.strip())
        if not m:
            continue
        if m.group(3) == "knet-trace":
            out.append([])
        elif m.group(3) in tables and out:
            out[-1].append((f"{m.group(2)} {m.group(3)}", m.group(4), m.group(5).strip()))
    return out


def parse_xtables_trace(text: str) -> list[Rule]:
    """The first traced pass only (a retransmitted SYN is not counted)."""
    segments = xtables_segments(text)
    return segments[0] if segments else []


def parse_nft_trace(text: str, tables: tuple[str, ...] = NFT_TABLES) -> list[Rule]:
    segments = nft_segments(text, tables)
    return segments[0] if segments else []


def _norm(rule: str) -> str:
    """A rule without its comment (xtables-monitor prints some comments as a bare `--`) or counters."""
    rule = re.sub(r'-m comment --comment (?:"[^"]*"|\S+)\s*', "", rule)
    rule = re.sub(r"-m comment --(?:\s+|$)", "", rule)
    rule = re.sub(r'\s*comment "[^"]*"', "", rule)
    rule = re.sub(r"\s*counter packets \d+ bytes \d+", "", rule)
    return " ".join(rule.split())


# -- the comparisons (pure) ---------------------------------------------------------------------

def walk_visits(path: Path) -> list[tuple[str, list[Step]]]:
    """Each pass of the walked path through a node (consecutive hops on one node), in order."""
    out: list[tuple[str, list[Step]]] = []
    for hop in path.hops:
        if not out or out[-1][0] != hop.node:
            out.append((hop.node, []))
        out[-1][1].extend(hop.steps)
    return out


def _kernel_path(result: TraceResult, probe: ProbeResult) -> Path:
    """The walked path the kernel took: the one to the endpoint it reached, else the one that crosses
    the nodes the kernel traced the packet on."""
    candidates = [p for p in result.paths if probe.endpoint and p.endpoint == probe.endpoint] or result.paths
    traced = set(probe.traced())
    for p in candidates:
        if {n for n, _ in walk_visits(p)} == traced:
            return p
    return candidates[0]


def compare_rules(result: TraceResult, probe: ProbeResult) -> tuple[bool, str]:
    """The kernel's matched rules on each node the packet crossed against the walk's, pass by pass."""
    traced = probe.traced()
    if not any(segment for segments in traced.values() for segment in segments):
        where = ", ".join(sorted(traced)) or probe.kernel_node or "any node"
        return False, f"the kernel traced no rule on node {where} (is the trace supported there?)"
    path = _kernel_path(result, probe)
    visits = walk_visits(path)
    passes: dict[str, int] = {}
    agreed: list[str] = []
    for node, steps in visits:
        i = passes[node] = passes.get(node, -1) + 1
        if node not in traced:
            return False, f"node {node}, where the walk goes, was not traced"
        walked = [(s.table, s.chain, _norm(s.rule)) for s in steps]
        segments = traced[node]
        if i >= len(segments):
            if walked:
                return False, (f"the kernel did not see the packet on node {node}"
                               f"{' again' if i else ''}; the walk matched {len(walked)} rules there")
            continue
        kernel = [(t, c, _norm(r)) for t, c, r in segments[i]]
        if kernel != walked:
            j = next((j for j, (a, b) in enumerate(zip(kernel, walked, strict=False)) if a != b),
                     min(len(kernel), len(walked)))
            k = " ".join(kernel[j]) if j < len(kernel) else "(nothing more)"
            w = " ".join(walked[j]) if j < len(walked) else "(nothing more)"
            return False, f"on node {node}, rule {j + 1}: the kernel matched {k}; the walk {w}"
        agreed.append(f"{len(kernel)} on node {node}")
    stray = sorted(n for n, segments in traced.items() if segments and n not in passes)
    if stray:
        return False, f"the kernel traced the packet on node {', '.join(stray)}, where the walk does not go"
    return True, f"the kernel matched the same rules: {', '.join(agreed)}"


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
        did = "answered from" if probe.protocol == "udp" else "connected to"
        match = next((p for p in paths if p.endpoint == probe.endpoint), None)
        if match is None:
            return False, (f"the kernel {did} {probe.endpoint}, which no walked path reaches "
                           f"({', '.join(p.endpoint for p in paths)})")
        if match.verdict != "delivered":
            return False, f"the kernel {did} {probe.endpoint}; the walk says {match.reason}"
        return True, f"{did} {probe.endpoint}: the walk's path with probability {match.probability:.4g}"
    want = {"refused": "rejected", "timeout": "dropped"}.get(probe.outcome)
    if want and all(p.verdict in (want, "unrouted") if want == "dropped" else p.verdict == want for p in paths):
        return True, f"{probe.outcome}, as the walk says ({paths[0].reason})"
    return False, (f"the kernel's answer was {probe.outcome}{' ' + probe.detail if probe.detail else ''}; "
                   f"the walk says {'; '.join(sorted({p.reason for p in paths}))}")


# -- the real side --------------------------------------------------------------------------------

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


def traced_nodes(result: TraceResult) -> list[str]:
    """Every node a walked path crosses, the source's first: where the kernel trace runs."""
    out: list[str] = []
    for p in result.paths:
        for h in p.hops:
            if h.node and h.node not in out:
                out.append(h.node)
    return out


@dataclass
class RealProber:
    """Sends from the source's network namespace (a pod's pause process, or the node's init) and
    traces on every node of the walk."""
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

    def probe(self, result: TraceResult, timeout: float, node_ips: dict[str, str]) -> ProbeResult:
        """result: the walk (what to send, and the nodes and addresses to trace). A NodePort at
        another node's address: that node's conntrack names the endpoint, as its kube-proxy chose it."""
        import random
        import sys
        import time

        source, proto = result.source, result.packet.proto
        dst, port = result.packet.dst, result.packet.dport
        nat_node = result.target.name if result.target.kind == "node" else ""
        pid = self._netns_pid(source)
        first = source.node or source.name
        nodes = [first] + [n for n in traced_nodes(result) if n != first]
        node_pids = {n: self._netns_pid(Place("node", "", n, n)) for n in nodes}
        sport = random.randint(40000, 59999)
        match = trace_match(result, sport, node_ips)

        def in_node(node: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["nsenter", f"--target={node_pids[node]}", "--net", "--", *argv], input=stdin,
                                  capture_output=True, text=True, check=False, timeout=10)

        def rules(node: str) -> list[list[str]]:
            return iptables_trace_rules(match, output=node == first and source.kind == "node")

        monitors: dict[str, subprocess.Popen[str]] = {}
        try:
            for node in nodes:
                if self.mode == "nftables":
                    in_node(node, "nft", "-f", "-", stdin=nft_trace_table(match, node == first and source.kind == "node"))
                    argv = ["nft", "monitor", "trace"]
                else:
                    for r in rules(node):
                        in_node(node, "iptables", "-w", "5", "-t", "raw", "-I", r[0], "1", *r[1:])
                    argv = ["xtables-monitor", "--trace"]
                monitors[node] = subprocess.Popen(["nsenter", f"--target={node_pids[node]}", "--net", "--", *argv],
                                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(0.3)  # the monitors subscribe before the packet
            p = subprocess.run(["nsenter", f"--target={pid}", "--net", "--", sys.executable, "-c", CONNECT,
                                dst, str(port), str(timeout), str(sport), proto], capture_output=True, text=True,
                               check=False, timeout=timeout + 10)
            time.sleep(0.2)
        finally:
            traces: dict[str, str] = {}
            for node, monitor in monitors.items():
                monitor.terminate()
                traces[node] = monitor.communicate(timeout=5)[0]
            for node in nodes:
                if self.mode == "nftables":
                    in_node(node, "nft", "delete", "table", "ip", "knet-trace")
                else:
                    for r in rules(node):
                        in_node(node, "iptables", "-w", "5", "-t", "raw", "-D", *r)
        parse = nft_segments if self.mode == "nftables" else xtables_segments
        segments = {node: parse(text) for node, text in traces.items()}
        kernel = segments.get(first, [[]])[0] if segments.get(first) else []
        base = {"kernel": kernel, "kernel_node": first, "segments": segments, "protocol": proto}
        words = p.stdout.split()
        if p.returncode != 0 or len(words) < 2:
            return ProbeResult("error", detail=p.stderr.strip()[:300], **base)
        outcome = words[0]
        if outcome != "connected":
            return ProbeResult(outcome, detail=" ".join(words[2:]), **base)
        ct = in_node(first, "conntrack", "-L", "-p", proto, "--orig-src", source.ip, "--sport", str(sport))
        endpoint = parse_conntrack(ct.stdout, source.ip, sport)
        if nat_node and nat_node != first and endpoint == f"{dst}:{port}":  # not translated here
            nat_pid = node_pids.get(nat_node) or self._netns_pid(Place("node", "", nat_node, nat_node))
            ct = subprocess.run(["nsenter", f"--target={nat_pid}", "--net", "--", "conntrack", "-L", "-p", proto,
                                 "--orig-dst", dst, "--dport", str(port)],
                                capture_output=True, text=True, check=False, timeout=10)
            endpoint = parse_conntrack(ct.stdout, "", sport, dst)
        detail = " ".join(words[2:]) if proto == "udp" else ""
        if ct.returncode != 0:
            detail = ct.stderr.strip()[:300]
        return ProbeResult("connected", endpoint, detail, **base)
