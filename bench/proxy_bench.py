"""kube-proxy benchmark, both modes (needs root for the apply and latency parts):

  python bench/proxy_bench.py [--sizes 1000,5000,10000] [--modes iptables,nftables]
                              [--nft-shapes v1.29,v1.37] [--workloads uniform,mix] [--json FILE]

For N services x 10 endpoints ("uniform"), and for N services of a realistic mix ("mix": 40% with one
endpoint, 20% two, 10% three, 10% five, 10% ten, 10% thirty; 2% ClientIP affinity; every tenth a
NodePort): model ingest, full render time and peak memory (tracemalloc), full
apply in a fresh network namespace (iptables-restore / nft -f, as the proxier does it), and one
Service changed with N present (a partial sync: render + apply). Then the first-packet latency:
TCP connect() time to a Service's ClusterIP from another "machine" namespace through the node's
rules, with 10 and with 10,000 Services present (the target sorts last in KUBE-SERVICES).

nftables runs once per rule shape (`--nft-shapes`, the kubernetesVersion whose upstream rules are
written, knet.proxy.nftables.Shape): v1.29 (knet's default: per-endpoint chains, a verdict map per
Service) against v1.37 (upstream's newest: no endpoint chains, no map for one endpoint), the
`shape` column of each row. nftables goes through one long-lived libnftables context (knet.proxy.libnft) as the proxier
does; `one_change_nft_process_s` is the same change applied by an `nft -f` process per
transaction (the path before issue #19) for comparison, and `--nft-process` runs everything that way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from timed_netfilter import TimedNetfilter  # noqa: E402

from knet.proxy import iptables, nftables  # noqa: E402
from knet.proxy.netfilter import RealNetfilter  # noqa: E402
from knet.proxy.options import RenderOptions  # noqa: E402
from knet.proxy.proxier import Proxier  # noqa: E402

BENCH_NS = "knet-test-proxybench"  # not under the e2e prefix, which e2e cleanup removes
OPTS = RenderOptions(node_name="node01", node_ip="192.168.50.1", cluster_cidr="10.244.0.0/16",
                     node_ips=("192.168.50.1", "10.244.1.1", "127.0.0.1"))


def ip4(base: int, i: int) -> str:
    return f"{base >> 24 & 255}.{base >> 16 & 255 | i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


MIX = (1, 1, 1, 1, 2, 2, 3, 5, 10, 30)  # endpoints of Service i: MIX[i % 10] (5.6 on average)


def objects(n: int, endpoints: int = 10, workload: str = "uniform") -> list[dict]:
    out = []
    first_ep = 0
    for i in range(n):
        ns, name = f"ns{i % 100}", f"svc{i:05d}"
        count = endpoints if workload == "uniform" else MIX[i % 10]
        affinity = workload == "mix" and i % 50 == 7  # 2%, spread over endpoint counts
        out.append({"kind": "Service", "metadata": {"namespace": ns, "name": name},
                    "spec": {"clusterIP": ip4(10 << 24 | 96 << 16, i + 100), "type": "NodePort" if i % 10 == 0 else "ClusterIP",
                             **({"sessionAffinity": "ClientIP"} if affinity else {}),
                             "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                        **({"nodePort": 30000 + i % 2700} if i % 10 == 0 else {})}]}})
        out.append(slice_(ns, name, [ip4(10 << 24 | 200 << 16, first_ep + j) for j in range(count)]))
        first_ep += count
    return out


def slice_(ns: str, name: str, ips: list[str], port: int = 8080) -> dict:
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": ns, "name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
            "endpoints": [{"addresses": [ip], "nodeName": "node01" if k % 3 == 0 else "node02"}
                          for k, ip in enumerate(ips)],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def feed(p: Proxier, objs: list[dict]) -> None:
    for o in objs:
        (p.on_service if o["kind"] == "Service" else p.on_endpoint_slice)(None, o)




def fresh_ns() -> None:
    subprocess.run(["ip", "netns", "del", BENCH_NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", BENCH_NS], check=True)


NFT_PROCESS = False  # --nft-process: an `nft -f` process per transaction, no libnftables context


def bench_size(mode: str, n: int, shape: str = "", workload: str = "uniform") -> dict:
    objs = objects(n, workload=workload)
    opts = replace(OPTS, kubernetes_version=shape)
    row: dict = {"mode": mode, **({"shape": shape} if mode == "nftables" else {}), "workload": workload,
                 "services": n, "endpoints": sum(len(o["endpoints"]) for o in objs if o["kind"] == "EndpointSlice")}
    from knet.proxy.model import state_from_objects
    t = time.perf_counter()
    state = state_from_objects(objs, "node01")
    row["model_s"] = round(time.perf_counter() - t, 3)
    def render() -> str:
        if mode == "iptables":
            return iptables.Renderer(opts).render(state).text
        return "".join(nftables.Renderer(opts).sync(state).transactions)
    t = time.perf_counter()
    text = render()
    row["render_s"] = round(time.perf_counter() - t, 3)
    del text
    tracemalloc.start()  # a second render, traced (tracing slows it down several times)
    text = render()
    row["render_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)
    tracemalloc.stop()
    row["ruleset_mb"] = round(len(text) / 1e6, 1)
    del text
    if os.geteuid() != 0:
        return row
    fresh_ns()
    try:
        nf = TimedNetfilter(netns=BENCH_NS, libnftables=not NFT_PROCESS)
        p = Proxier(mode, opts, nf, hostname="node01")
        p.services_synced = p.endpoints_synced = True
        feed(p, objs)
        out = p.sync()
        assert out.ok, out.error
        row["full_sync_s"] = round(out.seconds, 3)
        row["full_apply_s"] = round(nf.seconds, 3)
        # one Service changes (an endpoint moves), N present
        nf.seconds = 0.0
        old = objs[1]
        new = slice_(old["metadata"]["namespace"], old["metadata"]["labels"]["kubernetes.io/service-name"],
                     [e["addresses"][0] for e in old["endpoints"][:-1]] + ["10.201.255.254"])
        p.on_endpoint_slice(old, new)
        out = p.sync()
        assert out.ok and not out.full, out.error
        row["one_change_s"] = round(out.seconds, 4)
        row["one_change_apply_s"] = round(nf.seconds, 4)
        for k in range(2, 6):  # four more changes: the median of five
            old, new = new, slice_(old["metadata"]["namespace"], old["metadata"]["labels"]["kubernetes.io/service-name"],
                                   [e["addresses"][0] for e in new["endpoints"][:-1]] + [f"10.201.255.{254 - k}"])
            p.on_endpoint_slice(old, new)
            t0 = out.seconds
            out = p.sync()
            assert out.ok and not out.full, out.error
            row.setdefault("_changes", [t0]).append(out.seconds)
        changes = row.pop("_changes")
        row["one_change_median_s"] = round(statistics.median(changes), 4)
        row["one_change_samples_s"] = [round(x, 4) for x in changes]
        if mode == "nftables" and not NFT_PROCESS:
            # the same kind of change through an nft process per transaction (the old path)
            p.netfilter = TimedNetfilter(netns=BENCH_NS, libnftables=False)
            times = []
            for k in range(3):
                old, new = new, slice_(old["metadata"]["namespace"], old["metadata"]["labels"]["kubernetes.io/service-name"],
                                       [e["addresses"][0] for e in new["endpoints"][:-1]] + [f"10.201.254.{250 - k}"])
                p.on_endpoint_slice(old, new)
                out = p.sync()
                assert out.ok and not out.full, out.error
                times.append(out.seconds)
            row["one_change_nft_process_s"] = round(statistics.median(times), 4)
    finally:
        subprocess.run(["ip", "netns", "del", BENCH_NS], capture_output=True, check=False)
    return row


LATENCY_CLIENT = r"""
import socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    s = socket.socket(); s.settimeout(2)
    t = time.perf_counter(); s.connect((ip, port)); out.append(time.perf_counter() - t)
    s.recv(100); s.close()
