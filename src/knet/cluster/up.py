"""`knet up`: build a cluster from its config and return when it is usable.

Order (what the user sees):  ✓ Writing configuration  ✓ Starting control-plane
✓ Installing CNI (the knet-net add-on Ready on every node)  ✓ Nodes Ready  ✓ kube-proxy ready  ✓ CoreDNS ready
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from knet.cluster import addons, agents, bootstrap, kubeconfig, processes, readiness
from knet.cluster.config import ClusterConfig
from knet.cluster.paths import ClusterPaths
from knet.cluster.pki import load_cert_key, write_file

POLL_SECONDS = 0.05


def static_pod_names(config: ClusterConfig, paths: ClusterPaths) -> list[str]:
    from knet.cluster.manifests import control_plane_manifests

    return [m["metadata"]["name"] for m in control_plane_manifests(config, paths).values()]


class UpError(RuntimeError):
    """`knet up` could not finish; the message tells the user what to do next."""


def route_host_into_cluster(config: ClusterConfig) -> None:
    """Real mode: the host's routes to the pod and Service ranges, via the controlplane node
    (which need not exist yet). Idempotent; `knet up` calls it while it holds the network lock,
    to claim the ranges before another `knet up` picks them."""
    from knet.net import hostroutes, machines

    net = machines.cluster_network(config.name, config.node_network)
    machines.ensure_bridge(net)
    hostroutes.route_into_cluster(net.bridge, config.control_plane.ip, [config.pod_subnet, config.service_subnet])


def start_node_machines(config: ClusterConfig, paths: ClusterPaths) -> None:
    """Real mode: one machine per node, in parallel (the bridge first, which all of them share)."""
    from knet.net import hostroutes, machines
    from knet.net.names import netns_name

    net = machines.cluster_network(config.name, config.node_network)
    route_host_into_cluster(config)
    hosts = {n.name: n.ip for n in config.nodes}
    with ThreadPoolExecutor(max_workers=min(8, len(config.nodes))) as pool:
        futures = [
            pool.submit(machines.create_node_machine, net, n.name, n.ip, hosts=hosts,
                        service_cidr=config.service_subnet)
            for n in config.nodes
        ]
        for f in futures:
            f.result()
    # The controlplane forwards the host's traffic into the cluster; see knet.net.hostroutes.
    hostroutes.install_host_access(netns_name(config.name, config.control_plane.name), config.host_ip,
                                   config.pod_subnet)


def start_agents(config: ClusterConfig, paths: ClusterPaths) -> None:
    knet = bootstrap.knet_argv()
    if config.dataplane == "real":
        from knet.net.machines import node_exec_argv

        for node in config.nodes:
            # Supervised (systemd's Restart=always): a kubelet that dies comes back and re-adopts its pods.
            argv_file = paths.node_dir(node.name) / agents.SUPERVISED_ARGV
            write_file(argv_file, json.dumps(agents.kubelet_argv(config, paths, node, knet)))
            argv = node_exec_argv(config.name, node.name) + agents.supervised(
                str(argv_file), str(paths.node_dir(node.name) / agents.SUPERVISOR_STATE))
            processes.spawn(f"kubelet-{node.name}", argv, pids_dir=paths.pids, logs_dir=paths.logs)
        return
    # Simulated: two agent processes host every node, one for the control plane (its static pods
    # run as host processes; it alone carries the control-plane label and taint) and one for all
    # workers. Both register `knet.io/kubelet-endpoint` since sim node IPs are not reachable.
    from knet.cluster.host import free_tcp_port

    ca = load_cert_key(paths.pki, "ca")
    groups = [(config.control_plane.name, (config.control_plane,))]
    if config.workers:
        groups.append(("sim-workers", config.workers))
    for group, nodes in groups:
        bootstrap.write_node_identity(config, paths, ca, group, "127.0.0.1")
        node_list = paths.node_dir(group) / "sim-nodes.txt"
        write_file(node_list, agents.sim_node_list(nodes))
        argv = agents.sim_kubelet_argv(config, paths, group, nodes, str(node_list), knet, port=free_tcp_port())
        processes.spawn(f"kubelet-{group}", argv, pids_dir=paths.pids, logs_dir=paths.logs)


async def _wait(what: str, check: Callable[[], Any], timeout: float, paths: ClusterPaths,
                interval: float = POLL_SECONDS) -> Any:
    """Poll an async check until it returns something truthy (its result) or time runs out."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
        except Exception as exc:  # the API may not answer yet; keep polling
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise UpError(
                f"timed out after {timeout:.0f}s waiting for {what}{detail}; "
                f"see the logs in {paths.logs} and clean up with: knet down --name {paths.name}"
            )
        await asyncio.sleep(interval)


