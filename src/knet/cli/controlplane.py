"""`knet controller-manager` and `knet scheduler`, with kube-controller-manager's and
kube-scheduler's flags (the ones kubeadm passes are all accepted; those with no meaning for knet,
like the CSR signing files or leader election, are accepted and ignored)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import click

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go durations as Kubernetes flags take them: 40s, 1m30s, 500ms, 2h."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def _load(kubeconfig: str | None):
    from knet.client import ConfigError, load_config
    try:
        return load_config(kubeconfig)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _bool(value: str) -> bool:
    return str(value).lower() in ("true", "1", "yes", "")


def _setup(verbosity: int) -> None:
    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(levelname).1s%(asctime)s %(name)s] %(message)s", datefmt="%m%d %H:%M:%S")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass


_IGNORED_CM = ("authentication-kubeconfig", "authorization-kubeconfig", "bind-address", "client-ca-file",
               "cluster-name", "cluster-signing-cert-file", "cluster-signing-key-file", "leader-elect",
               "requestheader-client-ca-file", "service-account-private-key-file",
               "use-service-account-credentials", "secure-port", "service-cluster-ip-range", "profiling",
               "feature-gates", "leader-elect-lease-duration", "leader-elect-renew-deadline",
               "terminated-pod-gc-threshold", "cloud-provider", "configure-cloud-routes")


def _ignored(names: tuple[str, ...]):
    def deco(fn):
        for name in reversed(names):
            fn = click.option(f"--{name}", hidden=True, default=None, help="accepted for compatibility")(fn)
        return fn
    return deco


@click.command("controller-manager", context_settings={"ignore_unknown_options": False})
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None)
@click.option("--allocate-node-cidrs", default="false", help="allocate spec.podCIDR to nodes from --cluster-cidr")
@click.option("--cluster-cidr", default=None)
@click.option("--node-cidr-mask-size", type=int, default=24)
@click.option("--controllers", default="*", help="comma list: * = defaults, foo enables, -foo disables")
@click.option("--node-monitor-grace-period", default="40s")
@click.option("--node-monitor-period", default="5s")
@click.option("--root-ca-file", type=click.Path(dir_okay=False), default=None)
@click.option("-v", "--v", "verbosity", type=int, default=2)
@_ignored(_IGNORED_CM)
def controller_manager(kubeconfig, allocate_node_cidrs, cluster_cidr, node_cidr_mask_size, controllers,
                       node_monitor_grace_period, node_monitor_period, root_ca_file, verbosity, **_ignored_flags):
    """Run the controllers (node IPAM, EndpointSlice, Deployment, ReplicaSet, DaemonSet, ...)."""
    from knet.client import ApiClient
    from knet.controllers.manager import ManagerOptions, run_controller_manager

    _setup(verbosity)
    options = ManagerOptions(
        cluster_cidr=cluster_cidr, node_cidr_mask_size=node_cidr_mask_size,
        allocate_node_cidrs=_bool(allocate_node_cidrs),
        node_monitor_grace_period=parse_duration(node_monitor_grace_period),
        node_monitor_period=parse_duration(node_monitor_period),
        root_ca=Path(root_ca_file).read_text() if root_ca_file else None,
        controllers=tuple(controllers.split(",")))

    config = _load(kubeconfig)

    async def main() -> None:
        async with ApiClient(config, user_agent="kube-controller-manager/knet") as api:
            await run_controller_manager(api, options)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@click.command("scheduler")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None)
@click.option("--scheduler-name", default="default-scheduler")
@click.option("-v", "--v", "verbosity", type=int, default=2)
@_ignored(("authentication-kubeconfig", "authorization-kubeconfig", "bind-address", "leader-elect",
           "secure-port", "config", "profiling", "feature-gates"))
def scheduler(kubeconfig, scheduler_name, verbosity, **_ignored_flags):
    """Bind pending pods to nodes."""
    from knet.client import ApiClient
    from knet.controllers.base import InformerFactory
    from knet.scheduler.scheduler import Scheduler

    _setup(verbosity)
    config = _load(kubeconfig)

    async def main() -> None:
        async with ApiClient(config, user_agent="kube-scheduler/knet") as api:
            informers = InformerFactory(api)
            sched = Scheduler(api, informers, scheduler_name=scheduler_name)
            informers.start()
            try:
                await informers.wait_synced()
                await sched.run()
            finally:
                await informers.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def register(group: click.Group) -> None:
    group.add_command(controller_manager)
    group.add_command(scheduler)