print(" ".join(f"{x:.6f}" for x in out))
"""


def bench_latency(mode: str, present: int, shape: str = "", connects: int = 200) -> dict:
    import proxy_netns_topology as topo_mod
    topo = topo_mod.Topology()
    topo.build()
    try:
        p = Proxier(mode, replace(OPTS, kubernetes_version=shape),
                    RealNetfilter(netns=topo_mod.NODE_NS, libnftables=not NFT_PROCESS), hostname="node01")
        p.services_synced = p.endpoints_synced = True
        feed(p, objects(present - 1, endpoints=2))
        target = {"kind": "Service", "metadata": {"namespace": "zz", "name": "web"},
                  "spec": {"clusterIP": "10.111.0.1", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
        feed(p, [target, slice_("zz", "web", list(topo_mod.POD_IPS.values()), port=topo_mod.ECHO_PORT)])
        assert p.sync().ok
        out = topo_mod.in_ns(topo_mod.CLIENT_NS, sys.executable, "-c", LATENCY_CLIENT, "10.111.0.1", "80",
                             str(connects))
        samples = sorted(float(x) for x in out.split())
        return {"mode": mode, **({"shape": shape} if mode == "nftables" else {}),
                "services_present": present, "connects": connects,
                "connect_median_ms": round(statistics.median(samples) * 1e3, 3),
                "connect_p99_ms": round(samples[int(len(samples) * 0.99) - 1] * 1e3, 3)}
    finally:
        topo.teardown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--modes", default="iptables,nftables")
    ap.add_argument("--nft-shapes", default="v1.29,v1.37",
                    help="nftables rule shapes (kubernetesVersions) to compare; knet.proxy.nftables.Shape")
    ap.add_argument("--workloads", default="uniform,mix", help="uniform: N x 10 endpoints; mix: see above")
    ap.add_argument("--latency-services", default="10,10000")
    ap.add_argument("--json", default="")
    ap.add_argument("--nft-process", action="store_true", help="nft -f per transaction (no libnftables context)")
    args = ap.parse_args()
    global NFT_PROCESS
    NFT_PROCESS = args.nft_process
    rows, lat = [], []
    for workload in args.workloads.split(","):
        for mode in args.modes.split(","):
            for shape in (args.nft_shapes.split(",") if mode == "nftables" else [""]):
                for n in (int(x) for x in args.sizes.split(",") if x):
                    row = bench_size(mode, n, shape, workload)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    if os.geteuid() == 0:
        for mode in args.modes.split(","):
            for shape in (args.nft_shapes.split(",") if mode == "nftables" else [""]):
                for n in (int(x) for x in args.latency_services.split(",") if x):
                    r = bench_latency(mode, n, shape)
                    print(json.dumps(r), flush=True)
                    lat.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps({"sync": rows, "latency": lat}, indent=2))


if __name__ == "__main__":
    main()
