"""Container start and stop as the kubelet does them, on the real 3-node session cluster:
ConfigMaps read at every start attempt, `kubectl exec` with the container's env, postStart and
preStop hooks (ported from upstream's test/e2e/common/node/lifecycle_hook.go), and hostPort with
hostIP and protocol through the CNI portmap plugin (test/e2e/network/hostport.go)."""

from __future__ import annotations

import json
import time

import pytest

from knet.cluster.testing import ClusterUnderTest

pytestmark = pytest.mark.e2e

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.45"


def _pod(cluster: ClusterUnderTest, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)


def _container_state(cluster: ClusterUnderTest, name: str) -> dict:
    statuses = _pod(cluster, name)["status"].get("containerStatuses") or [{}]
    return statuses[0]


def _events(cluster: ClusterUnderTest, name: str) -> list[dict]:
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout
    return json.loads(out)["items"]


def _running(cluster: ClusterUnderTest, name: str) -> bool:
    return _pod(cluster, name)["status"].get("phase") == "Running"


def _node_ip(cluster: ClusterUnderTest, node: str) -> str:
    out = cluster.kubectl("get", "node", node, "-o", "json").stdout
    return next(a["address"] for a in json.loads(out)["status"]["addresses"] if a["type"] == "InternalIP")


def _delete(cluster: ClusterUnderTest, *what: str) -> None:
    cluster.kubectl("delete", *what, "--wait=false", "--ignore-not-found", check=False)


def test_env_from_a_config_map_created_after_the_pod(knet_cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: late-config}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo mode=$MODE; exec sleep 3600"]
    env:
    - {name: MODE, valueFrom: {configMapKeyRef: {name: app-config, key: mode}}}
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=manifest)
        knet_cluster.wait_for("CreateContainerConfigError", lambda: ((_container_state(knet_cluster, "late-config")
                              .get("state") or {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError",
                              timeout=30)
        waiting = _container_state(knet_cluster, "late-config")["state"]["waiting"]
        assert waiting["message"] == 'configmap "app-config" not found'
        assert "CreateContainerConfigError" in knet_cluster.kubectl("get", "pod", "late-config").stdout
        knet_cluster.kubectl("create", "configmap", "app-config", "--from-literal=mode=blue")
        knet_cluster.wait_for("Running once the ConfigMap exists", lambda: _running(knet_cluster, "late-config"),
                              timeout=15)
        knet_cluster.wait_for("the value in the container's output", lambda: knet_cluster.kubectl(
            "logs", "late-config", check=False).stdout == "mode=blue\n", timeout=10)
        # kubectl exec runs with the container's env, as containerd's exec does
        assert knet_cluster.kubectl("exec", "late-config", "--", "sh", "-c", "echo $MODE").stdout == "blue\n"
    finally:
        _delete(knet_cluster, "pod", "late-config")
        _delete(knet_cluster, "configmap", "app-config")


def test_config_map_volumes_wait_for_and_follow_their_config_map(knet_cluster):
    # A missing non-optional ConfigMap is FailedMount with upstream's message, retried until it
    # exists; an optional one that appears later shows up in the volume, and an edit follows
    # within the kubelet's sync period (upstream promises about a minute).
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: cm-volumes}
spec:
  nodeName: node02
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: needed, configMap: {name: vol-needed}}
  - {name: maybe, configMap: {name: vol-maybe, optional: true}}
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts: [{name: needed, mountPath: /etc/needed}, {name: maybe, mountPath: /etc/maybe}]
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=manifest)

        def failed_mounts() -> list[str]:
            return [e["message"] for e in _events(knet_cluster, "cm-volumes") if e["reason"] == "FailedMount"]
        messages = knet_cluster.wait_for("FailedMount", failed_mounts, timeout=20)
        assert messages[0] == 'MountVolume.SetUp failed for volume "needed" : configmap "vol-needed" not found'
        assert _pod(knet_cluster, "cm-volumes")["status"].get("phase") == "Pending"
        knet_cluster.kubectl("create", "configmap", "vol-needed", "--from-literal=level=1")
        knet_cluster.wait_for("Running once it exists", lambda: _running(knet_cluster, "cm-volumes"), timeout=20)

        def read(path: str) -> str:
            return knet_cluster.kubectl("exec", "cm-volumes", "--", "cat", path, check=False).stdout
        assert read("/etc/needed/level") == "1"
        assert knet_cluster.kubectl("exec", "cm-volumes", "--", "ls", "/etc/maybe").stdout == ""
        t0 = time.monotonic()
        knet_cluster.kubectl("create", "configmap", "vol-maybe", "--from-literal=color=red")
        knet_cluster.kubectl("patch", "configmap", "vol-needed", "--type=merge", "-p", '{"data": {"level": "2"}}')
        knet_cluster.wait_for("the optional ConfigMap in its volume", lambda: read("/etc/maybe/color") == "red",
                              timeout=60, interval=0.5)
        knet_cluster.wait_for("the edit in the volume", lambda: read("/etc/needed/level") == "2", timeout=60,
                              interval=0.5)
        assert time.monotonic() - t0 < 60
    finally:
        _delete(knet_cluster, "pod", "cm-volumes")
        _delete(knet_cluster, "configmap", "vol-needed", "vol-maybe")


