"""Real dataplane: node machines + `knet kubelet` + real CNI plugins against a real apiserver.

Address plan: node network a free /24 of 172.30.64.0/18 on bridge kn<hash>br (host .1), nodes
kd1 = .2, kd2 = .3; podCIDRs 10.244.77.0/24 (kd1) and 10.244.78.0/24 (kd2) given by --pod-cidr; the
apiserver on the host, reached from the nodes at 172.30.77.1. Each node runs the network add-on's
CNI agent (`knet cni-agent`) beside its kubelet: it writes the node's CNI config and the routes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import KNET, KUBECTL, start_apiserver  # noqa: E402

from .node_networks import free_node_networks  # noqa: E402

pytestmark = pytest.mark.e2e



NODES = {"kd1": "10.244.77.0/24", "kd2": "10.244.78.0/24"}


def _root_ok() -> bool:
    return os.geteuid() == 0 and Path("/usr/lib/cni/bridge").exists()


def wait_for(check, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 -- keep polling until the deadline
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class MiniCluster:
    def __init__(self, tmp: Path) -> None:
        from knet.net.machines import cluster_network

        self.tmp = tmp
        self.name = "kd" + uuid.uuid4().hex[:6]
        self.net = cluster_network(self.name, free_node_networks(1)[0])
        self.kubelets: dict[str, subprocess.Popen] = {}
        self.cni_agents: dict[str, subprocess.Popen] = {}
        self.api = None
        self.ips = {node: self.net.node_ip(i) for i, node in enumerate(NODES)}

    def start(self) -> None:
        from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key
        from knet.net.machines import create_node_machine

        os.environ["KNET_STATE_DIR"] = str(self.tmp / "state")
        self.api = start_apiserver(self.tmp / "api", ["--bind-address=0.0.0.0"])
        conf = yaml.safe_load(Path(self.api.kubeconfig).read_text())
        gw = self.net.gateway.split("/")[0]
        for cluster in conf["clusters"]:
            cluster["cluster"]["server"] = f"https://{gw}:{self.api.port}"
            cluster["cluster"].pop("certificate-authority-data", None)
            cluster["cluster"]["insecure-skip-tls-verify"] = True
        # No controller-manager here: make the service account and the CA bundle it would.
        self.kubectl("create", "serviceaccount", "default", "-n", "default")
        self.kubectl("create", "configmap", "kube-root-ca.crt", "-n", "default",
                     f"--from-file=ca.crt={self.api.ca_file}")
        node_conf = self.tmp / "kubelet.conf"
        node_conf.write_text(yaml.safe_dump(conf))
        ca = load_cert_key(self.api.pki_dir, "ca")
        for node, cidr in NODES.items():
            create_node_machine(self.net, node, self.ips[node], hosts=dict(self.ips), service_cidr="10.96.0.0/12")
            ndir = self.tmp / "nodes" / node
            write_cert_key(ndir / "pki", "kubelet", issue_cert(ca, node, dns_names=[node],
                                                               ip_addresses=[self.ips[node]], server=True))
            self.start_kubelet(node, cidr, node_conf, ndir)
            self.start_cni_agent(node)
        wait_for(lambda: all(self.node_ready(n) for n in NODES), 30, what="nodes Ready")

    def start_kubelet(self, node: str, cidr: str, node_conf: Path, ndir: Path) -> None:
        from knet.net.machines import node_exec_argv

        argv = node_exec_argv(self.name, node) + [
            *KNET, "kubelet", f"--hostname-override={node}", f"--node-ip={self.ips[node]}",
            f"--kubeconfig={node_conf}", f"--root-dir={ndir}", f"--pod-cidr={cidr}",
            "--cluster-dns=10.96.0.10", "--dataplane=real", f"--cni-conf-dir={ndir / 'cni'}",
            f"--tls-cert-file={ndir / 'pki' / 'kubelet.crt'}", f"--tls-private-key-file={ndir / 'pki' / 'kubelet.key'}",
            f"--client-ca-file={self.api.ca_file}",
        ]
        log = open(ndir / "kubelet.log", "ab")
        self.kubelets[node] = subprocess.Popen(argv, stdout=log, stderr=log)

    def start_cni_agent(self, node: str) -> None:
        """The network add-on's CNI agent, as its DaemonSet pod runs it (hostNetwork, in the
        node): it writes the node's conflist from the podCIDR and the routes to the other node."""
        from knet.net.machines import node_exec_argv

        ndir = self.tmp / "nodes" / node
        argv = node_exec_argv(self.name, node) + [
            *KNET, "cni-agent", "--ipalloc-range=10.244.0.0/16", f"--hostname-override={node}",
            f"--kubeconfig={self.tmp / 'kubelet.conf'}", f"--cni-conf-dir={ndir / 'cni'}",
            f"--ipam-data-dir={ndir / 'cni' / 'ipam'}", "--cni-bin-dir=/usr/lib/cni",
        ]
        log = open(ndir / "cni-agent.log", "ab")
        self.cni_agents[node] = subprocess.Popen(argv, stdout=log, stderr=log)

    def stop_cni_agent(self, node: str) -> None:
        proc = self.cni_agents.pop(node)
        proc.terminate()
        proc.wait(10)

    def node_ready(self, node: str) -> bool:
        out = self.kubectl("get", "node", node, "-o", "json")
        if out.returncode != 0:
            return False
        conds = {c["type"]: c["status"] for c in json.loads(out.stdout)["status"]["conditions"]}
        return conds.get("Ready") == "True"

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, f"--kubeconfig={self.api.kubeconfig}", *args], input=input, text=True,
                              capture_output=True, timeout=timeout)

    def kubectl_ok(self, *args: str, input: str | None = None, timeout: float = 30) -> str:
        p = self.kubectl(*args, input=input, timeout=timeout)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def node_sh(self, node: str, script: str, timeout: float = 20) -> subprocess.CompletedProcess:
        from knet.net.machines import node_exec_argv

        return subprocess.run(node_exec_argv(self.name, node) + ["sh", "-c", script], capture_output=True,
                              text=True, timeout=timeout)

    def pod(self, name: str, ns: str = "default") -> dict:
        return json.loads(self.kubectl_ok("get", "pod", name, "-n", ns, "-o", "json"))

    def wait_running(self, name: str, ns: str = "default", timeout: float = 20, ready: bool = True) -> dict:
        def check():
            pod = self.pod(name, ns)
            st = pod.get("status") or {}
            if st.get("phase") != "Running" or not st.get("podIP"):
                return None
            if ready and not all(c.get("ready") for c in st.get("containerStatuses") or []):
                return None
            return pod
        return wait_for(check, timeout, what=f"pod {name} Running")

    def stop(self) -> None:
        from knet.net.machines import teardown_cluster_network

        procs = [*self.kubelets.values(), *self.cni_agents.values()]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        teardown_cluster_network(self.name)
        from knet.node import cgroups

        # the kubelets' pod cgroups, /knet/<dir of nodes/>/... (their root-dirs are TMP/nodes/NODE),
        # as `knet down` removes a cluster's
        cgroups.remove_cluster(self.tmp.name)
        if self.api is not None:
            self.api.stop()
        os.environ.pop("KNET_STATE_DIR", None)


