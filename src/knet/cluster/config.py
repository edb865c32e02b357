"""The cluster config: what `knet up` builds, as data.

Every value is a flag of `knet up` or a field of a cluster config file:

    kind: Cluster
    apiVersion: knet.io/v1alpha1
    name: demo
    nodes: 3                      # or a list: [controlplane, node01] / [{name: cp, role: control-plane}]
    nodeNetwork: 172.30.5.0/24    # default: the first free /24 of 172.30.0.0/16
    podSubnet: 10.244.0.0/16
    nodeCIDRMaskSize: 24
    serviceSubnet: 10.96.0.0/12
    dnsDomain: cluster.local
    kubernetesVersion: v1.29.0
    proxyMode: ""                 # "" (= iptables), iptables, nftables
    dataplane: real               # real | sim
    storage: etcd                 # etcd | sqlite (default: etcd on the real dataplane when the
                                  # etcd binary is installed, as kubeadm runs it; else sqlite)
    loadBalancerPool: 172.30.5.200-172.30.5.250  # addresses of LoadBalancer Services (ranges or
                                  # CIDRs inside nodeNetwork, no node's); default: the node
                                  # network's upper quarter (.192-.254 of a /24)
    ingressController: true       # install the ingress-nginx-shaped controller add-on
    serviceAccountTokenMaxExpiration: 60s  # for tests: every service-account token lives at most
                                  # this long (apiserver --service-account-max-token-expiration,
                                  # and --service-account-extend-token-expiration=false); below
                                  # kube-apiserver's 1h minimum only here. Default: unset (no cap)
    controllerManagerExtraArgs:   # kubeadm's controllerManager.extraArgs: flags added to (or
      leader-elect-lease-duration: 6s  # overriding) kube-controller-manager's command line
    schedulerExtraArgs: {}        # kubeadm's scheduler.extraArgs, the same for kube-scheduler

This module is pure: parsing, defaulting, validation and address arithmetic; the caller
supplies what it observed of the host (networks in use, whether real mode works).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

API_VERSION = "knet.io/v1alpha1"
KIND = "Cluster"
CONTROL_PLANE_NODE = "controlplane"
CONTROL_PLANE_ROLE = "control-plane"
WORKER_ROLE = "worker"
DEFAULT_NAME = "knet"
DEFAULT_NODE_COUNT = 2
NODE_NETWORK_POOL = ipaddress.IPv4Network("172.30.0.0/16")
DEFAULT_POD_SUBNET = ipaddress.IPv4Network("10.244.0.0/16")
DEFAULT_SERVICE_SUBNET = ipaddress.IPv4Network("10.96.0.0/12")
# Where a real cluster looks for a pod or Service range when the default is taken (the host routes
# both into the cluster): /16s of 10.224.0.0/11 from 10.244 on, /12s of 10.64.0.0/10 from 10.96 on.
# The two pools are disjoint, so a cluster's picks never overlap each other.
POD_SUBNET_POOL = ipaddress.IPv4Network("10.224.0.0/11")
SERVICE_SUBNET_POOL = ipaddress.IPv4Network("10.64.0.0/10")
API_SERVER_PORT = 6443

Dataplane = Literal["real", "sim"]
ProxyMode = Literal["", "iptables", "nftables"]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The cluster name ends up in namespace names (knet-NAME-NODE) and in kubeconfig names.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")


class ConfigError(ValueError):
    """A cluster config that cannot be built; the message says what to change."""


@dataclass(frozen=True)
class UsedNetwork:
    """A network something on this host already has: a route, another cluster's range."""

    network: ipaddress.IPv4Network
    owner: str  # for the user: "a route on this host (10.0.0.0/8 dev eth0)", 'cluster "b" (podSubnet)'


