"""`kubectl debug` on the real dataplane (issue 16 item 3), as a user runs it, non-interactively:
an ephemeral container joined to its target's PID namespace sees the target's processes (and
only them); it runs once and is never restarted; its logs and exec work as any container's;
`--copy-to --share-processes` makes a copy whose debugger sees the app; `kubectl debug node/NODE`
runs upstream's node debugging pod (hostPID/hostNetwork/hostIPC, the node's / at /host) that
sees the knet node -- its processes, files, hostname and addresses -- and, as an attacker would
try, nothing of the machine beyond what that node sees (the machine's processes, another
node's pods)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from .cluster_namespaces import cluster_namespace, wait_running

pytestmark = pytest.mark.e2e


def pod_on(node: str, name: str, ns: str, *containers: tuple[str, list[str]]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": c, "image": "busybox:1.36", "command": cmd} for c, cmd in containers]}}


def apply(cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def debugger_name(out: str) -> str:
    line = next(x for x in out.splitlines() if x.startswith("Defaulting debug container name to "))
    return line.removeprefix("Defaulting debug container name to ").rstrip(".")


def logs_when(cluster, ns: str, pod: str, container: str, marker: str, timeout: float = 30) -> str:
    def ready():
        p = cluster.kubectl("logs", pod, "-n", ns, "-c", container, check=False)
        return p.stdout if p.returncode == 0 and marker in p.stdout else None
    return cluster.wait_for(f"{marker!r} in the logs of {pod}/{container}", ready, timeout=timeout, interval=0.3)


def ephemeral_status(cluster, ns: str, pod: str, name: str) -> dict:
    obj = json.loads(cluster.kubectl("get", "pod", pod, "-n", ns, "-o", "json").stdout)
    return next((s for s in obj["status"].get("ephemeralContainerStatuses") or [] if s["name"] == name), {})


def test_debug_target_sees_the_targets_processes(knet_cluster):
    with cluster_namespace(knet_cluster, "e2e-debug-target") as ns:
        apply(knet_cluster, pod_on("node01", "web", ns, ("app", ["sleep", "3600"]), ("side", ["sleep", "3599"])))
        wait_running(knet_cluster, ns, "web")
        p = knet_cluster.kubectl("debug", "web", "-n", ns, "--image=busybox", "--target=app", "--",
                                 "ps", "-o", "pid,args")
        assert 'Targeting container "app"' in p.stdout
        name = debugger_name(p.stdout)
        out = logs_when(knet_cluster, ns, "web", name, "PID")
        procs = [line.split(None, 1) for line in out.splitlines()[1:]]
        # app's process is PID 1 of the namespace it joined; the other container's is not there.
        assert ["1", "sleep 3600"] in procs, out
        assert not any("sleep 3599" in args for _, args in procs), out
        term = knet_cluster.wait_for("debugger terminated", lambda: ephemeral_status(
            knet_cluster, ns, "web", name).get("state", {}).get("terminated"), timeout=30)
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
        time.sleep(3)  # never restarted, though the pod's restartPolicy is Always
        status = ephemeral_status(knet_cluster, ns, "web", name)
        assert status["restartCount"] == 0 and "terminated" in status["state"] and status["ready"] is False
        # Its log is on the node where a log shipper looks, as every container's is.
        knet_cluster.wait_for("the debugger's /var/log/containers link", lambda: knet_cluster.ssh(
            "node01", "sh", "-c", f"ls /var/log/containers/web_{ns}_{name}-*.log", timeout=30).returncode == 0,
            timeout=20, interval=0.5)
        # A long-running one: exec into it, as into any container, sees the target too.
        p = knet_cluster.kubectl("debug", "web", "-n", ns, "--image=busybox", "--target=app", "-c", "shell", "--",
                                 "sleep", "300")
        knet_cluster.wait_for("shell running", lambda: "running" in ephemeral_status(
            knet_cluster, ns, "web", "shell").get("state", {}), timeout=30)
        got = knet_cluster.kubectl("exec", "web", "-n", ns, "-c", "shell", "--", "cat", "/proc/1/cmdline").stdout
        assert got.split("\0")[:2] == ["sleep", "3600"]
        # The pod stays Running and 2/2: ephemeral containers are not counted.
        row = knet_cluster.kubectl("get", "pod", "web", "-n", ns, "--no-headers").stdout.split()
        assert row[1:3] == ["2/2", "Running"]


def test_debug_copy_to_shares_the_apps_processes(knet_cluster):
    with cluster_namespace(knet_cluster, "e2e-debug-copy") as ns:
        apply(knet_cluster, pod_on("node01", "web", ns, ("app", ["sleep", "3598"])))
        wait_running(knet_cluster, ns, "web")
        # The copy's containers start together: the debugger looks until app's process is there
        # (it never is without a shared PID namespace), then shows what it sees.
        p = knet_cluster.kubectl("debug", "web", "-n", ns, "--image=busybox", "--copy-to=web-copy",
                                 "--share-processes", "--", "sh", "-c",
                                 "until ps -o args | grep -qx 'sleep 3598'; do sleep 0.2; done; ps -o args; "
                                 "sleep 3600")
        name = debugger_name(p.stdout)
        out = logs_when(knet_cluster, ns, "web-copy", name, "sleep 3598", timeout=60)
        assert "sleep 3598" in out.splitlines()


def host_addresses(text: str) -> set[str]:
    """IPv4 addresses of `ip -4 -br addr` output."""
    return {word.split("/")[0] for line in text.splitlines() for word in line.split()[2:] if "/" in word}


def test_node_debugging_sees_the_node_and_not_the_machine(knet_cluster):
    marker = subprocess.Popen(["sleep", "7777.25"])  # a process of the machine, outside every node
    try:
        with cluster_namespace(knet_cluster, "e2e-debug-node") as ns:
            apply(knet_cluster, pod_on("node01", "mine", ns, ("app", ["sleep", "3597"])))
            apply(knet_cluster, pod_on("node02", "theirs", ns, ("app", ["sleep", "3596"])))
            wait_running(knet_cluster, ns, "mine")
            wait_running(knet_cluster, ns, "theirs")
            # Sections apart by SEP2, which the script's own command line (in ps) does not contain.
            script = ("hostname; echo SEP$((1+1)); tr '\\0' ' ' < /proc/1/cmdline; echo; echo SEP$((1+1)); "
                      "ps -e -o args; echo SEP$((1+1)); ls /etc/kubernetes; echo SEP$((1+1)); ip -4 -br addr")
            p = knet_cluster.kubectl("debug", "node/node01", "-n", ns, "--image=busybox", "--",
                                     "chroot", "/host", "sh", "-c", script)
            pod = p.stdout.split("Creating debugging pod ", 1)[1].split()[0]
            assert pod.startswith("node-debugger-node01-")
            knet_cluster.wait_for(f"{pod} Succeeded", lambda: knet_cluster.kubectl(
                "get", "pod", pod, "-n", ns, "-o", "jsonpath={.status.phase}").stdout == "Succeeded", timeout=60,
                interval=0.3)
            out = knet_cluster.kubectl("logs", pod, "-n", ns).stdout
            hostname, init, procs, etc_kubernetes, addrs = (part.strip() for part in out.split("SEP2\n"))
            node = lambda script: knet_cluster.ssh("node01", "sh", "-c", script).stdout.strip()  # noqa: E731
            # The node's UTS, PID and network namespaces and its files (the node's own /etc/kubernetes).
            assert hostname == "node01"
            assert init == node("tr '\\0' ' ' < /proc/1/cmdline")
            with open("/proc/1/cmdline", "rb") as f:
                assert init != f.read().replace(b"\0", b" ").decode().strip()  # not the machine's init
            assert "sleep 3597" in procs.splitlines()  # a pod of this node
            assert etc_kubernetes.split() == node("ls /etc/kubernetes").split()
            assert "admin.conf" not in etc_kubernetes.split()  # the controlplane's, not node01's
            node_ips = {a["address"] for a in json.loads(knet_cluster.kubectl("get", "node", "node01", "-o", "json")
                                                           .stdout)["status"]["addresses"] if a["type"] == "InternalIP"}
            assert node_ips <= host_addresses(addrs) == host_addresses(node("ip -4 -br addr"))
            # The attacker's view: nothing of the machine or of other nodes.
            assert not any("7777.25" in line for line in procs.splitlines()), procs
            assert "sleep 3596" not in procs.splitlines()  # node02's pod
            assert os.path.exists(f"/proc/{marker.pid}")  # (the marker does run, on the machine)
            other_ip = next(a["address"] for a in json.loads(knet_cluster.kubectl(
                "get", "node", "node02", "-o", "json").stdout)["status"]["addresses"] if a["type"] == "InternalIP")
            assert other_ip not in host_addresses(addrs)
    finally:
        marker.kill()
        marker.wait()


def test_a_restarted_kubelet_keeps_ephemeral_containers_and_restarts_none(knet_cluster):
    """kill -9 of node01's kubelet: the new one re-adopts the running ephemeral container (same
    ID, still running, exec works), starts neither it nor the finished one again, and follows
    the running one to its end."""
    from .test_kubelet_restart_cluster import _kubelet_pids

    c = knet_cluster
    nap = 4000 + int.from_bytes(os.urandom(2), "big") % 999
    with cluster_namespace(c, "e2e-debug-readopt") as ns:
        apply(c, pod_on("node01", "web", ns, ("app", ["sleep", "3595"])))
        wait_running(c, ns, "web")
        c.kubectl("debug", "web", "-n", ns, "--image=busybox", "-c", "done", "--", "true")
        c.kubectl("debug", "web", "-n", ns, "--image=busybox", "--target=app", "-c", "shell", "--",
                  "sleep", str(nap))
        c.wait_for("done terminated, shell running", lambda: "terminated" in ephemeral_status(
            c, ns, "web", "done").get("state", {}) and "running" in ephemeral_status(c, ns, "web", "shell").get(
            "state", {}), timeout=30)
        before = {n: ephemeral_status(c, ns, "web", n) for n in ("done", "shell")}
        old = _kubelet_pids(c, "node01")
        assert len(old) == 1, old
        os.kill(old[0], 9)
        c.wait_for("a new kubelet of node01", lambda: [p for p in _kubelet_pids(c, "node01") if p not in old],
                   timeout=10)
        got = c.wait_for("exec into the shell through the new kubelet", lambda: c.kubectl(
            "exec", "web", "-n", ns, "-c", "shell", "--", "cat", "/proc/1/cmdline", check=False).stdout, timeout=20,
            interval=0.5)
        assert got.split("\0")[:2] == ["sleep", "3595"]  # still in app's PID namespace
        time.sleep(3)
        after = {n: ephemeral_status(c, ns, "web", n) for n in ("done", "shell")}
        assert after == before
        # The adopted one ends: terminated (killed), never started again.
        assert c.ssh("node01", "pkill", "-KILL", "-x", "-f", f"sleep {nap}").returncode == 0
        term = c.wait_for("shell terminated", lambda: ephemeral_status(c, ns, "web", "shell").get(
            "state", {}).get("terminated"), timeout=20)
        assert term["exitCode"] == 137
        time.sleep(2)
        last = ephemeral_status(c, ns, "web", "shell")
        assert "terminated" in last["state"] and last["restartCount"] == 0
        assert last["containerID"] == before["shell"]["containerID"]