def _snapshot() -> dict:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    return {"netns": sorted(line.split()[0] for line in netns.splitlines() if line.strip()),
            "links": sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()),
            "mounts": sorted(line.split()[4] for line in mounts.splitlines() if "/run/netns" in line)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not _root_ok():
        pytest.skip("needs root, network namespaces and the CNI plugins")
    c = MiniCluster(tmp_path_factory.mktemp("dataplane"))
    c.before = _snapshot()
    try:
        c.start()
        yield c
    finally:
        c.stop()


NETEXEC = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080", "--udp-port=8081"]
    ports: [{{containerPort: 8080}}, {{containerPort: 8081, protocol: UDP}}]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
"""


def test_pods_reach_each_other_across_nodes_tcp_and_udp(cluster):
    cluster.kubectl_ok("apply", "-f", "-", input=NETEXEC.format(name="srv1", node="kd1")
                       + "---" + NETEXEC.format(name="srv2", node="kd2"))
    p1 = cluster.wait_running("srv1")
    p2 = cluster.wait_running("srv2")
    ip1, ip2 = p1["status"]["podIP"], p2["status"]["podIP"]
    assert ip1.startswith("10.244.77.") and ip2.startswith("10.244.78.")
    assert p1["status"]["hostIP"] == cluster.ips["kd1"]
    # TCP pod -> pod across nodes, by IP, from inside pod srv1 (kubectl exec, real kubectl)
    out = cluster.kubectl_ok("exec", "srv1", "--", "curl", "-s", "--max-time", "3", f"http://{ip2}:8080/hostname")
    assert out.strip() == "srv2"
    # the server sees the client pod's own IP: no NAT inside the cluster
    out = cluster.kubectl_ok("exec", "srv1", "--", "curl", "-s", "--max-time", "3", f"http://{ip2}:8080/clientip")
    assert out.split(":")[0] == ip1
    # UDP
    out = cluster.kubectl_ok("exec", "srv2", "--", "sh", "-c",
                             f"echo hostname | timeout 3 nc -u -w1 {ip1} 8081 || "
                             f"python3 -c \"import socket;s=socket.socket(2,2);s.settimeout(3);"
                             f"s.sendto(b'hostname',('{ip1}',8081));print(s.recv(100).decode())\"")
    assert "srv1" in out


def test_node_to_pod_and_pod_to_node(cluster):
    ip2 = cluster.wait_running("srv2")["status"]["podIP"]
    r = cluster.node_sh("kd1", f"curl -s --max-time 3 http://{ip2}:8080/clientip")
    assert r.stdout.split(":")[0] == cluster.ips["kd1"], r
    out = cluster.kubectl_ok("exec", "srv2", "--", "ping", "-c1", "-W2", cluster.ips["kd1"])
    assert "1 received" in out


def test_pod_sees_its_hostname_dns_config_and_hosts(cluster):
    cluster.wait_running("srv1")
    assert cluster.kubectl_ok("exec", "srv1", "--", "hostname").strip() == "srv1"
    resolv = cluster.kubectl_ok("exec", "srv1", "--", "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    hosts = cluster.kubectl_ok("exec", "srv1", "--", "cat", "/etc/hosts")
    assert re.search(r"10\.244\.77\.\d+\tsrv1", hosts)
    assert f"{cluster.ips['kd1']}\tkd1" in hosts


def test_host_network_pod_uses_node_ip(cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  nodeName: kd2
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 18080}]
    readinessProbe: {tcpSocket: {port: 18080}, periodSeconds: 1}
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)
    pod = cluster.wait_running("hostnet")
    assert pod["status"]["podIP"] == cluster.ips["kd2"]
    r = cluster.node_sh("kd1", f"curl -s --max-time 3 http://{cluster.ips['kd2']}:18080/hostname")
    assert r.stdout.strip() == "kd2"
    cluster.kubectl_ok("delete", "pod", "hostnet", "--wait=true")


def test_logs_exec_exit_codes_and_restart_counting(cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  nodeName: kd1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo hello from $(POD_NAME) on $NODE; sleep 3600"]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)
    cluster.wait_running("talker")
    logs = wait_for(lambda: cluster.kubectl_ok("logs", "talker"), 10, what="logs")
    assert logs.strip() == "hello from talker on kd1"
    p = cluster.kubectl("exec", "talker", "--", "sh", "-c", "exit 3")
    assert p.returncode == 3
    # kill the container's process: the kubelet restarts it and counts the restart. (Not `exec
    # sleep`: PID 1 of the container's PID namespace would ignore the signal, as under containerd.
    # sh is PID 1 here and exits with its child's 143.)
    cluster.kubectl("exec", "talker", "--", "sh", "-c", "pkill -x sleep")
    pod = wait_for(lambda: (lambda p: p if p["status"]["containerStatuses"][0]["restartCount"] >= 1
                            and p["status"]["containerStatuses"][0]["state"].get("running") else None)(
        cluster.pod("talker")), 15, what="restart")
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143)
    assert "RESTARTS" in cluster.kubectl_ok("get", "pod", "talker")
    row = cluster.kubectl_ok("get", "pod", "talker", "--no-headers").split()
    assert row[3].startswith("1")
    prev = cluster.kubectl_ok("logs", "talker", "--previous")
    assert "hello from talker" in prev


def test_graceful_delete_removes_pod_and_frees_network(cluster):
    cluster.kubectl_ok("apply", "-f", "-", input=NETEXEC.format(name="gone", node="kd2"))
    ip = cluster.wait_running("gone")["status"]["podIP"]
    t0 = time.monotonic()
    cluster.kubectl_ok("delete", "pod", "gone", "--wait=true", timeout=30)
    assert time.monotonic() - t0 < 10
    r = cluster.node_sh("kd2", f"ping -c1 -W1 {ip}")
    assert r.returncode != 0
    events = cluster.kubectl_ok("get", "events", "--field-selector", "involvedObject.name=gone")
    assert "Killing" in events and "Started" in events


def test_init_container_config_map_volume_and_service_env(cluster):
    manifest = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello-from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret, user: admin}
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  ports: [{port: 8080, name: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: staged}
spec:
  nodeName: kd2
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: work, emptyDir: {}}
  - {name: cfg, configMap: {name: settings}}
  - {name: creds, secret: {secretName: creds}}
  initContainers:
  - name: setup
    image: busybox
    command: ["sh", "-c", "cat /etc/settings/greeting > /work/out"]
    volumeMounts: [{name: work, mountPath: /work}, {name: cfg, mountPath: /etc/settings}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "cat /work/out; echo; echo svc=$BACKEND_SERVICE_HOST:$BACKEND_SERVICE_PORT_HTTP; echo pw=$PW;
               cat /etc/creds/user; echo; exec sleep 3600"]
    env: [{name: PW, valueFrom: {secretKeyRef: {name: creds, key: password}}}]
    volumeMounts: [{name: work, mountPath: /work}, {name: creds, mountPath: /etc/creds, readOnly: true}]
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)
    pod = cluster.wait_running("staged")
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0 and init["state"]["terminated"]["reason"] == "Completed"
    svc_ip = json.loads(cluster.kubectl_ok("get", "svc", "backend", "-o", "json"))["spec"]["clusterIP"]
    logs = wait_for(lambda: cluster.kubectl_ok("logs", "staged"), 10, what="logs")
    assert logs.splitlines() == ["hello-from-configmap", f"svc={svc_ip}:8080", "pw=s3cret", "admin"]
    ro = cluster.kubectl("exec", "staged", "-c", "main", "--", "touch", "/etc/creds/x")
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    # a changed Secret reaches the mounted volume of the running pod (kubelet's volume sync)
    cluster.kubectl_ok("patch", "secret", "creds", "-p", '{"stringData": {"user": "operator"}}')
    wait_for(lambda: cluster.kubectl_ok("exec", "staged", "--", "cat", "/etc/creds/user") == "operator", 15,
             what="secret volume update")
    assert cluster.kubectl_ok("logs", "staged", "-c", "setup") == ""
    # the volume is the pod's own: the host does not see /work or /etc/settings
    assert not Path("/work/out").exists() and not Path("/etc/settings/greeting").exists()
    if list((cluster.tmp / "bin").glob("knet-pause-*")):  # the C pause makes missing targets privately
        assert not Path("/etc/settings").exists() and not Path("/etc/creds").exists()


def test_exec_stdin_tty_and_follow_logs(cluster):
    import asyncio
    import ssl

    import aiohttp

    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  nodeName: kd1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)
    cluster.wait_running("chatty")
    assert cluster.kubectl_ok("exec", "-i", "chatty", "--", "sh", "-c", "cat; echo done",
                              input="from stdin\n") == "from stdin\ndone\n"
    follow = subprocess.Popen([KUBECTL, f"--kubeconfig={cluster.api.kubeconfig}", "logs", "-f", "chatty"],
                              stdout=subprocess.PIPE, text=True)
    try:
        lines = [follow.stdout.readline() for _ in range(8)]  # keeps streaming as the container writes
        assert lines[-1].startswith("line ") and int(lines[-1].split()[1]) >= 7
    finally:
        follow.kill()
        follow.wait()

    # A tty exec straight at the kubelet (what the apiserver relays for `kubectl exec -it`), with a
    # resize message on channel 4 and the exit status on channel 3.
    async def tty_exec() -> list[bytes]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        pki = cluster.api.pki_dir
        ctx.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
        url = (f"https://{cluster.ips['kd1']}:10250/exec/default/chatty/c?command=sh&command=-c"
               "&command=tty%3Bstty%20size%3Bexit%205&stdout=true&stdin=true&tty=true")
        frames = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, ssl=ctx, protocols=("v5.channel.k8s.io",)) as ws:
                assert ws.protocol == "v5.channel.k8s.io"
                await ws.send_bytes(b"\x04" + b'{"Width":100,"Height":40}')
                async for msg in ws:
                    frames.append(msg.data)
        return frames

    frames = asyncio.run(asyncio.wait_for(tty_exec(), 15))
    out = b"".join(f[1:] for f in frames if f[:1] == b"\x01").decode()
    assert out.splitlines()[0].startswith("/dev/pts/") and "40 100" in out
    status = json.loads(next(f[1:] for f in frames if f[:1] == b"\x03"))
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


def test_host_port_maps_to_the_pod(cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: hostported}
spec:
  nodeName: kd1
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80, hostPort: 18081}]
    readinessProbe: {httpGet: {port: 80, path: /healthz}, periodSeconds: 1}
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)
    cluster.wait_running("hostported")
    r = cluster.node_sh("kd2", f"curl -s --max-time 3 http://{cluster.ips['kd1']}:18081/hostname")
    assert r.stdout.strip() == "hostported", r


def test_run_to_completion_pods_succeed_or_fail_with_their_exit_code(cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: oneshot-ok}
spec:
  nodeName: kd1
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: ["sh", "-c", "echo finished"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: oneshot-bad}
spec:
  nodeName: kd2
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: ["sh", "-c", "exit 42"]}]
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)

    def phase(name):
        return cluster.pod(name)["status"].get("phase")

    wait_for(lambda: phase("oneshot-ok") == "Succeeded", 15, what="Succeeded")
    wait_for(lambda: phase("oneshot-bad") == "Failed", 15, what="Failed")
    term = cluster.pod("oneshot-bad")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (42, "Error")
    assert "Completed" in cluster.kubectl_ok("get", "pod", "oneshot-ok")
    assert cluster.kubectl_ok("logs", "oneshot-ok") == "finished\n"
    t0 = time.monotonic()
    cluster.kubectl_ok("delete", "pod", "oneshot-ok", "oneshot-bad", "--wait=true", timeout=30)
    assert time.monotonic() - t0 < 10


def test_liveness_probe_failure_restarts_the_container(cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: unlively}
spec:
  nodeName: kd2
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 8088}]
    livenessProbe: {httpGet: {path: /no-such-check, port: 8099}, periodSeconds: 1, failureThreshold: 2}
"""
    cluster.kubectl_ok("apply", "-f", "-", input=manifest)

    def restarted():
        st = cluster.pod("unlively")["status"].get("containerStatuses") or [{}]
        return st[0].get("restartCount", 0) >= 1

    wait_for(restarted, 20, what="liveness restart")
    events = cluster.kubectl_ok("get", "events", "--field-selector", "involvedObject.name=unlively")
    assert "Liveness probe failed" in events
    assert "failed liveness probe, will be restarted" in events


