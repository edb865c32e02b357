"""The HTTPS port of kube-controller-manager (10257) and kube-scheduler (10259): /healthz,
/livez and /readyz answer `ok`, as kubeadm's liveness probes (`httpGet https://127.0.0.1:10257/healthz`)
and `curl -k https://127.0.0.1:10259/healthz` expect (issue #15 item 3).

Without --tls-cert-file (kubeadm passes none) upstream serves a self-signed certificate it makes
at start for `localhost` and the bind address, signed by a CA of its own ("localhost-ca@<unix
time>"); so does this. The health paths are in upstream's --authorization-always-allow-paths,
so they need no credentials; every other path is refused as upstream refuses the anonymous user.
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


def _ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
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
    return ctx


def health_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if request.method == "GET" and request.path in HEALTH_PATHS:
            return web.Response(text="ok", content_type="text/plain",
                                headers={"X-Content-Type-Options": "nosniff"})
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f'forbidden: User "system:anonymous" cannot {request.method.lower()} path '
                           f'"{request.path}"', "reason": "Forbidden", "details": {}, "code": 403}
        return web.json_response(body, status=403)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve_health(bind_address: str, port: int) -> web.AppRunner | None:
    """Serve the health paths over HTTPS on bind_address:port (port 0: not at all, as upstream's
    --secure-port=0). A port that cannot be bound is logged, not fatal: knet may run several
    simulated control planes on one host."""
    if port == 0:
        return None
    started = time.monotonic()
    cert, key = self_signed_serving_cert(bind_address)
    runner = web.AppRunner(health_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind_address, port, ssl_context=_ssl_context(cert, key)).start()
    except OSError as exc:
        log.error("unable to serve https://%s:%d/healthz: %s", bind_address, port, exc)
        await runner.cleanup()
        return None
    log.info('"Serving securely on %s:%d" (self-signed certificate, %.2fs)', bind_address, port,
             time.monotonic() - started)
    return runner
