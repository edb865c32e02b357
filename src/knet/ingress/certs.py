"""Certificates for the HTTPS listener: a TLS Secret's tls.crt/tls.key as an SSLContext, and the
self-signed "Kubernetes Ingress Controller Fake Certificate" ingress-nginx serves for hosts
without a usable Secret."""

from __future__ import annotations

import base64
import datetime
import os
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"


class CertificateError(ValueError):
    pass


def context_from_pem(cert: bytes, key: bytes) -> ssl.SSLContext:
    """A server context holding this certificate chain and key (ssl reads them from files only:
    a private temporary directory, removed at once)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # ingress-nginx's ssl-protocols: TLSv1.2 TLSv1.3
    ctx.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="knet-ingress-") as d:
        cpath, kpath = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        with open(cpath, "wb") as f:
            f.write(cert)
        try:
            ctx.load_cert_chain(cpath, kpath)
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(f"invalid certificate or key: {exc}") from exc
    return ctx


def context_from_secret(secret: dict) -> ssl.SSLContext:
    """A Secret of type kubernetes.io/tls (or any with tls.crt and tls.key) -> its context."""
    data = secret.get("data") or {}
    if "tls.crt" not in data or "tls.key" not in data:
        raise CertificateError("secret has no tls.crt and tls.key")
    try:
        cert, key = base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])
    except ValueError as exc:
        raise CertificateError(f"secret data is not base64: {exc}") from exc
    return context_from_pem(cert, key)


def fake_certificate() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a fresh self-signed certificate named as ingress-nginx's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
                      x509.NameAttribute(NameOID.COMMON_NAME, FAKE_CN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
