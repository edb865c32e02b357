"""Ingress controller benchmark (needs root, wrk and a real dataplane): one command

  python bench/ingress_bench.py [--duration 10] [--connections 16] [--worker-processes N] [--json FILE]

brings up a 3-node cluster (`knet up --dataplane real`), waits for the ingress controller, runs a
minimal aiohttp backend pinned to a node the controller does not run on, behind a ClusterIP
Service and an Ingress to it, then from the third node drives wrk (HTTP/1.1, keep-alive) twice:
through the ingress controller (its Service's ClusterIP, Host: bench.local; the controller then
proxies to the backend pod on the other node) and directly to the backend's ClusterIP. It prints
requests/s and p50/p90/p99 latency of both, at --connections and with one connection, and what
the controller adds, then removes the cluster. `--worker-processes N` sets the controller's
proxy processes (ingress-nginx's worker-processes; default: one per CPU). Issue #18's goal: under
1 ms added at p50, at least 5,000 req/s on 2 cores.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys
import time

from knet.cluster.testing import ClusterUnderTest

BACKEND = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench-backend, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: bench-backend}}
  template:
    metadata: {labels: {app: bench-backend}}
    spec:
      nodeSelector: {kubernetes.io/hostname: {node}}
      containers:
      - name: hello
        image: docker.io/library/python:3.11-slim
        command: [{python}, -c, {server}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: bench-backend, namespace: default}
spec:
  selector: {app: bench-backend}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: bench.local
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: bench-backend, port: {number: 8080}}}}]
"""
# The backend: a minimal aiohttp server on uvloop (the host's Python, as knet runs images it does not
# know as host programs), fast enough that the controller, not the backend, is what is measured
# (agnhost netexec serves some hundreds of requests per second).
SERVER = ("import asyncio, uvloop; from aiohttp import web\n"
          "async def ok(request): return web.Response(text='ok')\n"
          "async def main():\n"
          "    runner = web.ServerRunner(web.Server(ok), access_log=None); await runner.setup()\n"
          "    await web.TCPSite(runner, '0.0.0.0', 8080).start(); await asyncio.Event().wait()\n"
          "uvloop.run(main())")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> dict:
    """wrk --latency's Requests/sec and latency percentiles (ms)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[f"p{pct}_ms"] = round(float(value) * UNITS[unit], 3)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {"rps": rps, **lat, "non_2xx": int(errors.group(1)) if errors else 0,
            "requests": int(requests.group(1)) if requests else 0}


def pod_cgroup(uid: str) -> str | None:
    """The pod's cgroup directory with CPU accounting on this host (v1 cpuacct, else v2), as the
    kubelet names it: cgroupfs `pod<uid>`, systemd `...pod<uid with _>.slice`."""
    for root in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup"):
        for form in (uid, uid.replace("-", "_")):
            for path in sorted(glob.glob(f"{root}/**/*pod{form}*", recursive=True), key=len):
                if cpu_usec(path) is not None:
                    return path
    return None


def cpu_usec(path: str | None) -> int | None:
    """CPU time (µs) the cgroup's processes used so far (v1 cpuacct.usage, v2 cpu.stat)."""
    if path is None:
        return None
    try:
        with open(f"{path}/cpuacct.usage") as f:
            return int(f.read()) // 1000
    except OSError:
        pass
    try:
        with open(f"{path}/cpu.stat") as f:
            return int(next(line.split()[1] for line in f if line.startswith("usage_usec")))
    except (OSError, StopIteration):
        return None


