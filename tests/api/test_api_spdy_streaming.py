"""exec, cp, attach and port-forward with kubectl 1.29, which speaks SPDY/3.1 for them (1.30+
try WebSocket first), through the apiserver to a real node agent (`knet kubelet --dataplane=sim`
whose hostNetwork static pod runs as host processes); and what must be refused: a user without
pods/exec (or pods/portforward) create gets 403 on the SPDY upgrade, an unknown stream protocol
version gets kube-apiserver's (the kubelet's) 403 naming the versions it accepts."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import pty
import re
import socket
import ssl
import struct
import subprocess
import termios
import threading
import time
import urllib.error
import urllib.request

import pytest
from node_agents import host_static_pod, sim_kubelet, wait_for

pytestmark = pytest.mark.api

KUBECTL_129 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29"
NODE = "spdy-node"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTTP_PORT, HTTP_PORT2 = _free_port(), _free_port()


def kubectl129(apiserver, *args: str, input: str | bytes | None = None, timeout: float = 30,
               text: bool = True) -> subprocess.CompletedProcess:
    if not os.access(KUBECTL_129, os.X_OK):
        raise AssertionError(f"{KUBECTL_129} is missing: these tests need kubectl 1.29 (SPDY) from the Google Cloud SDK")
    return subprocess.run([KUBECTL_129, f"--kubeconfig={apiserver.kubeconfig}", *args], input=input, text=text,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def pod(apiserver, tmp_path_factory):
    root = tmp_path_factory.mktemp("spdy-kubelet")
    www = root / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello through port-forward\n")
    manifest = host_static_pod("streams", {
        "main": "echo started; exec sleep 3600",
        "ticker": "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
        "web": f"cd {www} && exec python3 -m http.server {HTTP_PORT} --bind 127.0.0.1",
        "web2": f"cd {www} && exec python3 -m http.server {HTTP_PORT2} --bind 127.0.0.1",
    })
    name = f"streams-{NODE}"
    (root / "agent").mkdir()
    with sim_kubelet(apiserver, root / "agent", NODE, kubeconfig=apiserver.kubeconfig, pod_cidr="10.244.78.0/24",
                     taint="example.com/spdy-only:NoSchedule", static_pods={"streams": manifest}):
        wait_for("mirror pod logs", lambda: "started" in apiserver.kubectl("logs", name, "-c", "main").stdout,
                 timeout=20.0, interval=0.1)
        wait_for("web servers", lambda: all(_listening(p) for p in (HTTP_PORT, HTTP_PORT2)), timeout=20.0)
        yield name


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_exec_stdout_stderr_exit_code_and_stdin(apiserver, pod):
    p = kubectl129(apiserver, "exec", pod, "-c", "main", "--", "echo", "hello", "spdy")
    assert (p.returncode, p.stdout) == (0, "hello spdy\n"), p.stderr
    p = kubectl129(apiserver, "exec", pod, "-c", "main", "--", "sh", "-c", "echo out; echo oops >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "oops\ncommand terminated with exit code 3\n")
    p = kubectl129(apiserver, "exec", "-i", pod, "-c", "main", "--", "tr", "a-z", "A-Z", input="shout\n")
    assert (p.returncode, p.stdout) == (0, "SHOUT\n"), p.stderr
    # 3 MiB each way: more than SPDY's 64 KiB initial window, which spdystream never updates.
    blob = os.urandom(3 << 20)
    p = kubectl129(apiserver, "exec", "-i", pod, "-c", "main", "--", "cat", input=blob, text=False)
    assert p.returncode == 0 and p.stdout == blob, p.stderr
    p = kubectl129(apiserver, "exec", pod, "-c", "nope", "--", "true")
    assert p.returncode == 1 and "container nope is not valid for pod streams-spdy-node" in p.stderr


def test_exec_tty_gets_the_terminal_size(apiserver, pod):
    # kubectl on a terminal of 33x101 sends that size on the resize stream; the command runs on
    # a terminal of its own of that size, and its exit code comes back.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen([KUBECTL_129, f"--kubeconfig={apiserver.kubeconfig}", "exec", "-it", pod, "-c", "main",
                             "--", "sh", "-c", "test -t 0 && stty size; exit 4"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other side closed: kubectl exited
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(10) == 4, out
    assert b"33 101" in out, out


def test_cp_both_ways(apiserver, pod, tmp_path):
    src = tmp_path / "up.txt"
    src.write_text("copied up\n" * 1000)
    remote = tmp_path / "remote"
    remote.mkdir()
    p = kubectl129(apiserver, "cp", str(src), f"default/{pod}:{remote}/in.txt", "-c", "main")
    assert p.returncode == 0, p.stderr
    assert (remote / "in.txt").read_text() == src.read_text()
    (remote / "back.txt").write_text("copied down\n")
    dest = tmp_path / "down.txt"
    p = kubectl129(apiserver, "cp", f"default/{pod}:{remote}/back.txt", str(dest), "-c", "main")
    assert p.returncode == 0, p.stderr
    assert dest.read_text() == "copied down\n"


def test_attach_streams_output_from_now_on(apiserver, pod):
    proc = subprocess.Popen([KUBECTL_129, f"--kubeconfig={apiserver.kubeconfig}", "attach", pod, "-c", "ticker"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    ticks = [int(n) for n in re.findall(r"^tick (\d+)$", out, re.M)]
    assert len(ticks) >= 5, (out, err)
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # consecutive: nothing lost
    assert ticks[0] > 1  # it attached late: what was written before is not replayed


def _port_forward(apiserver, pod, *ports: str, kubectl: str = KUBECTL_129):
    proc = subprocess.Popen([kubectl, f"--kubeconfig={apiserver.kubeconfig}", "port-forward", f"pod/{pod}",
                             *ports], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    local: list[int] = []
    deadline = time.monotonic() + 15
    while len(local) < len(ports) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        if m:
            local.append(int(m.group(1)))
    if len(local) < len(ports):
        proc.kill()
        raise AssertionError(f"kubectl port-forward did not start: {proc.stderr.read()}")
    return proc, local


def test_port_forward_several_ports_and_concurrent_connections(apiserver, pod):
    proc, (a, b) = _port_forward(apiserver, pod, f":{HTTP_PORT}", f":{HTTP_PORT2}")
    try:
        results: list[str] = []

        def fetch(port: int) -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) as r:
                results.append(r.read().decode())

        threads = [threading.Thread(target=fetch, args=(port,)) for port in (a, b, a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert results == ["hello through port-forward\n"] * 6
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_port_forward_to_a_closed_port_reports_the_error(apiserver, pod):
    closed = _free_port()
    proc, (local,) = _port_forward(apiserver, pod, f":{closed}")
    try:
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(100) == b""  # the forwarded connection ends
        time.sleep(0.5)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert (f"an error occurred forwarding {local} -> {closed}: error forwarding port {closed} to pod" in err
            and f"failed to connect to localhost:{closed}" in err and "connection refused" in err), err


# -- refused -------------------------------------------------------------------------------------
def _spdy_upgrade(apiserver, path: str, versions: list[str], token: str | None = None) -> tuple[int, dict, str]:
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", apiserver.port, context=ctx, timeout=10)
    conn.putrequest("POST", path)
    conn.putheader("Authorization", f"Bearer {token or apiserver.token}")
    conn.putheader("Connection", "Upgrade")
    conn.putheader("Upgrade", "SPDY/3.1")
    conn.putheader("Content-Length", "0")
    for v in versions:
        conn.putheader("X-Stream-Protocol-Version", v)
    conn.endheaders()
    r = conn.getresponse()
    headers = {k.lower(): r.headers.get_all(k) for k in r.headers}
    body = r.read().decode()
    conn.close()
    return r.status, headers, body


def test_unknown_protocol_version_gets_the_kubelets_answer(apiserver, pod):
    path = f"/api/v1/namespaces/default/pods/{pod}/exec?command=true&container=main&stdout=true"
    status, headers, body = _spdy_upgrade(apiserver, path, ["v9.channel.k8s.io"])
    assert status == 403
    assert body == ("unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], "
                    "server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]\n")
    assert headers["x-accepted-stream-protocol-versions"] == ["v4.channel.k8s.io", "v3.channel.k8s.io",
                                                              "v2.channel.k8s.io", "channel.k8s.io"]
    status, _, body = _spdy_upgrade(apiserver, f"/api/v1/namespaces/default/pods/{pod}/portforward", ["v4.channel.k8s.io"])
    assert (status, body) == (403, "unable to upgrade: unable to negotiate protocol: client supports "
                                   "[v4.channel.k8s.io], server accepts [portforward.k8s.io]\n")
    status, _, body = _spdy_upgrade(apiserver, path, [])
    assert (status, body) == (400, "unable to upgrade: X-Stream-Protocol-Version is required\n")


def test_a_user_without_exec_or_portforward_is_refused_the_upgrade(apiserver, pod):
    apiserver.kubectl_ok("create", "role", "spdy-pod-reader", "--verb=get,list", "--resource=pods")
    apiserver.kubectl_ok("create", "rolebinding", "spdy-pod-reader", "--role=spdy-pod-reader", "--user=mallory")
    try:
        p = kubectl129(apiserver, "--as=mallory", "exec", pod, "-c", "main", "--", "echo", "pwned")
        assert p.returncode == 1 and "pwned" not in p.stdout
        assert (f'pods "{pod}" is forbidden: User "mallory" cannot create resource "pods/exec" in API group "" '
                'in the namespace "default"') in p.stderr, p.stderr
        p = kubectl129(apiserver, "--as=mallory", "port-forward", f"pod/{pod}", f":{HTTP_PORT}", timeout=15)
        assert p.returncode == 1
        assert 'cannot create resource "pods/portforward"' in p.stderr, p.stderr
        p = kubectl129(apiserver, "--as=mallory", "attach", pod, "-c", "ticker", timeout=15)
        assert p.returncode == 1 and 'cannot create resource "pods/attach"' in p.stderr, p.stderr
    finally:
        apiserver.kubectl("delete", "rolebinding", "spdy-pod-reader")
        apiserver.kubectl("delete", "role", "spdy-pod-reader")


def test_port_forward_with_a_websocket_kubectl(apiserver, pod):
    # kubectl 1.30+ tries WebSocket first (SPDY tunnelled in it from 1.31) and falls back to
    # SPDY when the upgrade is refused: either way the forwarded connection works.
    kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
    assert os.access(kubectl, os.X_OK), f"{kubectl} is missing"
    proc, (local,) = _port_forward(apiserver, pod, f":{HTTP_PORT}", kubectl=kubectl)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/hello.txt", timeout=10) as r:
            assert r.read() == b"hello through port-forward\n"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_service_account_token_without_exec_gets_403_on_the_upgrade(apiserver, pod):
    apiserver.kubectl_ok("create", "serviceaccount", "spdy-viewer")
    apiserver.kubectl_ok("create", "role", "spdy-viewer", "--verb=get,list", "--resource=pods")
    apiserver.kubectl_ok("create", "rolebinding", "spdy-viewer", "--role=spdy-viewer",
                         "--serviceaccount=default:spdy-viewer")
    try:
        token = apiserver.kubectl_ok("create", "token", "spdy-viewer").strip()
        for sub, query in (("exec", "?command=id&container=main&stdout=true"), ("attach", "?container=ticker&stdout=true"),
                           ("portforward", "")):
            status, headers, body = _spdy_upgrade(apiserver, f"/api/v1/namespaces/default/pods/{pod}/{sub}{query}",
                                                  ["v4.channel.k8s.io", "portforward.k8s.io"], token=token)
            assert status == 403, (sub, body)
            assert json.loads(body)["message"] == (
                f'pods "{pod}" is forbidden: User "system:serviceaccount:default:spdy-viewer" cannot create '
                f'resource "pods/{sub}" in API group "" in the namespace "default"')
            assert "x-stream-protocol-version" not in headers
    finally:
        for kind in ("rolebinding", "role", "serviceaccount"):
            apiserver.kubectl("delete", kind, "spdy-viewer")


def test_the_kubelets_attach_and_portforward_refuse_other_callers(apiserver, pod, tmp_path):
    """Only the apiserver's kubelet-client identity may use them: no certificate is 401, another
    node's kubelet certificate 403 (nodes/proxy, as for exec)."""
    from knet.cluster.pki import issue_cert, load_cert_key, write_cert_key

    node = json.loads(apiserver.kubectl_ok("get", "node", NODE, "-o", "json"))
    base = f"https://127.0.0.1:{node['status']['daemonEndpoints']['kubeletEndpoint']['Port']}"
    crt, key = write_cert_key(tmp_path, "node01", issue_cert(load_cert_key(apiserver.pki_dir, "ca"),
                                                             "system:node:node01", organizations=["system:nodes"],
                                                             client=True))

    def call(path: str, cert=None) -> tuple[int, str]:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(*cert)
        try:
            with urllib.request.urlopen(base + path, context=ctx, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    for path in (f"/portForward/default/{pod}?port={HTTP_PORT}", f"/attach/default/{pod}/ticker?stdout=1"):
        assert call(path) == (401, "Unauthorized"), path
        assert call(path, (crt, key)) == (403, "Forbidden (user=system:node:node01, verb=get, resource=nodes, "
                                               "subresource=proxy)"), path


def test_port_forward_tunnelled_in_a_websocket(apiserver, pod):
    """kubectl 1.31+'s way: the SPDY session inside WebSocket binary messages (subprotocol
    SPDY/3.1+portforward.k8s.io), spoken here by a client made of knet's own framing."""
    import asyncio

    import aiohttp

    from knet.api import spdy

    async def run() -> bytes:
        ctx = ssl.create_default_context(cafile=apiserver.ca_file)
        enc, dec = spdy.Encoder(), spdy.Decoder()
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"{apiserver.url}/api/v1/namespaces/default/pods/{pod}/portforward", ssl=ctx,
                protocols=("SPDY/3.1+portforward.k8s.io",), headers={"Authorization": f"Bearer {apiserver.token}"}) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            headers = {"port": [str(HTTP_PORT)], "requestid": ["0"]}
            await ws.send_bytes(enc.encode(spdy.SynStream(1, {"streamtype": ["error"], **headers}))
                                + enc.encode(spdy.DataFrame(1, b"", fin=True))
                                + enc.encode(spdy.SynStream(3, {"streamtype": ["data"], **headers}))
                                + enc.encode(spdy.Ping(1))
                                + enc.encode(spdy.DataFrame(3, b"GET /hello.txt HTTP/1.0\r\n\r\n", fin=True)))
            body, replies, pong = b"", set(), False
            async for msg in ws:
                for frame in dec.feed(msg.data):
                    if isinstance(frame, spdy.SynReply):
                        replies.add(frame.stream_id)
                    elif isinstance(frame, spdy.Ping):
                        pong = True
                    elif isinstance(frame, spdy.DataFrame) and frame.stream_id == 3:
                        body += frame.data
                        if frame.fin:
                            assert replies == {1, 3} and pong
                            return body
            raise AssertionError(f"the data stream did not end: {body!r}")

    body = asyncio.run(asyncio.wait_for(run(), 20))
    assert body.startswith(b"HTTP/1.0 200") and body.endswith(b"hello through port-forward\n"), body
