"""Where a kube-proxy sync's time goes, call by call (needs root):

  python bench/proxy_sync_bench.py [--mode iptables|nftables] [--services 10000]

In a fresh network namespace, N Services x 10 endpoints (bench/proxy_bench.py's objects): the first
full sync, a second full sync over the rules it wrote (a restart or a lost canary: it reads the
tables back first), the housekeeping that runs every syncPeriod (Proxier.housekeeping: canary and
other-mode checks), and five single-Service changes. Each line lists the tool calls with their
size and seconds; the rest of a sync is knet's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_bench import OPTS, feed, objects, slice_  # noqa: E402

from knet.proxy.netfilter import RealNetfilter  # noqa: E402
from knet.proxy.proxier import Proxier  # noqa: E402

NS = "knet-test-proxysyncbench"


class CallLog(RealNetfilter):
    """RealNetfilter noting each tool call: (what, lines in or out, seconds)."""
    calls: list[tuple[str, int, float]]

    def _note(self, what: str, size: int, t: float) -> None:
        self.calls.append((what, size, round(time.perf_counter() - t, 4)))

    def iptables_restore(self, text: str, *, noflush: bool = True) -> None:
        t = time.perf_counter()
        super().iptables_restore(text, noflush=noflush)
        self._note("iptables-restore" + (" --noflush" if noflush else ""), text.count("\n"), t)

    def iptables_restore_lines(self, lines, *, noflush: bool = True) -> None:  # noqa: ANN001
        t, n = time.perf_counter(), [0]

        def counted():  # noqa: ANN202
            for line in lines:
                n[0] += 1
                yield line
        super().iptables_restore_lines(counted(), noflush=noflush)
        self._note("iptables-restore (streamed while rendering)", n[0], t)

    def iptables_save(self, table: str) -> str:
        t = time.perf_counter()
        out = super().iptables_save(table)
        self._note(f"iptables-save {table or '(all)'}", out.count("\n"), t)
        return out

    def iptables(self, *args: str) -> bool:
        t = time.perf_counter()
        ok = super().iptables(*args)
        self._note("iptables " + " ".join(args), 0, t)
        return ok

    def nft(self, script: str) -> None:
        t = time.perf_counter()
        super().nft(script)
        self._note("nft transaction", script.count("\n"), t)

    def nft_list(self, *what: str) -> str:
        t = time.perf_counter()
        try:
            return super().nft_list(*what)
        finally:
            self._note("nft " + " ".join(what), 0, t)


def step(name: str, nf: CallLog, fn) -> dict:  # noqa: ANN001
    nf.calls = []
    t = time.perf_counter()
    out = fn()
    row = {"step": name, "seconds": round(time.perf_counter() - t, 4),
           "in_tools": round(sum(c[2] for c in nf.calls), 4), "calls": nf.calls}
    if out is not None:
        row.update(ok=out.ok, full=out.full)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="iptables", choices=("iptables", "nftables"))
    ap.add_argument("--services", type=int, default=10000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        nf = CallLog(netns=NS, libnftables=True)
        nf.calls = []
        p = Proxier(args.mode, OPTS, nf, hostname="node01")
        p.services_synced = p.endpoints_synced = True
        objs = objects(args.services)
        feed(p, objs)
        step("full sync (first)", nf, p.sync)

        def again():  # noqa: ANN202
            p.need_full_sync = True
            return p.sync()
        step("full sync (over existing rules)", nf, again)
        for _ in range(3):
            step("housekeeping", nf, p.housekeeping)
        old = objs[1]
        for k in range(5):
            new = slice_(old["metadata"]["namespace"], old["metadata"]["labels"]["kubernetes.io/service-name"],
                         [e["addresses"][0] for e in old["endpoints"][:-1]] + [f"10.201.255.{250 - k}"])
            p.on_endpoint_slice(old, new)
            old = new
            step("one change", nf, p.sync)
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)


if __name__ == "__main__":
    main()
