"""`knet status`: every cluster with a state dir, its nodes and the health of its processes."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import yaml

from knet.cluster import config as config_mod
from knet.cluster import processes
from knet.cluster.paths import ClusterPaths, list_cluster_names


@dataclass
class ClusterStatus:
    name: str
    dataplane: str = "?"
    nodes: list[str] = field(default_factory=list)
    server: str = ""
    api: str = "unknown"
    processes: list[tuple[str, int, bool]] = field(default_factory=list)  # name, pid, alive
    machines: dict[str, bool] = field(default_factory=dict)  # node -> init alive (real mode)
    restarts: dict[str, int | None] = field(default_factory=dict)  # kubelet-NODE -> its supervisor's restarts


def _api_health(paths: ClusterPaths, server: str) -> str:
    """GET /readyz with the admin identity; 'ok', 'down' or the error."""
    try:
        ctx = ssl.create_default_context(cafile=str(paths.pki / "ca.crt"))
        ctx.load_cert_chain(str(paths.pki / "admin.crt"), str(paths.pki / "admin.key"))
        with urllib.request.urlopen(f"{server}/readyz", context=ctx, timeout=2) as resp:
            return "ok" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        # /readyz names its failing checks ("[-]etcd failed: reason withheld"): say which.
        body = exc.read().decode(errors="replace")
        failing = [line[3:].split(" ")[0] for line in body.splitlines() if line.startswith("[-]")]
        return f"not ready ({', '.join(failing)})" if failing else f"HTTP {exc.code}"
    except OSError as exc:
        return f"down ({getattr(exc, 'reason', exc)})"


def cluster_status(paths: ClusterPaths) -> ClusterStatus:
    st = ClusterStatus(name=paths.name)
    try:
        cfg = config_mod.from_dict(yaml.safe_load(paths.config_file.read_text()))
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        st.api = f"no config (half-made cluster: knet down --name {paths.name})"
        cfg = None
    if cfg is not None:
        st.dataplane = cfg.dataplane
        st.nodes = [f"{n.name}({n.ip})" for n in cfg.nodes]
        st.server = cfg.server_url
        st.api = _api_health(paths, cfg.server_url)
        if cfg.dataplane == "real":
            try:
                from knet.net.machines import _pid_alive, load_machine

                for n in cfg.nodes:
                    m = load_machine(cfg.name, n.name)
                    st.machines[n.name] = bool(m and _pid_alive(m.init_pid))
            except ImportError:
                pass
    st.processes = [(r.name, r.pid, r.alive) for r in processes.read_records(paths.pids)]
    if cfg is not None and cfg.dataplane == "real":
        st.restarts = {f"kubelet-{n.name}": _kubelet_restarts(paths, n.name) for n in cfg.nodes}
    return st


def _kubelet_restarts(paths: ClusterPaths, node: str) -> int | None:
    """How often the node's supervisor restarted its kubelet (None: not supervised)."""
    from knet.cluster.agents import SUPERVISOR_STATE

    try:
        return int((paths.node_dir(node) / SUPERVISOR_STATE).read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def all_statuses() -> list[ClusterStatus]:
    return [cluster_status(ClusterPaths.of(name)) for name in list_cluster_names()]


def format_status(statuses: list[ClusterStatus]) -> str:
    if not statuses:
        return "no clusters (create one with: knet up)\n"
    lines = []
    for st in statuses:
        lines.append(f"cluster {st.name}: dataplane={st.dataplane} api={st.api} server={st.server or '-'}")
        for node in st.nodes:
            name = node.split("(")[0]
            machine = st.machines.get(name)
            suffix = "" if machine is None else (" machine=up" if machine else " machine=DOWN")
            lines.append(f"  node {node}{suffix}")
        for name, pid, alive in st.processes:
            restarts = st.restarts.get(name)
            extra = f" supervised restarts={restarts}" if restarts is not None else ""
            lines.append(f"  process {name} pid={pid} {'running' if alive else 'EXITED'}{extra}")
    return "\n".join(lines) + "\n"
