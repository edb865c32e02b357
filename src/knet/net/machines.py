"""Node machines: a node as a real Linux network stack on this host (docs/contracts.md s.7).

A node is a network namespace `knet-CLUSTER-NODE` with `eth0` (a veth into the cluster's host
bridge), plus UTS/PID/mount namespaces held by `node_init.py` (the node's PID 1). Nothing is
routed or NATed beyond the cluster's own bridge: the host has an address on that bridge, which
is the nodes' default gateway, and a policy rule (hostroutes.install_leak_guard) answers
"prohibited" to every packet from the bridge that it would route anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from knet.net import hostroutes
from knet.net.names import ClusterNetwork, hosts_file_text, link_prefix, netns_name, netns_prefix
from knet.net.state import cluster_dir, node_dir

__all__ = [
    "ClusterNetwork",
    "NodeMachine",
    "cluster_network",
    "create_node_machine",
    "delete_node_machine",
    "node_exec_argv",
    "teardown_cluster_network",
]

NODE_INIT = Path(__file__).with_name("node_init.py")
VIEW_PLAN = "view.json"             # in the node's dir: its filesystem plan (nodeview.py)
SSHD_CONFIG = "ssh/sshd_config"     # in the node's dir: its sshd's config


@dataclass(frozen=True)
class NodeMachine:
    cluster: str
    node: str
    netns: str
    ip: str
    init_pid: int
    host_link: str
    bridge: str


def cluster_network(cluster: str, node_cidr: str = "172.30.0.0/24") -> ClusterNetwork:
    return ClusterNetwork(cluster, node_cidr)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def _netns_list() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ensure_bridge(net: ClusterNetwork) -> None:
    """The cluster's host bridge with the host's address on it. Idempotent, and safe when several
    node machines are created at once (a lost race to create it is not an error)."""
    if not _link_exists(net.bridge):
        _ip("link", "add", net.bridge, "type", "bridge", check=False)
    if not _link_exists(net.bridge):
        raise RuntimeError(f"could not create bridge {net.bridge}")
    addrs = _ip("-o", "addr", "show", "dev", net.bridge, check=False).stdout
    if f" {net.gateway} " not in addrs:
        _ip("addr", "replace", net.gateway, "dev", net.bridge)
    _ip("link", "set", net.bridge, "up")
    # Before any node exists: the nodes' default route leads here, and goes no further.
    hostroutes.install_leak_guard(net.bridge)


def _host_nameservers() -> list[str]:
    """The nameservers a node's resolver asks (it reads the host's /etc/resolv.conf)."""
    try:
        return hostroutes.nameserver_addresses(Path("/etc/resolv.conf").read_text())
    except OSError:
        return []


def _machine_file(cluster: str, node: str) -> Path:
    return node_dir(cluster, node) / "machine.json"


def load_machine(cluster: str, node: str) -> NodeMachine | None:
    try:
        return NodeMachine(**json.loads(_machine_file(cluster, node).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def create_node_machine(
    net: ClusterNetwork,
    node: str,
    ip: str,
    *,
    hosts: dict[str, str] | None = None,
    service_cidr: str | None = "10.96.0.0/12",
) -> NodeMachine:
    """Create (or return the running) node machine `node` with address `ip` on `net`."""
    existing = load_machine(net.cluster, node)
    if existing and _pid_alive(existing.init_pid) and existing.ip == ip:
        return existing
    if existing:
        delete_node_machine(net.cluster, node)
    ensure_bridge(net)
    ns = netns_name(net.cluster, node)
    host_link = net.host_link(node)
    if ns not in _netns_list():
        _ip("netns", "add", ns)
    if _link_exists(host_link):
        _ip("link", "del", host_link)
    _ip("-n", ns, "link", "del", "eth0", check=False)
    _ip("link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _ip("link", "set", host_link, "master", net.bridge, "up")
    batch = [
        "link set lo up",
        f"addr add {ip}/{net.prefixlen} dev eth0",
        "link set eth0 up",
        # As a kubeadm node has one; the host (the gateway) forwards nothing from the bridge.
        f"route replace default via {net.network.network_address + 1} dev eth0",
    ]
    batch += hostroutes.node_nameserver_routes(_host_nameservers(), net.node_cidr)
    if service_cidr:
        # Locally generated packets are routed before OUTPUT's DNAT: without a route to the
        # service range, connect() to a ClusterIP fails. A link route (no gateway) keeps a
        # packet that no rule rewrote inside the node network.
        batch.append(f"route replace {service_cidr} dev eth0 scope link")
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(batch) + "\n", text=True,
                   check=True, capture_output=True)
    # No ICMP redirects: a node that forwards a packet back out the interface it came in on
    # (hairpin, the service route) would send one, and redirects share the per-destination ICMP
    # rate limit with REJECT's port-unreachable, so a client could see a timeout instead of
    # "connection refused". send_redirects is OR-ed over all/default/interface: clear all three.
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                    "echo 1 > /proc/sys/net/ipv4/ip_forward; "
                    "for c in all default eth0; do echo 0 > /proc/sys/net/ipv4/conf/$c/send_redirects; done; "
                    "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null; true"],
                   check=True, capture_output=True)
    ndir = node_dir(net.cluster, node)
    ndir.mkdir(parents=True, exist_ok=True)
    hosts_path = ndir / "hosts"
    hosts_path.write_text(hosts_file_text(node, ip, hosts or {}))
    bin_dir = _write_node_tools(net.cluster, node, ndir)
    pidfile = ndir / "init.pid"
    pidfile.unlink(missing_ok=True)
    subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-I", str(NODE_INIT), "--hostname", node,
         "--hosts-file", str(hosts_path), "--pidfile", str(pidfile), "--bin-dir", str(bin_dir),
         *_node_view_args(ndir)],
        check=True, capture_output=True, text=True,
    )
    machine = NodeMachine(net.cluster, node, ns, ip, int(pidfile.read_text()), host_link, net.bridge)
    _machine_file(net.cluster, node).write_text(json.dumps(asdict(machine)))
    return machine


def _node_view_args(ndir: Path) -> list[str]:
    """The node's kubeadm filesystem and sshd, when `knet up` wrote them (knet.cluster.nodefs)."""
    args = []
    if (ndir / VIEW_PLAN).is_file():
        args += ["--view", str(ndir / VIEW_PLAN)]
    if (ndir / SSHD_CONFIG).is_file():
        args += ["--sshd-config", str(ndir / SSHD_CONFIG), "--sshd-log", str(ndir / "ssh" / "sshd.log")]
    return args


