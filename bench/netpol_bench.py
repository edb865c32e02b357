"""NetworkPolicy benchmark (issue #14 item 5), one command (root):

    python bench/netpol_bench.py            # full size: all three parts (~3 min on 2 cores)
    python bench/netpol_bench.py --quick    # 30 pods / 10 policies, 100 x 100, 500 connects
    python bench/netpol_bench.py --skip-cluster       # only the scratch-namespace parts 2 and 3
    python bench/netpol_bench.py --skip-scratch       # only part 1 (a real cluster)

Measures
  1. policy to enforced: a real-dataplane cluster (`knet up --nodes 4`: the control plane and
     3 workers) runs --pods servers (agnhost serve-hostname on TCP :80, a Deployment spread over
     the workers) and one client pod on node01. --policies NetworkPolicies are applied one at a
     time with `kubectl apply -f -`, each isolating one server (even ones deny all ingress, odd
     ones allow only pods the client is not), targets taken round-robin over the nodes, so a
     third of the probes stay on node01 and two thirds cross nodes. A prober runs in the client
     pod's network namespace (entered with nsenter by the pod's pause process), connecting to
     the current target every --probe-interval with a 250 ms timeout; the policy counts as
     enforced at the start of the first of 3 consecutive connects that time out (the SYN that
     was dropped). Latency = that moment - the moment `kubectl apply` was started (both
     CLOCK_MONOTONIC), p50/p99/max; also from the moment kubectl returned (the object was
     stored), and when the node's controller logged the policy as programmed (from `kubectl
     logs --timestamps`), which splits the time into kubectl, watch + debounce + sync, and the
     probe's own resolution. The controllers' /metrics (sync duration) are read before and after.
  2. 1,000 policies x 1,000 pods programmed: synthetic objects (bench/netpol_workload.py), every
     pod on one node (the worst case for that node). Render = compile + render, pure Python; apply
     = the controller's sync into a scratch network namespace (the time in iptables-save /
     iptables-restore / nft); then one more policy with 1,000 present (what each change costs:
     a sync as after a watch event, which applies only what changed).
  3. connect latency of an allowed flow: two pod namespaces routed through a scratch node
     namespace whose FORWARD hook holds the controller's real rules, either with no policy or with
     the 1,000 policies of part 2 (none selects or names the two pods: their SYN walks every
     isolation rule of the node and matches none), the 1,000 pods all on this node (as part 2) or
     spread over --spread-nodes nodes (~100 here, as a node's max-pods of 110 allows).
     --connects TCP connects per round, rounds alternating 0 / 1,000, p50/p99 per connect().
     Then a control: a policy isolating the server must make the next connect time out.
Everything is removed afterwards, also on failure or Ctrl-C: the cluster (`knet down`), the
prober, and the scratch namespaces (knet-npbench-*). Traffic stays inside those namespaces and
the cluster's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from netpol_workload import (  # noqa: E402
    TARGET_LABEL,
    client_pod,
    free_pod,
    percentile,
    server_deployment,
    summary,
    synthetic_cluster,
    synthetic_policy,
    target_policy,
)
from proxy_netns_topology import in_ns, remove_namespaces, route_pod_namespace, sh  # noqa: E402
from timed_netfilter import TimedNetfilter  # noqa: E402

from knet.netpol import render  # noqa: E402
from knet.netpol.compiler import compile_node  # noqa: E402
from knet.netpol.controller import PolicyController  # noqa: E402
from knet.proxy.netfilter import RealNetfilter  # noqa: E402

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"
NAMESPACE = "netpol-bench"
SCRATCH = "knet-npbench-"
NODE_NS, CLIENT_NS, SERVER_NS = SCRATCH + "node", SCRATCH + "client", SCRATCH + "server"
CLIENT_IP, SERVER_IP, GATEWAY = "10.244.200.2", "10.244.200.3", "10.244.200.1"
ECHO_PORT = 8080

# -- part 1: the prober (stdlib only; runs as `python -I -S` in the client pod's netns) ----------

PROBER = r"""
import os, select, socket, sys, time
interval, timeout, confirm = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def attempt(ip, port):
    s = socket.socket(); s.settimeout(timeout)
    try:
        s.connect((ip, port)); return True
    except ConnectionRefusedError:
        return True  # the SYN reached the pod (nothing listening yet): not blocked
    except OSError:
        return False
    finally:
        s.close()
