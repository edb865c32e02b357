"""knet apiserver benchmark: `python bench/api_bench.py`.

Starts a real `knet apiserver` (TLS, client certificates, SQLite store in a temporary dir)
and measures, over HTTPS with keep-alive connections:
  1. single-object GET: throughput and p50/p99 latency with 50 concurrent clients (closed loop),
  2. CREATE (ConfigMaps): the same,
  3. GET, CREATE and PATCH at a fixed 500 req/s (open loop, 50 connections): p99 latency,
  4. LIST of 10,000 pods (JSON, and as kubectl's Table),
  5. watch fan-out: 100 watchers of pods; delay until all of them saw one update.
The server runs with `--authorization-mode=Node,RBAC` as `knet up` runs it (`--authorization-mode
AlwaysAllow` for the figures without authorization), and the load runs as an ordinary user
(client certificate CN=bench-user) whom a RoleBinding lets work in namespace `bench`, so every
request is decided by RBAC (the admin's system:masters would skip it).
Goal (issue 3): p99 of mutating and single-object calls under 50 ms at 500 req/s on 2 cores;
LIST of 10,000 pods under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BENCH_RBAC = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bench", "namespace": "bench"},
     "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["*"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "bench", "namespace": "bench"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bench"},
     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-user"}]},
]


def start_server(root: Path, authorization_mode: str) -> tuple[subprocess.Popen, str, ssl.SSLContext]:
    from knet.cluster.pki import create_control_plane_pki, issue_cert, write_cert_key

    pki = create_control_plane_pki(root / "pki")
    user_crt, user_key = write_cert_key(root / "pki", "bench-user",
                                        issue_cert(pki.ca(), "bench-user", organizations=["bench"], client=True))
    port = free_port()
    knet = shutil.which("knet")
    cmd = [knet] if knet else [sys.executable, "-c", "from knet.cli.main import main; main()"]
    cmd += ["apiserver", f"--secure-port={port}", "--bind-address=127.0.0.1", f"--data-dir={root / 'data'}",
            f"--tls-cert-file={pki.apiserver_crt}", f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_crt}", f"--authorization-mode={authorization_mode}"]
    log = open(root / "apiserver.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    admin = ssl.create_default_context(cafile=str(pki.ca_crt))
    admin.load_cert_chain(str(pki.admin_crt), str(pki.admin_key))
    ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(user_crt), str(user_key))
    url = f"https://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", context=admin, timeout=1):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        # As the admin: the namespace, and (with RBAC) bench-user's rights in it.
        for obj in BENCH_RBAC if "RBAC" in authorization_mode.split(",") else BENCH_RBAC[:1]:
            group = obj["apiVersion"].rpartition("/")[0]
            base = f"/apis/{obj['apiVersion']}" if group else "/api/v1"
            ns = obj["metadata"].get("namespace")
            path = f"{base}/namespaces/{ns}/{obj['kind'].lower()}s" if ns else f"{base}/namespaces"
            req = urllib.request.Request(url + path, data=orjson.dumps(obj), method="POST",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, context=admin, timeout=5).read()
        return proc, url, ctx
    proc.kill()
    raise SystemExit("apiserver did not become ready:\n" + (root / "apiserver.log").read_text()[-2000:])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def report(name: str, lat: list[float], elapsed: float, errors: int) -> None:
    print(f"{name:<38} {len(lat) / elapsed:9.0f} req/s   p50 {pct(lat, 50) * 1000:6.1f} ms   "
          f"p99 {pct(lat, 99) * 1000:6.1f} ms   errors {errors}")


async def closed_loop(session, make_request, total: int, concurrency: int) -> tuple[list[float], float, int]:
    lat: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            t = time.perf_counter()
            ok = await make_request(session, i)
            lat.append(time.perf_counter() - t)
            errors += 0 if ok else 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, time.perf_counter() - start, errors


async def open_loop(session, make_request, rate: float, seconds: float) -> tuple[list[float], float, int]:
    """Requests issued on a fixed schedule; latency counts from the scheduled time (no
    coordinated omission)."""
    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(50)
    tasks = []
    start = time.perf_counter()
    n = int(rate * seconds)

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        async with sem:
            ok = await make_request(session, i)
        lat.append(time.perf_counter() - scheduled)
        errors += 0 if ok else 1

    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return lat, time.perf_counter() - start, errors


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"nodeName": "", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9",
                                                     "ports": [{"containerPort": 80}]}]}}


async def run(url: str, ctx: ssl.SSLContext, args) -> None:
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with aiohttp.ClientSession(url, connector=conn, headers=headers) as s:

        async def create_cm(session, i, prefix="cm"):
            r = await session.post("/api/v1/namespaces/bench/configmaps", data=orjson.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{prefix}-{i}"}, "data": {"k": "v" * 64}}))
            await r.read()
            return r.status == 201

        async def get_cm(session, i):
            r = await session.get(f"/api/v1/namespaces/bench/configmaps/cm-{i % 1000}")
            await r.read()
            return r.status == 200

        print(f"knet apiserver benchmark ({os.cpu_count()} cores, server and load generator share them), "
              f"--authorization-mode={args.authorization_mode}, requests as bench-user")
        lat, el, err = await closed_loop(s, create_cm, args.requests, 50)
        report("CREATE configmap, 50 clients", lat, el, err)
        lat, el, err = await closed_loop(s, get_cm, args.requests, 50)
        report("GET configmap, 50 clients", lat, el, err)
        lat, el, err = await open_loop(s, get_cm, 500, args.seconds)
        report("GET configmap at 500 req/s", lat, el, err)
        lat, el, err = await open_loop(s, lambda ss, i: create_cm(ss, i, "rate"), 500, args.seconds)
        report("CREATE configmap at 500 req/s", lat, el, err)

        async def patch_cm(session, i):
            r = await session.patch(f"/api/v1/namespaces/bench/configmaps/cm-{i % 1000}",
                                    data=orjson.dumps({"data": {"n": str(i)}}),
                                    headers={"Content-Type": "application/strategic-merge-patch+json"})
            await r.read()
            return r.status == 200

        lat, el, err = await open_loop(s, patch_cm, 500, args.seconds)
        report("PATCH configmap at 500 req/s", lat, el, err)

        # LIST of N pods.
        async def create_pod(session, i):
            r = await session.post("/api/v1/namespaces/bench/pods", data=orjson.dumps(pod(f"pod-{i}")))
            await r.read()
            return r.status == 201

        t = time.perf_counter()
        _, _, err = await closed_loop(s, create_pod, args.pods, 50)
        print(f"created {args.pods} pods in {time.perf_counter() - t:.1f} s ({err} errors)")
        for label, accept in (("LIST pods (JSON)", "application/json"),
                              ("LIST pods (Table, as kubectl get)", "application/json;as=Table;v=v1;g=meta.k8s.io")):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                r = await s.get("/api/v1/namespaces/bench/pods", headers={"Accept": accept})
                body = await r.read()
                times.append(time.perf_counter() - t)
            n = len(orjson.loads(body).get("items") or orjson.loads(body).get("rows") or [])
            print(f"{label:<38} {n} items, {len(body) / 1e6:.1f} MB   best {min(times) * 1000:.0f} ms   "
                  f"worst {max(times) * 1000:.0f} ms")

        # Watch fan-out.
        rv = orjson.loads(await (await s.get("/api/v1/namespaces/bench/configmaps?limit=1")).read())["metadata"]["resourceVersion"]
        received: list[float] = []
        ready = asyncio.Event()
        opened = 0

        async def watcher() -> None:
            nonlocal opened
            async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=ctx)) as ws:
                r = await ws.get(f"/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion={rv}"
                                 "&fieldSelector=metadata.name%3Dfanout-0")
                opened += 1
                if opened == args.watchers:
                    ready.set()
                async for _line in r.content:
                    received.append(time.perf_counter())
                    return

        tasks = [asyncio.ensure_future(watcher()) for _ in range(args.watchers)]
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()
        await create_cm(s, 0, "fanout")
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        delays = [r - t0 for r in received]
        print(f"watch fan-out to {args.watchers} watchers: first {min(delays) * 1000:.1f} ms, "
              f"p99 {pct(delays, 99) * 1000:.1f} ms, last {max(delays) * 1000:.1f} ms (after the create call began)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000, help="requests per closed-loop test")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each 500 req/s test")
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--authorization-mode", default="Node,RBAC",
                    help="the apiserver's --authorization-mode (AlwaysAllow: no authorization)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="knet-api-bench-"))
    proc, url, ctx = start_server(root, args.authorization_mode)
    try:
        try:
            import uvloop

            uvloop.run(run(url, ctx, args))
        except ImportError:
            asyncio.run(run(url, ctx, args))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
