"""`knet controller-manager` and `knet scheduler`, with kube-controller-manager's and
kube-scheduler's flags (the ones kubeadm passes are all accepted; those with no meaning for knet,
like the CSR signing files or leader election, are accepted and ignored)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import click

from knet.cli.runtime import run_component

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


_IGNORED_CM = ("authentication-kubeconfig", "authorization-kubeconfig",
               "cluster-name", "cluster-signing-cert-file", "cluster-signing-key-file",
               "service-cluster-ip-range", "profiling",
               "feature-gates", "terminated-pod-gc-threshold", "cloud-provider", "configure-cloud-routes")


def _ignored(names: tuple[str, ...]):
    def deco(fn):
        for name in reversed(names):
            fn = click.option(f"--{name}", hidden=True, default=None, help="accepted for compatibility")(fn)
        return fn
    return deco


def _leader_election(default_name: str):
    """--leader-elect* flags as kube-controller-manager / kube-scheduler take them."""
    def deco(fn):
        options = [
            click.option("--leader-elect", default="true", help="hold a Lease in kube-system while running"),
            click.option("--leader-elect-lease-duration", default="15s"),
            click.option("--leader-elect-renew-deadline", default="10s"),
            click.option("--leader-elect-retry-period", default="2s"),
            click.option("--leader-elect-resource-name", default=default_name),
            click.option("--leader-elect-resource-namespace", default="kube-system"),
            click.option("--leader-elect-resource-lock", default="leases", hidden=True),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn
    return deco


def _secure_serving(default_port: int):
    """--bind-address and --secure-port: where /healthz is served over HTTPS (knet.controllers.secureserving);
    --client-ca-file and --requestheader-client-ca-file: whose certificates it authenticates."""
    def deco(fn):
        fn = click.option("--requestheader-client-ca-file", type=click.Path(dir_okay=False), default=None,
                          help="CA of the front proxy whose X-Remote-User headers name the caller")(fn)
        fn = click.option("--client-ca-file", type=click.Path(dir_okay=False), default=None,
                          help="CA of the client certificates the secure port authenticates")(fn)
        fn = click.option("--secure-port", type=int, default=default_port, show_default=True,
                          help="HTTPS port of /healthz, /livez, /readyz (0: none)")(fn)
        # upstream's default is 0.0.0.0; knet's runs of these outside a node (tests) stay on loopback
        return click.option("--bind-address", default="127.0.0.1", show_default=True,
                             help="address of --secure-port (kubeadm: 127.0.0.1)")(fn)

    return deco


def _serving(bind_address: str, secure_port: int, flags: dict) -> tuple:
    from knet.controllers.secureserving import DelegatedAuthentication

    if secure_port == 0:
        return bind_address, 0, None  # nothing served: the CA files are not read
    return bind_address, secure_port, DelegatedAuthentication(flags.get("client_ca_file"),
                                                              flags.get("requestheader_client_ca_file"))


def _run(config, user_agent: str, flags: dict, work, serving: tuple = ("", 0)) -> None:
    """Run `work(api)` (under leader election when --leader-elect) until SIGTERM/SIGINT, then
    release the lease so a successor starts at once. /healthz is served on `serving`
    (address, port) from the start, leader or not, as upstream does."""
    import signal

    from knet.client import ApiClient
    from knet.client.leaderelection import LeaderElector, LostLeadershipError, run_as_leader
    from knet.controllers.secureserving import serve_health

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        health = await serve_health(*serving)
        try:
            await lead()
        finally:
            if health is not None:
                await health.cleanup()

    async def lead() -> None:
        async with ApiClient(config, user_agent=user_agent) as api:
            if not _bool(flags["leader_elect"]):
                await work(api)
                return
            elector = LeaderElector(
                api, flags["leader_elect_resource_name"], namespace=flags["leader_elect_resource_namespace"],
                lease_duration=parse_duration(flags["leader_elect_lease_duration"]),
                renew_deadline=parse_duration(flags["leader_elect_renew_deadline"]),
                retry_period=parse_duration(flags["leader_elect_retry_period"]))
            try:
                await run_as_leader(elector, lambda: work(api))
            except LostLeadershipError as exc:
                raise click.ClickException(f"leaderelection lost: {exc}") from exc

    try:
        run_component(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


_LE_KEYS = ("leader_elect", "leader_elect_lease_duration", "leader_elect_renew_deadline",
            "leader_elect_retry_period", "leader_elect_resource_name", "leader_elect_resource_namespace")


@click.command("controller-manager", context_settings={"ignore_unknown_options": False})
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None)
@click.option("--allocate-node-cidrs", default="false", help="allocate spec.podCIDR to nodes from --cluster-cidr")
@click.option("--cluster-cidr", default=None)
@click.option("--node-cidr-mask-size", type=int, default=24)
@click.option("--controllers", default="*", help="comma list: * = defaults, foo enables, -foo disables")
@click.option("--node-monitor-grace-period", default="40s")
@click.option("--node-monitor-period", default="5s")
@click.option("--root-ca-file", type=click.Path(dir_okay=False), default=None)
@click.option("--use-service-account-credentials", is_flag=False, flag_value="true", default="false",
              help="each controller writes with its own service account's token (kube-system/<controller>)")
@click.option("--service-account-private-key-file", type=click.Path(dir_okay=False), default=None,
              help="PEM key that signs legacy Secret tokens (the serviceaccount-token controller).")
@click.option("--horizontal-pod-autoscaler-sync-period", "hpa_sync", default="15s")
@click.option("--horizontal-pod-autoscaler-downscale-stabilization", "hpa_stabilization", default="5m0s")
@click.option("--horizontal-pod-autoscaler-tolerance", "hpa_tolerance", type=float, default=0.1)
@click.option("--horizontal-pod-autoscaler-cpu-initialization-period", "hpa_cpu_init", default="5m0s")
@click.option("--horizontal-pod-autoscaler-initial-readiness-delay", "hpa_readiness", default="30s")
@click.option("--load-balancer-pool", default=None,
              help="knet: addresses for LoadBalancer Services (A-B or CIDRs, comma separated; "
                   "the service-lb-controller)")
@click.option("-v", "--v", "verbosity", type=int, default=2)
@_leader_election("kube-controller-manager")
@_secure_serving(10257)
@_ignored(_IGNORED_CM)
def controller_manager(kubeconfig, allocate_node_cidrs, cluster_cidr, node_cidr_mask_size, controllers,
                       node_monitor_grace_period, node_monitor_period, root_ca_file,
                       use_service_account_credentials, service_account_private_key_file, verbosity,
                       bind_address, secure_port, **flags):
    """Run the controllers (node IPAM, EndpointSlice, Deployment, ReplicaSet, DaemonSet, ...)."""
    from knet.controllers.clientbuilder import ServiceAccountClientBuilder
    from knet.controllers.manager import ManagerOptions, run_controller_manager

    _setup(verbosity)
    options = ManagerOptions(
        cluster_cidr=cluster_cidr, node_cidr_mask_size=node_cidr_mask_size,
        allocate_node_cidrs=_bool(allocate_node_cidrs),
        node_monitor_grace_period=parse_duration(node_monitor_grace_period),
        node_monitor_period=parse_duration(node_monitor_period),
        root_ca=Path(root_ca_file).read_text() if root_ca_file else None,
        controllers=tuple(controllers.split(",")),
        hpa=(parse_duration(flags["hpa_sync"]), parse_duration(flags["hpa_stabilization"]), flags["hpa_tolerance"],
             parse_duration(flags["hpa_cpu_init"]), parse_duration(flags["hpa_readiness"])),
        service_account_private_key=(Path(service_account_private_key_file).read_bytes()
                                     if service_account_private_key_file else None),
        load_balancer_pool=flags["load_balancer_pool"] or None)
    config = _load(kubeconfig)
    user_agent = "kube-controller-manager/knet"
    per_controller = _bool(use_service_account_credentials)

    def work(api):
        # As upstream: the controller-manager's own identity elects the leader and feeds the
        # shared informers; each controller writes with its own (service-account) client.
        clients = ServiceAccountClientBuilder(api, config, user_agent=user_agent) if per_controller else None
        return run_controller_manager(api, options, clients)

    _run(config, user_agent, {k: flags[k] for k in _LE_KEYS}, work, _serving(bind_address, secure_port, flags))


@click.command("scheduler")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None)
@click.option("--scheduler-name", default="default-scheduler")
@click.option("-v", "--v", "verbosity", type=int, default=2)
@_leader_election("kube-scheduler")
@_secure_serving(10259)
@_ignored(("authentication-kubeconfig", "authorization-kubeconfig", "config", "profiling", "feature-gates"))
def scheduler(kubeconfig, scheduler_name, verbosity, bind_address, secure_port, **flags):
    """Bind pending pods to nodes."""
    from knet.controllers.base import InformerFactory
    from knet.scheduler.scheduler import Scheduler

    _setup(verbosity)

    async def work(api) -> None:
        informers = InformerFactory(api)
        sched = Scheduler(api, informers, scheduler_name=scheduler_name)
        informers.start()
        try:
            await informers.wait_synced()
            await sched.run()
        finally:
            await informers.stop()

    _run(_load(kubeconfig), "kube-scheduler/knet", {k: flags[k] for k in _LE_KEYS}, work,
         _serving(bind_address, secure_port, flags))


def register(group: click.Group) -> None:
    group.add_command(controller_manager)
    group.add_command(scheduler)