def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n"); sys.stdout.flush()
buf, target = b"", None
while True:
    if select.select([0], [], [], 0 if target else None)[0]:
        data = os.read(0, 4096)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.decode().split()
            if cmd and cmd[0] == "probe":
                target, state, oks, fails, flakes = (cmd[1], int(cmd[2])), "warm", 0, 0, 0
                first_fail = last_ok = since = time.monotonic()
            elif cmd and cmd[0] == "stop":
                target = None
        continue
    t = time.monotonic()
    ok = attempt(*target)
    if state == "warm":
        oks = oks + 1 if ok else 0
        if oks >= confirm:
            state = "armed"; say("ready", t)
        elif t - since > 20:
            say("unreachable", *target); target = None
    elif ok:
        flakes += fails > 0
        fails, last_ok = 0, t
    else:
        if fails == 0:
            first_fail = t
        fails += 1
        if fails >= confirm:
            say("flipped", first_fail, last_ok, flakes); target = None
    if ok:
        time.sleep(interval)
"""


class Prober:
    """The prober process and a thread reading its lines."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("exited")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"prober: no {word!r} within {timeout:.0f} s") from None
            parts = line.split()
            if parts and parts[0] == word:
                return parts
            if parts and parts[0] in ("unreachable", "exited"):
                raise RuntimeError(f"prober: {line}")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait(timeout=10)


def node_init_pid(cluster, node: str) -> int:
    return int((cluster.state_dir / cluster.name / "nodes" / node / "init.pid").read_text().split()[0])


def pause_pid(cluster, node: str, uid: str) -> int:
    """The pod's pause process as its node sees it (the kubelet's checkpoint)."""
    cp = json.loads((cluster.state_dir / cluster.name / "nodes" / node / "pods" / uid / "checkpoint.json").read_text())
    return int(cp["pause_pid"])


def in_node(init_pid: int, *argv: str) -> list[str]:
    """argv run inside a node machine (its PID and mount namespaces: its /proc)."""
    return ["nsenter", f"--target={init_pid}", "--pid", "--mount", "--net", "--", *argv]


def controller_metrics(init_pid: int) -> dict[str, float]:
    """The node's netpol controller's /metrics (it listens on :9809 in the node's namespace)."""
    script = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9809/metrics',timeout=5).read().decode())"
    out = subprocess.run(in_node(init_pid, sys.executable, "-I", "-S", "-c", script), capture_output=True,
                         text=True, timeout=30).stdout
    values = {}
    for line in out.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def programmed_times(cluster, node: str, offset: float) -> dict[str, float]:
    """policy name -> CLOCK_MONOTONIC of the node's controller log line `programmed NS/NAME ingress`
    (its logging asctime: local time, milliseconds, written right after the rules were applied;
    `offset` = wall clock - monotonic clock)."""
    pod = cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=knet-net", "--field-selector",
                          f"spec.nodeName={node}", "-o", "name").stdout.strip()
    if not pod:
        return {}
    logs = cluster.kubectl("logs", "-n", "kube-system", pod, "-c", "netpol", check=False, timeout=60).stdout
    out: dict[str, float] = {}
    pattern = re.compile(rf"^(\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{{3}}) .*programmed {NAMESPACE}/(\S+) ingress")
    for line in logs.splitlines():
        m = pattern.match(line)
        if m and m.group(3) not in out:
            wall = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000
            out[m.group(3)] = wall - offset
    return out