def _used(item: ipaddress.IPv4Network | UsedNetwork) -> UsedNetwork:
    return item if isinstance(item, UsedNetwork) else UsedNetwork(item, "a network in use on this host")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # "control-plane" | "worker"
    ip: str

    @property
    def is_control_plane(self) -> bool:
        return self.role == CONTROL_PLANE_ROLE


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    nodes: tuple[NodeSpec, ...]
    node_network: str
    pod_subnet: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"
    kubernetes_version: str = "v1.29.0"
    proxy_mode: ProxyMode = ""
    dataplane: Dataplane = "real"
    storage: str = "sqlite"
    api_server_port: int = API_SERVER_PORT
    # Where the apiserver listens: the control-plane IP in real mode; a loopback address in sim
    # mode, where the node network exists only on paper.
    api_server_bind_address: str = ""
    # A test setting: the longest life of a service-account token, as a Go duration ("" = no cap).
    service_account_token_max_expiration: str = ""
    # The addresses LoadBalancer Services get (knet.ipam.lbpool text); "" = none.
    load_balancer_pool: str = ""
    # Whether `knet up` installs the ingress controller add-on (knet.ingress.manifests).
    ingress_controller: bool = True
    # kubeadm's ClusterConfiguration controllerManager.extraArgs / scheduler.extraArgs: flag name
    # (without --) to value, added to the static pod's command line over knet's own flags.
    controller_manager_extra_args: dict[str, str] = field(default_factory=dict)
    scheduler_extra_args: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- derived addresses -------------------------------------------------------------------
    @property
    def control_plane(self) -> NodeSpec:
        return next(n for n in self.nodes if n.is_control_plane)

    @property
    def workers(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if not n.is_control_plane)

    @property
    def host_ip(self) -> str:
        """The host's address on the node network (the cluster bridge)."""
        return str(ipaddress.IPv4Network(self.node_network)[1])

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_subnet)[1])

    @property
    def dns_service_ip(self) -> str:
        """kubeadm's DNS IP: the 10th address of the service range."""
        return str(ipaddress.ip_network(self.service_subnet)[10])

    @property
    def api_server_host(self) -> str:
        return self.api_server_bind_address or self.control_plane.ip

    @property
    def server_url(self) -> str:
        """The URL the host (kubectl, node agents) uses to reach the apiserver."""
        return f"https://{self.api_server_host}:{self.api_server_port}"

    @property
    def context_name(self) -> str:
        return f"knet-{self.name}"

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # ---- wire form ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "apiVersion": API_VERSION,
            "name": self.name,
            "nodes": [asdict(n) for n in self.nodes],
            "nodeNetwork": self.node_network,
            "podSubnet": self.pod_subnet,
            "nodeCIDRMaskSize": self.node_cidr_mask_size,
            "serviceSubnet": self.service_subnet,
            "dnsDomain": self.dns_domain,
            "kubernetesVersion": self.kubernetes_version,
            "proxyMode": self.proxy_mode,
            "dataplane": self.dataplane,
            "storage": self.storage,
            "apiServerPort": self.api_server_port,
            "apiServerBindAddress": self.api_server_bind_address,
            "serviceAccountTokenMaxExpiration": self.service_account_token_max_expiration,
            "loadBalancerPool": self.load_balancer_pool,
            "ingressController": self.ingress_controller,
            "controllerManagerExtraArgs": dict(self.controller_manager_extra_args),
            "schedulerExtraArgs": dict(self.scheduler_extra_args),
        }


