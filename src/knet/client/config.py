"""Where the API server is and who we are to it: kubeconfig files and in-cluster config.

`load_config()` only reads files; the TLS context is built from the result by `ssl_context()`.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from knet.client.errors import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class TokenSource(Protocol):
    """Where a client's bearer token comes from when it changes over time (client-go's
    oauth2.TokenSource behind ResettableTokenSourceWrapTransport): `token()` is called for every
    request and must be cheap; `reset()` is called when the server answered 401, so that a fresh
    token is got, and says whether one is there at once (then the refused request is retried)."""

    def token(self) -> str | None: ...

    def reset(self) -> bool: ...


@dataclass(frozen=True)
class ClientConfig:
    server: str
    ca_data: bytes | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None  # re-read each minute and after a 401 (projected tokens rotate)
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"
    token_source: TokenSource | None = None  # a token that is refreshed (bound service-account tokens)

    def bearer_token(self) -> str | None:
        """The token now (the token source's, or the file read afresh); ApiClient keeps a
        TokenFile instead of rereading."""
        if self.token_source is not None:
            return self.token_source.token()
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError:
                pass
        return self.token


class TokenFile:
    """A bearer token kept in a file that its owner rewrites (the kubelet's projected
    service-account token): read at most once per `period`, as client-go's cachingTokenSource
    rereads an in-cluster token each minute, and at once after `reset` (on a 401, as client-go's
    ResettableTokenSource). A file that cannot be read keeps the last token."""

    def __init__(self, path: str, fallback: str | None = None, period: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.period = period
        self._fallback = fallback
        self._clock = clock
        self._token: str | None = None
        self._read_at: float | None = None

    def token(self) -> str | None:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self.period:
            try:
                self._token = Path(self.path).read_text().strip() or self._token
            except OSError:
                pass
            self._read_at = now
        return self._token or self._fallback

    def reset(self) -> bool:
        """Forget the cached token; True when the file now holds another one."""
        before = self._token
        self._read_at = None
        return self.token() != before


def _read_data(entry: dict[str, Any], key: str, base_dir: Path) -> bytes | None:
    """kubeconfig carries either KEY-data (base64) or KEY (a path relative to the file)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base_dir / os.path.expanduser(entry[key])).read_bytes()
    return None


def _named(items: list[dict[str, Any]] | None, name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise ConfigError(f"kubeconfig has no {what} named {name!r}")


def config_from_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> ClientConfig:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        contexts = doc.get("contexts") or []
        if len(contexts) != 1:
            raise ConfigError(f"kubeconfig {path} has no current-context")
        ctx_name = contexts[0]["name"]
    ctx = _named(doc.get("contexts"), ctx_name, "context")
    cluster = _named(doc.get("clusters"), ctx["cluster"], "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    base = path.parent
    token_file = user.get("tokenFile")
    return ClientConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_read_data(cluster, "certificate-authority", base),
        client_cert_data=_read_data(user, "client-certificate", base),
        client_key_data=_read_data(user, "client-key", base),
        token=user.get("token"),
        token_file=str(base / token_file) if token_file else None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=ctx.get("namespace") or "default",
    )


def config_in_cluster(sa_dir: Path = SERVICE_ACCOUNT_DIR, env: dict[str, str] | None = None) -> ClientConfig:
    env = dict(os.environ) if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_path = sa_dir / "token"
    if not token_path.exists():
        raise ConfigError(f"not in a cluster: {token_path} is missing")
    host = f"[{host}]" if ":" in host else host
    ns_path = sa_dir / "namespace"
    ca_path = sa_dir / "ca.crt"
    return ClientConfig(
        server=f"https://{host}:{port}",
        ca_data=ca_path.read_bytes() if ca_path.exists() else None,
        token_file=str(token_path),
        namespace=ns_path.read_text().strip() if ns_path.exists() else "default",
    )


def load_config(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> ClientConfig:
    """The given kubeconfig, else $KUBECONFIG (first entry), else in-cluster, else ~/.kube/config."""
    if kubeconfig:
        return config_from_kubeconfig(kubeconfig, context)
    env_path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if env_path:
        return config_from_kubeconfig(env_path, context)
    try:
        return config_in_cluster()
    except ConfigError:
        home = Path.home() / ".kube" / "config"
        if home.exists():
            return config_from_kubeconfig(home, context)
        raise


def ssl_context(config: ClientConfig) -> ssl.SSLContext | None:
    """None for plain http servers; otherwise verify with the cluster CA and present our client cert."""
    if not config.server.startswith("https"):
        return None
    ctx = ssl.create_default_context()
    if config.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif config.ca_data:
        ctx.load_verify_locations(cadata=config.ca_data.decode())
    if config.client_cert_data and config.client_key_data:
        # ssl only loads chains from files: write them to a private temp dir just long enough.
        with tempfile.TemporaryDirectory(prefix="knet-client-") as tmp:
            cert, key = Path(tmp, "client.crt"), Path(tmp, "client.key")
            cert.write_bytes(config.client_cert_data)
            key.touch(mode=0o600)
            key.write_bytes(config.client_key_data)
            ctx.load_cert_chain(cert, key)
    return ctx
