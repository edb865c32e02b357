"""`knet dns` as a process against a real `knet apiserver`, driven with the real kubectl and
queried with the real dig, all on loopback.

Objects are made with kubectl exactly as a user would (EndpointSlices by hand, as for a Service
without a selector), so this needs no kubelet or controller-manager.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from knet.cluster.pki import create_control_plane_pki, issue_cert, kubeconfig, write_kubeconfig

pytestmark = pytest.mark.api

COREFILE = """\
.:{dns_port} {{
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl {ttl}
    }}
    prometheus 127.0.0.1:{metrics}
    forward . 127.0.0.1:{silent}
    cache 30
    loop
    reload 2s 1s
    loadbalance
}}
"""


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_dns_port() -> int:
    """A port free for both UDP and TCP: `knet dns` serves both on it, and a UDP-only pick can be
    an ephemeral port some TCP connection (kubectl's, the apiserver's) is using just then."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")


def knet_argv() -> list[str]:
    return [sys.executable, "-m", "knet.cli.main"] if shutil.which("knet") is None else ["knet"]


def wait_until(what, predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last failure
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if shutil.which("kubectl") is None or shutil.which("dig") is None:
        pytest.skip("needs kubectl and dig")
    tmp = tmp_path_factory.mktemp("dnsapi")
    pki = create_control_plane_pki(tmp / "pki")
    api_port = free_port()
    server = f"https://127.0.0.1:{api_port}"
    ca = pki.ca()
    admin = write_kubeconfig(tmp / "admin.conf", kubeconfig(
        cluster_name="kubernetes", server=server, ca_pem=ca.cert_pem, user="kubernetes-admin",
        client=issue_cert(ca, "kubernetes-admin", organizations=["system:masters"], client=True)))
    api_log = open(tmp / "apiserver.log", "w")  # noqa: SIM115 - closed below
    api = subprocess.Popen([*knet_argv(), "apiserver", "--bind-address", "127.0.0.1", "--secure-port", str(api_port),
                            "--storage", "memory:", "--tls-cert-file", str(pki.apiserver_crt),
                            "--tls-private-key-file", str(pki.apiserver_key), "--client-ca-file", str(pki.ca_crt),
                            "--service-account-key-file", str(pki.sa_pub),
                            "--service-account-signing-key-file", str(pki.sa_key)],
                           stdout=api_log, stderr=subprocess.STDOUT)
    procs = [api]  # stopped in reverse order
    kenv = {**os.environ, "KUBECONFIG": str(admin)}

    def kubectl(*args, input=None, check=True):
        r = subprocess.run(["kubectl", *args], env=kenv, capture_output=True, text=True, input=input, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the upstream: reads, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        wait_until("the apiserver", lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                   timeout=30)
        ports = {"dns_port": free_dns_port(), "health": free_port(), "ready": free_port(),
                 "metrics": free_port(), "silent": silent.getsockname()[1]}
        corefile = tmp / "Corefile"
        corefile.write_text(COREFILE.format(ttl=30, **ports))
        dns_log = open(tmp / "dns.log", "w")  # noqa: SIM115
        dns = subprocess.Popen([*knet_argv(), "dns", "-conf", str(corefile), "--listen", "127.0.0.1",
                                "--kubeconfig", str(admin), "--forward-timeout", "0.5"],
                               stdout=dns_log, stderr=subprocess.STDOUT)
        procs.append(dns)
        def dns_ready() -> bool:
            if dns.poll() is not None:  # fail now, with its words, not after the timeout
                raise AssertionError(f"knet dns exited {dns.returncode}:\n{(tmp / 'dns.log').read_text()[-3000:]}")
            return http_get(ports["ready"], "/ready") == (200, "OK")

        try:
            wait_until("knet dns /ready", dns_ready, timeout=30)
        except AssertionError:
            print((tmp / "dns.log").read_text()[-3000:])
            raise
        yield {"kubectl": kubectl, "ports": ports, "corefile": corefile, "dns": dns, "tmp": tmp}
    finally:
        for p in reversed(procs):
            stop(p, grace=5.0 if p is not api else 2.0)
        silent.close()
        api_log.close()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def dig(env, *args: str) -> str:
    return subprocess.run(["dig", "@127.0.0.1", "-p", str(env["ports"]["dns_port"]), "+time=2", "+tries=1", *args],
                          capture_output=True, text=True, timeout=10).stdout


def answers(out: str) -> list[list[str]]:
    """The ANSWER SECTION of dig's output, one split line per record."""
    section = out.split(";; ANSWER SECTION:\n", 1)[1].split("\n\n", 1)[0] if ";; ANSWER SECTION:" in out else ""
    return [line.split() for line in section.splitlines()]


def short(env, *args: str) -> list[str]:
    return dig(env, "+short", *args).split()


def apply(env, *objs) -> None:
    env["kubectl"]("apply", "--validate=false", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


@pytest.fixture
def ns(env):
    name = f"dns{os.urandom(3).hex()}"
    apply(env, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    env["kubectl"]("delete", "namespace", name, "--wait=false", check=False)


def svc(name, ns, *, cluster_ip=None, ports=(("http", 80),), ext=None):
    spec = {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if ext:
        spec = {"type": "ExternalName", "externalName": ext}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def eps(service, ns, endpoints, ports=(("http", 80),)):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-manual", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, **({"hostname": h} if h else {})}
                          for ip, h, ready in endpoints],
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}


def test_dns_api_kubernetes_service_and_new_services(env, ns):
    assert short(env, "kubernetes.default.svc.cluster.local") == ["10.96.0.1"]
    name = f"web.{ns}.svc.cluster.local"
    assert "status: NXDOMAIN" in dig(env, name)
    apply(env, svc("web", ns))
    created = time.monotonic()
    ip = env["kubectl"]("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
    wait_until("web in DNS", lambda: short(env, name) == [ip], timeout=5, interval=0.02)
    assert time.monotonic() - created < 1.0
    out = dig(env, name)
    assert "flags: qr aa rd;" in out and answers(out) == [[f"{name}.", "30", "IN", "A", ip]]
    assert short(env, "-x", ip) == [f"{name}."]
    assert short(env, "SRV", f"_http._tcp.{name}") == ["0", "100", "80", f"{name}."]
    env["kubectl"]("delete", "svc", "web", "-n", ns)
    deleted = time.monotonic()
    wait_until("web gone", lambda: "status: NXDOMAIN" in dig(env, name), timeout=5, interval=0.02)
    assert time.monotonic() - deleted < 1.0


def test_dns_api_headless_endpoints_and_externalname(env, ns):
    apply(env, svc("db", ns, cluster_ip="None"),
          eps("db", ns, [("10.244.1.5", "db-0", True), ("10.244.2.6", None, True), ("10.244.3.7", None, False)]),
          svc("ext", ns, ext="example.org"))
    name = f"db.{ns}.svc.cluster.local"
    wait_until("db in DNS", lambda: sorted(short(env, name)) == ["10.244.1.5", "10.244.2.6"], timeout=5)
    assert short(env, f"db-0.{name}") == ["10.244.1.5"]
    assert short(env, f"10-244-2-6.{name}") == ["10.244.2.6"]
    assert "status: NXDOMAIN" in dig(env, f"10-244-3-7.{name}")  # not ready: not published
    srv = sorted(tuple(line.split()) for line in dig(env, "+short", "SRV", f"_http._tcp.{name}").splitlines())
    assert srv == [("0", "50", "80", f"10-244-2-6.{name}."), ("0", "50", "80", f"db-0.{name}.")]
    assert short(env, "-x", "10.244.1.5") == [f"db-0.{name}."]
    assert short(env, "CNAME", f"ext.{ns}.svc.cluster.local") == ["example.org."]
    assert short(env, f"10-244-9-9.{ns}.pod.cluster.local") == ["10.244.9.9"]
    assert short(env, "TXT", "dns-version.cluster.local") == ['"1.1.0"']


def test_dns_api_outside_names_servfail_and_tcp(env):
    started = time.monotonic()
    assert "status: SERVFAIL" in dig(env, "www.example.com")
    assert time.monotonic() - started < 2.0
    assert short(env, "+tcp", "kubernetes.default.svc.cluster.local") == ["10.96.0.1"]


def test_dns_api_metrics_health_and_reload(env, ns):
    ports = env["ports"]
    dig(env, "kubernetes.default.svc.cluster.local")
    status, metrics = http_get(ports["metrics"], "/metrics")
    assert status == 200 and 'coredns_dns_requests_total{family="1",proto="udp"' in metrics
    assert "coredns_dns_request_duration_seconds_bucket{" in metrics and "coredns_cache_hits_total{" in metrics
    assert http_get(ports["health"], "/health") == (200, "OK")
    # the ConfigMap changes: the mounted Corefile changes, reload picks it up within interval + jitter
    corefile: Path = env["corefile"]
    corefile.write_text(COREFILE.format(ttl=7, **ports))
    try:
        wait_until("ttl 7 after reload", lambda: answers(dig(env, "kubernetes.default.svc.cluster.local"))[0][1] == "7",
                   timeout=8, interval=0.2)
    finally:
        corefile.write_text(COREFILE.format(ttl=30, **ports))
    wait_until("ttl 30 again", lambda: answers(dig(env, "kubernetes.default.svc.cluster.local"))[0][1] == "30",
               timeout=8, interval=0.2)
    assert env["dns"].poll() is None
