"""The policy controller's rules in a real kernel, no cluster: a scratch node namespace routes
between a client and a server pod namespace (veth pairs, /32 routes, as a routed CNI does), so
every packet between them crosses the node's FORWARD hook, which holds the controller's rules.

- Many isolated pods (600, so the iptables dispatch has three levels) around two free ones in the
  same address blocks: the free pods' flow passes, and each policy change on the server flips it
  as the policy says (the walk reaches the right pod's chain deep in the trie).
- Incremental syncs (only the changed chains, or an nft script changing only what changed): after
  each of a random series of changes the kernel holds exactly what a full rendering programs.
Both kube-proxy modes (iptables, nftables). Root only; runs in seconds.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest

from knet.netpol.controller import PolicyController
from knet.proxy.netfilter import RealNetfilter

from .proxy_netns_topology import in_ns, remove_namespaces, route_pod_namespace, sh

pytestmark = pytest.mark.e2e

PREFIX = "knet-npdp-"
NODE_NS, CLIENT_NS, SERVER_NS, FRESH_NS = (PREFIX + n for n in ("node", "client", "server", "fresh"))
CLIENT_IP, SERVER_IP, GATEWAY = "10.244.1.7", "10.244.1.9", "10.244.3.254"
PORT = 8080
ECHO = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""
CONNECT = r"""
import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("ok")
except OSError as e:
    print("blocked", e)
