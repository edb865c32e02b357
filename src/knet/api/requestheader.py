"""Request-header (front-proxy) authentication: kube-apiserver's --requestheader-* flags, as
upstream's k8s.io/apiserver/pkg/authentication/request/headerrequest and the x509 verifier
that wraps it.

A request whose TLS client certificate verifies against --requestheader-client-ca-file (its own
CA, NOT --client-ca-file's) and whose CN is in --requestheader-allowed-names (any CN when the list
is empty) is the user the proxy names: the first value of the first --requestheader-username-headers
header that has one, groups from every value of the --requestheader-group-headers, extra from the
headers starting with a --requestheader-extra-headers-prefix (key: the rest of the header name,
lowercased, %-unescaped). Without such a certificate, or without a user name header, the request
falls through to the other authenticators and the headers mean nothing. A certificate of the
request-header CA that is refused (a CN not allowed) is an authentication error: upstream's union
then answers 401 unless a later authenticator (a bearer token) succeeds.

Which CA a certificate verifies against: the TLS server trusts both CAs (upstream's serving
ClientCAs are their union) and OpenSSL builds the chain in the handshake; the chain's anchor (its
last certificate) says which CA it ends in (`verified_anchor`).
"""

from __future__ import annotations

import _ssl
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from knet.api.auth import User

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"


def trim_headers(names: Iterable[str]) -> tuple[str, ...]:
    """Header names as configured, trimmed; an empty one is an error (upstream's trimHeaders)."""
    out = []
    for name in names:
        trimmed = name.strip()
        if not trimmed:
            raise ValueError(f"empty header {name!r}")
        out.append(trimmed)
    return tuple(out)


def split_flag(value: str | None) -> tuple[str, ...]:
    """A comma-separated list flag (pflag's StringSlice): "" is the empty list."""
    return tuple(v for v in (value or "").split(",") if v != "")


@dataclass(frozen=True)
class RequestHeaderConfig:
    """kube-apiserver's --requestheader-client-ca-file, --requestheader-allowed-names,
    --requestheader-username-headers, --requestheader-group-headers and
    --requestheader-extra-headers-prefix."""

    client_ca_file: str
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ()
    extra_headers_prefix: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("username_headers", "group_headers", "extra_headers_prefix"):
            object.__setattr__(self, name, trim_headers(getattr(self, name)))


def _items(headers) -> list[tuple[str, str]]:
    """(name, value) of every header line, in order (a multidict's items(), or a list of pairs)."""
    return list(headers.items()) if hasattr(headers, "items") else list(headers)


def header_value(headers, names: Iterable[str]) -> str:
    """The first value of the first of `names` whose first value is not empty (Go's
    Header.Get per name, in order; names case-insensitive)."""
    items = _items(headers)
    for name in names:
        wanted = name.lower()
        first = next((v for k, v in items if k.lower() == wanted), "")
        if first:
            return first
    return ""


def all_header_values(headers, names: Iterable[str]) -> list[str]:
    """Every non-empty value of every one of `names`, header by header."""
    items = _items(headers)
    out: list[str] = []
    for name in names:
        wanted = name.lower()
        out += [v for k, v in items if k.lower() == wanted and v]
    return out


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unescape_extra_key(encoded: str) -> str:
    """%-decoded as Go's url.PathUnescape; a malformed escape keeps the key as it came ("always
    record extra strings, even if malformed/unencoded")."""
    if _BAD_ESCAPE.search(encoded):
        return encoded
    return unquote(encoded, errors="replace")


def extra_from_headers(headers, prefixes: Iterable[str]) -> dict[str, list[str]]:
    """Extra: for each prefix in order, every header starting with it (case-insensitively), key =
    the rest of its name lowercased and unescaped, all its values appended."""
    items = _items(headers)
    out: dict[str, list[str]] = {}
    for prefix in prefixes:
        n = len(prefix)
        for name, value in items:
            if len(name) >= n and name[:n].lower() == prefix.lower():
                out.setdefault(unescape_extra_key(name[n:].lower()), []).append(value)
    return out


def with_authenticated_group(name: str, groups: list[str]) -> tuple[str, ...]:
    """Upstream's AuthenticatedGroupAdder: system:authenticated is added unless the user is
    system:anonymous or already in system:authenticated/system:unauthenticated."""
    if name == ANONYMOUS or AUTHENTICATED in groups or UNAUTHENTICATED in groups:
        return tuple(groups)
    return (*groups, AUTHENTICATED)