LATE = """
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  nodeName: kd2
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Pod
metadata: {name: late-host}
spec:
  nodeName: kd2
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["pause"]
"""

# upstream kubelet's SyncPod: "%s: %v" of NetworkNotReadyErrorMsg and the runtime's network
# condition (containerd's message while /etc/cni/net.d is empty).
NETWORK_NOT_READY = ("network is not ready: container runtime network not ready: NetworkReady=false "
                     "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")


def test_pods_wait_for_the_network_add_on_with_the_kubelets_event(cluster):
    # A node whose add-on has not written its CNI config yet: no agent, no conflist.
    cluster.stop_cni_agent("kd2")
    conflist = cluster.tmp / "nodes" / "kd2" / "cni" / "10-knet.conflist"
    conflist.unlink()
    wait_for(lambda: not cluster.node_ready("kd2"), 10, what="kd2 NotReady without its CNI config")
    reason = json.loads(cluster.kubectl_ok("get", "node", "kd2", "-o", "json"))["status"]["conditions"]
    assert "NetworkPluginNotReady" in next(c["message"] for c in reason if c["type"] == "Ready")
    cluster.kubectl_ok("apply", "-f", "-", input=LATE)
    try:
        def network_event():
            events = json.loads(cluster.kubectl_ok("get", "events", "--field-selector", "involvedObject.name=late",
                                                   "-o", "json"))["items"]
            return next((e for e in events if e["reason"] == "NetworkNotReady"), None)
        event = wait_for(network_event, 15, what="the NetworkNotReady event of pod late")
        assert (event["type"], event["message"], event["source"]["component"]) == (
            "Warning", NETWORK_NOT_READY, "kubelet")
        # hostNetwork pods need no CNI config: they run (that is how the add-on itself starts)
        cluster.wait_running("late-host")
        pod = cluster.pod("late")
        assert pod["status"]["phase"] == "Pending" and not pod["status"].get("podIP")
        assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
        assert "NetworkNotReady" in cluster.kubectl_ok("describe", "pod", "late")

        # The add-on's agent comes (back): it writes the config, and the pod starts on its own.
        cluster.start_cni_agent("kd2")
        pod = cluster.wait_running("late", timeout=30)
        assert pod["status"]["podIP"].startswith("10.244.78.")
        wait_for(lambda: cluster.node_ready("kd2"), 10, what="kd2 Ready again")
        # and is reachable from the other node: the routes stayed while the agent was away
        r = cluster.node_sh("kd1", f"curl -s --max-time 3 http://{pod['status']['podIP']}:8080/hostname")
        assert r.stdout.strip() == "late", r.stderr
        assert "wrote CNI config" in (cluster.tmp / "nodes" / "kd2" / "cni-agent.log").read_text()
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=LATE)