def enforce_part(args) -> dict:
    from knet.cluster.testing import ClusterUnderTest

    workers = [f"node{i:02d}" for i in range(1, args.nodes + 1)]
    started = time.monotonic()
    cluster = ClusterUnderTest.up(nodes=args.nodes + 1, dataplane="real", proxy_mode=args.proxy_mode or None,
                                  timeout=180)
    prober: Prober | None = None
    try:
        print(f"cluster up in {cluster.up_seconds:.1f} s ({args.nodes} workers + control plane, real dataplane, "
              f"kube-proxy {args.proxy_mode or 'iptables'})", flush=True)
        kubectl = cluster.kubectl
        kubectl("create", "namespace", NAMESPACE)
        kubectl("apply", "-f", "-", input=json.dumps(client_pod(NAMESPACE, workers[0], IMAGE)))
        kubectl("apply", "-f", "-", input=json.dumps(server_deployment(args.pods, NAMESPACE, IMAGE)))
        t_pods = time.monotonic()
        while True:
            items = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-o", "json", timeout=60).stdout)["items"]
            up = [p for p in items if (p.get("status") or {}).get("phase") == "Running" and p["status"].get("podIP")]
            if len(up) >= args.pods + 1:
                break
            if time.monotonic() - t_pods > args.pods * 0.5 + 120:
                raise RuntimeError(f"only {len(up)}/{args.pods + 1} pods Running")
            time.sleep(2)
        per_node = {n: sum(1 for p in up if p["spec"]["nodeName"] == n) for n in workers}
        print(f"{args.pods} servers + 1 client Running in {time.monotonic() - t_pods:.1f} s "
              f"({', '.join(f'{n}: {c}' for n, c in per_node.items())})", flush=True)
        client = next(p for p in up if p["metadata"]["name"] == "prober")
        servers = {n: [p for p in up if p["spec"]["nodeName"] == n and p["metadata"]["name"] != "prober"]
                   for n in workers}
        targets = []  # round-robin over the nodes: node01 (same node as the client), node02, ...
        while len(targets) < args.policies:
            for n in workers:
                if servers[n] and len(targets) < args.policies:
                    targets.append(servers[n].pop(0))
        for i, pod in enumerate(targets):
            kubectl("label", "pod", "-n", NAMESPACE, pod["metadata"]["name"], f"{TARGET_LABEL}=t{i:03d}")
        init = {n: node_init_pid(cluster, n) for n in workers}
        pid = pause_pid(cluster, workers[0], client["metadata"]["uid"])
        prober = Prober(in_node(init[workers[0]], "nsenter", f"--target={pid}", "--net", "--",
                                sys.executable, "-I", "-S", "-c", PROBER,
                                str(args.probe_interval), "0.25", "3"))
        time.sleep(1)  # the labels' syncs settle
        before = {n: controller_metrics(init[n]) for n in workers}
        offset = time.time() - time.monotonic()
        rows = []
        for i, pod in enumerate(targets):
            ip, node = pod["status"]["podIP"], pod["spec"]["nodeName"]
            prober.send(f"probe {ip} 80")
            prober.expect("ready", 30)
            manifest = json.dumps(target_policy(i, NAMESPACE))
            t0 = time.monotonic()
            kubectl("apply", "-f", "-", input=manifest)
            t1 = time.monotonic()
            _, first_fail, last_ok, flakes = prober.expect("flipped", 30)
            t_flip = float(first_fail)
            if t_flip < t0:
                raise RuntimeError(f"policy {i}: the probe to {ip} failed before the policy was applied")
            rows.append({"policy": f"isolate-t{i:03d}", "node": node, "t0": t0, "stored": t1, "flip": t_flip,
                         "last_ok": float(last_ok), "flakes": int(flakes)})
            if args.verbose:
                print(f"  {rows[-1]['policy']} on {node}: {(t_flip - t0) * 1000:.0f} ms", flush=True)
        after = {n: controller_metrics(init[n]) for n in workers}
        programmed: dict[str, float] = {}
        for n in workers:
            programmed.update(programmed_times(cluster, n, offset))
        return report_enforce(args, rows, programmed, before, after, time.monotonic() - started)
    finally:
        if prober is not None:
            prober.stop()
        cluster.down()


