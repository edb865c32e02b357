"""`knet dns`: the cluster DNS server (what the coredns image runs in its pods).

Accepts CoreDNS's own single-dash flags (`-conf`, `-dns.port`) as the coredns Deployment passes
them, and the double-dash forms.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from knet.cli.runtime import run_component


@click.command("dns", context_settings={"ignore_unknown_options": False})
@click.option("-conf", "--conf", "conf", default="Corefile", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Corefile to load.")
@click.option("-dns.port", "--dns.port", "dns_port", type=int, default=None,
              help="Port for every server block (overrides the Corefile's).")
@click.option("--listen", default="", help="Address for DNS listeners (default: all IPv4).")
@click.option("--kubeconfig", default=None, help="Kubeconfig (default: $KUBECONFIG, then in-cluster).")
@click.option("--forward-timeout", type=float, default=None,
              help="Seconds to wait for upstream resolvers before SERVFAIL (default 2).")
@click.option("-quiet", "--quiet", is_flag=True, help="Only warnings and errors.")
def dns_command(conf: Path, dns_port: int | None, listen: str, kubeconfig: str | None,
                forward_timeout: float | None, quiet: bool) -> None:
    """Serve cluster DNS for the Corefile CONF (CoreDNS-compatible)."""
    from knet.dns.app import DnsApp, Options

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    if not conf.exists():
        raise click.ClickException(f"Corefile {conf} not found")
    app = DnsApp(Options(corefile=conf, kubeconfig=kubeconfig, host=listen, port=dns_port,
                         forward_timeout=forward_timeout))
    from knet.client import ConfigError
    from knet.dns.corefile import CorefileError

    try:
        run_component(app.run())
    except KeyboardInterrupt:
        pass
    except (CorefileError, ConfigError, OSError) as exc:
        raise click.ClickException(f"{conf}: {exc}") from exc


def register(group: click.Group) -> None:
    group.add_command(dns_command)
