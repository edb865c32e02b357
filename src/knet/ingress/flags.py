"""The ingress-nginx controller's command line (`/nginx-ingress-controller --publish-service=…`),
parsed as Go's flag package does (`--f=v`, `--f v`, `-f v`, a bare boolean `--f`), into Options.
Flags knet has no use for (--election-id, --configmap, --validating-webhook…) are accepted and
ignored, so upstream's manifests run unchanged."""

from __future__ import annotations

from knet.ingress.controller import Options

BOOLS = {"watch-ingress-without-class": "watch_ingress_without_class", "update-status": "update_status"}
VALUES = {"controller-class": "controller_class", "ingress-class": "ingress_class",
          "publish-service": "publish_service", "publish-status-address": "publish_status_address",
          "watch-namespace": "watch_namespace", "default-ssl-certificate": "default_ssl_certificate",
          "default-backend-service": "default_backend_service", "kubeconfig": "kubeconfig"}
INTS = {"http-port": "http_port", "https-port": "https_port", "healthz-port": "healthz_port",
        "worker-processes": "worker_processes"}  # a ConfigMap key upstream; a flag here
IGNORED_BOOLS = {"enable-metrics", "enable-ssl-passthrough", "v", "enable-topology-aware-routing"}


class FlagError(ValueError):
    pass


def _bool(value: str, name: str) -> bool:
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise FlagError(f"invalid boolean value {value!r} for -{name}")


def parse(argv: list[str]) -> Options:
    opts = Options()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-") or word in ("-", "--"):
            continue
        name, eq, value = word.lstrip("-").partition("=")
        if name in BOOLS or (name in IGNORED_BOOLS and not eq):
            if name in BOOLS:
                setattr(opts, BOOLS[name], _bool(value, name) if eq else True)
            continue
        if not eq:
            if i >= len(argv):
                raise FlagError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if name in VALUES:
            setattr(opts, VALUES[name], value)
        elif name in INTS:
            try:
                setattr(opts, INTS[name], int(value))
            except ValueError as exc:
                raise FlagError(f"invalid value {value!r} for flag -{name}: parse error") from exc
    return opts
