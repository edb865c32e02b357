"""agnhost's subcommands as processes on loopback (what a container runs, minus the pod):
flags as pflag reads them, the ports they open and do not open, how they end on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from knet.node.workloads import agnhost_argv


def _free_port(kind=socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _start(*words, env=None):
    return subprocess.Popen([*agnhost_argv(), *words], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env if env is not None else {"PATH": os.environ["PATH"]})


def _http(port, path, timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait_http(port, path="/hostname", deadline=5.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return _http(port, path)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


def _udp(port, text, timeout=2.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(text.encode(), ("127.0.0.1", port))
        return s.recv(2048).decode()


def _socket_inodes(pid) -> set[str]:
    links = (os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def _sockets(pid) -> int:
    return len(_socket_inodes(pid))


def _udp_sockets(pid) -> int:
    """The process's bound UDP sockets (their inodes in /proc/PID/net/udp and udp6)."""
    mine = _socket_inodes(pid)
    found = 0
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            found += sum(1 for line in f.readlines()[1:] if line.split()[9] in mine)
    return found


def _udp_eventually(port, text, deadline=5.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return _udp(port, text, timeout=0.5)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _stderr_until(p, needle: bytes, deadline=5.0) -> bytes:
    os.set_blocking(p.stderr.fileno(), False)
    got, end = b"", time.monotonic() + deadline
    while needle not in got and time.monotonic() < end:
        got += p.stderr.read() or b""
        time.sleep(0.05)
    return got


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()
        for stream in (p.stdout, p.stderr):
            stream.close()


def test_netexec_space_separated_flags_udp_and_delayed_shutdown(procs):
    http, udp = _free_port(), _free_port(socket.SOCK_DGRAM)
    t0 = time.monotonic()
    p = _start("netexec", "--http-port", str(http), "--udp-port", str(udp), "--delay-shutdown", "2")
    procs.append(p)
    assert _wait_http(http) == (200, socket.gethostname())
    assert time.monotonic() - t0 < 2.0  # listening fast: python -I -S, stdlib only
    assert _udp_sockets(p.pid) == 1
    assert _udp_eventually(udp, "hostname") == socket.gethostname()
    assert _udp(udp, "echo hi") == "hi"
    assert _http(http, "/readyz") == (200, "ok")
    dial = _http(http, f"/dial?request=hostname&protocol=udp&host=127.0.0.1&port={udp}&tries=2")
    assert dial == (200, json.dumps({"responses": [socket.gethostname()] * 2}, separators=(",", ":")))
    p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert _http(http, "/readyz") == (503, "shutting down")  # still serving, out of endpoints
    assert _http(http, "/healthz")[0] == 200
    assert p.poll() is None
    assert p.wait(timeout=5) == 0
    assert time.monotonic() - t0 > 2.0
    assert b"Sleeping 2 seconds before terminating..." in p.stderr.read()


def test_netexec_udp_disabled_and_immediate_sigterm_exit(procs):
    http = _free_port()
    p = _start("netexec", "--http-port=" + str(http), "--udp-port=-1")
    procs.append(p)
    _wait_http(http)
    assert _udp_sockets(p.pid) == 0  # --udp-port=-1: no UDP server
    assert _http(http, "/healthz")[0] == 412  # upstream: ready only once a UDP/SCTP server runs
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=3) == 0


def test_netexec_exit_endpoint_sets_the_exit_code(procs):
    http = _free_port()
    p = _start("netexec", f"--http-port={http}", "--udp-port=-1")
    procs.append(p)
    _wait_http(http)
    with pytest.raises((OSError, urllib.error.URLError)):
        _http(http, "/exit?code=7")
    assert p.wait(timeout=3) == 7


def test_serve_hostname_tcp_and_udp_without_http(procs):
    port = _free_port()
    p = _start("serve-hostname", "--tcp", "--udp", "--http=false", "--port", str(port))
    procs.append(p)
    end = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                assert c.recv(100).decode() == socket.gethostname()
            break
        except ConnectionRefusedError:
            assert time.monotonic() < end
            time.sleep(0.02)
    assert _udp_eventually(port, "anything") == socket.gethostname()
    p.send_signal(signal.SIGTERM)  # upstream waits 60 s for the pod's deletion
    assert b"Shutting down after receiving signal: terminated." in _stderr_until(p, b"Shutting down")
    assert p.poll() is None


def test_serve_hostname_refuses_http_with_tcp(procs):
    p = _start("serve-hostname", "--tcp")
    procs.append(p)
    assert p.wait(timeout=5) == 1
    assert b"Can't server TCP/UDP mode and HTTP mode at the same time" in p.stderr.read()


def test_pause_opens_no_port_and_exits_2_on_sigterm(procs):
    p = _start("pause")
    procs.append(p)
    assert p.stdout.readline() == b"Paused\n"
    assert _sockets(p.pid) == 0
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=3) == 2
    assert p.stdout.read() == b"exiting 2\n"


def test_porter_serves_env_values(procs):
    tcp, udp = _free_port(), _free_port(socket.SOCK_DGRAM)
    p = _start("porter", env={"PATH": os.environ["PATH"], f"SERVE_PORT_{tcp}": "foo",
                              f"SERVE_UDP_PORT_{udp}": "bar"})
    procs.append(p)
    assert _wait_http(tcp, "/anything") == (200, "foo")
    assert _udp_eventually(udp, "x") == "bar"


def test_porter_without_servers_dies_as_go_does(procs):
    p = _start("porter")
    procs.append(p)
    assert p.wait(timeout=5) == 2
    assert b"all goroutines are asleep - deadlock!" in p.stderr.read()


def test_connect_exit_codes(procs):
    p = subprocess.run([*agnhost_argv(), "connect", f"127.0.0.1:{_free_port()}", "--timeout", "1s"],
                       capture_output=True, timeout=10)
    assert (p.returncode, p.stderr) == (1, b"REFUSED\n")