def _write_node_tools(cluster: str, node: str, ndir: Path) -> Path:
    """`crictl` inside the node shell, as on a kubeadm node: knet's crictl (knet.node.crictl), which
    finds the node's runtime endpoint as crictl does (/etc/crictl.yaml, -r, CONTAINER_RUNTIME_ENDPOINT)."""
    import shlex

    bin_dir = ndir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "crictl"
    script.write_text("#!/bin/sh\n# crictl of this knet node: asks the node's container runtime endpoint\n"
                      f"{_pythonpath()}exec {shlex.quote(sys.executable)} -m knet.node.crictl \"$@\"\n")
    script.chmod(0o755)
    return bin_dir


def _pythonpath() -> str:
    """The knet that made the node, also for crictl run from an ssh session (no PYTHONPATH there)."""
    import shlex

    path = os.environ.get("PYTHONPATH")
    return f"PYTHONPATH={shlex.quote(path)} " if path else ""


def node_exec_argv(cluster: str, node: str) -> list[str]:
    """argv prefix that runs a command inside the node (its net, UTS, PID and mount namespaces)."""
    machine = load_machine(cluster, node)
    if machine is None or not _pid_alive(machine.init_pid):
        raise LookupError(f"node {node!r} of cluster {cluster!r} is not running")
    # nsenter forks into the PID namespace and does not pass signals on: the command gets SIGTERM
    # when nsenter dies (stopping "the kubelet" by nsenter's pid must stop the kubelet).
    return ["nsenter", f"--target={machine.init_pid}", "--net", "--uts", "--pid", "--mount", "--",
            "setpriv", "--pdeathsig", "TERM", "--"]


