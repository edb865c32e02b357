"""The `knet netpol-controller` process: watches NetworkPolicies, Pods and Namespaces, keeps its
node's policy rules programmed (PolicyController), serves /metrics and /healthz. It runs in the
network namespace it programs (the add-on DaemonSet's pod: hostNetwork, in the node's namespace).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from knet.client import ApiClient, Informer, load_config
from knet.client.events import EventRecorder
from knet.client.informer import object_key
from knet.netpol.controller import PolicyController, cleanup
from knet.proxy.netfilter import NetfilterError, RealNetfilter
from knet.proxy.options import parse_kube_proxy_config

log = logging.getLogger("knet.netpol")
RESOURCES = (("networking.k8s.io/v1", "networkpolicies"), ("v1", "pods"), ("v1", "namespaces"),
             ("v1", "nodes"))  # only its own Node (field selector): the podCIDR its guard covers
DEBOUNCE_SECONDS = 0.02   # coalesce a burst of changes (a Deployment's pods) into one sync
RESYNC_SECONDS = 10.0     # re-apply if someone flushed the rules or moved the FORWARD jump (kube-proxy prepends its own jumps when it first starts)
RETRY_SECONDS = 1.0
# While the node starts, kube-proxy (starting beside us) prepends its FORWARD jumps, and its
# KUBE-FORWARD accepts masquerade-marked packets before our policy chains see them: check the
# jump's place every second then, so that window is at most a second, not RESYNC_SECONDS.
STARTUP_SECONDS = 120.0
STARTUP_RESYNC_SECONDS = 1.0


def resync_interval(running_for: float) -> float:
    """How long the rules go unchecked, RUNNING_FOR seconds after the controller started."""
    return STARTUP_RESYNC_SECONDS if running_for < STARTUP_SECONDS else RESYNC_SECONDS


@dataclass
class Options:
    node: str
    mode: str = ""                 # "" -> from the kube-proxy config, else iptables
    kube_proxy_config: str = ""
    kubeconfig: str = ""
    metrics_bind_address: str = "0.0.0.0:9809"
    apply: bool = True


def resolve_mode(opts: Options) -> str:
    if opts.mode:
        return opts.mode
    if opts.kube_proxy_config and Path(opts.kube_proxy_config).exists():
        return parse_kube_proxy_config(Path(opts.kube_proxy_config).read_text()).mode
    return "iptables"


async def _serve(ctl: PolicyController, addr: str) -> web.AppRunner | None:
    if not addr or addr.endswith(":0"):
        return None

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=ctl.metrics.text(), content_type="text/plain")

    async def healthz(_: web.Request) -> web.Response:
        ok = ctl.last_rules is not None and not ctl.last_error
        return web.Response(status=200 if ok else 503, text="ok" if ok else (ctl.last_error or "not synced"))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = addr.rpartition(":")
    try:
        await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
    except OSError as exc:
        log.error("cannot serve metrics on %s: %s", addr, exc)
        await runner.cleanup()
        return None
    return runner


async def run(opts: Options) -> None:
    node = opts.node or socket.gethostname()
    mode = resolve_mode(opts)
    nf = RealNetfilter() if opts.apply else None
    ctl = PolicyController(node=node, mode=mode, nf=nf)
    log.info("network policy controller on node %s, %s mode%s", node, mode, "" if nf else " (render only)")
    if nf is not None:  # the other framework's leftovers (kube-proxy mode changed)
        try:
            cleanup(nf, "iptables" if mode == "nftables" else "nftables")
        except NetfilterError as exc:
            log.warning("cleaning up the other mode's rules: %s", exc)
    wake = asyncio.Event()
    async with ApiClient(load_config(opts.kubeconfig or None), user_agent="knet-netpol") as api:
        recorder = EventRecorder(api, "knet-netpol", host=node)
        informers = []
        for api_version, resource in RESOURCES:
            inf = Informer(api, api_version, resource,
                           field_selector=f"metadata.name={node}" if resource == "nodes" else None)

            def changed(obj, _res=resource, deleted=False):
                ctl.on_change(_res, object_key(obj), None if deleted else obj)
                wake.set()
            inf.add_handler(on_add=changed, on_update=lambda _old, new, _c=changed: _c(new),
                            on_delete=lambda obj, _c=changed: _c(obj, deleted=True))
            informers.append(inf)
        tasks = [asyncio.create_task(inf.run()) for inf in informers]
        runner = await _serve(ctl, opts.metrics_bind_address)
        reported = ""
        try:
            for inf in informers:
                await inf.wait_synced()
            log.info("caches synced: %d policies, %d pods, %d namespaces", len(ctl.policies), len(ctl.pods),
                     len(ctl.namespaces))
            verify = True
            started = asyncio.get_running_loop().time()
            while True:
                wake.clear()
                ok = await asyncio.to_thread(ctl.sync, verify)
                if not ok and ctl.last_error != reported:
                    reported = ctl.last_error
                    for pol in list(ctl.policies.values()):  # say so where users look: describe netpol
                        recorder.record(pol, "Warning", "PolicyProgrammingFailed",
                                        f"node {node}: {ctl.mode} rules not programmed: {ctl.last_error[:300]}")
                try:
                    running_for = asyncio.get_running_loop().time() - started
                    await asyncio.wait_for(wake.wait(), resync_interval(running_for) if ok else RETRY_SECONDS)
                except TimeoutError:
                    verify = True  # the periodic check that the kernel still has our rules
                    continue
                verify = not ok
                await asyncio.sleep(DEBOUNCE_SECONDS)
        finally:
            for t in tasks:
                t.cancel()
            if runner is not None:
                await runner.cleanup()
