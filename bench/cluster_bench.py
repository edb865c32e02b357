"""knet cluster benchmark: `knet up` to usable, pod create-to-Running latency, and a scale run.

    python bench/cluster_bench.py                       # everything at full size
    python bench/cluster_bench.py --quick               # small sizes (seconds)
    python bench/cluster_bench.py --scale-nodes 100 --scale-pods 3000 --skip-real

Measures
  1. `knet up --dataplane sim` (2 nodes) wall time to usable (goal < 3 s);
  2. `knet up --dataplane real` (2 nodes) wall time to usable (goal < 5 s; needs root);
  3. pod create-to-Running p50/p99, creating pods at --rate pods/s on the sim cluster (goal p99 < 200 ms),
     or with --latency-dataplane real on a real one, each pod a runc container (goal p99 < 300 ms);
  4. scale: --scale-nodes simulated nodes and --scale-pods pods (Deployments of 1,000), time until all
     Running (goal 30,000 pods on 1,000 nodes within 60 s) and the cluster processes' memory (RSS).
Each cluster is torn down with `knet down` afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from knet.cluster.processes import component_of, proc_cmdline
from knet.cluster.testing import ClusterUnderTest

SCALE_CONFIG = """\
kind: Cluster
apiVersion: knet.io/v1alpha1
nodeNetwork: 172.31.0.0/21
podSubnet: 10.128.0.0/14
nodeCIDRMaskSize: 24
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def cluster_usage(cluster: ClusterUnderTest) -> tuple[float, dict[str, tuple[float, float]]]:
    """Resident memory (MiB) and CPU seconds of every process whose command line names the
    cluster's state dir, by component."""
    marker = f"{cluster.state_dir}/{cluster.name}/"
    per: dict[str, tuple[float, float]] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = proc_cmdline(int(entry))
        if not any(marker in a for a in argv):
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rss_kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        cpu = (int(stat[11]) + int(stat[12])) / ticks
        component = component_of(argv) or "other"
        if component == "kubelet":
            # a simulated agent names its node; a real node's kubelet is kubeadm's, named by its --root-dir
            component = next((a.split("=", 1)[1] for a in argv if a.startswith("--hostname-override=")),
                             next((os.path.basename(a.split("=", 1)[1]) for a in argv if a.startswith("--root-dir=")),
                                  component))
            component = f"kubelet({component})"
        per[component] = (rss_kib / 1024, cpu)
    return sum(m for m, _ in per.values()), per


def bench_up(dataplane: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        with ClusterUnderTest.up(nodes=2, dataplane=dataplane) as cluster:
            times.append(cluster.up_seconds)
    return times


async def pod_latency(cluster: ClusterUnderTest, count: int, rate: float) -> list[float]:
    """Create `count` pods at `rate`/s; latency = creation request sent -> watch sees Running."""
    from knet.client import ApiClient, load_config

    ns = "bench-latency"
    async with ApiClient(load_config(kubeconfig=str(cluster.admin_kubeconfig))) as api:
        await api.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        sent: dict[str, float] = {}
        running: dict[str, float] = {}
        listing = await api.list("v1", "pods", namespace=ns)
        done = asyncio.Event()

        async def watch() -> None:
            async for ev in api.watch("v1", "pods", namespace=ns,
                                      resource_version=listing["metadata"]["resourceVersion"]):
                if ev.type not in ("ADDED", "MODIFIED"):
                    continue
                name = ev.object["metadata"]["name"]
                if ev.object.get("status", {}).get("phase") == "Running" and name not in running:
                    running[name] = time.monotonic()
                    if len(running) >= count:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        interval = 1.0 / rate
        start = time.monotonic()
        for i in range(count):
            name = f"lat-{i:05d}"
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                   "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.39",
                                            "args": ["netexec", "--http-port=8080"]}]}}
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            sent[name] = time.monotonic()
            await api.create("v1", "pods", pod, namespace=ns)
        try:
            await asyncio.wait_for(done.wait(), timeout=60)
        finally:
            watcher.cancel()
        await api.delete("v1", "namespaces", ns)
    return [(running[n] - sent[n]) * 1000 for n in sent if n in running]


