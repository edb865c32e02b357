"""knet real dataplane benchmark (needs root): one command, a fresh 3-node `knet up` cluster.

    python bench/dataplane_bench.py            # full: 50 sequential pods, 100 pods on one node
    python bench/dataplane_bench.py --quick    # 10 sequential pods, 30 pods on one node

Measures
  1. pod create-to-Running p50/p99 (POST -> the watch shows phase Running; through the scheduler,
     the kubelet, a pause sandbox and the real CNI plugins; goal p99 < 300 ms);
  2. N pods on ONE node: create all at once, time until all are Running and every one answers a
     ping from a pod on another node (goal 100 pods < 15 s);
  3. pod-to-pod across nodes: TCP throughput (1 GiB through a socket), TCP request/response
     latency (small messages, p50/p99 round trip) and ICMP round trip.
The cluster is torn down with `knet down` afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from knet.client import ApiClient, load_config
from knet.cluster.testing import ClusterUnderTest

SINK = """
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0',5201)); s.listen(4)
while True:
    c,_=s.accept()
    mode=c.recv(1)
    if mode==b'T':
        while c.recv(1<<20): pass
    else:
        while True:
            d=c.recv(64)
            if not d: break
            c.sendall(d)
    c.close()
"""

THROUGHPUT = """
import socket,time,sys
c=socket.create_connection((sys.argv[1],5201)); c.sendall(b'T')
buf=b'x'*(1<<20); n=1024; t=time.perf_counter()
for _ in range(n): c.sendall(buf)
c.shutdown(socket.SHUT_WR); c.recv(1); dt=time.perf_counter()-t
print(f'{n*8/1024/dt:.2f}')
"""

RR = """
import socket,time,sys
c=socket.create_connection((sys.argv[1],5201)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); c.sendall(b'R')
out=[]
for _ in range(2000):
    t=time.perf_counter(); c.sendall(b'p'*32); c.recv(64); out.append((time.perf_counter()-t)*1e6)
out.sort(); print(f'{out[len(out)//2]:.0f} {out[int(len(out)*0.99)]:.0f}')
"""


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def pod(name: str, node: str | None = None, command: list[str] | None = None) -> dict:
    spec = {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": command or ["sleep", "3600"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "dp"}}, "spec": spec}


async def create_to_running(api: ApiClient, count: int) -> list[float]:
    """Sequential creates; latency = POST start -> first watch event with phase Running."""
    lst = await api.list("v1", "pods", namespace="default")
    running: dict[str, float] = {}
    events: dict[str, asyncio.Event] = {}

    async def watch() -> None:
        async for ev in api.watch("v1", "pods", namespace="default", resource_version=lst["metadata"]["resourceVersion"]):
            name = ev.object["metadata"]["name"]
            if (ev.object.get("status") or {}).get("phase") == "Running" and name not in running:
                running[name] = time.perf_counter()
                events.setdefault(name, asyncio.Event()).set()

    watcher = asyncio.create_task(watch())
    out = []
    for i in range(count):
        name = f"lat-{i}"
        events[name] = asyncio.Event()
        t0 = time.perf_counter()
        await api.create("v1", "pods", pod(name), namespace="default")
        await asyncio.wait_for(events[name].wait(), 30)
        out.append((running[name] - t0) * 1000)
    watcher.cancel()
    return out


async def many_on_one_node(api: ApiClient, cluster: ClusterUnderTest, count: int, node: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    await asyncio.gather(*(api.create("v1", "pods", pod(f"many-{i}", node), namespace="default")
                           for i in range(count)))
    ips: dict[str, str] = {}
    while len(ips) < count:
        items = (await api.list("v1", "pods", namespace="default", label_selector="bench=dp"))["items"]
        ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in items if p["metadata"]["name"].startswith("many-")
               and (p.get("status") or {}).get("phase") == "Running" and p["status"].get("podIP")}
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"only {len(ips)}/{count} pods Running after 120s")
        await asyncio.sleep(0.05)
    t_running = time.perf_counter() - t0
    script = " & ".join(f"ping -c1 -W2 {ip} >/dev/null || echo FAIL {ip}" for ip in ips.values()) + " & wait"
    r = cluster.kubectl("exec", "pinger", "--", "sh", "-c", script, timeout=60, check=False)
    if "FAIL" in r.stdout:
        raise RuntimeError(f"unreachable pods: {r.stdout}")
    return t_running, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sequential, many = (10, 30) if args.quick else (50, 100)
    cluster = ClusterUnderTest.up(nodes=3, dataplane="real", timeout=120)
    try:
        print(f"cluster up in {cluster.up_seconds:.1f}s (3 nodes, real)")

        async def run() -> dict:
            async with ApiClient(load_config(kubeconfig=str(cluster.admin_kubeconfig))) as api:
                lat = await create_to_running(api, sequential)
                await api.create("v1", "pods", pod("pinger", "node02"), namespace="default")
                await api.create("v1", "pods", pod("sink", "node01", ["python3", "-c", SINK]), namespace="default")
                t_run, t_ping = await many_on_one_node(api, cluster, many, "node01")
                return {"lat": lat, "t_run": t_run, "t_ping": t_ping}

        res = asyncio.run(run())
        lat = res["lat"]
        print(f"pod create-to-Running ({len(lat)} sequential pods): p50 {pct(lat, 50):.0f} ms, "
              f"p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms (goal p99 < 300 ms)")
        print(f"{many} pods on node01: all Running in {res['t_run']:.2f}s, all pingable from node02 in "
              f"{res['t_ping']:.2f}s (goal < 15 s)")
        sink_ip = json.loads(cluster.kubectl("get", "pod", "sink", "-o", "json").stdout)["status"]["podIP"]
        gbps = cluster.kubectl("exec", "pinger", "--", "python3", "-c", THROUGHPUT, sink_ip, timeout=120).stdout.strip()
        p50, p99 = cluster.kubectl("exec", "pinger", "--", "python3", "-c", RR, sink_ip, timeout=60).stdout.split()
        ping = cluster.kubectl("exec", "pinger", "--", "ping", "-c", "20", "-i", "0.01", sink_ip).stdout
        rtt = ping.strip().splitlines()[-1].split("=")[1].split("/")[1]
        print(f"pod-to-pod across nodes (node02 -> node01): TCP throughput {gbps} Gbit/s (1 GiB, one stream), "
              f"TCP request/response RTT p50 {p50} us p99 {p99} us, ICMP RTT avg {rtt} ms")
        return 0
    finally:
        cluster.down()


if __name__ == "__main__":
    sys.exit(main())
