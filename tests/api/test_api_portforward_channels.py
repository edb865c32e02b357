"""pods/portforward over a plain WebSocket with the channel protocol (the kubelet's
portforward/websocket.go), which the `kubernetes` Python client (`kubernetes.stream.portforward`),
kr8s and @kubernetes/client-node speak; kubectl uses SPDY instead (test_api_spdy_streaming.py).
Before, knet answered such a request 400 "Upgrade request required" and kr8s's port-forward hung.
The pod is a host-network static pod of a real node agent serving HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
import ssl
import time

import pytest
import websocket
from kubernetes import client as k8s
from kubernetes.stream import portforward
from node_agents import host_static_pod, sim_kubelet, wait_for

pytestmark = pytest.mark.api

NODE = "pf-node"
POD = f"web-{NODE}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web(apiserver, tmp_path_factory):
    port = free_port()
    manifest = host_static_pod("web", {"main": f"exec python3 -m http.server {port} --bind 127.0.0.1"})
    with sim_kubelet(apiserver, tmp_path_factory.mktemp("pf-kubelet"), NODE, kubeconfig=apiserver.kubeconfig,
                     pod_cidr="10.244.84.0/24", taint="example.com/pf-only:NoSchedule", static_pods={"web": manifest}):
        def serving() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_for("the web pod to listen", serving, timeout=20.0)
        wait_for("its mirror pod Running", lambda: apiserver.kubectl(
            "get", "pod", POD, "-o", "jsonpath={.status.phase}").stdout == "Running", timeout=20.0)
        yield port


def http_get(sock) -> bytes:
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_python_client_port_forward(apiserver, web):
    core = k8s.CoreV1Api(apiserver.client())
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, "default", ports=str(web))
    try:
        reply = http_get(pf.socket(web))
        assert reply.startswith(b"HTTP/1.0 200 OK") and b"Directory listing" in reply
        assert pf.error(web) is None
    finally:
        pf.close()

    # Two ports in one session: the closed one reports on its error channel, the other works.
    closed = free_port()
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, "default", ports=f"{web},{closed}")
    try:
        error = wait_for("the closed port's error", lambda: pf.error(closed), timeout=10)
        assert f"error forwarding port {closed} to pod" in error and "connection refused" in error
        assert http_get(pf.socket(web)).startswith(b"HTTP/1.0 200 OK")
    finally:
        pf.close()


def connect(apiserver, path: str, protocols: list[str], token: str | None = None) -> websocket.WebSocket:
    ssl_opts = {"ca_certs": apiserver.ca_file}
    header = []
    if token:
        header = [f"Authorization: Bearer {token}"]
    else:
        ssl_opts.update(certfile=str(apiserver.pki_dir / "admin.crt"), keyfile=str(apiserver.pki_dir / "admin.key"))
    return websocket.create_connection(f"wss://127.0.0.1:{apiserver.port}{path}", subprotocols=protocols,
                                       sslopt={"cert_reqs": ssl.CERT_REQUIRED, **ssl_opts}, header=header, timeout=10)


def test_base64_channels_and_refusals(apiserver, web, namespace):
    path = f"/api/v1/namespaces/default/pods/{POD}/portforward?ports={web}"
    ws = connect(apiserver, path, ["v4.base64.channel.k8s.io"])
    try:
        assert ws.subprotocol == "v4.base64.channel.k8s.io"
        port = base64.b64encode(web.to_bytes(2, "little")).decode()
        assert [ws.recv(), ws.recv()] == [f"0{port}", f"1{port}"]  # each channel starts with the port
        ws.send("0" + base64.b64encode(b"GET / HTTP/1.0\r\n\r\n").decode())
        reply, deadline = b"", time.monotonic() + 10
        while b"</html>" not in reply and time.monotonic() < deadline:
            frame = ws.recv()
            assert frame[0] == "0", frame
            reply += base64.b64decode(frame[1:])
        assert reply.startswith(b"HTTP/1.0 200 OK") and b"</html>" in reply
    finally:
        ws.close()

    # No ports is refused before the upgrade, as the kubelet refuses it.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(apiserver, f"/api/v1/namespaces/default/pods/{POD}/portforward", ["v4.channel.k8s.io"])
    assert refused.value.status_code == 400 and b'query parameter \\"ports\\" is required' in refused.value.resp_body

    # Someone without pods/portforward is refused (403) whatever the protocol.
    apiserver.kubectl_ok("create", "serviceaccount", "viewer", "-n", namespace)
    apiserver.kubectl_ok("create", "rolebinding", "viewer", "--clusterrole=view", f"--serviceaccount={namespace}:viewer",
                         "-n", "default")
    token = apiserver.kubectl_ok("create", "token", "viewer", "-n", namespace).strip()
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as forbidden:
            connect(apiserver, path, ["v4.channel.k8s.io"], token=token)
        assert forbidden.value.status_code == 403
    finally:
        apiserver.kubectl("delete", "rolebinding", "viewer", "-n", "default")