def report_enforce(args, rows: list[dict], programmed: dict[str, float], before: dict, after: dict,
                   wall: float) -> dict:
    ms = 1000.0
    from_apply = [(r["flip"] - r["t0"]) * ms for r in rows]
    from_stored = [(r["flip"] - r["stored"]) * ms for r in rows]
    kubectl_s = [(r["stored"] - r["t0"]) * ms for r in rows]
    resolution = [(r["flip"] - r["last_ok"]) * ms for r in rows]
    ctl = [(programmed[r["policy"]] - r["t0"]) * ms for r in rows if r["policy"] in programmed]
    ctl_after_stored = [(programmed[r["policy"]] - r["stored"]) * ms for r in rows if r["policy"] in programmed]
    p99 = percentile(from_apply, 99)
    print(f"\n1. policy to enforced ({len(rows)} policies applied one at a time with kubectl apply, "
          f"{args.pods} server pods on {args.nodes} nodes, probe every {args.probe_interval * ms:.0f} ms)")
    table = [("kubectl apply started -> probe blocked", from_apply),
             ("kubectl apply returned -> probe blocked", from_stored),
             ("kubectl apply started -> returned", kubectl_s),
             ("kubectl apply started -> controller logged it programmed", ctl),
             ("kubectl apply returned -> controller logged it programmed", ctl_after_stored),
             ("last connect that passed -> first dropped (probe resolution)", resolution)]
    print(f"   {'':62s} {'p50':>7s} {'p99':>7s} {'max':>7s}  (ms)")
    for name, values in table:
        if values:
            print(f"   {name:62s} {percentile(values, 50):7.0f} {percentile(values, 99):7.0f} {max(values):7.0f}")
    by_node: dict[str, list[float]] = {}
    for r, v in zip(rows, from_apply, strict=True):
        by_node.setdefault(r["node"], []).append(v)
    print("   by target node (apply started -> blocked): " + ", ".join(
        f"{n} p50 {percentile(v, 50):.0f} / p99 {percentile(v, 99):.0f} ms" for n, v in sorted(by_node.items())))
    print(f"   goal p99 < 1000 ms: {'OK' if p99 < 1000 else 'MISSED'} (OVN-Kubernetes: p50 3.3 s, p99 5.1 s); "
          f"probe flakes (a single timeout before the flip): {sum(r['flakes'] for r in rows)}")
    syncs = {}
    for n in after:
        d = {k: after[n].get(k, 0) - before[n].get(k, 0) for k in after[n]}
        count = d.get("knet_netpol_sync_duration_seconds_count", 0)
        syncs[n] = {"syncs": int(count), "applies": int(d.get("knet_netpol_applies_total", 0)),
                    "errors": int(d.get("knet_netpol_sync_errors_total", 0)),
                    "mean_sync_ms": round(d.get("knet_netpol_sync_duration_seconds_sum", 0) / count * ms, 1)
                    if count else None, "rules_at_end": int(after[n].get("knet_netpol_rules", 0))}
        print(f"   controller on {n}: {syncs[n]['syncs']} syncs ({syncs[n]['applies']} applied, "
              f"{syncs[n]['errors']} errors), mean sync {syncs[n]['mean_sync_ms']} ms, "
              f"{syncs[n]['rules_at_end']} rules at the end")
    print(f"   (part 1 took {wall:.0f} s including knet up/down)", flush=True)
    return {"policies": len(rows), "pods": args.pods, "nodes": args.nodes,
            "apply_to_enforced_ms": summary(from_apply), "stored_to_enforced_ms": summary(from_stored),
            "kubectl_ms": summary(kubectl_s), "apply_to_programmed_ms": summary(ctl),
            "probe_resolution_ms": summary(resolution), "controllers": syncs}


# -- parts 2 and 3: scratch namespaces ---------------------------------------------------------

def scratch_cleanup() -> None:
    """Remove every knet-npbench-* namespace (and what runs in it); idempotent."""
    remove_namespaces(SCRATCH)




def feed(ctl: PolicyController, policies: list, pods: list, namespaces: list) -> None:
    for kind, objs in (("namespaces", namespaces), ("pods", pods), ("networkpolicies", policies)):
        for o in objs:
            ctl.on_change(kind, f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}", o)


def kernel_rules(mode: str, ns: str) -> int:
    if mode == "nftables":
        text = in_ns(ns, "nft", "list", "table", render.NFT_FAMILY, render.NFT_TABLE)
        return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith(
            ("table", "chain", "set", "map", "type", "flags", "elements", "}", "comment", "policy")))
    return sum(1 for line in in_ns(ns, "iptables-save", "-t", "filter").splitlines() if line.startswith("-A KNET"))


def program_part(mode: str, n_policies: int, n_pods: int) -> dict:
    policies, pods, namespaces = synthetic_cluster(n_policies, n_pods)
    t = time.perf_counter()
    rules = compile_node("node01", policies, pods, namespaces)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    text = render.render_nftables(rules) if mode == "nftables" else render.render_iptables(rules)
    render_s = time.perf_counter() - t
    row = {"mode": mode, "policies": n_policies, "pods": n_pods, "compile_s": round(compile_s, 3),
           "render_s": round(render_s, 3), "render_total_s": round(compile_s + render_s, 3),
           "lines": text.count("\n"), "rules": rules.rule_count()}
    scratch_cleanup()
    try:
        sh("ip", "netns", "add", NODE_NS)
        nf = TimedNetfilter(netns=NODE_NS)
        ctl = PolicyController(node="node01", mode=mode, nf=nf)
        feed(ctl, policies, pods, namespaces)
        t = time.perf_counter()
        assert ctl.sync(), ctl.last_error
        row["sync_s"] = round(time.perf_counter() - t, 3)
        row["apply_s"] = round(nf.seconds, 3)
        row["kernel_rules"] = kernel_rules(mode, NODE_NS)
        # one more policy, N present: what each change costs (the controller recompiles and
        # re-renders the node, and applies what changed); verify=False as the controller's sync
        # after a watch event (it reads the kernel back only periodically)
        nf.seconds = 0.0
        extra = synthetic_policy(0)  # selects pods (those of pol00000): new chains and rules
        extra["metadata"]["name"] = "one-more"
        feed(ctl, [extra], [], [])
        t = time.perf_counter()
        assert ctl.sync(verify=False), ctl.last_error
        row["one_change_sync_s"] = round(time.perf_counter() - t, 3)
        row["one_change_apply_s"] = round(nf.seconds, 3)
    finally:
        scratch_cleanup()
    return row