def test_post_start_exec_completes_before_the_container_is_running(knet_cluster):
    # lifecycle_hook.go "should execute poststart exec hook properly"; the hook sleeps before it
    # writes, so a container reported Running before its hook completed would be caught.
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: poststart-exec}
spec:
  nodeName: node02
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "until [ -f /data/hook ]; do sleep 0.1; done; echo saw $(cat /data/hook); exec sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "sleep 2; echo poststart-$HOSTNAME > /data/hook"]}
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=manifest)
        t0 = time.monotonic()
        saw_creating = False
        while not _running(knet_cluster, "poststart-exec"):
            state = _container_state(knet_cluster, "poststart-exec").get("state") or {}
            saw_creating |= (state.get("waiting") or {}).get("reason") == "ContainerCreating"
            assert time.monotonic() - t0 < 30, "pod never Running"
            time.sleep(0.2)
        assert knet_cluster.kubectl("exec", "poststart-exec", "--", "cat", "/data/hook").stdout == \
            "poststart-poststart-exec\n"
        assert saw_creating and time.monotonic() - t0 >= 2
        knet_cluster.wait_for("the container saw the hook's file", lambda: knet_cluster.kubectl(
            "logs", "poststart-exec", check=False).stdout == "saw poststart-poststart-exec\n", timeout=10)
    finally:
        _delete(knet_cluster, "pod", "poststart-exec")


def test_failing_post_start_kills_and_restarts_the_container(knet_cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: poststart-fails}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "exit 3"]}
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=manifest)
        knet_cluster.wait_for("restarted", lambda: _container_state(knet_cluster, "poststart-fails")
                              .get("restartCount", 0) >= 1, timeout=30)
        events = _events(knet_cluster, "poststart-fails")
        failed = [e for e in events if e["reason"] == "FailedPostStartHook"]
        assert failed and failed[0]["type"] == "Warning" and failed[0]["message"] == "PostStartHook failed"
        assert any(e["reason"] == "Killing" and e["message"] == "FailedPostStartHook" for e in events)
        assert not _container_state(knet_cluster, "poststart-fails").get("ready")
    finally:
        _delete(knet_cluster, "pod", "poststart-fails")


def _endpoint_conditions(cluster: ClusterUnderTest, service: str) -> list[dict]:
    out = cluster.kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
                          "-o", "json").stdout
    return [ep["conditions"] for s in json.loads(out)["items"] for ep in s.get("endpoints") or []]