async def _create_addons(api, config: ClusterConfig, paths: ClusterPaths) -> None:
    from knet.client import ApiError

    ca_pem = (paths.pki / "ca.crt").read_bytes()
    objects = addons.bootstrap_configmaps(config, str(paths.pki), ca_pem) + addons.addon_objects(
        config, str(paths.root / "nodes"))
    for api_version, resource, obj in objects:
        try:
            await api.create(api_version, resource, obj, namespace=obj["metadata"].get("namespace"))
        except ApiError as exc:
            if exc.status != 409:  # already there (a re-run)
                raise
    binding = addons.sim_kubelet_binding(config, bootstrap.SIM_WORKERS_USER)
    if binding is not None:
        try:
            await api.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", binding)
        except ApiError as exc:
            if exc.status != 409:  # already there (a re-run)
                raise


async def _mark_control_plane(api, config: ClusterConfig) -> None:
    """kubeadm's mark-control-plane phase: the control-plane label, set with the admin's
    credentials (a kubelet may not set `node-role.kubernetes.io/` labels on its own Node)."""
    await api.patch("v1", "nodes", config.control_plane.name,
                    {"metadata": {"labels": {agents.CONTROL_PLANE_LABEL: ""}}})


async def converge(config: ClusterConfig, paths: ClusterPaths, say: Callable[[str], None],
                   timeout: float = 120.0) -> None:
    """Wait for the control plane, install the add-ons and wait until everything runs."""
    from knet.client import ApiClient, load_config

    names = {n.name for n in config.nodes}
    # Listing every node and pod 20 times a second is cheap for a few nodes, not for a thousand.
    wide = POLL_SECONDS if len(names) <= 50 else 0.5
    async with ApiClient(load_config(kubeconfig=str(paths.admin_kubeconfig))) as api:
        async def apiserver_ready():
            await api.get("v1", "namespaces", "kube-system")
            return True

        await _wait("the API server", apiserver_ready, timeout, paths)
        await _create_addons(api, config, paths)
        say("Starting control-plane")

        async def cni_ready():
            nodes = (await api.list("v1", "nodes"))["items"]
            return not readiness.nodes_without_pod_cidr(nodes, names)

        await _wait("every node to register and get a podCIDR", cni_ready, timeout, paths, wide)
        await _mark_control_plane(api, config)

        # The network add-on's pod on each node writes that node's CNI config (its `cni`
        # container): the nodes turn Ready once it has.
        async def network_addon_ready():
            pods = await api.list("v1", "pods", namespace="kube-system",
                                  label_selector=f"k8s-app={addons.NETWORK_ADDON}")
            return not readiness.pods_not_running_on(pods["items"], names)

        await _wait(f"a Ready {addons.NETWORK_ADDON} pod (DaemonSet kube-system/{addons.NETWORK_ADDON}) on every node",
                    network_addon_ready, timeout, paths, wide)
        say(f"Installing CNI ({addons.NETWORK_ADDON} ready on {len(names)}/{len(names)} nodes)")

        async def nodes_ready():
            nodes = (await api.list("v1", "nodes"))["items"]
            return not readiness.nodes_ready(nodes, names)

        await _wait("nodes to become Ready", nodes_ready, timeout, paths, wide)
        say("Nodes Ready")

        async def proxies_ready():
            pods = (await api.list("v1", "pods", namespace="kube-system", label_selector="k8s-app=kube-proxy"))
            return not readiness.pods_not_running_on(pods["items"], names)

        await _wait("a running kube-proxy pod on every node", proxies_ready, timeout, paths, wide)
        say("kube-proxy ready")

        async def dns_running():
            pods = await api.list("v1", "pods", namespace="kube-system", label_selector="k8s-app=kube-dns")
            return readiness.running_count(pods["items"]) >= 2

        await _wait("CoreDNS pods to be Running", dns_running, timeout, paths)

        # Usable means Services resolve: kube-dns has a ready endpoint (a Ready CoreDNS pod).
        async def dns_answering():
            slices = await api.list("discovery.k8s.io/v1", "endpointslices", namespace="kube-system",
                                    label_selector="kubernetes.io/service-name=kube-dns")
            return readiness.ready_endpoint_count(slices["items"]) >= 1

        await _wait("a Ready CoreDNS pod behind Service kube-dns", dns_answering, timeout, paths)

        mirrors = {f"{component}-{config.control_plane.name}" for component in static_pod_names(config, paths)}

        async def control_plane_pods_running():
            pods = (await api.list("v1", "pods", namespace="kube-system"))["items"]
            running = {p["metadata"]["name"] for p in pods if readiness.pod_running_ready(p)}
            return mirrors <= running

        await _wait("the control plane's mirror pods", control_plane_pods_running, timeout, paths)
        say("CoreDNS ready")


def bring_up(config: ClusterConfig, paths: ClusterPaths, say: Callable[[str], None],
             timeout: float = 120.0) -> None:
    """Everything `knet up` does after resolving the config. Raises UpError."""
    bootstrap.write_config(config, paths)
    bootstrap.write_pki(config, paths)
    bootstrap.write_manifests(config, paths)
    say("Writing configuration")
    if config.dataplane == "real":
        start_node_machines(config, paths)
    start_agents(config, paths)
    asyncio.run(converge(config, paths, say, timeout))
    admin = kubeconfig.read(paths.admin_kubeconfig)
    assert admin is not None
    kubeconfig.install(kubeconfig.user_kubeconfig_path(), admin, config.context_name)
