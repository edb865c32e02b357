"""What `knet up` needs to know about this host: can it run the real dataplane, which networks
are taken, which tools are missing. Read-only probes; the decisions are in config.py."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from knet.cluster.config import UsedNetwork
from knet.cluster.paths import list_cluster_names, state_root

REAL_MODE_TOOLS = ("ip", "nsenter", "iptables", "iptables-restore", "nft", "unshare")
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
INSTALL_HINT = "sudo bash scripts/install.sh   (or: apt-get install iproute2 iptables nftables " \
               "conntrack containernetworking-plugins util-linux)"


def missing_tools() -> list[str]:
    missing = [t for t in REAL_MODE_TOOLS if shutil.which(t) is None]
    missing += [f"{CNI_BIN_DIR}/{p}" for p in CNI_PLUGINS if not (CNI_BIN_DIR / p).exists()]
    return missing


def real_dataplane_problem() -> str | None:
    """None when root and network namespaces work here; else why not (for the user)."""
    if os.geteuid() != 0:
        return "not running as root"
    missing = missing_tools()
    if missing:
        return f"missing tools: {', '.join(missing)}; install them with: {INSTALL_HINT}"
    try:
        probe = subprocess.run(["unshare", "--net", "--uts", "--pid", "--fork", "true"],
                               capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot create namespaces: {exc}"
    if probe.returncode != 0:
        return f"cannot create namespaces: {probe.stderr.decode(errors='replace').strip()}"
    return None


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination in the host's routing tables (so a new node network clashes with none)."""
    return [u.network for u in host_routes_in_use()]


def host_routes_in_use() -> list[UsedNetwork]:
    """Every IPv4 destination in the host's routing tables, with the route that holds it."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True,
                             text=True, timeout=5).stdout
        routes = json.loads(out or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    nets = []
    for r in routes:
        dst = r.get("dst", "")
        if dst in ("", "default") or r.get("type") in ("local", "broadcast"):
            continue
        try:
            network = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        where = f" dev {r['dev']}" if r.get("dev") else f" ({r.get('type', 'route')})"
        nets.append(UsedNetwork(network, f"a route on this host ({network}{where})"))
    return nets


def nameservers_in(resolv_conf: str) -> list[UsedNetwork]:
    """The IPv4 nameservers of a resolv.conf: the host reaches them by its default route, so no
    range routed into a cluster may hold one (the host's DNS would go into the cluster)."""
    from knet.net.hostroutes import nameserver_addresses

    return [UsedNetwork(ipaddress.IPv4Network(f"{address}/32"), "the host's nameserver (/etc/resolv.conf)")
            for address in nameserver_addresses(resolv_conf)]


def host_nameservers(path: str = "/etc/resolv.conf") -> list[UsedNetwork]:
    try:
        return nameservers_in(Path(path).read_text())
    except OSError:
        return []


def _other_cluster_configs(exclude: str, root: Path | None) -> list[tuple[str, dict]]:
    """(name, cluster.yaml) of the other clusters with a state dir (running or not)."""
    base = root or state_root()
    configs = []
    for name in list_cluster_names(base):
        if name == exclude:
            continue
        try:
            values = yaml.safe_load((base / name / "cluster.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(values, dict):
            configs.append((name, values))
    return configs


def other_cluster_ranges(exclude: str, root: Path | None = None) -> list[UsedNetwork]:
    """Node networks, and the pod and Service ranges the host routes, of the other clusters with a
    state dir (running or not)."""
    used = []
    for name, values in _other_cluster_configs(exclude, root):
        # A simulated cluster routes nothing: only its node network is kept apart (as before).
        keys = ("nodeNetwork",) if values.get("dataplane") == "sim" else ("nodeNetwork", "podSubnet", "serviceSubnet")
        for key in keys:
            try:
                used.append(UsedNetwork(ipaddress.IPv4Network(values[key]), f'cluster "{name}" ({key})'))
            except (KeyError, TypeError, ValueError):
                continue
    return used


def other_cluster_networks(exclude: str, root: Path | None = None) -> list[ipaddress.IPv4Network]:
    """Node networks of the other clusters with a state dir (running or not)."""
    nets = []
    for _, values in _other_cluster_configs(exclude, root):
        try:
            nets.append(ipaddress.IPv4Network(values["nodeNetwork"]))
        except (KeyError, TypeError, ValueError):
            continue
    return nets


@contextlib.contextmanager
def network_choice_lock() -> Iterator[None]:
    """Serialise "pick a free node network, then claim it" among concurrent `knet up`s on this host
    (the claim is the cluster bridge's connected route, which the next pick sees)."""
    lock_dir = Path("/run/lock") if os.geteuid() == 0 and Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
    with open(lock_dir / "knet-node-network.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def free_tcp_port(host: str = "127.0.0.1", preferred: int | None = None) -> int:
    import socket

    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            # As the servers will (aiohttp sets SO_REUSEADDR): TIME_WAIT leftovers don't count.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free TCP port")
