"""`knet trace --probe`: a real TCP connection from the source, in its own network namespace, and
what the kernel did with it, checked against the walk. Not the kernel's rule-by-rule trace (nft
monitor trace / xtables-monitor): the outcome (connected, refused, timed out) and, for a
connection, the endpoint conntrack recorded on the source's node (the reply's source is the
address kube-proxy's DNAT chose).

The side effects (finding the namespace, connecting, reading conntrack) sit behind Prober; the
comparison (`compare`) is pure.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Protocol

from knet.trace.path import TraceResult
from knet.trace.view import Place

CONNECT = r"""
import socket, sys
s = socket.socket(); s.settimeout(float(sys.argv[3]))
s.bind(("", 0)); port = s.getsockname()[1]
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


class Prober(Protocol):
    def connect(self, source: Place, dst: str, port: int, timeout: float) -> ProbeResult: ...


def parse_conntrack(text: str, src: str, sport: int) -> str:
    """`conntrack -L` lines -> the reply's source "ip:port" of the connection from src:sport."""
    for line in text.splitlines():
        fields = re.findall(r"(src|dst|sport|dport)=(\S+)", line)
        if len(fields) >= 8 and fields[0] == ("src", src) and ("sport", str(sport)) in fields[:4]:
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

    def connect(self, source: Place, dst: str, port: int, timeout: float) -> ProbeResult:
        import sys

        pid = self._netns_pid(source)
        p = subprocess.run(["nsenter", f"--target={pid}", "--net", "--", sys.executable, "-c", CONNECT,
                            dst, str(port), str(timeout)], capture_output=True, text=True, check=False,
                           timeout=timeout + 10)
        words = p.stdout.split()
        if p.returncode != 0 or len(words) < 2:
            return ProbeResult("error", detail=p.stderr.strip()[:300])
        outcome, sport = words[0], int(words[1])
        if outcome != "connected":
            return ProbeResult(outcome, detail=" ".join(words[2:]))
        node = source.node or source.name
        machine_pid = self._netns_pid(Place("node", "", node, node))
        ct = subprocess.run(["nsenter", f"--target={machine_pid}", "--net", "--", "conntrack", "-L", "-p", "tcp",
                             "--orig-src", source.ip, "--sport", str(sport)],
                            capture_output=True, text=True, check=False)
        return ProbeResult("connected", parse_conntrack(ct.stdout, source.ip, sport),
                           "" if ct.returncode == 0 else ct.stderr.strip()[:300])