"""


def cleanup() -> None:
    remove_namespaces(PREFIX)


@pytest.fixture(scope="module")
def topology():  # noqa: ANN201
    cleanup()
    server = None
    try:
        for ns in (NODE_NS, CLIENT_NS, SERVER_NS, FRESH_NS):
            sh("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(NODE_NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns, ip, link in ((CLIENT_NS, CLIENT_IP, "knpd-c"), (SERVER_NS, SERVER_IP, "knpd-s")):
            route_pod_namespace(NODE_NS, ns, ip, GATEWAY, link)
        server = subprocess.Popen(["ip", "netns", "exec", SERVER_NS, sys.executable, "-I", "-S", "-c", ECHO],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=5)
        cleanup()


def pod(ns: str, name: str, ip: str, **labels: str) -> dict:
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {"app": name}},
            "spec": {"nodeName": "node01", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": PORT, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip}}


def policy(ns: str, name: str, spec: dict) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def crowd() -> list[dict]:
    """600 pods in 10.244.0.0/22 around the client's and server's addresses, in namespace crowd."""
    ips = [f"10.244.{i // 250}.{i % 250 + 2}" for i in range(602)]
    ips = [ip for ip in ips if ip not in (CLIENT_IP, SERVER_IP)][:600]
    return [pod("crowd", f"p{i:03d}", ip, app=f"a{i % 7}") for i, ip in enumerate(ips)]


NAMESPACES = [{"metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}} for n in ("crowd", "app")]
CLIENT, SERVER = pod("app", "client", CLIENT_IP), pod("app", "server", SERVER_IP)


def controller(mode: str, netns: str) -> PolicyController:
    ctl = PolicyController(node="node01", mode=mode, nf=RealNetfilter(netns=netns))
    for ns in NAMESPACES:
        ctl.on_change("namespaces", ns["metadata"]["name"], ns)
    for p in [*crowd(), CLIENT, SERVER]:
        ctl.on_change("pods", f"{p['metadata']['namespace']}/{p['metadata']['name']}", p)
    return ctl


def connects() -> bool:
    out = in_ns(CLIENT_NS, sys.executable, "-I", "-S", "-c", CONNECT, SERVER_IP, str(PORT))
    return out.startswith("ok")


def set_policy(ctl: PolicyController, p: dict, present: bool = True) -> None:
    ctl.on_change("networkpolicies", f"{p['metadata']['namespace']}/{p['metadata']['name']}", p if present else None)
    assert ctl.sync(verify=False), ctl.last_error


def remove_rules(mode: str, netns: str) -> None:
    from knet.netpol.controller import cleanup as netpol_cleanup
    netpol_cleanup(RealNetfilter(netns=netns), mode)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_flows_among_600_isolated_pods(topology, mode):  # noqa: ANN001
    ctl = controller(mode, NODE_NS)
    try:
        set_policy(ctl, policy("crowd", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
        assert len(ctl.last_rules.ingress) == 600
        if mode == "iptables":  # the dispatch goes deeper than one chain: blocks of blocks
            listing = in_ns(NODE_NS, "iptables", "-S")
            assert "-N KNET-IN-10.244.1.0/24" in listing and "-N KNET-IN-10.244.1.0/28" in listing
            assert "-A KNET-IN-10.244.1.0/28 -d 10.244.1.8/32" in listing  # the server's neighbour
        assert connects(), "a flow between pods no policy selects must pass"
        from_client = policy("app", "server-from-client", {"podSelector": {"matchLabels": {"app": "server"}},
                                                           "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                                                        "ports": [{"port": "http"}]}]})
        set_policy(ctl, from_client)
        assert connects(), "the server allows the client on its named port"
        deny_server = policy("app", "server-deny", {"podSelector": {"matchLabels": {"app": "server"}}})
        set_policy(ctl, from_client, present=False)
        set_policy(ctl, deny_server)
        assert not connects(), "the server is isolated and nothing allows the client"
        set_policy(ctl, from_client)
        assert connects(), "policies add up: one allows"
        client_egress = policy("app", "client-egress", {"podSelector": {"matchLabels": {"app": "client"}},
                                                        "policyTypes": ["Egress"], "egress": [{"to": [
                                                            {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{SERVER_IP}/32"]}}]}]})
        set_policy(ctl, client_egress)
        assert not connects(), "the client's egress excepts the server"
        set_policy(ctl, client_egress, present=False)
        assert connects()
    finally:
        remove_rules(mode, NODE_NS)


def _listing(mode: str, netns: str) -> list[str]:
    """The controller's rules as the tools list them, in an order-independent form."""
    if mode == "iptables":
        out = in_ns(netns, "iptables-save", "-t", "filter")
        return sorted(line for line in out.splitlines() if line.startswith((":KNET", "-A KNET", "-A FORWARD")))
    out = in_ns(netns, "nft", "list", "table", "ip", "knet-netpol")
    blocks, cur = [], []
    for line in out.splitlines():
        cur.append(line.strip())
        if line.strip() == "}":
            text = "\n".join(cur)
            cur = []
            if "elements = {" in text:  # the elements' order is the kernel's
                head, _, rest = text.partition("elements = {")
                text = head + " ".join(sorted(re.split(r",\s*", rest.replace("}", " ").replace("\n", " ").strip())))
            blocks.append(text)
    return sorted(blocks)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_incremental_syncs_leave_what_a_full_sync_programs(topology, mode):  # noqa: ANN001
    rng = random.Random(14)
    ctl = controller(mode, NODE_NS)
    candidates = [policy("crowd", f"p{j}", {"podSelector": {"matchLabels": {"app": f"a{j % 7}"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": f"a{(j + 1) % 7}"}}}], "ports": [{"port": 80 + j}]}]})
        for j in range(40)]
    candidates += [policy("app", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})]
    try:
        present: set[int] = set()
        for step in range(12):
            for _ in range(rng.choice((1, 3, 15))):
                j = rng.randrange(len(candidates))
                present ^= {j}
                p = candidates[j]
                ctl.on_change("networkpolicies", f"{p['metadata']['namespace']}/{p['metadata']['name']}",
                              p if j in present else None)
            if step % 4 == 2:  # a pod goes away
                gone = rng.choice(crowd())
                ctl.on_change("pods", f"crowd/{gone['metadata']['name']}", None)
            assert ctl.sync(verify=step % 5 == 0), ctl.last_error
            fresh = PolicyController(node="node01", mode=mode, nf=RealNetfilter(netns=FRESH_NS))
            fresh.policies, fresh.pods, fresh.namespaces = dict(ctl.policies), dict(ctl.pods), dict(ctl.namespaces)
            assert fresh.sync(), fresh.last_error
            assert _listing(mode, NODE_NS) == _listing(mode, FRESH_NS), f"step {step}: incremental != full"
            remove_rules(mode, FRESH_NS)
        assert connects() == (len(candidates) - 1 not in present)  # the app/deny policy decides the flow
    finally:
        remove_rules(mode, NODE_NS)