def _netns_inode(ns: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return None


def _pids_in_netns(inode: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    pids.append(int(entry))
            except OSError:
                continue
    return [p for p in pids if p != os.getpid()]


def _kill_and_wait(pids: list[int], timeout: float = 5.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.01)


def _destroy_netns(ns: str) -> None:
    inode = _netns_inode(ns)
    if inode is not None:
        _kill_and_wait(_pids_in_netns(inode))
    _ip("netns", "del", ns, check=False)


def delete_node_machine(cluster: str, node: str) -> None:
    """Kill every process of the node, then remove its namespace and veth. Idempotent."""
    machine = load_machine(cluster, node)
    if machine and _pid_alive(machine.init_pid):
        # PID 1 of a PID namespace dying takes every process of the namespace with it.
        _kill_and_wait([machine.init_pid])
    _destroy_netns(netns_name(cluster, node))
    net = ClusterNetwork(cluster)
    _ip("link", "del", net.host_link(node), check=False)
    ndir = node_dir(cluster, node)
    for name in ("hosts", "init.pid", "bin/crictl"):
        (ndir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (ndir / "bin").rmdir()
    _machine_file(cluster, node).unlink(missing_ok=True)


def _host_links_with_prefix(prefix: str) -> list[str]:
    out = _ip("-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(prefix):
            names.append(name)
    return names


def _netns_of_other_clusters(cluster: str) -> set[str]:
    from knet.net.state import state_root

    owned: set[str] = set()
    root = state_root()
    if not root.is_dir():
        return owned
    for machine in root.glob("*/nodes/*/machine.json"):
        other = machine.parent.parent.parent.name
        if other != cluster:
            owned.add(netns_name(other, machine.parent.name))
    return owned


def teardown_cluster_network(cluster: str) -> list[str]:
    """Remove every node, namespace, link, host route and rule of `cluster`, including a crash's
    leftovers. Returns the host routes and rules it removed (for the user)."""
    nodes_root = cluster_dir(cluster) / "nodes"
    if nodes_root.is_dir():
        for ndir in nodes_root.iterdir():
            if (ndir / "machine.json").exists():
                delete_node_machine(cluster, ndir.name)
    others = _netns_of_other_clusters(cluster)
    for ns in _netns_list():
        # "knet-a-" also prefixes cluster "a-b"'s namespaces: leave those that another cluster records.
        if ns.startswith(netns_prefix(cluster)) and ns not in others:
            _destroy_netns(ns)
    # The bridge's policy rule outlives the bridge: delete it by the bridge's name.
    removed = hostroutes.remove_host_side(ClusterNetwork(cluster).bridge)
    prefix = link_prefix(cluster)
    for name in _host_links_with_prefix(prefix):
        if not name.endswith("br"):
            _ip("link", "del", name, check=False)
    for name in _host_links_with_prefix(prefix):
        _ip("link", "del", name, check=False)
    return removed


def cluster_host_objects(cluster: str) -> tuple[list[str], list[str]]:
    """The network namespaces and host links of `cluster` as they are now (what `knet down` says
    it removed): namespaces named knet-CLUSTER-NODE that no other cluster records, links of its
    prefix."""
    others = _netns_of_other_clusters(cluster)
    spaces = sorted(ns for ns in _netns_list() if ns.startswith(netns_prefix(cluster)) and ns not in others)
    return spaces, sorted(_host_links_with_prefix(link_prefix(cluster)))
