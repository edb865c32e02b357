"""The `knet cni-agent` process: the CNI container of the network add-on's pod on every node.

It runs hostNetwork in the node's network namespace and watches the Nodes: once its own Node
has a podCIDR it writes the node's CNI conflist (atomically, only when it changed), and it keeps
host-gw routes to every other node's podCIDR via that node's InternalIP. Nothing is removed when
it exits (a deleted add-on pod leaves the node's network as it is, as real CNIs do): its
successor reads the config and the routes back and changes only what differs. `knet down`
removes the node, and everything with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knet.cniagent import plan
from knet.net import cni
from knet.net.routes import RouteError, RouteTable

log = logging.getLogger("knet.cniagent")
RESYNC_SECONDS = 10.0  # re-check the kernel's routes and the file (someone removed them)
RETRY_SECONDS = 1.0
Obj = dict[str, Any]


@dataclass
class Options:
    node: str
    cluster_cidr: str                  # --ipalloc-range
    cni_conf_dir: str
    ipam_data_dir: str
    cni_bin_dir: str = ""              # where the kubelet finds the plugins (checked, not written)
    kubeconfig: str = ""
    load_balancer_pool: str = ""       # --load-balancer-pool: announce these LoadBalancer addresses


@dataclass
class CniAgent:
    """The agent's state and its one reconcile step (`sync`), apart from the API watch."""

    opts: Options
    routes: RouteTable
    nodes: dict[str, Obj] = field(default_factory=dict)
    last_error: str = ""
    _said_current: str = ""

    def on_node(self, node: Obj, deleted: bool = False) -> None:
        name = node["metadata"]["name"]
        if deleted:
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node

    def sync(self) -> bool:
        """Bring the conflist and the routes to what the Nodes say; False if something failed
        (the caller retries soon)."""
        errors = [e for e in (self._sync_conflist(), self._sync_routes()) if e]
        self.last_error = "; ".join(errors)
        return not errors

    def _sync_conflist(self) -> str:
        own = self.nodes.get(self.opts.node)
        wanted = plan.node_conflist(own, self.opts.ipam_data_dir)
        if wanted is None:
            if self._said_current != "waiting":
                log.info("node %s has no podCIDR yet: no CNI config written (pods wait with NetworkNotReady)",
                         self.opts.node)
                self._said_current = "waiting"
            return ""
        path = Path(self.opts.cni_conf_dir) / cni.CONFLIST_NAME
        cidr = plan.pod_cidr(own)  # type: ignore[arg-type]
        try:
            if cni.load_conflist(self.opts.cni_conf_dir) == wanted:
                if self._said_current != cidr:
                    log.info("CNI config %s is current: network %s, bridge cni0, podCIDR %s", path,
                             cni.NETWORK_NAME, cidr)
                    self._said_current = cidr or ""
                return ""
            cni.write_conflist(self.opts.cni_conf_dir, wanted)
        except OSError as exc:
            log.error("writing CNI config %s: %s", path, exc)
            return f"writing {path}: {exc}"
        self._said_current = cidr or ""
        log.info("wrote CNI config %s: network %s, bridge cni0, podCIDR %s, host-local IPAM in %s",
                 path, cni.NETWORK_NAME, cidr, self.opts.ipam_data_dir)
        return ""

    def _sync_routes(self) -> str:
        wanted = plan.wanted_routes(self.nodes.values(), self.opts.node, self.opts.cluster_cidr)
        try:
            current = self.routes.gateway_routes(self.opts.cluster_cidr)
        except RouteError as exc:
            log.error("reading routes: %s", exc)
            return str(exc)
        changes = plan.route_changes(current, wanted)
        errors = []
        for route in changes.replace:
            try:
                self.routes.replace(route.dst, route.via)
                log.info("route %s via %s (node %s): %s", route.dst, route.via, route.node,
                         "changed" if route.dst in current else "added")
            except RouteError as exc:
                log.error("route %s via %s: %s", route.dst, route.via, exc)
                errors.append(str(exc))
        for dst in changes.delete:
            try:
                self.routes.delete(dst)
                log.info("route %s via %s: removed (no node has that podCIDR any more)", dst, current[dst])
            except RouteError as exc:
                log.error("removing route %s: %s", dst, exc)
                errors.append(str(exc))
        return "; ".join(errors)

    def missing_plugins(self) -> list[str]:
        """The plugins the conflist names that the kubelet's plugin dir lacks."""
        if not self.opts.cni_bin_dir:
            return []
        plugins = cni.pod_network_conflist("10.0.0.0/24", "/")["plugins"]
        wanted = [p["type"] for p in plugins] + [p["ipam"]["type"] for p in plugins if "ipam" in p]
        return [p for p in wanted if not os.access(os.path.join(self.opts.cni_bin_dir, p), os.X_OK)]


async def run(opts: Options, routes: RouteTable | None = None) -> None:
    from knet.client import ApiClient, load_config
    from knet.net.routes import IpRouteTable

    opts.node = opts.node or socket.gethostname()
    agent = CniAgent(opts, routes if routes is not None else IpRouteTable())
    log.info("knet CNI agent on node %s: pod range %s (--ipalloc-range), CNI config in %s",
             opts.node, opts.cluster_cidr, opts.cni_conf_dir)
    if opts.cni_bin_dir:
        missing = agent.missing_plugins()
        if missing:
            log.error("CNI plugins missing in %s: %s", opts.cni_bin_dir, ", ".join(missing))
        else:
            # A knet node has no /opt/cni/bin of its own yet: the kubelet runs the host's plugins.
            log.info("CNI plugins in %s: bridge, host-local, portmap", opts.cni_bin_dir)
    async with ApiClient(load_config(opts.kubeconfig or None), user_agent="knet-cni-agent") as api:
        if not opts.load_balancer_pool:
            await serve(api, agent)
            return
        # The node's share of the LoadBalancer addresses answers ARP from here (knet.cniagent.l2announce).
        await asyncio.gather(serve(api, agent), announce_forever(api, opts))


async def announce_forever(api: Any, opts: Options) -> None:
    """The LoadBalancer announcer, restarted when it fails: a fault of it (a socket error, a watch
    that breaks) must not take the node's CNI config and routes down with it."""
    from knet.cniagent import l2announce
    from knet.ipam.lbpool import parse_pool

    pool = parse_pool(opts.load_balancer_pool)
    while True:
        try:
            await l2announce.serve(api, opts.node, pool)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- log, wait, start again
            log.error("LoadBalancer announcer failed (restarting in %.0fs): %s", RESYNC_SECONDS, exc)
        await asyncio.sleep(RESYNC_SECONDS)


async def serve(api: Any, agent: CniAgent) -> None:
    """Watch the Nodes and keep `agent` synced to them, until cancelled."""
    from knet.client import Informer

    wake = asyncio.Event()
    informer = Informer(api, "v1", "nodes")

    def changed(node: Obj, deleted: bool = False) -> None:
        agent.on_node(node, deleted)
        wake.set()

    informer.add_handler(on_add=changed, on_update=lambda _old, new: changed(new),
                         on_delete=lambda node: changed(node, deleted=True))
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced()
        log.info("caches synced: %d nodes", len(agent.nodes))
        while True:
            wake.clear()
            ok = await asyncio.to_thread(agent.sync)
            try:
                await asyncio.wait_for(wake.wait(), RESYNC_SECONDS if ok else RETRY_SECONDS)
            except TimeoutError:
                continue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
