"""Pods per node on the real dataplane: N pods bound to one node at once, time until all are
Running, and the memory each pod costs on its node (issue #13: 100 pods on one node all Running in
under 15 s).

    python bench/node_density_bench.py              # 100 pods on node01 (root)
    python bench/node_density_bench.py --pods 30    # smaller

Each pod is one agnhost `pause` container under runc (a pause sandbox, a shim-less `runc run`,
the container). Memory per pod is the growth of the node's proportional set size (PSS, from
/proc/PID/smaps_rollup: shared pages split between their users, so the interpreter's pages are
not counted once per process) over every process in the node machine's PID namespace, divided
by N. The cluster is torn down with `knet down` afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from knet.cluster.testing import ClusterUnderTest

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"


def node_pids(node_pid1: int) -> list[int]:
    """Every process in the PID namespace whose init is `node_pid1` (a node machine)."""
    want = os.readlink(f"/proc/{node_pid1}/ns/pid")
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == want:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def pss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total_kib += next((int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")), 0)
    return total_kib / 1024


def node_init_pid(cluster: ClusterUnderTest, node: str) -> int:
    """The node machine's PID 1 as the host sees it (net/machines.py writes it at start)."""
    return int((cluster.state_dir / cluster.name / "nodes" / node / "init.pid").read_text().split()[0])


def pods_manifest(count: int, node: str) -> str:
    items = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"dense-{i:03d}", "namespace": "density"},
              "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                       "containers": [{"name": "c", "image": IMAGE, "args": ["pause"]}]}} for i in range(count)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def running(cluster: ClusterUnderTest) -> int:
    out = cluster.kubectl("get", "pods", "-n", "density", "-o", "jsonpath={.items[*].status.phase}").stdout
    return out.split().count("Running")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--node", default="node01")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (real dataplane)", file=sys.stderr)
        return 2
    with ClusterUnderTest.up(nodes=2, dataplane="real") as cluster:
        pid1 = node_init_pid(cluster, args.node)
        cluster.kubectl("create", "namespace", "density")
        time.sleep(2)  # the node's own agents settle
        before = pss_mib(node_pids(pid1))
        start = time.monotonic()
        cluster.kubectl("apply", "-f", "-", input=pods_manifest(args.pods, args.node))
        seen = 0
        while time.monotonic() - start < args.timeout:
            seen = running(cluster)
            if seen >= args.pods:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        if seen < args.pods:
            print(f"only {seen}/{args.pods} pods Running after {args.timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(2)
        after = pss_mib(node_pids(pid1))
        print(f"{args.pods} pods on {args.node}: all Running in {elapsed:.1f} s (goal < 15 s for 100)")
        print(f"node PSS {before:.0f} MiB -> {after:.0f} MiB: {(after - before) / args.pods:.1f} MiB per pod")
    return 0


if __name__ == "__main__":
    sys.exit(main())