_FILE_FIELDS = {
    "kind", "apiVersion", "name", "nodes", "nodeNetwork", "podSubnet", "nodeCIDRMaskSize",
    "serviceSubnet", "dnsDomain", "kubernetesVersion", "proxyMode", "dataplane", "storage",
    "apiServerPort", "apiServerBindAddress", "serviceAccountTokenMaxExpiration", "loadBalancerPool",
    "ingressController", "controllerManagerExtraArgs", "schedulerExtraArgs",
}

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def duration_seconds(text: str) -> float:
    """A Go duration (`90s`, `1m30s`, `2h`) in seconds; ConfigError when it is not one."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ConfigError(f"invalid duration {text!r} (use e.g. 60s, 5m, 1h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def default_node_names(count: int) -> list[str]:
    """controlplane, node01, node02, ... as on a kubeadm lab cluster."""
    if count < 1:
        raise ConfigError(f"a cluster needs at least 1 node (got {count})")
    return [CONTROL_PLANE_NODE] + [f"node{i:02d}" for i in range(1, count)]


def choose_node_network(
    in_use: Iterable[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = NODE_NETWORK_POOL
) -> ipaddress.IPv4Network:
    """The first /24 of the pool that overlaps nothing in use (host routes, other clusters)."""
    used = [n for n in in_use if n.version == 4]
    for candidate in pool.subnets(new_prefix=24):
        if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
            return candidate
    raise ConfigError(f"no free /24 left in {pool}; set nodeNetwork in the cluster config")


def first_overlap(network: ipaddress.IPv4Network, in_use: Iterable[UsedNetwork]) -> UsedNetwork | None:
    """The first network in use that overlaps `network` (a default route, /0, overlaps nothing)."""
    return next((u for u in in_use if u.network.prefixlen > 0 and network.overlaps(u.network)), None)


def choose_free_subnet(default: ipaddress.IPv4Network, pool: ipaddress.IPv4Network,
                       in_use: Iterable[UsedNetwork]) -> ipaddress.IPv4Network | None:
    """The default if free, else the next subnet of its size in the pool (wrapping around) that
    overlaps nothing in use; None when every one is taken."""
    used = list(in_use)
    candidates = list(pool.subnets(new_prefix=default.prefixlen))
    start = candidates.index(default) if default in candidates else 0
    for candidate in candidates[start:] + candidates[:start]:
        if first_overlap(candidate, used) is None:
            return candidate
    return None


def _routed_subnet(field_name: str, values: dict[str, Any], default: ipaddress.IPv4Network,
                   pool: ipaddress.IPv4Network, in_use: list[UsedNetwork], notes: list[str]) -> ipaddress.IPv4Network:
    """A pod or Service range the host will route into the cluster: a range set in the config is
    refused when it overlaps something in use; the default moves to the next free one."""
    if field_name in values:
        network = ipaddress.IPv4Network(values[field_name])
        clash = first_overlap(network, in_use)
        if clash is not None:
            raise ConfigError(
                f"{field_name} {network} overlaps {clash.network}, {clash.owner}: the host routes "
                f"{field_name} into the cluster, so it must be free; set another {field_name} "
                "(or leave it out to get a free one)")
        return network
    clash = first_overlap(default, in_use)
    if clash is None:
        return default
    chosen = choose_free_subnet(default, pool, in_use)
    if chosen is None:
        raise ConfigError(f"no free /{default.prefixlen} left in {pool} for {field_name}; "
                          f"set {field_name} in the cluster config")
    notes.append(f"{field_name} {default} overlaps {clash.network}, {clash.owner}: using {chosen}")
    return chosen


def _parse_nodes(raw: Any) -> list[tuple[str, str]]:
    """(name, role) pairs from `nodes:` as a count, a list of names or a list of objects."""
    if raw is None:
        raw = DEFAULT_NODE_COUNT
    if isinstance(raw, bool) or not isinstance(raw, int | list):
        raise ConfigError("nodes: must be a number or a list of node names/objects")
    if isinstance(raw, int):
        names = default_node_names(raw)
        return [(n, CONTROL_PLANE_ROLE if i == 0 else WORKER_ROLE) for i, n in enumerate(names)]
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            name, role = item, ""
        elif isinstance(item, dict):
            name, role = str(item.get("name", "")), str(item.get("role", ""))
        else:
            raise ConfigError(f"nodes[{i}]: must be a name or an object with name/role")
        pairs.append((name, role))
    if not pairs:
        raise ConfigError("nodes: a cluster needs at least 1 node")
    if not any(role == CONTROL_PLANE_ROLE for _, role in pairs):
        # The first node is the control plane unless one says otherwise, like kind.
        pairs[0] = (pairs[0][0], CONTROL_PLANE_ROLE)
    return [(name, role or WORKER_ROLE) for name, role in pairs]


def resolve(
    file_values: dict[str, Any] | None,
    *,
    name: str | None = None,
    nodes: int | None = None,
    dataplane: str | None = None,
    proxy_mode: str | None = None,
    networks_in_use: Iterable[ipaddress.IPv4Network | UsedNetwork] = (),
    real_dataplane_available: bool = True,
    allow_etcd: bool = True,  # False refuses `storage: etcd` (for callers that cannot run one)
    etcd_available: bool = False,  # the etcd binary is installed
) -> tuple[ClusterConfig, list[str]]:
    """Merge a config file's values with flags (flags win) into a full, valid ClusterConfig.

    Returns the config and notes for the user (e.g. why the dataplane fell back to sim).
    """
    values = dict(file_values or {})
    unknown = sorted(set(values) - _FILE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown field(s) in cluster config: {', '.join(unknown)}")
    if values.get("kind", KIND) != KIND or values.get("apiVersion", API_VERSION) != API_VERSION:
        raise ConfigError(f"cluster config must be kind: {KIND}, apiVersion: {API_VERSION}")
    notes: list[str] = []

    cluster_name = name or values.get("name") or DEFAULT_NAME
    if not _CLUSTER_NAME.match(str(cluster_name)):
        raise ConfigError(
            f"cluster name {cluster_name!r}: use 1-20 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )

    node_pairs = _parse_nodes(nodes if nodes is not None else values.get("nodes"))
    seen: set[str] = set()
    for node_name, _ in node_pairs:
        if not _DNS1123_LABEL.match(node_name) or len(node_name) > 63:
            raise ConfigError(f"node name {node_name!r} is not a DNS-1123 label")
        if node_name in seen:
            raise ConfigError(f"node name {node_name!r} appears twice")
        seen.add(node_name)
    if sum(1 for _, role in node_pairs if role == CONTROL_PLANE_ROLE) != 1:
        raise ConfigError("exactly one node must have role control-plane")

    requested_plane = dataplane or values.get("dataplane")
    if requested_plane not in (None, "real", "sim"):
        raise ConfigError(f"dataplane {requested_plane!r}: use real or sim")
    if requested_plane is None:
        chosen_plane = "real" if real_dataplane_available else "sim"
        if not real_dataplane_available:
            notes.append("real dataplane unavailable (needs root and network namespaces): using --dataplane sim")
    elif requested_plane == "real" and not real_dataplane_available:
        raise ConfigError(
            "--dataplane real needs root and network namespaces; run as root (sudo knet up) "
            "or use --dataplane sim"
        )
    else:
        chosen_plane = requested_plane

    mode = proxy_mode if proxy_mode is not None else values.get("proxyMode", "")
    if mode not in ("", "iptables", "nftables"):
        raise ConfigError(f"proxyMode {mode!r}: use iptables or nftables (empty means iptables)")

    # Real clusters mirror kubeadm: etcd runs as the static pod etcd-controlplane. Simulated ones,
    # meant for speed and scale, keep the embedded SQLite store (and no two clash on port 2379).
    default_storage = "etcd" if chosen_plane == "real" and etcd_available and allow_etcd else "sqlite"
    storage = values.get("storage", default_storage)
    if storage not in ("sqlite", "etcd"):
        raise ConfigError(f"storage {storage!r}: use sqlite or etcd")
    if storage == "etcd" and not allow_etcd:
        raise ConfigError("storage: etcd is not allowed here; remove `storage: etcd` from the cluster config")

    used = [_used(u) for u in networks_in_use]
    try:
        if chosen_plane == "real":
            # The host routes a real cluster's pod and Service ranges into it: they must be free.
            pod_subnet = _routed_subnet("podSubnet", values, DEFAULT_POD_SUBNET, POD_SUBNET_POOL, used, notes)
            service_subnet = _routed_subnet("serviceSubnet", values, DEFAULT_SERVICE_SUBNET, SERVICE_SUBNET_POOL,
                                            [*used, UsedNetwork(pod_subnet, "this cluster's podSubnet")], notes)
        else:
            pod_subnet = ipaddress.IPv4Network(values.get("podSubnet", str(DEFAULT_POD_SUBNET)))
            service_subnet = ipaddress.IPv4Network(values.get("serviceSubnet", str(DEFAULT_SERVICE_SUBNET)))
        if "nodeNetwork" in values:
            node_network = ipaddress.IPv4Network(values["nodeNetwork"])
            clash = first_overlap(node_network, used) if chosen_plane == "real" else None
            if clash is not None:
                raise ConfigError(f"nodeNetwork {node_network} overlaps {clash.network}, {clash.owner}; "
                                  "set another nodeNetwork (or leave it out to get a free one)")
        else:
            node_network = choose_node_network([*(u.network for u in used), pod_subnet, service_subnet])
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"bad network in cluster config: {exc}") from exc
    mask = int(values.get("nodeCIDRMaskSize", 24))
    if not pod_subnet.prefixlen <= mask <= 30:
        raise ConfigError(f"nodeCIDRMaskSize {mask} must be between {pod_subnet.prefixlen} and 30")
    if 2 ** (mask - pod_subnet.prefixlen) < len(node_pairs):
        raise ConfigError(f"podSubnet {pod_subnet} holds fewer than {len(node_pairs)} /{mask} node ranges")
    for a, b, what in (
        (pod_subnet, service_subnet, "podSubnet and serviceSubnet"),
        (node_network, pod_subnet, "nodeNetwork and podSubnet"),
        (node_network, service_subnet, "nodeNetwork and serviceSubnet"),
    ):
        if a.overlaps(b):
            raise ConfigError(f"{what} overlap ({a}, {b})")
    if service_subnet.num_addresses < 16:
        raise ConfigError("serviceSubnet needs at least 16 addresses (the DNS service is the 10th)")
    # host .1, nodes from .2 on
    if node_network.num_addresses - 2 < len(node_pairs) + 1:
        raise ConfigError(f"nodeNetwork {node_network} is too small for {len(node_pairs)} nodes")

    node_specs = tuple(
        NodeSpec(name=n, role=role, ip=str(node_network[i + 2])) for i, (n, role) in enumerate(node_pairs)
    )
    # The control plane gets .2 whatever its position in the list, as in the reference lab.
    cp_index = next(i for i, n in enumerate(node_specs) if n.is_control_plane)
    if cp_index:
        ordered = [node_specs[cp_index], *node_specs[:cp_index], *node_specs[cp_index + 1:]]
        node_specs = tuple(
            NodeSpec(name=n.name, role=n.role, ip=str(node_network[i + 2])) for i, n in enumerate(ordered)
        )

    token_max = str(values.get("serviceAccountTokenMaxExpiration") or "")
    if token_max and not 1 <= duration_seconds(token_max) <= 2 ** 32:
        raise ConfigError(f"serviceAccountTokenMaxExpiration {token_max!r} must be between 1s and 2^32 seconds")

    load_balancer_pool = _load_balancer_pool(values.get("loadBalancerPool"), node_network, node_specs)

    config = ClusterConfig(
        name=str(cluster_name),
        nodes=node_specs,
        node_network=str(node_network),
        pod_subnet=str(pod_subnet),
        node_cidr_mask_size=mask,
        service_subnet=str(service_subnet),
        dns_domain=str(values.get("dnsDomain", "cluster.local")),
        kubernetes_version=str(values.get("kubernetesVersion", "v1.29.0")),
        proxy_mode=mode,
        dataplane=chosen_plane,
        storage=storage,
        api_server_port=int(values.get("apiServerPort", API_SERVER_PORT)),
        api_server_bind_address=str(values.get("apiServerBindAddress", "")),
        service_account_token_max_expiration=token_max,
        load_balancer_pool=load_balancer_pool,
        ingress_controller=_flag(values.get("ingressController", True), "ingressController"),
        controller_manager_extra_args=_extra_args(values.get("controllerManagerExtraArgs"),
                                                  "controllerManagerExtraArgs"),
        scheduler_extra_args=_extra_args(values.get("schedulerExtraArgs"), "schedulerExtraArgs"),
    )
    return config, notes


def _load_balancer_pool(raw: Any, node_network: ipaddress.IPv4Network, nodes: tuple[NodeSpec, ...]) -> str:
    """The LoadBalancer pool: the config's (checked: inside the node network, no node's or the
    host's address) or the node network's upper quarter past the nodes ("" if nothing is left)."""
    from knet.ipam.lbpool import PoolError, check_pool, default_pool, parse_pool

    host = str(node_network[1])
    if raw is None:
        pool = default_pool(str(node_network), [host, *(n.ip for n in nodes)])
        return str(pool) if pool is not None else ""
    try:
        pool = parse_pool(str(raw))
        check_pool(pool, str(node_network), [host, *(n.ip for n in nodes)])
    except PoolError as exc:
        raise ConfigError(f"loadBalancerPool: {exc}") from exc
    return str(pool)


_FLAG_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _extra_args(raw: Any, name: str) -> dict[str, str]:
    """An extraArgs mapping as kubeadm takes it: flag names without `--`, string values."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a mapping of flag names to values, not {raw!r}")
    out: dict[str, str] = {}
    for flag, value in raw.items():
        if not isinstance(flag, str) or not _FLAG_NAME.match(flag):
            raise ConfigError(f"{name}: {flag!r} is not a flag name (e.g. leader-elect-lease-duration, no --)")
        if isinstance(value, dict | list) or value is None:
            raise ConfigError(f"{name}: the value of {flag} must be a string, not {value!r}")
        out[flag] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    return value


