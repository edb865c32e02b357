"""The HTTPS port of kube-controller-manager (10257) and kube-scheduler (10259): /healthz,
/livez and /readyz answer `ok`, as kubeadm's liveness probes (`httpGet https://127.0.0.1:10257/healthz`)
and `curl -k https://127.0.0.1:10259/healthz` expect (issue #15 item 3).

Without --tls-cert-file (kubeadm passes none) upstream serves a self-signed certificate it makes
at start for `localhost` and the bind address, signed by a CA of its own ("localhost-ca@<unix
time>"); so does this. The health paths are in upstream's --authorization-always-allow-paths,
so they need no credentials; every other path is refused as upstream refuses the anonymous user.

With --client-ca-file and --requestheader-client-ca-file (kubeadm passes both to
kube-controller-manager) callers are authenticated as upstream's delegated authentication does
with those flags: a client certificate of the client CA is its CN/O user, one of the front-proxy
CA is the user its X-Remote-User/X-Remote-Group/X-Remote-Extra- headers name (the request-header
defaults; any CN, as no --requestheader-allowed-names is given), another certificate is refused
(401). system:masters is always allowed (upstream's --authorization-always-allow-groups) and gets
404 for paths knet does not serve; anyone else is refused by name (403). Bearer tokens are not
reviewed (no TokenReview/SubjectAccessReview delegation): such a caller is anonymous.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
import time

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from knet.api.auth import User, user_from_peercert
from knet.api.requestheader import (
    ClientCertificates,
    RequestHeaderAuthenticator,
    RequestHeaderConfig,
)

log = logging.getLogger("knet.secureserving")

CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")


def self_signed_serving_cert(host: str, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate chain PEM, key PEM): a serving certificate for localhost and `host`, signed
    by a fresh CA, as client-go's GenerateSelfSignedCertKey makes them (valid a year)."""
    now = now or dt.datetime.now(dt.UTC)
    stamp = int(now.timestamp())
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"localhost-ca@{stamp}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"localhost@{stamp}")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, key_pem


ANONYMOUS = User("system:anonymous", "", ("system:unauthenticated",))
# upstream's DelegatingAuthenticationOptions defaults for the request headers
DEFAULT_REQUESTHEADER = dict(username_headers=("X-Remote-User",), group_headers=("X-Remote-Group",),
                             extra_headers_prefix=("X-Remote-Extra-",))


class DelegatedAuthentication:
    """Who calls the health port: --client-ca-file's certificates and --requestheader-client-ca-file's
    front proxy (knet.api.requestheader), as upstream's delegating authenticator with those flags."""

    def __init__(self, client_ca_file: str | None, requestheader_client_ca_file: str | None) -> None:
        self.ca_files = [f for f in (client_ca_file, requestheader_client_ca_file) if f]
        self.requestheader = (RequestHeaderAuthenticator(RequestHeaderConfig(requestheader_client_ca_file,
                                                                             **DEFAULT_REQUESTHEADER))
                              if requestheader_client_ca_file else None)
        self.certificates = ClientCertificates(client_ca_file, self.requestheader) if self.requestheader else None

    def authenticate(self, request: web.Request) -> User | None:
        """The caller, or None: a certificate that is no one's (401)."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None or ssl_object.getpeercert(binary_form=True) is None:
            return ANONYMOUS
        if self.certificates is None:
            return user_from_peercert(ssl_object.getpeercert())
        user, proxy = self.certificates.identify(ssl_object, user_from_peercert)
        proxied = self.requestheader.authenticate(proxy, request.headers)
        return proxied if proxied is not None else user


def _ssl_context(cert_pem: bytes, key_pem: bytes, ca_files: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads certificates from files only: a private temporary directory, gone at once.
    with tempfile.TemporaryDirectory(prefix="knet-serving-") as tmp:
        cert_file, key_file = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key_pem)
        with open(cert_file, "wb") as f:
            f.write(cert_pem)
        ctx.load_cert_chain(cert_file, key_file)
    for ca_file in ca_files or ():
        ctx.load_verify_locations(ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "details": {}, "code": code}, status=code)


def health_app(authn: DelegatedAuthentication | None = None) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        user = authn.authenticate(request) if authn is not None else ANONYMOUS
        if user is None:
            return _status(401, "Unauthorized", "Unauthorized")
        if request.method == "GET" and request.path in HEALTH_PATHS:
            return web.Response(text="ok", content_type="text/plain",
                                headers={"X-Content-Type-Options": "nosniff"})
        if "system:masters" in user.groups:
            return web.Response(status=404, text="404 page not found\n", content_type="text/plain")
        return _status(403, "Forbidden", f'forbidden: User "{user.name}" cannot {request.method.lower()} path '
                                         f'"{request.path}"')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve_health(bind_address: str, port: int,
                       authn: DelegatedAuthentication | None = None) -> web.AppRunner | None:
    """Serve the health paths over HTTPS on bind_address:port (port 0: not at all, as upstream's
    --secure-port=0). A port that cannot be bound is logged, not fatal: knet may run several
    simulated control planes on one host."""
    if port == 0:
        return None
    started = time.monotonic()
    cert, key = self_signed_serving_cert(bind_address)
    runner = web.AppRunner(health_app(authn), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind_address, port, ssl_context=_ssl_context(cert, key, authn.ca_files if authn else None)).start()
    except OSError as exc:
        log.error("unable to serve https://%s:%d/healthz: %s", bind_address, port, exc)
        await runner.cleanup()
        return None
    log.info('"Serving securely on %s:%d" (self-signed certificate, %.2fs)', bind_address, port,
             time.monotonic() - started)
    return runner
