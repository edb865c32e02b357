"""The `knet` command line.

Each concern registers its own commands in its own module (see COMMAND_MODULES), so the
component commands (`knet apiserver`, `knet kube-proxy`, ...) live next to their owners and a
missing optional piece never breaks the rest of the CLI.
"""

from __future__ import annotations

import importlib

import click
import yaml

# Modules that expose `register(group: click.Group) -> None`.
COMMAND_MODULES = (
    "knet.cli.apiserver",
    "knet.cli.controlplane",
    "knet.cli.kubelet",
    "knet.cli.proxy",
    "knet.cli.netpol",
    "knet.cli.ingress",
    "knet.cli.cniagent",
    "knet.cli.dns",
    "knet.cli.cluster",
    "knet.cli.binary",
    "knet.cli.lab",
    "knet.cli.trace",
)


HELP_OPTIONS = ["-h", "--help"]


@click.group(context_settings={"help_option_names": HELP_OPTIONS})
@click.version_option(package_name="knet")
def cli() -> None:
    """knet: a Kubernetes cluster's service networking on one Linux machine."""


def _register_all(group: click.Group) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that concern has not been built yet
                continue
            raise
        module.register(group)


_register_all(cli)


def main() -> None:
    from knet.client.errors import ConfigError

    try:
        cli()
    except ConfigError as exc:
        # No kubeconfig for a command that reads the live cluster: say so, not a traceback.
        click.echo(f"Error: {exc} (set --kubeconfig or KUBECONFIG, or start a cluster with: knet up)", err=True)
        raise SystemExit(1) from None
    except yaml.YAMLError as exc:
        # A manifest given with -f that does not parse: where, not a traceback.
        click.echo(f"Error: not valid YAML: {exc}", err=True)
        raise SystemExit(1) from None

