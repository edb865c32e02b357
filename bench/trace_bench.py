"""`knet trace` benchmark:

  python bench/trace_bench.py                          # the walk on rendered rules (no root)
  python bench/trace_bench.py --cluster NAME FROM TO   # `knet trace` against a running cluster

Without --cluster: a simulated cluster of --nodes nodes and --services Services x 10 endpoints
(pods spread over the nodes), one default-deny-plus-allow NetworkPolicy per 10 Services; the time
of one pod -> Service trace in each proxy mode, first (rendering the two nodes' rules, as on a
simulated cluster) and again (walk only). With --cluster: the wall time of the `knet trace`
command as a user runs it (process start, API reads, each node's rules read in its namespace).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def synthetic(nodes: int, services: int) -> list[dict]:
    objs: list[dict] = []
    for n in range(nodes):
        objs.append({"kind": "Node", "metadata": {"name": f"node{n:04d}"},
                     "spec": {"podCIDR": f"10.{244 + n // 256}.{n % 256}.0/24"},
                     "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.{n // 250}.{n % 250 + 2}"}]}})
    objs.append({"kind": "Namespace", "metadata": {"name": "bench", "labels": {"kubernetes.io/metadata.name": "bench"}}})
    pod_i = 0

    def pod(name: str, labels: dict) -> str:
        nonlocal pod_i
        n = pod_i % nodes
        ip = f"10.{244 + n // 256}.{n % 256}.{pod_i // nodes + 2}"
        pod_i += 1
        objs.append({"kind": "Pod", "metadata": {"namespace": "bench", "name": name, "labels": labels},
                     "spec": {"nodeName": f"node{n:04d}", "containers": [{"name": "c"}]},
                     "status": {"phase": "Running", "podIP": ip}})
        return ip

    pod("client", {"app": "client"})
    for s in range(services):
        eps = [(pod(f"s{s}-{e}", {"app": f"s{s}"}), f"node{pod_i % nodes:04d}") for e in range(10)]
        objs.append({"kind": "Service", "metadata": {"namespace": "bench", "name": f"s{s}"},
                     "spec": {"clusterIP": f"10.96.{s // 250}.{s % 250 + 10}",
                              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        objs.append({"kind": "EndpointSlice", "metadata": {"namespace": "bench", "name": f"s{s}-1",
                                                           "labels": {"kubernetes.io/service-name": f"s{s}"}},
                     "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                     "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip, _ in eps]})
        if s % 10 == 0:
            objs.append({"kind": "NetworkPolicy", "metadata": {"namespace": "bench", "name": f"p{s}"},
                         "spec": {"podSelector": {"matchLabels": {"app": f"s{s}"}}, "policyTypes": ["Ingress"],
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}})
    return objs


def bench_walk(nodes: int, services: int) -> list[dict]:
    from knet.trace import path
    from knet.trace.dataplane import RenderedDataplane
    from knet.trace.view import ClusterView, resolve

    view = ClusterView.of(synthetic(nodes, services))
    rows = []
    for mode in ("iptables", "nftables"):
        dp = RenderedDataplane(view, mode, "10.244.0.0/14", ("10.96.0.0/12",))
        src = resolve(view, "bench/client")
        dst = resolve(view, "svc/bench/s0", source=src)
        t0 = time.perf_counter()
        first = path.trace(view, dp, src, dst, 80)
        t1 = time.perf_counter()
        again = [path.trace(view, dp, src, dst, 80) for _ in range(5)]
        t2 = time.perf_counter()
        rows.append({"mode": mode, "nodes": nodes, "services": services, "paths": len(first.paths),
                     "verdicts": sorted({p.verdict for p in again[-1].paths}),
                     "first_trace_s": round(t1 - t0, 3), "walk_s": round((t2 - t1) / 5, 4)})
    return rows


def bench_cli(cluster: str, frm: str, to: str, runs: int) -> dict:
    argv = [sys.executable, "-m", "knet.cli.main", "trace", "--name", cluster, frm, to, "-o", "json"]
    times, verdict = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, env=os.environ, check=False)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        verdict = json.loads(p.stdout)["reason"]
    return {"cluster": cluster, "from": frm, "to": to, "runs": runs, "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3), "last_verdict": verdict}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", default="")
    ap.add_argument("endpoints", nargs="*", help="FROM TO (with --cluster)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--services", type=int, default=1000)
    args = ap.parse_args()
    if args.cluster:
        if len(args.endpoints) != 2:
            ap.error("--cluster needs FROM and TO")
        print(json.dumps(bench_cli(args.cluster, *args.endpoints, args.runs)))
    else:
        for row in bench_walk(args.nodes, args.services):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