async def scale_run(cluster: ClusterUnderTest, pods: int, per_deployment: int = 1000,
                    timeout: float = 300) -> tuple[float, int, int]:
    """Create Deployments totalling `pods` replicas; seconds until every pod is Running and Ready,
    the number of writes the API server took meanwhile (resourceVersion delta) and how many of
    them were Events."""
    from knet.client import ApiClient, load_config

    ns = "bench-scale"
    async with ApiClient(load_config(kubeconfig=str(cluster.admin_kubeconfig))) as api:
        async def first_page(path: str) -> dict:  # one page (ApiClient.list follows them all)
            return await api.request("GET", path, params={"limit": "1"})

        async def revision() -> int:
            return int((await first_page("/api/v1/namespaces"))["metadata"]["resourceVersion"])

        async def events() -> int:
            page = await first_page(f"/api/v1/namespaces/{ns}/events")
            return len(page["items"]) + int(page["metadata"].get("remainingItemCount") or 0)

        await api.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        first_revision = await revision()
        start = time.monotonic()
        remaining, i = pods, 0
        while remaining > 0:
            replicas = min(per_deployment, remaining)
            name = f"scale-{i:03d}"
            await api.create("apps/v1", "deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
                namespace=ns)
            remaining -= replicas
            i += 1
        # Deployment status (readyReplicas) is cheap to poll, unlike listing 30,000 pods.
        last_report = start
        while True:
            deployments = (await api.list("apps/v1", "deployments", namespace=ns))["items"]
            n = sum((d.get("status") or {}).get("readyReplicas") or 0 for d in deployments)
            now = time.monotonic()
            if n >= pods:
                return now - start, await revision() - first_revision, await events()
            if now - last_report >= 10:
                print(f"  ... {n}/{pods} pods ready after {now - start:.0f}s", file=sys.stderr, flush=True)
                last_report = now
            if now - start > timeout:
                if os.environ.get("KNET_BENCH_KEEP"):
                    print(f"  keeping the cluster for inspection: KNET_STATE_DIR={cluster.state_dir} "
                          f"KUBECONFIG={cluster.kubeconfig}; sleeping", file=sys.stderr, flush=True)
                    await asyncio.sleep(3600)
                raise TimeoutError(f"only {n}/{pods} pods ready after {timeout:.0f}s")
            await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: 1 up each, 40 pods, 50 nodes/1,000 pods")
    parser.add_argument("--up-repeats", type=int, default=3)
    parser.add_argument("--skip-real", action="store_true", help="skip the real-dataplane `knet up`")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-up", action="store_true", help="skip the `knet up` timings")
    parser.add_argument("--skip-latency", action="store_true", help="skip the pod latency run")
    parser.add_argument("--pods", type=int, default=200, help="pods for the latency run")
    parser.add_argument("--rate", type=float, default=20.0, help="pods per second for the latency run")
    parser.add_argument("--latency-dataplane", choices=("sim", "real"), default="sim",
                        help="the latency run's cluster: sim (default) or real (pods as runc containers, needs root)")
    parser.add_argument("--scale-nodes", type=int, default=1000)
    parser.add_argument("--scale-pods", type=int, default=30000)
    parser.add_argument("--scale-timeout", type=float, default=300.0, help="give up the scale run after this")
    args = parser.parse_args()
    # Turn SIGTERM (timeout, CI) into an exception so every cluster is torn down on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.up_repeats, args.pods, args.scale_nodes, args.scale_pods = 1, 40, 50, 1000

    ok = True
    if not args.skip_up:
        sim = bench_up("sim", args.up_repeats)
        print(f"knet up --dataplane sim (2 nodes): min {min(sim):.2f}s median {statistics.median(sim):.2f}s "
              f"(goal < 3 s) {'OK' if min(sim) < 3 else 'MISSED'}")
    if not args.skip_real and not args.skip_up:
        from knet.cluster.host import real_dataplane_problem

        problem = real_dataplane_problem()
        if problem:
            print(f"knet up --dataplane real: skipped ({problem})")
        else:
            real = bench_up("real", args.up_repeats)
            print(f"knet up --dataplane real (2 nodes): min {min(real):.2f}s median {statistics.median(real):.2f}s "
                  f"(goal < 5 s) {'OK' if min(real) < 5 else 'MISSED'}")

    if not args.skip_latency:
        real_pods = args.latency_dataplane == "real"
        goal = 300 if real_pods else 200  # issue #13: p99 under 300 ms for pods under runc
        with ClusterUnderTest.up(nodes=3, dataplane=args.latency_dataplane) as cluster:
            lat = asyncio.run(pod_latency(cluster, args.pods, args.rate))
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            print(f"pod create->Running ({args.latency_dataplane}) at {args.rate:g}/s, {len(lat)}/{args.pods} pods: "
                  f"p50 {p50:.0f} ms p99 {p99:.0f} ms (goal p99 < {goal} ms) {'OK' if p99 < goal else 'MISSED'}")
            ok &= len(lat) == args.pods

    if not args.skip_scale:
        # A thousand nodes outgrow the reference /24 node network and 10.244.0.0/16 (256 /24s).
        config_dir = tempfile.TemporaryDirectory(prefix="knet-bench-")
        config_file = Path(config_dir.name) / "cluster.yaml"
        config_file.write_text(SCALE_CONFIG)
        with config_dir, ClusterUnderTest.up(nodes=args.scale_nodes + 1, dataplane="sim", timeout=300,
                                 extra_args=("--config", str(config_file))) as cluster:
            print(f"knet up --dataplane sim ({args.scale_nodes + 1} nodes): {cluster.up_seconds:.1f}s")
            try:
                seconds, writes, events = asyncio.run(scale_run(cluster, args.scale_pods, timeout=args.scale_timeout))
                outcome = (f"all Running in {seconds:.1f}s (goal < 60 s) {'OK' if seconds < 60 else 'MISSED'}, "
                           f"{writes} API writes ({events} Events)")
            except TimeoutError as exc:
                ok = False
                outcome = f"MISSED: {exc}"
            total, per = cluster_usage(cluster)
            print(f"scale: {args.scale_pods} pods on {args.scale_nodes} sim nodes: {outcome}; "
                  f"memory RSS {total:.0f} MiB")
            for component, (mib, cpu) in sorted(per.items()):
                print(f"  {component:28s} RSS {mib:6.0f} MiB  CPU {cpu:6.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
