"""kube-controller-manager: the controllers by their upstream names, over one shared informer set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knet.client import Api
from knet.controllers.base import InformerFactory

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


# name -> (on by default, factory)
def _nodeipam(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.nodeipam import NodeIpamController
    if not (o.allocate_node_cidrs and o.cluster_cidr):
        return None
    return NodeIpamController(api, inf, cluster_cidr=o.cluster_cidr, node_mask_size=o.node_cidr_mask_size)


def _endpointslice(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.endpointslice import EndpointSliceController
    return EndpointSliceController(api, inf)


def _deployment(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.deployment import DeploymentController
    return DeploymentController(api, inf)


def _replicaset(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.replicaset import ReplicaSetController
    return ReplicaSetController(api, inf)


def _daemonset(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.daemonset import DaemonSetController
    return DaemonSetController(api, inf)


def _nodelifecycle(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.nodelifecycle import NodeLifecycleController
    return NodeLifecycleController(api, inf, grace_period=o.node_monitor_grace_period,
                                   monitor_period=o.node_monitor_period)


def _serviceaccount(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.serviceaccount import ServiceAccountController
    return ServiceAccountController(api, inf)


def _root_ca_cert_publisher(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.serviceaccount import ServiceAccountController
    if not o.root_ca:
        return None  # upstream publishes only with --root-ca-file (or the in-cluster CA)
    return ServiceAccountController(api, inf, root_ca=o.root_ca, service_accounts=False)


def _serviceaccount_token(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.api.tokens import LEGACY_ISSUER, TokenSigner
    from knet.controllers.serviceaccounttoken import TokensController
    if not o.service_account_private_key:
        return None  # upstream starts it only with --service-account-private-key-file
    return TokensController(api, inf, signer=TokenSigner(o.service_account_private_key, LEGACY_ISSUER),
                            root_ca=o.root_ca)


def _garbagecollector(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.garbagecollector import GarbageCollector
    return GarbageCollector(api, inf)


def _podgc(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.garbagecollector import GarbageCollector
    return GarbageCollector(api, inf, owners=False)


def _namespace(api: Api, inf: InformerFactory, o: ManagerOptions) -> Any:
    from knet.controllers.namespace import NamespaceController
    return NamespaceController(api, inf)


CONTROLLERS: dict[str, Callable[[Api, InformerFactory, ManagerOptions], Any]] = {
    "nodeipam": _nodeipam,
    "endpointslice": _endpointslice,  # also keeps the legacy Endpoints ("endpoint") in step
    "deployment": _deployment,
    "replicaset": _replicaset,
    "daemonset": _daemonset,
    "nodelifecycle": _nodelifecycle,
    "serviceaccount": _serviceaccount,
    "root-ca-cert-publisher": _root_ca_cert_publisher,
    "serviceaccount-token": _serviceaccount_token,
    "podgc": _podgc,
    "garbagecollector": _garbagecollector,
    "namespace": _namespace,
}
# knet's apiserver itself garbage-collects through ownerReferences and finalizes terminating
# namespaces (src/knet/api/lifecycle.py), so these two only run when named in --controllers.
DISABLED_BY_DEFAULT = {"garbagecollector", "namespace"}
# Upstream names we accept in --controllers but that have nothing to do here.
KNOWN_ELSEWHERE = {"endpoint", "endpointslicemirroring", "bootstrapsigner",
                   "tokencleaner", "csrsigning", "csrapproving", "csrcleaner", "ttl", "ttl-after-finished",
                   "job", "cronjob", "statefulset", "resourcequota", "horizontalpodautoscaling",
                   "disruption", "persistentvolume-binder", "attachdetach", "pv-protection", "pvc-protection",
                   "ephemeral-volume", "clusterrole-aggregation", "route", "service", "cloud-node-lifecycle",
                   "replicationcontroller", "persistentvolume-expander", "taint-eviction-controller",
                   "legacy-serviceaccount-token-cleaner", "validatingadmissionpolicy-status"}


def enabled_controllers(spec: tuple[str, ...] | list[str]) -> list[str]:
    """--controllers semantics: `*` = all on by default, `foo` enables, `-foo` disables."""
    items = [s.strip() for s in spec if s.strip()]
    star = "*" in items
    chosen = []
    for name in CONTROLLERS:
        if f"-{name}" in items:
            continue
        if name in items or (star and name not in DISABLED_BY_DEFAULT):
            chosen.append(name)
    return chosen


async def run_controller_manager(api: Api, options: ManagerOptions) -> None:
    informers = InformerFactory(api)
    controllers = []
    for name in enabled_controllers(options.controllers):
        ctrl = CONTROLLERS[name](api, informers, options)
        if ctrl is not None:
            controllers.append(ctrl)
            log.info("starting %s controller", name)
    informers.start()
    try:
        await informers.wait_synced()
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        await informers.stop()
