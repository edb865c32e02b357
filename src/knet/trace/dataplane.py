"""Where `knet trace` gets each node's rules, routes and addresses: the live node (RealDataplane:
iptables-save or nft list, `ip route`, `ip addr` and the affinity lists, read in the node's network
namespace) or knet's own renderers fed the API objects (RenderedDataplane: what kube-proxy and the
policy controller program for that node; the simulated dataplane, whose nodes hold no kernel
state, and the unit tests). Both give a NodeRules; the path walk (path.py) is the same.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass, field
from typing import Protocol

from knet.proxy import iptables_walk, nftables_walk, restore
from knet.proxy.walk import Walker, in_net
from knet.trace.view import ClusterView


@dataclass(frozen=True)
class Route:
    dst: str            # "10.244.1.0/24", "default"
    via: str = ""       # gateway
    dev: str = ""

    def text(self) -> str:
        return " ".join(x for x in (self.dst, f"via {self.via}" if self.via else "",
                                    f"dev {self.dev}" if self.dev else "") if x)


def route_lookup(routes: list[Route], dst: str) -> Route | None:
    """Longest prefix match (the main table; knet nodes use no policy routing)."""
    best: tuple[int, Route] | None = None
    for r in routes:
        spec = "0.0.0.0/0" if r.dst == "default" else r.dst
        if in_net(dst, spec):
            plen = int(spec.partition("/")[2] or 32)
            if best is None or plen > best[0]:
                best = (plen, r)
    return best[1] if best else None


def routes_from_json(text: str) -> list[Route]:
    return [Route(r.get("dst", ""), r.get("gateway", ""), r.get("dev", "")) for r in json.loads(text or "[]")]


@dataclass
class NodeRules:
    name: str
    mode: str                 # "iptables" or "nftables"
    walker: Walker
    routes: list[Route]
    local_ips: set[str]
    source: str = ""          # where the rules came from, for the report


class Dataplane(Protocol):
    mode: str

    def node(self, name: str) -> NodeRules: ...


# -- rendered (simulated dataplane, tests) ------------------------------------------------------

@dataclass
class RenderedDataplane:
    """Each node's rules as knet's kube-proxy and policy controller render them from `view`."""
    view: ClusterView
    mode: str = "iptables"
    cluster_cidr: str = ""
    service_cidrs: tuple[str, ...] = ()
    recent: dict[str, set[str]] = field(default_factory=dict)  # affinity: list/set name -> clients
    _cache: dict[str, NodeRules] = field(default_factory=dict)

    def node(self, name: str) -> NodeRules:
        if name not in self._cache:
            self._cache[name] = self._render(name)
        return self._cache[name]

    def _render(self, name: str) -> NodeRules:
        from knet.netpol import render as netpol_render
        from knet.netpol.compiler import compile_node
        from knet.proxy import iptables, nftables
        from knet.proxy.model import state_from_objects
        from knet.proxy.options import RenderOptions

        v = self.view
        node_ip = v.node_ip(name)
        pod_cidr = v.pod_cidr(name)
        gateway = str(next(ipaddress.ip_network(pod_cidr, strict=False).hosts())) if pod_cidr else ""
        local = {ip for ip in (node_ip, gateway) if ip}
        opts = RenderOptions(node_name=name, node_ip=node_ip, cluster_cidr=self.cluster_cidr,
                             node_ips=(node_ip, "127.0.0.1") if node_ip else ("127.0.0.1",),
                             service_cidrs=self.service_cidrs)
        state = state_from_objects([{**o, "kind": "Service"} for o in v.services]
                                   + [{**o, "kind": "EndpointSlice"} for o in v.slices], name)
        policy = compile_node(name, v.policies, v.pods, v.namespaces)
        if self.mode == "nftables":
            rs = nftables_walk.parse_script(nftables.render(state, opts))
            nftables_walk.parse_script(netpol_render.render_nftables(policy), rs)
            walker: Walker = nftables_walk.NftWalker(rs, local, {k: set(s) for k, s in self.recent.items()})
        else:  # kube-proxy's whole-table restore, the controller's chains, its FORWARD jump first
            tables = restore.rules_by_table(iptables.merge_with_foreign({}, iptables.render(state, opts)))
            for chain, lines in netpol_render.iptables_chains(policy).items():
                tables["filter"][chain] = [line.split(" ", 2)[2] for line in lines]
            tables["filter"]["FORWARD"].insert(0, netpol_render.jump_rule())
            walker = iptables_walk.IptablesWalker(tables, local, recent=self.recent)
        return NodeRules(name, self.mode, walker, self.routes(name), local, "rendered by knet's kube-proxy and policy "
                         "controller from the API objects")

    def routes(self, name: str) -> list[Route]:
        """What the node agent programs: its podCIDR on the bridge, the other nodes' via them (host-gw)."""
        out = []
        for other in self.view.node_names():
            cidr = self.view.pod_cidr(other)
            if not cidr:
                continue
            out.append(Route(cidr, dev="cni0") if other == name else Route(cidr, self.view.node_ip(other), "eth0"))
        out += [Route(f"{self.view.node_ip(other)}/32", dev="eth0") for other in self.view.node_names()
                if other != name and self.view.node_ip(other)]  # the nodes' network
        return out


