"""kube-controller-manager: the controllers by their upstream names, over one shared informer set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from knet.client import Api
from knet.controllers.base import InformerFactory
from knet.controllers.clientbuilder import ControllerClientBuilder, SimpleClientBuilder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerOptions:
    cluster_cidr: str | None = None
    node_cidr_mask_size: int = 24
    allocate_node_cidrs: bool = False
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    root_ca: str | None = None
    controllers: tuple[str, ...] = ("*",)
    service_account_private_key: bytes | None = None  # --service-account-private-key-file (PEM)
    # --horizontal-pod-autoscaler-{sync-period,downscale-stabilization,tolerance,
    # cpu-initialization-period,initial-readiness-delay}
    hpa: tuple[float, float, float, float, float] = (15.0, 300.0, 0.1, 300.0, 30.0)
    # knet's --load-balancer-pool: the addresses LoadBalancer Services get (the node network's
    # upper part, `A-B` or CIDRs); None leaves them <pending>, as upstream without a cloud.
    load_balancer_pool: str | None = None


@dataclass
class ControllerContext:
    """What a controller's factory gets (upstream's ControllerContext): the shared informers (on
    the controller-manager's own identity), the options, the controllers enabled, and `client(sa)`,
    the controller's own client (its service account's with --use-service-account-credentials)."""
    informers: InformerFactory
    options: ManagerOptions
    enabled: frozenset[str]
    clients: ControllerClientBuilder
    api: Api  # the controller-manager's own client (what the shared informers use)

    async def client(self, service_account: str) -> Api:
        return await self.clients.client(service_account)


# Each controller's service account, as cmd/kube-controller-manager names them (the
# system:controller:<name> ClusterRoles of the bootstrap policy are bound to these).
SERVICE_ACCOUNTS = {
    "nodeipam": "node-controller",
    "endpointslice": "endpointslice-controller",
    "endpoint": "endpoint-controller",
    "deployment": "deployment-controller",
    "replicaset": "replicaset-controller",
    "daemonset": "daemon-set-controller",
    "statefulset": "statefulset-controller",
    "nodelifecycle": "node-controller",
    "serviceaccount": "service-account-controller",
    "root-ca-cert-publisher": "root-ca-cert-publisher",
    "podgc": "pod-garbage-collector",
    "garbagecollector": "generic-garbage-collector",
    "namespace": "namespace-controller",
    "clusterrole-aggregation": "clusterrole-aggregation-controller",
    "disruption": "disruption-controller",
    "replicationcontroller": "replication-controller",
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "ttl-after-finished": "ttl-after-finished-controller",
    "horizontalpodautoscaling": "horizontal-pod-autoscaler",
    "service-lb-controller": "service-controller",
}


async def _nodeipam(ctx: ControllerContext) -> Any:
    from knet.controllers.nodeipam import NodeIpamController
    o = ctx.options
    if not (o.allocate_node_cidrs and o.cluster_cidr):
        return None
    return NodeIpamController(await ctx.client(SERVICE_ACCOUNTS["nodeipam"]), ctx.informers,
                              cluster_cidr=o.cluster_cidr, node_mask_size=o.node_cidr_mask_size)


async def _endpointslice(ctx: ControllerContext) -> Any:
    """EndpointSlices, and (when the `endpoint` controller is on) the legacy Endpoints: one
    controller computes both from the same caches, but writes each with its upstream owner's
    identity (Endpoints are endpoint-controller's to write, not endpointslice-controller's)."""
    from knet.controllers.endpointslice import EndpointSliceController
    manage_endpoints = "endpoint" in ctx.enabled
    endpoints_api = await ctx.client(SERVICE_ACCOUNTS["endpoint"]) if manage_endpoints else None
    return EndpointSliceController(await ctx.client(SERVICE_ACCOUNTS["endpointslice"]), ctx.informers,
                                   manage_endpoints=manage_endpoints, endpoints_api=endpoints_api)


async def _endpoint(ctx: ControllerContext) -> Any:
    from knet.controllers.endpointslice import EndpointSliceController
    if "endpointslice" in ctx.enabled:
        return None  # the endpointslice controller writes them (with this controller's client)
    api = await ctx.client(SERVICE_ACCOUNTS["endpoint"])
    return EndpointSliceController(api, ctx.informers, manage_slices=False, endpoints_api=api)


async def _deployment(ctx: ControllerContext) -> Any:
    from knet.controllers.deployment import DeploymentController
    return DeploymentController(await ctx.client(SERVICE_ACCOUNTS["deployment"]), ctx.informers)


async def _replicaset(ctx: ControllerContext) -> Any:
    from knet.controllers.replicaset import ReplicaSetController
    return ReplicaSetController(await ctx.client(SERVICE_ACCOUNTS["replicaset"]), ctx.informers)


async def _replicationcontroller(ctx: ControllerContext) -> Any:
    from knet.controllers.replicaset import ReplicationManager
    return ReplicationManager(await ctx.client(SERVICE_ACCOUNTS["replicationcontroller"]), ctx.informers)


async def _daemonset(ctx: ControllerContext) -> Any:
    from knet.controllers.daemonset import DaemonSetController
    return DaemonSetController(await ctx.client(SERVICE_ACCOUNTS["daemonset"]), ctx.informers)


async def _statefulset(ctx: ControllerContext) -> Any:
    from knet.controllers.statefulset import StatefulSetController
    return StatefulSetController(await ctx.client(SERVICE_ACCOUNTS["statefulset"]), ctx.informers)


async def _nodelifecycle(ctx: ControllerContext) -> Any:
    from knet.controllers.nodelifecycle import NodeLifecycleController
    o = ctx.options
    return NodeLifecycleController(await ctx.client(SERVICE_ACCOUNTS["nodelifecycle"]), ctx.informers,
                                   grace_period=o.node_monitor_grace_period, monitor_period=o.node_monitor_period)


async def _serviceaccount(ctx: ControllerContext) -> Any:
    from knet.controllers.serviceaccount import ServiceAccountController
    return ServiceAccountController(await ctx.client(SERVICE_ACCOUNTS["serviceaccount"]), ctx.informers)


async def _root_ca_cert_publisher(ctx: ControllerContext) -> Any:
    from knet.controllers.serviceaccount import ServiceAccountController
    if not ctx.options.root_ca:
        return None  # upstream publishes only with --root-ca-file (or the in-cluster CA)
    return ServiceAccountController(await ctx.client(SERVICE_ACCOUNTS["root-ca-cert-publisher"]), ctx.informers,
                                    root_ca=ctx.options.root_ca, service_accounts=False)


async def _serviceaccount_token(ctx: ControllerContext) -> Any:
    """Legacy Secret tokens. As upstream's tokens-controller, it runs on the controller-manager's
    own identity (system:kube-controller-manager may write secrets), not a service account's:
    it must work before any service-account token does."""
    from knet.api.tokens import LEGACY_ISSUER, TokenSigner
    from knet.controllers.serviceaccounttoken import TokensController
    o = ctx.options
    if not o.service_account_private_key:
        return None  # upstream starts it only with --service-account-private-key-file
    return TokensController(ctx.api, ctx.informers, signer=TokenSigner(o.service_account_private_key, LEGACY_ISSUER),
                            root_ca=o.root_ca)


async def _garbagecollector(ctx: ControllerContext) -> Any:
    from knet.controllers.garbagecollector import GarbageCollector
    return GarbageCollector(await ctx.client(SERVICE_ACCOUNTS["garbagecollector"]), ctx.informers)


async def _podgc(ctx: ControllerContext) -> Any:
    from knet.controllers.garbagecollector import GarbageCollector
    return GarbageCollector(await ctx.client(SERVICE_ACCOUNTS["podgc"]), ctx.informers, owners=False)


async def _disruption(ctx: ControllerContext) -> Any:
    from knet.controllers.disruption import DisruptionController
    return DisruptionController(await ctx.client(SERVICE_ACCOUNTS["disruption"]), ctx.informers)


async def _horizontalpodautoscaling(ctx: ControllerContext) -> Any:
    from knet.controllers.horizontal import HorizontalController
    sync, stabilization, tolerance, cpu_init, readiness = ctx.options.hpa
    return HorizontalController(await ctx.client(SERVICE_ACCOUNTS["horizontalpodautoscaling"]), ctx.informers,
                                sync_period=sync, downscale_stabilization=stabilization, tolerance=tolerance,
                                cpu_initialization_period=cpu_init, initial_readiness_delay=readiness)


async def _namespace(ctx: ControllerContext) -> Any:
    from knet.controllers.namespace import NamespaceController
    return NamespaceController(await ctx.client(SERVICE_ACCOUNTS["namespace"]), ctx.informers)


async def _clusterrole_aggregation(ctx: ControllerContext) -> Any:
    from knet.controllers.clusterroleaggregation import ClusterRoleAggregationController
    return ClusterRoleAggregationController(await ctx.client(SERVICE_ACCOUNTS["clusterrole-aggregation"]),
                                            ctx.informers)


async def _job(ctx: ControllerContext) -> Any:
    from knet.controllers.job import JobController
    return JobController(await ctx.client(SERVICE_ACCOUNTS["job"]), ctx.informers)


async def _cronjob(ctx: ControllerContext) -> Any:
    from knet.controllers.cronjob import CronJobController
    return CronJobController(await ctx.client(SERVICE_ACCOUNTS["cronjob"]), ctx.informers)


async def _ttl_after_finished(ctx: ControllerContext) -> Any:
    from knet.controllers.ttlafterfinished import TTLAfterFinishedController
    return TTLAfterFinishedController(await ctx.client(SERVICE_ACCOUNTS["ttl-after-finished"]), ctx.informers)


async def _service_lb(ctx: ControllerContext) -> Any:
    from knet.controllers.servicelb import ServiceLBController
    from knet.ipam.lbpool import parse_pool
    if not ctx.options.load_balancer_pool:
        return None  # no pool: like upstream's service controller without a cloud provider
    return ServiceLBController(await ctx.client(SERVICE_ACCOUNTS["service-lb-controller"]), ctx.informers,
                               parse_pool(ctx.options.load_balancer_pool))


CONTROLLERS: dict[str, Callable[[ControllerContext], Awaitable[Any]]] = {
    "nodeipam": _nodeipam,
    "endpointslice": _endpointslice,
    "endpoint": _endpoint,
    "deployment": _deployment,
    "replicaset": _replicaset,
    "daemonset": _daemonset,
    "statefulset": _statefulset,
    "nodelifecycle": _nodelifecycle,
    "serviceaccount": _serviceaccount,
    "root-ca-cert-publisher": _root_ca_cert_publisher,
    "serviceaccount-token": _serviceaccount_token,
    "podgc": _podgc,
    "garbagecollector": _garbagecollector,
    "namespace": _namespace,
    "clusterrole-aggregation": _clusterrole_aggregation,
    "disruption": _disruption,
    "replicationcontroller": _replicationcontroller,
    "job": _job,
    "cronjob": _cronjob,
    "ttl-after-finished": _ttl_after_finished,
    "horizontalpodautoscaling": _horizontalpodautoscaling,
    "service-lb-controller": _service_lb,
}
# knet's apiserver itself garbage-collects through ownerReferences and finalizes terminating
# namespaces (src/knet/api/lifecycle.py), so these two only run when named in --controllers.
DISABLED_BY_DEFAULT = {"garbagecollector", "namespace"}
# Upstream names we accept in --controllers but that have nothing to do here.
KNOWN_ELSEWHERE = {"endpointslicemirroring", "bootstrapsigner",
                   "tokencleaner", "csrsigning", "csrapproving", "csrcleaner", "ttl",
                   "resourcequota",
                   "persistentvolume-binder", "attachdetach", "pv-protection", "pvc-protection",
                   "ephemeral-volume", "route", "cloud-node-lifecycle",
                   "persistentvolume-expander", "taint-eviction-controller",
                   "legacy-serviceaccount-token-cleaner", "validatingadmissionpolicy-status"}


# Upstream's older names (kube-controller-manager's controllerAliases).
ALIASES = {"service": "service-lb-controller"}


def enabled_controllers(spec: tuple[str, ...] | list[str]) -> list[str]:
    """--controllers semantics: `*` = all on by default, `foo` enables, `-foo` disables."""
    items = [s.strip() for s in spec if s.strip()]
    items = [("-" if s.startswith("-") else "") + ALIASES.get(s.lstrip("-"), s.lstrip("-")) for s in items]
    star = "*" in items
    chosen = []
    for name in CONTROLLERS:
        if f"-{name}" in items:
            continue
        if name in items or (star and name not in DISABLED_BY_DEFAULT):
            chosen.append(name)
    return chosen


async def run_controller_manager(api: Api, options: ManagerOptions,
                                 clients: ControllerClientBuilder | None = None) -> None:
    """Run the enabled controllers until cancelled. `api` is the controller-manager's own client
    (the shared informers list and watch with it); `clients` gives each controller the client it
    writes with (by default `api` itself; a ServiceAccountClientBuilder for
    --use-service-account-credentials)."""
    clients = clients or SimpleClientBuilder(api)
    informers = InformerFactory(api)
    enabled = enabled_controllers(options.controllers)
    ctx = ControllerContext(informers, options, frozenset(enabled), clients, api)
    controllers = []
    try:
        for name in enabled:
            ctrl = await CONTROLLERS[name](ctx)
            if ctrl is not None:
                controllers.append(ctrl)
                log.info("starting %s controller", name)
        informers.start()
        await informers.wait_synced()
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        await informers.stop()
        await clients.close()