def test_pre_stop_exec_delays_termination_while_the_endpoint_is_terminating(knet_cluster):
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: prestop-exec, labels: {app: prestop-exec}}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 30
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.45
    args: ["netexec", "--http-port=8080"]
    readinessProbe: {httpGet: {port: 8080, path: /readyz}, periodSeconds: 1}
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "sleep 6"]}
---
apiVersion: v1
kind: Service
metadata: {name: prestop-exec}
spec:
  selector: {app: prestop-exec}
  ports: [{port: 80, targetPort: 8080}]
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=manifest)
        knet_cluster.wait_for("endpoint ready", lambda: _endpoint_conditions(knet_cluster, "prestop-exec") == [
            {"ready": True, "serving": True, "terminating": False}], timeout=30)
        t0 = time.monotonic()
        knet_cluster.kubectl("delete", "pod", "prestop-exec", "--wait=false")
        knet_cluster.wait_for("endpoint terminating but serving", lambda: _endpoint_conditions(
            knet_cluster, "prestop-exec") == [{"ready": False, "serving": True, "terminating": True}], timeout=5)
        # still answering during preStop: traffic to the terminating pod is served
        pod_ip = _pod(knet_cluster, "prestop-exec")["status"]["podIP"]
        out = knet_cluster.ssh("node02", "curl", "-s", "--max-time", "3", f"http://{pod_ip}:8080/hostname")
        assert out.stdout.strip() == "prestop-exec"
        knet_cluster.wait_for("pod gone", lambda: knet_cluster.kubectl("get", "pod", "prestop-exec",
                                                                       check=False).returncode != 0, timeout=30)
        took = time.monotonic() - t0
        assert 5.5 <= took < 20, took
        events = _events(knet_cluster, "prestop-exec")
        assert not [e for e in events if e["reason"] == "FailedPreStopHook"]
    finally:
        _delete(knet_cluster, "pod,svc", "prestop-exec")


def test_pre_stop_http_get_reaches_the_handler_and_a_failing_one_is_an_event(knet_cluster):
    # lifecycle_hook.go "should execute prestop http hook properly": the hook's GET lands on a
    # handler pod (host: its IP), whose netexec logs it.
    handler = f"""
apiVersion: v1
kind: Pod
metadata: {{name: hook-handler}}
spec:
  nodeName: node02
  terminationGracePeriodSeconds: 1
  containers:
  - name: handler
    image: {AGNHOST}
    args: ["netexec", "--http-port=8080"]
    ports: [{{name: http, containerPort: 8080}}]
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=handler)
        knet_cluster.wait_for("handler Running", lambda: _running(knet_cluster, "hook-handler"), timeout=30)
        handler_ip = _pod(knet_cluster, "hook-handler")["status"]["podIP"]
        hooked = f"""
apiVersion: v1
kind: Pod
metadata: {{name: prestop-http}}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      preStop:
        httpGet: {{host: "{handler_ip}", port: 8080, path: "/echo?msg=prestop",
                   httpHeaders: [{{name: X-Hook, value: prestop}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: prestop-fails}}
spec:
  nodeName: node01
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "exit 1"]}}
"""
        knet_cluster.kubectl("apply", "-f", "-", input=hooked)
        for name in ("prestop-http", "prestop-fails"):
            knet_cluster.wait_for(f"{name} Running", lambda n=name: _running(knet_cluster, n), timeout=30)
        t0 = time.monotonic()
        knet_cluster.kubectl("delete", "pod", "prestop-http", "prestop-fails", "--wait=true", timeout=30)
        assert time.monotonic() - t0 < 15  # the hooks are quick and sleep ends at SIGTERM
        assert "GET /echo?msg=prestop" in knet_cluster.kubectl("logs", "hook-handler").stdout
        failed = [e for e in _events(knet_cluster, "prestop-fails") if e["reason"] == "FailedPreStopHook"]
        assert failed and failed[0]["message"] == "PreStopHook failed" and failed[0]["type"] == "Warning"
        assert not [e for e in _events(knet_cluster, "prestop-http") if e["reason"] == "FailedPreStopHook"]
    finally:
        _delete(knet_cluster, "pod", "hook-handler", "prestop-http", "prestop-fails")


def test_pre_stop_sleep_counts_against_the_grace_period(knet_cluster):
    # A preStop `sleep` (K8s 1.30+) longer than the grace period is cut at the grace period: the
    # hook's time is taken off it, SIGTERM gets the 2 s minimum, and the pod is gone in about
    # terminationGracePeriodSeconds, not after the whole sleep.
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: prestop-sleep}
spec:
  nodeName: node02
  terminationGracePeriodSeconds: 4
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      preStop:
        sleep: {seconds: 20}
"""
    try:
        knet_cluster.kubectl("apply", "-f", "-", input=manifest)
        knet_cluster.wait_for("Running", lambda: _running(knet_cluster, "prestop-sleep"), timeout=30)
        t0 = time.monotonic()
        knet_cluster.kubectl("delete", "pod", "prestop-sleep", "--wait=true", timeout=40)
        took = time.monotonic() - t0
        assert 3.5 <= took < 10, took
    finally:
        _delete(knet_cluster, "pod", "prestop-sleep")