def user_from_headers(headers, config: RequestHeaderConfig) -> User | None:
    """The user the proxy's headers name, or None when no username header has a value."""
    name = header_value(headers, config.username_headers)
    if not name:
        return None
    groups = all_header_values(headers, config.group_headers)
    extra = extra_from_headers(headers, config.extra_headers_prefix)
    return User(name, "", with_authenticated_group(name, groups), extra)


def subject_error(common_name: str, allowed: Iterable[str]) -> str:
    """Upstream's verifySubject: any CN when `allowed` is empty, else one of them."""
    allowed = tuple(allowed)
    if not allowed or common_name in allowed:
        return ""
    return f"x509: subject with cn={common_name} is not in the allowed list"


def ca_certificates_der(pem_file: str | Path) -> frozenset[bytes]:
    """The DER of every certificate in a PEM bundle."""
    text = Path(pem_file).read_text()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not blocks:
        raise ValueError(f"no certificate in {pem_file}")
    return frozenset(ssl.PEM_cert_to_DER_cert(b) for b in blocks)


def verified_anchor(ssl_object) -> bytes | None:
    """The DER of the trust anchor the handshake verified the peer's chain to (None: no
    verified client certificate). Python 3.13 has SSLObject.get_verified_chain(); 3.10-3.12 have
    it on the underlying _ssl object."""
    get = getattr(ssl_object, "get_verified_chain", None)
    if get is None:
        get = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if get is None:
        raise RuntimeError("this Python's ssl cannot tell which CA verified a client certificate")
    chain = get() or []
    if not chain:
        return None
    last = chain[-1]
    return last if isinstance(last, bytes) else last.public_bytes(_ssl.ENCODING_DER)


def common_name(peercert: dict | None) -> str:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return ""


@dataclass(frozen=True)
class ProxyCertificate:
    """What a connection's client certificate is to the request-header authenticator:
    `verified` (it chains to the request-header CA) and, if so, `error` ("" = an allowed CN)."""

    verified: bool
    error: str = ""

    @property
    def allowed(self) -> bool:
        return self.verified and not self.error


NOT_A_PROXY = ProxyCertificate(False)


class RequestHeaderAuthenticator:
    """kube-apiserver's request-header authenticator for one configuration."""

    def __init__(self, config: RequestHeaderConfig) -> None:
        self.config = config
        self.ca_der = ca_certificates_der(config.client_ca_file)

    def check_certificate(self, anchor: bytes | None, peercert: dict | None) -> ProxyCertificate:
        """A connection's certificate: does it verify against the request-header CA, with an
        allowed CN? (Once per connection: a TLS connection's certificate never changes.)"""
        if anchor is None or anchor not in self.ca_der:
            return NOT_A_PROXY
        return ProxyCertificate(True, subject_error(common_name(peercert), self.config.allowed_names))

    def authenticate(self, proxy: ProxyCertificate, headers) -> User | None:
        """The user of a request over a connection whose certificate is `proxy`: None when the
        certificate is not an allowed proxy's or the headers name no user (fall through)."""
        if not proxy.allowed:
            return None
        return user_from_headers(headers, self.config)


class ClientCertificates:
    """Who a connection's verified client certificate is, with request-header authentication on:
    the x509 user when it chains to --client-ca-file (upstream's x509 authenticator verifies
    against that CA only, so a request-header CA certificate is no user of its own), and what it
    is to the request-header authenticator."""

    def __init__(self, client_ca_file: str | None, requestheader: RequestHeaderAuthenticator) -> None:
        self.client_ca_der = ca_certificates_der(client_ca_file) if client_ca_file else frozenset()
        self.requestheader = requestheader

    def identify(self, ssl_object, user_from_peercert) -> tuple[User | None, ProxyCertificate]:
        peercert = ssl_object.getpeercert()
        anchor = verified_anchor(ssl_object)
        user = user_from_peercert(peercert) if anchor is not None and anchor in self.client_ca_der else None
        return user, self.requestheader.check_certificate(anchor, peercert)


def load_key_pair(cert_file: str, key_file: str) -> None:
    """Check that a certificate and key file are a pair (as Go's tls.LoadX509KeyPair at start);
    ValueError says why not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"unable to load {cert_file} and {key_file}: {exc}") from None
