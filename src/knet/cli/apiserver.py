"""`knet apiserver`: the API server with kube-apiserver's flag names (docs/contracts.md s.3)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

import click

from knet.cli.runtime import run_component


def _run(config) -> None:
    from knet.api.server import ApiServer

    async def main() -> None:
        server = ApiServer(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        gc.freeze()  # the store loaded at start-up is long-lived too (see knet.cli.runtime)
        try:
            await stop.wait()
        finally:
            await server.stop()

    run_component(main())


def _storage_url(kw: dict) -> str:
    """The store: --etcd-servers (kube-apiserver's), --storage, or SQLite in --data-dir."""
    from knet.api.storage.etcd import etcd_url

    if bool(kw["etcd_certfile"]) != bool(kw["etcd_keyfile"]):
        raise click.UsageError("--etcd-certfile and --etcd-keyfile go together")
    tls = bool(kw["etcd_cafile"] or kw["etcd_certfile"])
    if kw["etcd_servers"]:
        if kw["storage"]:
            raise click.UsageError("give one of --etcd-servers and --storage")
        try:
            url, scheme = etcd_url(kw["etcd_servers"].split(","), kw["etcd_prefix"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--etcd-servers") from None
        if (scheme == "https") != tls:
            # TLS files decide the scheme of the connection: they must agree with the URLs.
            raise click.UsageError("https:// etcd servers need --etcd-cafile or --etcd-certfile/--etcd-keyfile"
                                   if scheme == "https" else "--etcd-cafile/--etcd-certfile/--etcd-keyfile "
                                   "need https:// etcd servers")
        return url
    storage = kw["storage"]
    if tls and not (storage or "").startswith("etcd://"):
        raise click.UsageError("--etcd-cafile/--etcd-certfile/--etcd-keyfile need --etcd-servers")
    if storage is None:
        if kw["data_dir"] is None:
            raise click.UsageError("one of --data-dir, --storage or --etcd-servers is required")
        storage = "sqlite://" + str(Path(kw["data_dir"]) / "knet.db")
    return storage


def _requestheader(kw: dict):
    """--requestheader-* as kube-apiserver takes them (empty header names refused; without the CA
    file, no request-header authentication); --proxy-client-cert-file and --proxy-client-key-file
    go together and must be a key pair (upstream loads them at start)."""
    from knet.api.requestheader import RequestHeaderConfig, load_key_pair, split_flag

    if bool(kw["proxy_client_cert_file"]) != bool(kw["proxy_client_key_file"]):
        raise click.UsageError("--proxy-client-cert-file and --proxy-client-key-file go together")
    if kw["proxy_client_cert_file"]:
        try:
            load_key_pair(kw["proxy_client_cert_file"], kw["proxy_client_key_file"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--proxy-client-cert-file") from None
    names = {k: split_flag(kw[f"requestheader_{k}"])
             for k in ("allowed_names", "username_headers", "group_headers", "extra_headers_prefix")}
    if not kw["requestheader_client_ca_file"]:
        return None  # as upstream: no CA, no request-header authentication (the other flags unused)
    try:
        return RequestHeaderConfig(kw["requestheader_client_ca_file"], **names)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--requestheader-*") from None


@click.command("apiserver", context_settings={"ignore_unknown_options": False})
@click.option("--bind-address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--secure-port", default=6443, show_default=True, type=int, help="HTTPS port.")
@click.option("--advertise-address", default=None, help="Address published in Endpoints default/kubernetes.")
@click.option("--service-cluster-ip-range", default="10.96.0.0/12", show_default=True)
@click.option("--service-node-port-range", default="30000-32767", show_default=True)
@click.option("--tls-cert-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--tls-private-key-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--client-ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--requestheader-client-ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA of the front proxy's client certificates: a request with one is the user its headers name.")
@click.option("--requestheader-allowed-names", default="",
              help="CNs a front proxy's certificate may have (comma-separated; empty: any).")
@click.option("--requestheader-username-headers", default="", help="Headers naming the user (e.g. X-Remote-User).")
@click.option("--requestheader-group-headers", default="", help="Headers naming the groups (e.g. X-Remote-Group).")
@click.option("--requestheader-extra-headers-prefix", default="",
              help="Prefixes of the headers giving extra (e.g. X-Remote-Extra-).")
@click.option("--proxy-client-cert-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Client certificate the apiserver proxies with (kubeadm's front-proxy-client).")
@click.option("--proxy-client-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Key of --proxy-client-cert-file.")
@click.option("--token-auth-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--service-account-key-file", "service_account_key_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--service-account-signing-key-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--service-account-issuer", default="https://kubernetes.default.svc.cluster.local", show_default=True)
@click.option("--api-audiences", default="",
              help="Comma-separated audiences of the API (default: the service-account issuer).")
@click.option("--service-account-max-token-expiration", default="0s",
              help="The longest lifetime a TokenRequest gets (Go duration; 0: no cap; 1h to 2^32 s).")
@click.option("--service-account-extend-token-expiration", default="true",
              help="Kubelet-mounted tokens (3607 s) live a year, warning after the requested time.")
@click.option("--allow-short-service-account-max-token-expiration", type=click.BOOL, default=False, hidden=True,
              help="knet only, for tests: accept --service-account-max-token-expiration below 1h.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Directory of the SQLite store.")
@click.option("--storage", default=None, help="Storage URL: sqlite:///PATH, memory: or etcd://HOST:PORT[,HOST:PORT...][/prefix] (overrides --data-dir).")
@click.option("--etcd-servers", default=None,
              help="etcd as kube-apiserver takes it: https://HOST:PORT[,https://HOST:PORT...] (or http://).")
@click.option("--etcd-prefix", default="/registry", show_default=True, help="Key prefix of every object in etcd.")
@click.option("--etcd-cafile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA that signed etcd's serving certificate.")
@click.option("--etcd-certfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Client certificate presented to etcd.")
@click.option("--etcd-keyfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Key of --etcd-certfile.")
@click.option("--kubelet-client-certificate", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--kubelet-client-key", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--kubelet-certificate-authority", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--metric-resolution", default="0s", show_default=True,
              help="knet only: serve metrics.k8s.io by scraping every kubelet's /stats/summary this often "
                   "(metrics-server's flag; 0s: the group is served empty, no kubelet is contacted).")
@click.option("--kubelet-endpoint-annotation", type=click.BOOL, default=False, show_default=True,
              help="knet only: reach a node's kubelet at its knet.io/kubelet-endpoint annotation (simulated "
                   "nodes); false: at its address and kubelet port, as kube-apiserver.")
@click.option("--authorization-mode", default="AlwaysAllow", show_default=True,
              help="Ordered list of authorizers: AlwaysAllow, AlwaysDeny, Node, RBAC (kubeadm: Node,RBAC).")
@click.option("--anonymous-auth", default="true", show_default=True,
              help="Serve requests without credentials as system:anonymous (then authorized as any user).")
@click.option("--enable-admission-plugins", default="", help="Admission plugins to enable beyond the defaults "
              "(NodeRestriction; kube-apiserver's other names are accepted).")
@click.option("--allow-insecure-http", is_flag=True, default=False, hidden=True,
              help="Serve plain HTTP when no certificate is given (tests and benchmarks only).")
@click.option("--kubernetes-version", envvar="KNET_KUBERNETES_VERSION", default="", hidden=True,
              help="knet only: the version /version reports (the tag of the image the kubelet runs it from; default knet's own).")
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
    from knet.cli.controlplane import parse_duration

    try:
        max_expiration = parse_duration(kw["service_account_max_token_expiration"])
    except click.BadParameter as exc:
        raise click.BadParameter(str(exc.message), param_hint="--service-account-max-token-expiration") from None
    # kube-apiserver's bounds; knet's test setting (serviceAccountTokenMaxExpiration) may go lower.
    low = 1.0 if kw["allow_short_service_account_max_token_expiration"] else 3600.0
    if max_expiration and not low <= max_expiration <= 2 ** 32:
        raise click.BadParameter("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds",
                                 param_hint="--service-account-max-token-expiration")
    extend = kw["service_account_extend_token_expiration"].lower()
    if extend not in ("true", "false", "1", "0", "t", "f"):
        raise click.BadParameter(f"invalid boolean {extend!r}", param_hint="--service-account-extend-token-expiration")
    if max_expiration and extend in ("true", "1", "t") and max_expiration < 3607:
        # as kube-apiserver warns
        logging.getLogger("knet.api").warning(
            "service-account-extend-token-expiration is true, in order to correctly trigger safe transition logic, "
            "service-account-max-token-expiration must be set longer than 3607 seconds (currently %ss)",
            int(max_expiration))
    try:
        metric_resolution = parse_duration(kw["metric_resolution"])
    except click.BadParameter as exc:
        raise click.BadParameter(str(exc.message), param_hint="--metric-resolution") from None
    storage = _storage_url(kw)
    requestheader = _requestheader(kw)
    from knet.api.server import KNOWN_ADMISSION_PLUGINS

    for plugin in kw["enable_admission_plugins"].split(","):
        if plugin.strip() and plugin.strip() not in KNOWN_ADMISSION_PLUGINS | {"NodeRestriction"}:
            raise click.BadParameter(f"unknown admission plugin {plugin.strip()!r}",
                                     param_hint="--enable-admission-plugins")
    for mode in kw["authorization_mode"].split(","):
        if mode.strip() not in ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC"):
            raise click.BadParameter(f"unknown authorization mode {mode.strip()!r}: AlwaysAllow, AlwaysDeny, Node or RBAC",
                                     param_hint="--authorization-mode")
    config = ApiServerConfig(
        bind_address=kw["bind_address"], secure_port=kw["secure_port"], advertise_address=kw["advertise_address"],
        service_cluster_ip_range=kw["service_cluster_ip_range"], service_node_port_range=kw["service_node_port_range"],
        tls_cert_file=kw["tls_cert_file"], tls_private_key_file=kw["tls_private_key_file"],
        client_ca_file=kw["client_ca_file"], requestheader=requestheader, token_auth_file=kw["token_auth_file"],
        service_account_key_files=list(kw["service_account_key_files"]),
        service_account_signing_key_file=kw["service_account_signing_key_file"],
        service_account_issuer=kw["service_account_issuer"], storage=storage,
        api_audiences=[a.strip() for a in kw["api_audiences"].split(",") if a.strip()],
        service_account_max_token_expiration=int(max_expiration),
        service_account_extend_token_expiration=extend in ("true", "1", "t"),
        kubelet_client_certificate=kw["kubelet_client_certificate"], kubelet_client_key=kw["kubelet_client_key"],
        kubelet_certificate_authority=kw["kubelet_certificate_authority"],
        authorization_modes=[m.strip() for m in kw["authorization_mode"].split(",") if m.strip()],
        anonymous_auth=kw["anonymous_auth"].lower() in ("true", "1", "t", "yes"),
        admission_plugins=[p.strip() for p in kw["enable_admission_plugins"].split(",") if p.strip()],
        etcd_cafile=kw["etcd_cafile"], etcd_certfile=kw["etcd_certfile"], etcd_keyfile=kw["etcd_keyfile"],
        metric_resolution=metric_resolution, kubernetes_version=kw["kubernetes_version"],
        kubelet_endpoint_annotation=kw["kubelet_endpoint_annotation"],
    )
    _run(config)


def register(group: click.Group) -> None:
    group.add_command(apiserver)