def _host_port_pod(name: str, host_ip: str, protocol: str, node: str = "node01") -> str:
    # hostport.go's pods: agnhost netexec answering on 8080 over TCP and UDP, hostPort 54323,
    # placed by the scheduler (a nodeSelector, not nodeName) so its NodePorts filter applies.
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: agnhost
    image: {AGNHOST}
    args: ["netexec", "--http-port=8080", "--udp-port=8080"]
    ports: [{{containerPort: 8080, hostPort: 54323, hostIP: "{host_ip}", protocol: {protocol}}}]
"""


UDP_HOSTNAME = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); "
                "s.sendto(b'hostname', (sys.argv[1], int(sys.argv[2]))); print(s.recv(200).decode())")


def test_host_ports_differing_in_host_ip_or_protocol_do_not_conflict(knet_cluster):
    # hostport.go "validates that there is no conflict between pods with same hostPort but
    # different hostIP and protocol", then its conflicting case: same hostIP, protocol and port.
    node_ip = _node_ip(knet_cluster, "node01")
    pods = {"hostport-lo": ("127.0.0.1", "TCP"), "hostport-tcp": (node_ip, "TCP"), "hostport-udp": (node_ip, "UDP")}
    try:
        knet_cluster.kubectl("apply", "-f", "-", input="---".join(
            _host_port_pod(name, ip, proto) for name, (ip, proto) in pods.items()))
        for name in pods:
            knet_cluster.wait_for(f"{name} Running", lambda n=name: _running(knet_cluster, n), timeout=40)
        # 127.0.0.1 is the node's own loopback: asked from the node itself, as upstream's hostexec pod
        lo = knet_cluster.ssh("node01", "curl", "-s", "--max-time", "5", "http://127.0.0.1:54323/hostname")
        assert lo.stdout.strip() == "hostport-lo", lo
        # the node IP, from another node
        tcp = knet_cluster.ssh("node02", "curl", "-s", "--max-time", "5", f"http://{node_ip}:54323/hostname")
        assert tcp.stdout.strip() == "hostport-tcp", tcp
        udp = knet_cluster.ssh("node02", "python3", "-c", UDP_HOSTNAME, node_ip, "54323")
        assert udp.stdout.strip() == "hostport-udp", udp
        # a fourth pod wanting what hostport-tcp holds is not scheduled
        knet_cluster.kubectl("apply", "-f", "-", input=_host_port_pod("hostport-clash", node_ip, "TCP"))

        def refused() -> str | None:
            pod = _pod(knet_cluster, "hostport-clash")
            cond = next((c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"), {})
            return cond.get("status") == "False" and cond.get("message")
        message = knet_cluster.wait_for("hostport-clash unschedulable", refused, timeout=20)
        assert "node(s) didn't have free ports for the requested pod ports" in message, message
        assert _pod(knet_cluster, "hostport-clash")["status"]["phase"] == "Pending"
        # deleting the pod removes its portmap rules (CNI DEL), and the waiting pod is scheduled
        # into the freed port and answers on it
        tcp_ip = _pod(knet_cluster, "hostport-tcp")["status"]["podIP"]
        knet_cluster.kubectl("delete", "pod", "hostport-tcp", "--wait=true", timeout=30)
        nat = knet_cluster.ssh("node01", "iptables-save", "-t", "nat").stdout
        assert f"--to-destination {tcp_ip}:8080" not in nat
        assert "--to-destination 127.0.0.1" not in nat and "-d 127.0.0.1/32 -p tcp -m tcp --dport 54323" in nat
        knet_cluster.wait_for("hostport-clash Running", lambda: _running(knet_cluster, "hostport-clash"), timeout=40)
        knet_cluster.wait_for("hostport-clash answers on the port", lambda: knet_cluster.ssh(
            "node02", "curl", "-s", "--max-time", "3", f"http://{node_ip}:54323/hostname").stdout.strip()
            == "hostport-clash", timeout=15)
    finally:
        _delete(knet_cluster, "pod", *pods, "hostport-clash")