ECHO = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(512); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

CONNECTS = r"""
import socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
out = []
for _ in range(n):
    s = socket.socket(); s.settimeout(timeout)
    t = time.perf_counter(); s.connect((ip, port)); out.append(time.perf_counter() - t)
    s.close()
print(" ".join(f"{x * 1e6:.1f}" for x in out))
"""


def build_pair() -> subprocess.Popen:
    """Node namespace routing between two pod namespaces (veth pairs, /32 routes, as a routed CNI
    does): every packet between them crosses the node's FORWARD hook. Returns the echo server."""
    scratch_cleanup()
    for ns in (NODE_NS, CLIENT_NS, SERVER_NS):
        sh("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    in_ns(NODE_NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for ns, ip, link in ((CLIENT_NS, CLIENT_IP, "knpb-c"), (SERVER_NS, SERVER_IP, "knpb-s")):
        route_pod_namespace(NODE_NS, ns, ip, GATEWAY, link)
    server = subprocess.Popen(["ip", "netns", "exec", SERVER_NS, sys.executable, "-I", "-S", "-c", ECHO],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def latency_part(mode: str, n_policies: int, n_pods: int, nodes: int, connects: int, rounds: int) -> dict:
    policies, pods, namespaces = synthetic_cluster(n_policies, n_pods, nodes)
    pair = [free_pod("client", CLIENT_IP), free_pod("server", SERVER_IP)]
    server = build_pair()
    try:
        ctl = PolicyController(node="node01", mode=mode, nf=RealNetfilter(netns=NODE_NS))
        feed(ctl, [], pods + pair, namespaces)
        samples: dict[int, list[float]] = {0: [], n_policies: []}
        round_p50: dict[int, list[float]] = {0: [], n_policies: []}
        rules_at: dict[int, int] = {}
        in_ns(CLIENT_NS, sys.executable, "-I", "-S", "-c", CONNECTS, SERVER_IP, str(ECHO_PORT), "200")  # warm up
        for _ in range(rounds):
            for present in (0, n_policies):
                for p in policies:  # add or remove the policies, then one sync (as the controller)
                    ctl.on_change("networkpolicies", f"{p['metadata']['namespace']}/{p['metadata']['name']}",
                                  p if present else None)
                assert ctl.sync(), ctl.last_error
                rules_at[present] = kernel_rules(mode, NODE_NS)
                out = in_ns(CLIENT_NS, sys.executable, "-I", "-S", "-c", CONNECTS, SERVER_IP, str(ECHO_PORT),
                            str(connects))
                values = [float(x) for x in out.split()]
                samples[present] += values
                round_p50[present].append(round(percentile(values, 50), 1))
        # the control: the same path with a policy isolating the server drops the connection
        deny = {"metadata": {"namespace": "free", "name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
        ctl.on_change("networkpolicies", "free/deny", deny)
        assert ctl.sync(), ctl.last_error
        blocked = in_ns(CLIENT_NS, sys.executable, "-I", "-S", "-c", CONNECTS, SERVER_IP, str(ECHO_PORT), "1", "0.3",
                        check=False)
        if blocked.strip():
            raise RuntimeError(f"{mode}: a policy isolating the server did not stop the connection: the rules "
                               "are not on the measured path")
        row = {"mode": mode, "nodes": nodes, "connects_per_case": connects * rounds}
        for present, values in samples.items():
            row[f"policies_{present}"] = {"kernel_rules": rules_at[present], "round_p50s": round_p50[present], **{
                k: v for k, v in summary(values).items() if k != "n"}}
        return row
    finally:
        server.kill()
        server.wait(timeout=5)
        scratch_cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--pods", type=int, default=300, help="part 1: server pods")
    parser.add_argument("--policies", type=int, default=100, help="part 1: policies applied one at a time")
    parser.add_argument("--nodes", type=int, default=3, help="part 1: worker nodes (plus the control plane)")
    parser.add_argument("--proxy-mode", choices=("iptables", "nftables"), default="",
                        help="part 1: the cluster's kube-proxy mode, which the controller follows (default iptables)")
    parser.add_argument("--probe-interval", type=float, default=0.005, help="part 1: seconds between connects")
    parser.add_argument("--program-policies", type=int, default=1000, help="parts 2 and 3: synthetic policies")
    parser.add_argument("--program-pods", type=int, default=1000, help="parts 2 and 3: synthetic pods")
    parser.add_argument("--modes", default="iptables,nftables", help="parts 2 and 3")
    parser.add_argument("--spread-nodes", type=int, default=10,
                        help="part 3: also with the pods spread over this many nodes (~100 per node at 1,000)")
    parser.add_argument("--connects", type=int, default=1000, help="part 3: connects per round and case")
    parser.add_argument("--rounds", type=int, default=6, help="part 3: rounds, alternating 0 / N policies")
    parser.add_argument("--skip-cluster", action="store_true", help="skip part 1")
    parser.add_argument("--skip-scratch", action="store_true", help="skip parts 2 and 3")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each policy's latency")
    args = parser.parse_args()
    if args.quick:
        args.pods, args.policies = 30, 10
        args.program_policies = args.program_pods = 100
        args.connects, args.rounds = 500, 2
    if os.geteuid() != 0:
        print("needs root (network namespaces, a real-dataplane cluster)", file=sys.stderr)
        return 2
    # SIGTERM (timeout, CI) becomes an exception, so every `finally` cleans up on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    modes = [m for m in args.modes.split(",") if m]
    result: dict = {}
    try:
        if not args.skip_scratch:
            print(f"2. {args.program_policies} policies x {args.program_pods} pods programmed on one node "
                  "(render: compile + render, pure Python; apply: the controller's sync into a scratch netns)")
            print(f"   {'mode':9s} {'compile':>8s} {'render':>7s} {'= total':>8s} {'apply':>7s} {'sync':>7s}"
                  f" {'rules':>7s}  {'one more policy: sync (apply)':s}")
            result["program"] = []
            for mode in modes:
                row = program_part(mode, args.program_policies, args.program_pods)
                result["program"].append(row)
                print(f"   {mode:9s} {row['compile_s']:7.2f}s {row['render_s']:6.2f}s {row['render_total_s']:7.2f}s"
                      f" {row['apply_s']:6.2f}s {row['sync_s']:6.2f}s {row['kernel_rules']:7d}  "
                      f"{row['one_change_sync_s']:.2f} s ({row['one_change_apply_s']:.2f} s)", flush=True)
            print(f"   goal: 1,000 x 1,000 programmed (render + apply) in < 5 s; {args.program_policies:,} x "
                  f"{args.program_pods:,}: " + ", ".join(
                f"{r['mode']} {r['render_total_s'] + r['apply_s']:.2f} s "
                f"{'OK' if r['render_total_s'] + r['apply_s'] < 5 else 'MISSED'}" for r in result["program"]))
            print(f"\n3. connect latency of an allowed flow, pod -> pod through the node's FORWARD hook, "
                  f"0 vs {args.program_policies} policies not selecting either pod "
                  f"({args.connects * args.rounds} connects each, {args.rounds} alternating rounds); "
                  f"the {args.program_pods} pods all on this node, or spread over {args.spread_nodes} nodes")
            result["latency"] = []
            for nodes in (1, args.spread_nodes):
                for mode in modes:
                    row = latency_part(mode, args.program_policies, args.program_pods, nodes, args.connects,
                                       args.rounds)
                    result["latency"].append(row)
                    a, b = row["policies_0"], row[f"policies_{args.program_policies}"]
                    print(f"   {mode:9s} {args.program_pods // nodes:4d} pods here | 0 policies ({a['kernel_rules']:5d} "
                          f"rules): p50 {a['p50']:3.0f} us p99 {a['p99']:4.0f} us | {args.program_policies} policies "
                          f"({b['kernel_rules']:5d} rules): p50 {b['p50']:3.0f} us p99 {b['p99']:4.0f} us | "
                          f"p50 {b['p50'] - a['p50']:+.0f} us", flush=True)
                    print(f"   {'':9s} per-round p50s (the machine's noise): 0: {a['round_p50s']} us, "
                          f"{args.program_policies}: {b['round_p50s']} us", flush=True)
        if not args.skip_cluster:
            print()
            result["enforce"] = enforce_part(args)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        scratch_cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
