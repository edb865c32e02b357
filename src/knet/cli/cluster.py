"""`knet up`, `knet down`, `knet status`, `knet ssh`: whole clusters on this machine."""

from __future__ import annotations

import os
import shutil
import sys
import time

import click
import yaml

from knet.cluster.config import DEFAULT_NAME


def _say_step(started: float):
    def say(step: str) -> None:
        click.echo(f" ✓ {step} ({time.monotonic() - started:.1f}s)")

    return say


@click.command("up")
@click.option("--name", default=None, help=f"cluster name (default {DEFAULT_NAME}); context knet-NAME")
@click.option("--nodes", type=int, default=None, help="number of nodes incl. controlplane (default 2)")
@click.option("--dataplane", type=click.Choice(["real", "sim"]), default=None,
              help="real namespaces and kernel rules, or simulated (default: real where root and namespaces work)")
@click.option("--proxy-mode", type=click.Choice(["iptables", "nftables"]), default=None,
              help='kube-proxy mode (default "", which means iptables)')
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="cluster config file (kind: Cluster, apiVersion: knet.io/v1alpha1)")
@click.option("--wait", "timeout", type=float, default=120.0, show_default=True,
              help="seconds to wait for the cluster to become usable")
def up_command(name, nodes, dataplane, proxy_mode, config_file, timeout) -> None:
    """Create a cluster and return once it is usable (nodes Ready, kube-system pods Running)."""
    from knet.cluster import config as config_mod
    from knet.cluster import host
    from knet.cluster.paths import ClusterPaths
    from knet.cluster.up import UpError, bring_up

    started = time.monotonic()
    file_values = None
    if config_file:
        with open(config_file) as fh:
            file_values = yaml.safe_load(fh) or {}
        if not isinstance(file_values, dict):
            raise click.ClickException(f"{config_file}: expected a mapping (kind: Cluster)")
    cluster_name = name or (file_values or {}).get("name") or DEFAULT_NAME
    paths = ClusterPaths.of(str(cluster_name))
    if paths.root.exists():
        raise click.ClickException(
            f'a cluster named "{cluster_name}" already exists (state in {paths.root}); '
            f"remove it with: knet down --name {cluster_name}   or choose another --name"
        )
    problem = host.real_dataplane_problem() if (dataplane or (file_values or {}).get("dataplane")) != "sim" else None
    with host.network_choice_lock():
        try:
            config, notes = config_mod.resolve(
                file_values, name=name, nodes=nodes, dataplane=dataplane, proxy_mode=proxy_mode,
                networks_in_use=[*host.host_routes_in_use(), *host.host_nameservers(),
                                 *host.other_cluster_ranges(str(cluster_name))],
                real_dataplane_available=problem is None, etcd_available=shutil.which("etcd") is not None,
            )
        except config_mod.ConfigError as exc:
            hint = f" ({problem})" if problem and "dataplane real" in str(exc) else ""
            raise click.ClickException(f"{exc}{hint}") from exc
        if config.dataplane == "real":
            # Claim the networks now (the bridge's route, the routes to the pod and Service
            # ranges), before another `knet up` picks them too.
            from knet.cluster.up import route_host_into_cluster

            try:
                route_host_into_cluster(config)
            except (OSError, RuntimeError) as exc:
                raise click.ClickException(
                    f"cannot route the cluster's networks from this host: {exc}; "
                    f"remove what was made with: knet down --name {config.name}") from exc
    for note in notes:
        click.echo(f"knet: {note}" + (f" ({problem})" if problem else ""), err=True)
    if config.dataplane == "sim":
        # The node network exists only on paper: the apiserver listens on loopback.
        from dataclasses import replace

        port = host.free_tcp_port("127.0.0.1", preferred=config.api_server_port)
        config = replace(config, api_server_bind_address="127.0.0.1", api_server_port=port)
    click.echo(f'Creating cluster "{config.name}" ({len(config.nodes)} nodes, dataplane {config.dataplane}) ...')
    try:
        bring_up(config, paths, _say_step(started), timeout=timeout)
    except UpError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; remove what was made with: knet down --name {config.name}") from None
    except Exception as exc:  # a failed step: say which, and how to clean up
        raise click.ClickException(
            f"{type(exc).__name__}: {exc}; logs are in {paths.logs}; "
            f"remove what was made with: knet down --name {config.name}"
        ) from exc
    click.echo(f'Set kubectl context to "{config.context_name}"')
    click.echo("You can now use your cluster with:\n")
    click.echo(f"kubectl cluster-info --context {config.context_name}\n")
    if config.dataplane == "real":
        click.echo(f"Open a shell on a node with: knet ssh --name {config.name} node01")


@click.command("down")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="cluster name")
def down_command(name: str) -> None:
    """Delete a cluster: its processes, namespaces, links, rules, mounts, files and kubeconfig entries."""
    from knet.cluster.down import tear_down
    from knet.cluster.paths import ClusterPaths

    paths = ClusterPaths.of(name)
    click.echo(f'Deleting cluster "{name}" ...')
    done = tear_down(paths)
    for line in done:
        click.echo(f" ✓ {line}")
    if not done:
        click.echo(f' nothing left of cluster "{name}"')


@click.command("status")
def status_command() -> None:
    """List clusters with their nodes and the health of their processes."""
    from knet.cluster.status import all_statuses, format_status

    click.echo(format_status(all_statuses()), nl=False)


def cluster_config_with_node(name: str, node: str):
    """The config of cluster NAME, which must have NODE; else a ClickException saying what exists."""
    from knet.cluster import config as config_mod
    from knet.cluster.paths import ClusterPaths, list_cluster_names, missing_cluster_message

    try:
        cfg = config_mod.from_dict(yaml.safe_load(ClusterPaths.of(name).config_file.read_text()))
    except FileNotFoundError:
        raise click.ClickException(missing_cluster_message(name, list_cluster_names())) from None
    if node not in {n.name for n in cfg.nodes}:
        raise click.ClickException(
            f'cluster "{name}" has no node "{node}" (nodes: {", ".join(n.name for n in cfg.nodes)})')
    return cfg


@click.command("ssh", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="cluster name")
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_command(name: str, node: str, command: tuple[str, ...]) -> None:
    """Open a shell in NODE (or run `-- CMD...`) inside the node's namespaces."""
    cfg = cluster_config_with_node(name, node)
    if cfg.dataplane != "real":
        raise click.ClickException(
            f'cluster "{name}" has a simulated dataplane: node "{node}" is not a machine you can enter '
            "(create the cluster with --dataplane real, as root)")
    from knet.net.machines import node_exec_argv

    try:
        prefix = node_exec_argv(name, node)
    except LookupError as exc:
        raise click.ClickException(f"{exc}; see: knet status") from exc
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        argv = [os.environ.get("SHELL") or "/bin/bash", "-l"] if sys.stdin.isatty() else ["/bin/sh"]
    sys.stdout.flush()
    # The node's root reads its own ~/.kube/config (admin.conf on the controlplane), as after
    # kubeadm init: the caller's KUBECONFIG (whose current context may be another cluster) stays out.
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    os.execvpe(prefix[0], prefix + argv, env)


def register(group: click.Group) -> None:
    for cmd in (up_command, down_command, status_command, ssh_command):
        group.add_command(cmd)
