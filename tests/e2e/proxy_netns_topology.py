"""A small node of network namespaces for kube-proxy e2e tests (names prefixed knet-test-proxy-).

Address plan:
  node    knet-test-proxy-node    bridge kntp-br 10.244.1.1/24 (the node's pods), kntp-n0 192.168.50.1/24,
                                  route 10.96.0.0/12 dev kntp-n0
  pods    knet-test-proxy-pod{1,2,3}   eth0 10.244.1.{2,3,4}/24, default via 10.244.1.1, echo on :8080
  remote  knet-test-proxy-client  eth0 192.168.50.2/24; routes 10.96.0.0/12 and 10.244.0.0/16 via the node
The echo server answers every TCP connection and UDP datagram on :8080 with "<pod name> <client address>".
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field

PREFIX = "knet-test-proxy-"
NODE_NS = PREFIX + "node"
CLIENT_NS = PREFIX + "client"
NODE_IP = "192.168.50.1"
CLIENT_IP = "192.168.50.2"
BRIDGE_IP = "10.244.1.1"
POD_IPS = {"pod1": "10.244.1.2", "pod2": "10.244.1.3", "pod3": "10.244.1.4"}
ECHO_PORT = 8080

ECHO_SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", int(sys.argv[2])))
    while True:
        data, addr = u.recvfrom(100)
        u.sendto(f"{name} {addr[0]}".encode(), addr)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(128)
print("ready", flush=True)
while True:
    c, addr = s.accept()
    try:
        c.sendall(f"{name} {addr[0]}\n".encode())
    finally:
        c.close()
"""

CLIENT = r"""
import errno, socket, sys
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    try:
        c = socket.create_connection((ip, port), timeout=2)
        print(c.makefile().readline().strip() or "EMPTY", flush=True)
        c.close()
    except ConnectionRefusedError:
        print("REFUSED", flush=True)
    except TimeoutError:
        print("TIMEOUT", flush=True)
    except OSError as e:
        print("ERROR " + errno.errorcode.get(e.errno or 0, type(e).__name__), flush=True)
"""


UDP_CLIENT = r"""
import socket, sys
ip, port, n, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", sport)); u.settimeout(1)
for _ in range(n):
    u.sendto(b"hostname", (ip, port))
    try:
        print(u.recvfrom(100)[0].decode(), flush=True)
    except TimeoutError:
        print("TIMEOUT", flush=True)
"""


def sh(*argv: str, check: bool = True, input: str | None = None) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p.stdout


def in_ns(ns: str, *argv: str, check: bool = True, input: str | None = None) -> str:
    return sh("ip", "netns", "exec", ns, *argv, check=check, input=input)


def remove_namespaces(prefix: str) -> None:
    """Delete every network namespace named `prefix...`, killing what runs in it; idempotent.
    (sh, in_ns and this serve the netpol dataplane test and bench's scratch namespaces too.)"""
    for ns in sh("ip", "netns", "list", check=False).split("\n"):
        name = ns.split(" ")[0]
        if name.startswith(prefix):
            pids = sh("ip", "netns", "pids", name, check=False).split()
            for pid in pids:
                sh("kill", "-9", pid, check=False)
            sh("ip", "netns", "del", name, check=False)


