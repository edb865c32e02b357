"""`knet cni-agent`: the CNI container of the network add-on DaemonSet (knet.cniagent)."""

from __future__ import annotations

import logging

import click

from knet.cli.runtime import run_component


@click.command("cni-agent")
@click.option("--ipalloc-range", "ipalloc_range", required=True,
              help="The cluster's pod range (ClusterConfiguration podSubnet); routes inside it are the agent's.")
@click.option("--hostname-override", default="", help="This node's name (default: the hostname).")
@click.option("--cni-conf-dir", default="/etc/cni/net.d", show_default=True,
              help="Where the node's kubelet reads its CNI config.")
@click.option("--ipam-data-dir", default="/var/lib/cni/networks", show_default=True,
              help="host-local IPAM's dataDir in the config written.")
@click.option("--cni-bin-dir", default="", help="The kubelet's plugin dir, checked for the plugins the config names.")
@click.option("--kubeconfig", default="", help="Default: in-cluster / $KUBECONFIG.")
@click.option("--load-balancer-pool", default="",
              help="LoadBalancer addresses (A-B or CIDRs) this node answers ARP for when it is their announcer.")
@click.option("--v", "verbosity", default=2, type=int, help="Log verbosity (klog-style).")
def cni_agent(ipalloc_range: str, hostname_override: str, cni_conf_dir: str, ipam_data_dir: str, cni_bin_dir: str,
              kubeconfig: str, load_balancer_pool: str, verbosity: int) -> None:
    """Write this node's CNI config from its podCIDR and keep routes to the other nodes' podCIDRs."""
    import ipaddress

    from knet.cniagent.agent import Options, run

    try:
        ipaddress.ip_network(ipalloc_range, strict=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ipalloc-range") from exc
    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = Options(node=hostname_override, cluster_cidr=ipalloc_range, cni_conf_dir=cni_conf_dir,
                   ipam_data_dir=ipam_data_dir, cni_bin_dir=cni_bin_dir, kubeconfig=kubeconfig,
                   load_balancer_pool=load_balancer_pool)
    try:
        run_component(run(opts))
    except KeyboardInterrupt:
        pass


def register(group: click.Group) -> None:
    group.add_command(cni_agent)