# -- live (a real-dataplane cluster) ------------------------------------------------------------

READ_RULES = {
    "iptables": "iptables-save",
    "nftables": "nft list table ip kube-proxy; nft list table ip knet-netpol 2>/dev/null",
}
READ_SCRIPT = ("{rules}; echo '@@routes'; ip -j -4 route show; echo '@@addrs'; ip -j -4 addr show; "
           "echo '@@recent'; for f in /proc/net/xt_recent/*; do [ -e \"$f\" ] && echo \"#$f\" && cat \"$f\"; done; true")


def parse_node_dump(text: str) -> dict[str, str]:
    parts: dict[str, str] = {"rules": ""}
    current = "rules"
    for line in text.splitlines(keepends=True):
        if line.startswith("@@"):
            current = line[2:].strip()
            parts[current] = ""
        else:
            parts[current] += line
    return parts


def parse_recent(text: str) -> dict[str, set[str]]:
    """/proc/net/xt_recent/NAME contents (`src=10.0.0.2 ttl: 64 last_seen: ...`) per list."""
    out: dict[str, set[str]] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("#"):
            name = line.rsplit("/", 1)[-1]
            out[name] = set()
        elif line.startswith("src=") and name:
            out[name].add(line.split()[0][4:])
    return out


def node_rules_from_dump(name: str, mode: str, dump: str) -> NodeRules:
    """One node's state as the read script printed it -> NodeRules. Pure."""
    parts = parse_node_dump(dump)
    local = {a.get("local", "") for i in json.loads(parts.get("addrs") or "[]")
             for a in i.get("addr_info") or []} - {""}
    recent = parse_recent(parts.get("recent", ""))
    if mode == "nftables":
        walker: Walker = nftables_walk.NftWalker(nftables_walk.parse_listing(parts["rules"]), local)
        source = "nft list table ip kube-proxy / ip knet-netpol"
    else:
        walker = iptables_walk.IptablesWalker.from_save(parts["rules"], local, recent=recent)
        source = "iptables-save"
    return NodeRules(name, mode, walker, routes_from_json(parts.get("routes", "")), local,
                     f"{source} in node {name}'s network namespace")


@dataclass
class RealDataplane:
    """Reads each node once, in its network namespace (nsenter on the node's init process)."""
    cluster: str
    mode: str = "iptables"
    _cache: dict[str, NodeRules] = field(default_factory=dict)

    def prefetch(self, names: list[str]) -> None:
        """Read these nodes at once (one nsenter each, in parallel): a path usually crosses two."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self._try_node, names))

    def _try_node(self, name: str) -> None:
        try:
            self.node(name)
        except LookupError:
            pass  # reported when the walk gets there

    def node(self, name: str) -> NodeRules:
        if name not in self._cache:
            from knet.net.machines import load_machine

            machine = load_machine(self.cluster, name)
            if machine is None:
                raise LookupError(f"node {name!r} of cluster {self.cluster!r} is not running")
            script = READ_SCRIPT.format(rules=READ_RULES[self.mode])
            p = subprocess.run(["nsenter", f"--target={machine.init_pid}", "--net", "--", "sh", "-c", script],
                               capture_output=True, text=True, check=False)
            if p.returncode != 0:
                raise LookupError(f"reading node {name}'s rules failed: {p.stderr.strip()[:500]}")
            self._cache[name] = node_rules_from_dump(name, self.mode, p.stdout)
        return self._cache[name]