def route_pod_namespace(node_ns: str, ns: str, ip: str, gateway: str, link: str) -> None:
    """`ns` as a pod behind `node_ns` the way a routed CNI wires it: a veth (`link` on the node,
    eth0 in the pod), ip/32 routed to it, the node's `gateway`/32 as the pod's default route;
    every packet between two such pods crosses the node's FORWARD hook."""
    in_ns(node_ns, "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
    in_ns(node_ns, "ip", "addr", "add", f"{gateway}/32", "dev", link)
    in_ns(node_ns, "ip", "link", "set", link, "up")
    in_ns(node_ns, "ip", "route", "add", f"{ip}/32", "dev", link)
    in_ns(ns, "ip", "addr", "add", f"{ip}/32", "dev", "eth0")
    in_ns(ns, "ip", "link", "set", "eth0", "up")
    in_ns(ns, "ip", "route", "add", gateway, "dev", "eth0")
    in_ns(ns, "ip", "route", "add", "default", "via", gateway, "dev", "eth0")


def cleanup() -> None:
    """Remove every namespace this topology makes (also after a crash); idempotent."""
    remove_namespaces(PREFIX)
    for link in ("kntp-n1", "kntp-br"):
        sh("ip", "link", "del", link, check=False)


@dataclass
class Topology:
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def build(self) -> None:
        cleanup()
        for ns in (NODE_NS, CLIENT_NS, *(PREFIX + p for p in POD_IPS)):
            sh("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(NODE_NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # no ICMP redirects: they use up the ICMP rate limit that REJECT's port-unreachable needs
        in_ns(NODE_NS, "sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
        in_ns(NODE_NS, "sysctl", "-qw", "net.ipv4.conf.default.send_redirects=0")
        in_ns(NODE_NS, "ip", "link", "add", "kntp-br", "type", "bridge")
        in_ns(NODE_NS, "ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", "kntp-br")
        in_ns(NODE_NS, "ip", "link", "set", "kntp-br", "up")
        for i, (pod, ip) in enumerate(POD_IPS.items(), 1):
            ns = PREFIX + pod
            in_ns(NODE_NS, "ip", "link", "add", f"kntp-p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            in_ns(NODE_NS, "ip", "link", "set", f"kntp-p{i}", "master", "kntp-br", "up")
            # as the CNI bridge plugin's hairpinMode: with br_netfilter a pod's packet DNATed back to
            # itself is bridged out of the port it came in on
            in_ns(NODE_NS, "ip", "link", "set", f"kntp-p{i}", "type", "bridge_slave", "hairpin", "on")
            in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            in_ns(ns, "ip", "link", "set", "eth0", "up")
            in_ns(ns, "ip", "route", "add", "default", "via", BRIDGE_IP)
        in_ns(NODE_NS, "ip", "link", "add", "kntp-n0", "type", "veth", "peer", "name", "eth0", "netns", CLIENT_NS)
        in_ns(NODE_NS, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "kntp-n0")
        in_ns(NODE_NS, "ip", "link", "set", "kntp-n0", "up")
        # as knet's nodes: a link route for the service CIDR, so packets to a ClusterIP without
        # endpoints are routed (and then rejected by kube-proxy's filter rules)
        in_ns(NODE_NS, "ip", "route", "add", "10.96.0.0/12", "dev", "kntp-n0")
        in_ns(CLIENT_NS, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        in_ns(CLIENT_NS, "ip", "link", "set", "eth0", "up")
        for cidr in ("10.96.0.0/12", "10.244.0.0/16"):
            in_ns(CLIENT_NS, "ip", "route", "add", cidr, "via", NODE_IP)
        for pod in POD_IPS:
            proc = subprocess.Popen(["ip", "netns", "exec", PREFIX + pod, sys.executable, "-c", ECHO_SERVER,
                                     pod, str(ECHO_PORT)], stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            self.servers.append(proc)

    def teardown(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=5)
        cleanup()

    def connect(self, ns: str, ip: str, port: int, n: int = 1) -> list[str]:
        """n TCP connections from namespace ns; each line "<pod> <client address>" or REFUSED/ERROR."""
        out = in_ns(ns, sys.executable, "-c", CLIENT, ip, str(port), str(n))
        return out.split("\n")[:-1]

    def udp(self, ns: str, ip: str, port: int, n: int, source_port: int) -> list[str]:
        """n datagrams from one fixed source port (one conntrack flow); the answers or TIMEOUT."""
        out = in_ns(ns, sys.executable, "-c", UDP_CLIENT, ip, str(port), str(n), str(source_port))
        return out.split("\n")[:-1]

    def wait_for(self, what: str, fn, timeout: float = 10.0):  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
            time.sleep(0.1)