def test_teardown_leaves_machine_as_found(cluster):
    """Run last in this module: tear down and compare with the state before the cluster.
    Other clusters may come and go on this machine meanwhile, so only what this cluster could
    have made counts: names with its netns or link prefix, its cgroup tree."""
    from knet.net.names import link_prefix, netns_prefix
    from knet.node import cgroups

    mine = (netns_prefix(cluster.name), link_prefix(cluster.name))
    during = _snapshot()
    assert any(n.startswith(mine[0]) for n in during["netns"])  # the check below is not vacuous
    assert any(n.startswith(mine[1]) for n in during["links"])
    cluster.stop()
    after = _snapshot()
    for kind in ("netns", "links", "mounts"):
        made = [x for x in set(after[kind]) - set(cluster.before[kind]) if any(m in x for m in mine)]
        assert made == [], f"{kind} left behind: {made}"
    leftovers = subprocess.run(["pgrep", "-f", f"knet-{cluster.name}-|node_init.py.*{cluster.name}"],
                               capture_output=True, text=True).stdout
    assert leftovers.strip() == ""
    assert not any(Path(mp, "knet", cluster.tmp.name).exists() for mp in cgroups.hierarchy_mount_points(
        Path("/proc/self/mountinfo").read_text())), "cgroups left behind"

