"""`knet down` after `kill -9` of every process of a cluster (its own cluster, not the session's)
removes everything the cluster made (issue #15: "compare before and after"): the host is
snapshotted (tests/e2e/host_snapshot.py: namespaces, links, addresses, routes of every table,
policy rules, iptables and nft rulesets, forwarding sysctls, mounts, knet's cgroups, /run) before
`knet up` and after `knet down`, and the two must be the same; no process of the cluster runs,
its state dir and kubeconfig context are gone.

tests/e2e/test_host_routes_cluster.py kills a second cluster the same way and checks its routes
and rules while the session cluster runs; test_cluster_real.py checks a clean `knet down` and one
after `knet up` itself was killed half-way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from knet.cluster import hostdirs
from knet.cluster.host import real_dataplane_problem
from knet.cluster.testing import ClusterUnderTest
from knet.net.names import ClusterNetwork, link_prefix

from . import host_snapshot

pytestmark = pytest.mark.e2e

# A pod with what a user's pod brings: a runc container, an emptyDir, a Service in front of it.
WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80}]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
      volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80}]
"""


MOUNT_POINTS_KEPT = ("/run/sshd", "/run/containerd")


def kill_9_all(cluster: str, state_dir: Path) -> int:
    """SIGKILL every process of the cluster (those that name its state dir, run in its cgroups
    or its nodes' network namespaces),
    again and again until none is left (a supervisor may start one between two rounds). Returns
    how many it killed."""
    killed: set[int] = set()
    quiet_rounds = 0
    deadline = time.monotonic() + 30
    while quiet_rounds < 3 and time.monotonic() < deadline:
        pids = host_snapshot.processes_of(cluster, state_dir)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        quiet_rounds = 0 if pids else quiet_rounds + 1
        time.sleep(0.2)
    assert quiet_rounds >= 3, f"processes kept coming back: {host_snapshot.processes_of(cluster, state_dir)}"
    return len(killed)


def test_down_after_kill_9_of_every_process_leaves_the_host_as_before(tmp_path):
    problem = real_dataplane_problem()
    if problem:
        pytest.skip(problem)
    name = f"k9{os.getpid() % 10000}"
    state_dir = tmp_path / "state"
    known_namespaces = host_snapshot.namespaces_now()
    before = host_snapshot.take()
    cluster = ClusterUnderTest.up(name=name, nodes=2, dataplane="real", state_dir=state_dir)
    kubeconfig = cluster.kubeconfig
    try:
        cluster.kubectl("apply", "-f", "-", input=WORKLOAD)
        cluster.wait_for("2 web pods Running", lambda: cluster.kubectl(
            "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.phase}").stdout.split()
            == ["Running", "Running"], timeout=90, interval=0.3)

        # A LoadBalancer address reached from the host: a node answered ARP for it on the bridge.
        lb_ip = cluster.wait_for("web-lb's EXTERNAL-IP", lambda: cluster.kubectl(
            "get", "svc", "web-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout, timeout=30)
        cluster.wait_for(f"http://{lb_ip} answering the host", lambda: subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-m", "2", f"http://{lb_ip}/"]).returncode == 0, timeout=60, interval=0.5)

        # What the cluster holds on the host while it runs: the snapshot sees each kind of it.
        during = host_snapshot.difference(before, host_snapshot.take(), name)
        bridge = ClusterNetwork(name).bridge
        assert {f"knet-{name}-controlplane", f"knet-{name}-node01"} <= set(during["netns"]["gained"])
        assert bridge in during["links"]["gained"]
        assert len([x for x in during["links"]["gained"] if x.startswith(link_prefix(name))]) == 3
        assert any(r.startswith(f"{cluster.config['podSubnet']} via") for r in during["routes"]["gained"])
        assert any(r.startswith(f"{cluster.config['serviceSubnet']} via") for r in during["routes"]["gained"])
        assert any(f"iif {bridge} prohibit" in r for r in during["rules"]["gained"])
        assert any(r.startswith(f"{lb_ip} dev {bridge}") for r in during["neigh"]["gained"]), during.get("neigh")
        assert any(f"/knet/{name}/node01" in d for d in during["cgroups"]["gained"])
        assert any(f"/run/netns/knet-{name}-node01 " in m for m in during["mounts"]["gained"])
        # the nodes' mounts (their kubeadm filesystems, each pod's /dev/shm, volumes) stay in the
        # nodes' mount namespaces: the host gains only the namespaces' names
        assert [m for m in during["mounts"]["gained"] if not m.startswith(f"/run/netns/knet-{name}-")] == []
        # kubectl's context for it
        assert f"knet-{name}" in {c["name"] for c in yaml.safe_load(kubeconfig.read_text())["contexts"]}

        running = host_snapshot.processes_of(name, state_dir, known_namespaces)
        titles = " ".join(running.values())
        for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "/usr/bin/kubelet",
                          "/usr/local/bin/kube-proxy", "sshd", "runc"):
            assert component in titles, (component, running)

        # kill -9 every process of the cluster: nothing of it runs, its host side remains
        assert kill_9_all(name, state_dir) >= len(running) // 2
        assert host_snapshot.processes_of(name, state_dir, known_namespaces) == {}
        left = host_snapshot.difference(before, host_snapshot.take(), name)
        assert f"knet-{name}-node01" in left["netns"]["gained"]
        assert bridge in left["links"]["gained"]
    finally:
        result = cluster.knet("down", "--name", name, timeout=120)
    after = host_snapshot.take()
    try:
        assert result.returncode == 0, result.stderr
        left = host_snapshot.difference(before, after, name)
        # The mount points knet up makes on the host's /run when missing (README: sshd's privilege
        # separation dir; the nodes' runtime endpoint dir) and their note: the last knet down
        # removes them (also those a cluster that went down before this one made); while another
        # cluster is up (other tests share the host) they stay, empty.
        others = hostdirs.clusters_up()
        for kept in (*MOUNT_POINTS_KEPT, str(hostdirs.MARKER), f"{hostdirs.MARKER}.lock"):
            if others and kept in MOUNT_POINTS_KEPT and os.path.isdir(kept):
                assert os.listdir(kept) == [], kept
            for section, line in (("/run", os.path.basename(kept)), ("files", kept)):
                for change in (("gained", "lost") if others else ("lost",)):
                    lines = left.get(section, {}).get(change, [])
                    if line in lines:
                        lines.remove(line)
                if section in left and not left[section]["gained"] and not left[section]["lost"]:
                    del left[section]
        # knet's top cgroup goes with the last cluster, also one an earlier knet left behind
        lost_tops = [d for d in left.get("cgroups", {}).get("lost", []) if d.endswith("/knet")]
        if lost_tops == left.get("cgroups", {}).get("lost") and not left["cgroups"]["gained"]:
            del left["cgroups"]
        assert left == {}
        assert host_snapshot.processes_of(name, state_dir, known_namespaces) == {}
        assert not (state_dir / name).exists()
        contexts = yaml.safe_load(kubeconfig.read_text()) if kubeconfig.exists() else {}
        assert f"knet-{name}" not in json.dumps(contexts or {})
    finally:
        cluster.down()  # the test's own dirs (and nothing else to remove by now)
