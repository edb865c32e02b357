"""`knet ingress-controller` (run as `/nginx-ingress-controller ARGS` in the add-on's pod): knet's
ingress controller, taking ingress-nginx's flags."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal

import click

from knet.cli.runtime import run_component

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.command("ingress-controller", context_settings=_PASS_THROUGH)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def ingress_controller(argv: tuple[str, ...]) -> None:
    """Serve the Ingresses of an IngressClass (ingress-nginx's flags: --publish-service,
    --controller-class, --ingress-class, --default-ssl-certificate, --http-port, --https-port, ...)."""
    from knet.ingress import controller, flags

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        opts = flags.parse(list(argv))
    except flags.FlagError as exc:
        raise click.UsageError(str(exc)) from exc
    workers = opts.worker_processes or len(os.sched_getaffinity(0))
    children = []
    for _ in range(1, workers):  # forked before any loop or thread exists
        pid = os.fork()
        if pid == 0:
            try:
                run_component(controller.run(dataclasses.replace(opts, update_status=False, healthz_port=0)))
            finally:
                os._exit(0)
        children.append(pid)
    try:
        run_component(controller.run(opts))
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@click.command("ingress-manifest")
def ingress_manifest() -> None:
    """Print the ingress controller add-on's objects (YAML): `| kubectl apply -f -` installs it,
    `| kubectl delete -f -` removes it."""
    from knet.ingress.manifests import manifest_yaml

    click.echo(manifest_yaml(), nl=False)


@click.command("gateway-api-manifest")
def gateway_api_manifest() -> None:
    """Print the Gateway API standard channel CRDs (deploy/gateway-api/standard-install.yaml):
    `| kubectl apply -f -` installs them."""
    from knet.ingress.gatewaycrds import manifest_yaml

    click.echo(manifest_yaml(), nl=False)


def register(group: click.Group) -> None:
    group.add_command(ingress_controller)
    group.add_command(ingress_manifest)
    group.add_command(gateway_api_manifest)
