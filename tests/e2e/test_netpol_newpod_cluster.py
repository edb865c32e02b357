"""A new pod that a NetworkPolicy isolates is never reachable, not even before the controller
learns its address (the kubelet's status write comes after its containers start): the controller
sees the pod bound to its node first and closes the node's not-yet-known pod addresses until the
address arrives (compiler.Guard). And a new pod no policy selects is reachable as soon as it
listens (no guard for it).

A prober in another pod's network namespace (nsenter into its pause process, as bench/netpol_bench.py)
connects every 5 ms to the addresses the new pod can get (host-local hands out the addresses after
the last one, the prober pod's), from before the pod exists until 3 s after it is Running (the test
ends the prober then through its stdin; 60 s at most).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time

NODE = "node01"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
CANDIDATES = 6
PROBER = r"""
import errno, json, select, socket, sys, time
ips, port, seconds = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
seen = {ip: {"ok": 0, "refused": 0, "first": None} for ip in ips}
start = time.time()
end, rounds = start + seconds, 0
sys.stdout.write("started\n"); sys.stdout.flush()
while time.time() < end and not select.select([sys.stdin], [], [], 0)[0]:  # a line or EOF on stdin: stop
    socks = {}
    for ip in ips:
        s = socket.socket(); s.setblocking(False)
        s.connect_ex((ip, port)); socks[s] = ip
    deadline = time.time() + 0.005
    pending = set(socks)
    while pending and time.time() < deadline:
        _, w, _ = select.select([], list(pending), [], max(0.0, deadline - time.time()))
        for s in w:
            pending.discard(s)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            kind = "ok" if err == 0 else "refused" if err == errno.ECONNREFUSED else None
            if kind:
                entry = seen[socks[s]]; entry[kind] += 1
                entry["first"] = entry["first"] or time.time()
    for s in socks:
        s.close()
    rounds += 1
    time.sleep(max(0.0, deadline - time.time()))
print(json.dumps({"rounds": rounds, "seconds": time.time() - start, "seen": seen}))
"""


def _json(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def _apply(cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def _pod(ns: str, name: str, command: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": AGNHOST, "command": command}]}}


def _running(cluster, ns: str, name: str, timeout: float = 60.0) -> dict:
    return cluster.wait_for(f"{ns}/{name} Running", lambda: (
        p if (p := _json(cluster, "get", "pod", name, "-n", ns)).get("status", {}).get("phase") == "Running"
        and p["status"].get("podIP") else None), timeout=timeout)


def _node_init_pid(cluster) -> int:
    return int((cluster.state_dir / cluster.name / "nodes" / NODE / "init.pid").read_text().split()[0])


def _pause_pid(cluster, uid: str) -> int:
    cp = json.loads((cluster.state_dir / cluster.name / "nodes" / NODE / "pods" / uid / "checkpoint.json").read_text())
    return int(cp["pause_pid"])


def _probe_new_pod(cluster, ns: str, prober: dict) -> tuple[dict, dict, float, float]:
    """Probe the next addresses of the node while `ns`/server is created, until 3 s after Running.
    (the server pod, the prober's counts for its address, creation time, time Running was seen)."""
    base = ipaddress.IPv4Address(prober["status"]["podIP"])
    ips = [str(base + i) for i in range(1, CANDIDATES + 1)]
    argv = ["nsenter", f"--target={_node_init_pid(cluster)}", "--pid", "--mount", "--net", "--",
            "nsenter", f"--target={_pause_pid(cluster, prober['metadata']['uid'])}", "--net", "--",
            "python3", "-I", "-S", "-c", PROBER, json.dumps(ips), "80", "60"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started", proc.stderr.read() if proc.stderr else ""
        time.sleep(0.5)  # probing before the pod exists
        created = time.time()
        _apply(cluster, _pod(ns, "server", ["/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", "80"]))
        server = _running(cluster, ns, "server")
        running = time.time()
        time.sleep(3.0)  # probing on after Running
        out, err = proc.communicate(input="stop\n", timeout=60)
    finally:
        proc.kill()
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    assert result, f"prober failed: {err}"
    ip = server["status"]["podIP"]
    assert ip in result["seen"], f"server got {ip}, not one of the probed {ips}: cannot tell"
    # ~5 ms apart: more than 1000 rounds per 30 s of probing
    assert result["rounds"] > 1000 * result["seconds"] / 30, (result["rounds"], result["seconds"])
    return server, result["seen"][ip], created, running


def _setup(cluster, ns: str, policy: bool) -> dict:
    cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", timeout=120)
    _apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if policy:
        _apply(cluster, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": "default-deny-ingress", "namespace": ns},
                         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    _apply(cluster, _pod(ns, "prober", ["/agnhost", "pause"]))
    return _running(cluster, ns, "prober")


def _guard_times(cluster, pod: str) -> list[float]:
    """When the controller on NODE logged `guard ingress on` for `pod` (its asctime, local time)."""
    name = cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=knet-net", "--field-selector",
                           f"spec.nodeName={NODE}", "-o", "name").stdout.strip()
    logs = cluster.kubectl("logs", "-n", "kube-system", name, "-c", "netpol").stdout
    out = []
    for line in logs.splitlines():
        if "guard ingress on" in line and pod in line:
            stamp, _, ms = line[:23].partition(",")
            out.append(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000)
    return out


def test_new_isolated_pod_never_reachable_and_new_open_pod_reachable_at_once(knet_cluster):
    cluster = knet_cluster
    try:
        # isolated: a default-deny-ingress namespace; the prober in it too (the policy denies it as well)
        prober = _setup(cluster, "gap-iso", policy=True)
        server, seen, created, running = _probe_new_pod(cluster, "gap-iso", prober)
        guards = [t for t in _guard_times(cluster, "gap-iso/server") if t >= created - 1]
        print(f"isolated: probes at {server['status']['podIP']}: {seen}; created {created:.3f}, "
              f"guard on +{[round(t - created, 3) for t in guards]} s, Running seen +{running - created:.3f} s")
        assert seen["ok"] == 0 and seen["refused"] == 0, f"new isolated pod reachable before its rules: {seen}"
        assert guards, "the controller never put up the guard for gap-iso/server"

        # open: no policy in this namespace (gap-iso's still exists: the controller has policies)
        prober = _setup(cluster, "gap-open", policy=False)
        server, seen, created, running = _probe_new_pod(cluster, "gap-open", prober)
        print(f"open: probes at {server['status']['podIP']}: {seen}; created {created:.3f}, first reached "
              f"+{(seen['first'] or 0) - created:.3f} s, Running seen +{running - created:.3f} s; "
              f"isolated run: guard on {round(guards[0] - created, 3) if guards else None}")
        assert seen["ok"] > 0, f"new unselected pod never reached: {seen}"
        # knet's kubelet writes Running (with podIP) when it has started the container, about when
        # it listens: no guard may hold an unselected pod back beyond that
        assert seen["first"] < running + 1.0, "new unselected pod reachable only long after Running"
    finally:
        for ns in ("gap-iso", "gap-open"):
            cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