def from_dict(values: dict[str, Any]) -> ClusterConfig:
    """Read back a resolved config (cluster.yaml in the state dir)."""
    nodes = tuple(NodeSpec(**n) for n in values["nodes"])
    return ClusterConfig(
        name=values["name"],
        nodes=nodes,
        node_network=values["nodeNetwork"],
        pod_subnet=values["podSubnet"],
        node_cidr_mask_size=int(values["nodeCIDRMaskSize"]),
        service_subnet=values["serviceSubnet"],
        dns_domain=values["dnsDomain"],
        kubernetes_version=values["kubernetesVersion"],
        proxy_mode=values["proxyMode"],
        dataplane=values["dataplane"],
        storage=values.get("storage", "sqlite"),
        api_server_port=int(values.get("apiServerPort", API_SERVER_PORT)),
        api_server_bind_address=values.get("apiServerBindAddress", ""),
        service_account_token_max_expiration=values.get("serviceAccountTokenMaxExpiration", ""),
        load_balancer_pool=values.get("loadBalancerPool", ""),
        ingress_controller=bool(values.get("ingressController", True)),
        controller_manager_extra_args=dict(values.get("controllerManagerExtraArgs") or {}),
        scheduler_extra_args=dict(values.get("schedulerExtraArgs") or {}),
    )