def pod_uid(cluster: ClusterUnderTest, namespace: str, selector: str) -> str:
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return next(p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp"))


def wrk(cluster: ClusterUnderTest, node: str, url: str, host: str | None, duration: int, connections: int) -> dict:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *(["-H", f"Host: {host}"] if host else []),
            url]
    r = cluster.ssh(node, *args, timeout=duration + 30)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed: {r.stderr}")
    return parse_wrk(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--worker-processes", type=int, default=0, help="the controller's proxy processes (0: one per CPU)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk (scripts/install.sh installs it)", file=sys.stderr)
        return 1
    cluster = ClusterUnderTest.up(nodes=3, dataplane="real")
    try:
        deployment = ("-n", "ingress-nginx", "deployment/ingress-nginx-controller")
        if args.worker_processes:
            cluster.kubectl("patch", *deployment, "--type=json", "-p", json.dumps([{
                "op": "add", "path": "/spec/template/spec/containers/0/args/-",
                "value": f"--worker-processes={args.worker_processes}"}]))
        cluster.kubectl("-n", "ingress-nginx", "rollout", "status", deployment[2], "--timeout=120s", timeout=130)
        pods = json.loads(cluster.kubectl("-n", "ingress-nginx", "get", "pods", "-l",
                                          "app.kubernetes.io/component=controller", "-o", "json").stdout)["items"]
        controller_node = next(p["spec"]["nodeName"] for p in pods if not p["metadata"].get("deletionTimestamp"))
        nodes = cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
        others = [n for n in nodes if n != controller_node]
        # the backend on a worker other than the controller's; the client on the remaining node
        backend_node = next(n for n in others if n != "controlplane") if len(others) > 1 else others[0]
        client_node = next((n for n in others if n != backend_node), controller_node)
        cluster.kubectl("apply", "-f", "-", input=BACKEND.replace("{python}", json.dumps(sys.executable))
                        .replace("{server}", json.dumps(SERVER)).replace("{node}", backend_node))
        cluster.kubectl("rollout", "status", "deployment/bench-backend", "--timeout=90s", timeout=100)
        controller_ip = cluster.kubectl("-n", "ingress-nginx", "get", "service", "ingress-nginx-controller", "-o",
                                        "jsonpath={.spec.clusterIP}").stdout
        backend_ip = cluster.kubectl("get", "service", "bench-backend", "-o", "jsonpath={.spec.clusterIP}").stdout
        ingress_url, direct_url = f"http://{controller_ip}/", f"http://{backend_ip}:8080/"
        deadline = time.monotonic() + 30
        while cluster.ssh(client_node, "curl", "-sf", "-H", "Host: bench.local", ingress_url).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the Ingress never answered")
            time.sleep(0.5)
        wrk(cluster, client_node, ingress_url, "bench.local", 2, args.connections)  # warm-up
        # CPU per request of the controller's pod and the backend's (their cgroups' usage over a run):
        # what the 2 shared cores pay per request, less swayed by whatever else runs than req/s is
        cgroups = {"controller": pod_cgroup(pod_uid(cluster, "ingress-nginx", "app.kubernetes.io/component=controller")),
                   "backend": pod_cgroup(pod_uid(cluster, "default", "app=bench-backend"))}

        def measured(url: str, host: str | None, duration: int, connections: int) -> dict:
            before = {k: cpu_usec(p) for k, p in cgroups.items()}
            r = wrk(cluster, client_node, url, host, duration, connections)
            for k, p in cgroups.items():
                after = cpu_usec(p)
                if after is not None and before[k] is not None and r["requests"]:
                    r[f"{k}_cpu_us_per_req"] = round((after - before[k]) / r["requests"], 1)
            return r
        results = {
            "direct_clusterip": measured(direct_url, None, args.duration, args.connections),
            "through_ingress": measured(ingress_url, "bench.local", args.duration, args.connections),
        }
        # one connection: the latency a lone client sees (no queueing in front of either path)
        results["direct_clusterip_1conn"] = wrk(cluster, client_node, direct_url, None, args.duration // 2 or 1, 1)
        results["through_ingress_1conn"] = wrk(cluster, client_node, ingress_url, "bench.local", args.duration // 2 or 1, 1)
        d, i = results["direct_clusterip"], results["through_ingress"]
        results["added_p50_ms"] = round(i["p50_ms"] - d["p50_ms"], 3)
        results["added_p50_ms_1conn"] = round(results["through_ingress_1conn"]["p50_ms"]
                                              - results["direct_clusterip_1conn"]["p50_ms"], 3)
        workers = args.worker_processes or int(cluster.ssh(controller_node, "nproc").stdout.strip() or 0)
        results["setup"] = {"client": f"wrk on {client_node}", "backend": f"aiohttp hello server on {backend_node}",
                            "controller_node": controller_node, "worker_processes": workers,
                            "connections": args.connections, "duration_s": args.duration}
        print(f"{'path':22} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
              f"{'CPU µs/req: controller':>22} {'backend':>8}")
        for name in ("direct_clusterip", "through_ingress", "direct_clusterip_1conn", "through_ingress_1conn"):
            r = results[name]
            cpu = [r.get(f"{k}_cpu_us_per_req") for k in ("controller", "backend")]
            print(f"{name:22} {r['rps']:9.0f} {r.get('p50_ms', 0):8.3f} {r.get('p90_ms', 0):8.3f} "
                  f"{r.get('p99_ms', 0):8.3f} {r['non_2xx']:8d} {cpu[0] if cpu[0] is not None else '':>22} "
                  f"{cpu[1] if cpu[1] is not None else '':>8}")
        print(f"added at p50: {results['added_p50_ms']:.3f} ms with {args.connections} connections, "
              f"{results['added_p50_ms_1conn']:.3f} ms with one (goal < 1 ms, >= 5000 req/s through the controller)")
        print(f"client {client_node}, controller on {controller_node} ({workers} worker processes), "
              f"backend on {backend_node}; load average {open('/proc/loadavg').read().split()[0]} on "
              f"{len(os.sched_getaffinity(0))} CPUs")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return 0
    finally:
        cluster.down()


if __name__ == "__main__":
    sys.exit(main())
