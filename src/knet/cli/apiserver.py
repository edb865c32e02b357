"""`knet apiserver`: the API server with kube-apiserver's flag names (docs/contracts.md s.3)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

import click

# The apiserver holds every object of the cluster as decoded JSON: millions of long-lived dicts
# and lists that the cyclic garbage collector would otherwise traverse again and again (a fifth of
# the server's CPU in a 6,000-pod run). They never form cycles (refcounting frees them), so:
# young collections are rarer (they mostly find requests' short-lived objects already freed),
# automatic full collections are off, and once a minute a collection reclaims the cycles that
# lived long enough to get there, then freezes the survivors so that later collections skip them.
# Every tenth round unfreezes first: cycles that became garbage after they were frozen go too.
GC_THRESHOLDS = (50_000, 50, 1_000_000)
COLLECTION_SECONDS = 60.0
FULL_COLLECTION_ROUNDS = 10


async def _collect_garbage_periodically() -> None:
    rounds = 0
    while True:
        await asyncio.sleep(COLLECTION_SECONDS)
        rounds += 1
        if rounds % FULL_COLLECTION_ROUNDS == 0:
            gc.unfreeze()
        gc.collect()
        gc.freeze()


def _run(config) -> None:
    from knet.api.server import ApiServer

    async def main() -> None:
        server = ApiServer(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        gc.freeze()  # what start-up built (modules, schemas, the loaded store) is never garbage
        gc.set_threshold(*GC_THRESHOLDS)
        collector = asyncio.create_task(_collect_garbage_periodically())
        try:
            await stop.wait()
        finally:
            collector.cancel()
            await server.stop()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


@click.command("apiserver", context_settings={"ignore_unknown_options": False})
@click.option("--bind-address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--secure-port", default=6443, show_default=True, type=int, help="HTTPS port.")
@click.option("--advertise-address", default=None, help="Address published in Endpoints default/kubernetes.")
@click.option("--service-cluster-ip-range", default="10.96.0.0/12", show_default=True)
@click.option("--service-node-port-range", default="30000-32767", show_default=True)
@click.option("--tls-cert-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--tls-private-key-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--client-ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--token-auth-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--service-account-key-file", "service_account_key_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--service-account-signing-key-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--service-account-issuer", default="https://kubernetes.default.svc.cluster.local", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Directory of the SQLite store.")
@click.option("--storage", default=None, help="Storage URL: sqlite:///PATH, memory: or etcd://HOST:PORT[,HOST:PORT...][/prefix] (overrides --data-dir).")
@click.option("--kubelet-client-certificate", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--kubelet-client-key", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--kubelet-certificate-authority", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--allow-insecure-http", is_flag=True, default=False, hidden=True,
              help="Serve plain HTTP when no certificate is given (tests and benchmarks only).")
@click.option("-v", "--v", "verbosity", default=0, type=int, help="Log verbosity.")
def apiserver(**kw) -> None:
    """Serve the Kubernetes API over HTTPS from an embedded SQLite store."""
    from knet.api.server import ApiServerConfig

    logging.basicConfig(level=logging.DEBUG if kw["verbosity"] >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if bool(kw["tls_cert_file"]) != bool(kw["tls_private_key_file"]):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    if not kw["tls_cert_file"] and not kw["allow_insecure_http"]:
        raise click.UsageError("--tls-cert-file and --tls-private-key-file are required (the API is HTTPS only)")
    import ipaddress

    from knet.ipam.bitmap import PortRangeAllocator

    try:
        ipaddress.ip_network(kw["service_cluster_ip_range"], strict=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--service-cluster-ip-range") from None
    try:
        PortRangeAllocator.parse(kw["service_node_port_range"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--service-node-port-range") from None
    storage = kw["storage"]
    if storage is None:
        if kw["data_dir"] is None:
            raise click.UsageError("one of --data-dir or --storage is required")
        storage = "sqlite://" + str(Path(kw["data_dir"]) / "knet.db")
    config = ApiServerConfig(
        bind_address=kw["bind_address"], secure_port=kw["secure_port"], advertise_address=kw["advertise_address"],
        service_cluster_ip_range=kw["service_cluster_ip_range"], service_node_port_range=kw["service_node_port_range"],
        tls_cert_file=kw["tls_cert_file"], tls_private_key_file=kw["tls_private_key_file"],
        client_ca_file=kw["client_ca_file"], token_auth_file=kw["token_auth_file"],
        service_account_key_files=list(kw["service_account_key_files"]),
        service_account_signing_key_file=kw["service_account_signing_key_file"],
        service_account_issuer=kw["service_account_issuer"], storage=storage,
        kubelet_client_certificate=kw["kubelet_client_certificate"], kubelet_client_key=kw["kubelet_client_key"],
        kubelet_certificate_authority=kw["kubelet_certificate_authority"],
    )
    _run(config)


def register(group: click.Group) -> None:
    group.add_command(apiserver)
