"""Authentication: client certificates (CN = user, O = groups), static bearer tokens
(--token-auth-file) and service-account JWTs (knet.api.tokens), checked as kube-apiserver does:
issuer, signature, audience, expiry, and that the account and the objects the token is bound to
still exist with the uids it names."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from knet.api.tokens import (
    LEGACY_ISSUER,
    Getter,
    ServiceAccountInfo,
    TokenError,
    TokenVerifier,
    validate,
    validate_legacy,
)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version"})


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def read_token_file(text: str) -> dict[str, User]:
    """CSV `token,user,uid,"group1,group2"` (kube-apiserver's --token-auth-file)."""
    out: dict[str, User] = {}
    for rec in csv.reader(io.StringIO(text)):
        if not rec or not rec[0].strip() or rec[0].startswith("#"):
            continue
        if len(rec) < 3:
            raise ValueError(f"token file line needs at least 3 columns: {rec!r}")
        groups = tuple(g.strip() for g in rec[3].split(",") if g.strip()) if len(rec) > 3 else ()
        out[rec[0].strip()] = User(rec[1].strip(), rec[2].strip(), groups + ("system:authenticated",))
    return out


def user_from_peercert(cert: dict | None) -> User | None:
    """ssl's getpeercert() dict -> User (already verified against the client CA)."""
    if not cert:
        return None
    cn, orgs = None, []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, "", tuple(orgs) + ("system:authenticated",))


def store_getter(store) -> Getter:
    """(resource, namespace, name) -> the stored object or None, for token validation."""
    def get(resource: str, namespace: str, name: str) -> dict | None:
        entry = store.get(resource, namespace, name)
        return entry.obj if entry is not None else None
    return get


def service_account_user(info: ServiceAccountInfo) -> User:
    return User(info.username, info.uid, info.groups + ("system:authenticated",), info.extra)


@dataclass(frozen=True)
class TokenResult:
    """What authenticating a bearer token found: the user (None: refused), the audiences it is
    good for, and why it was refused."""
    user: User | None
    audiences: tuple[str, ...] = ()
    error: str = ""


class Authenticator:
    """Bearer tokens: the static token file's, then service-account JWTs (bound ones of
    --service-account-issuer, legacy Secret ones of `kubernetes/serviceaccount`), checked against
    the stored ServiceAccounts, Pods and Secrets that `objects` looks up."""

    _CACHE_SIZE = 4096

    def __init__(self, tokens: dict[str, User] | None = None, sa_verifier: TokenVerifier | None = None, *,
                 objects: Getter | None = None, api_audiences: tuple[str, ...] | list[str] = ()) -> None:
        self._tokens = tokens or {}
        self._sa = sa_verifier
        self._objects = objects or (lambda resource, namespace, name: None)
        # --api-audiences; kube-apiserver defaults them to the service-account issuer(s).
        self.api_audiences = tuple(api_audiences) or tuple(
            i for i in (sa_verifier.issuers if sa_verifier else ()) if i != LEGACY_ISSUER)
        # A token's signature is checked once: RSA verification costs more than the rest of a GET.
        # The claims' times and the objects they name are checked on every request.
        self._verified: dict[str, dict | None] = {}

    def _claims(self, token: str) -> dict | None:
        try:
            return self._verified[token]
        except KeyError:
            pass
        payload = self._sa.verify(token) if self._sa is not None else None
        if len(self._verified) >= self._CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = payload
        return payload

    def review(self, token: str, audiences: list[str] | tuple[str, ...] | None = None) -> TokenResult:
        """Authenticate a bearer token for the requested audiences (default: the apiserver's)."""
        user = self._tokens.get(token)
        if user is not None:
            # The token file is audience-agnostic: good for the apiserver's own audiences only
            # (upstream authenticator.WrapAudienceAgnosticToken).
            wanted = tuple(audiences) if audiences else self.api_audiences
            both = tuple(a for a in wanted if a in self.api_audiences) if self.api_audiences else wanted
            if audiences and self.api_audiences and not both:
                return TokenResult(None, (), "token audiences are not valid for the target audiences")
            return TokenResult(user, both)
        payload = self._claims(token) if token.count(".") == 2 else None
        if payload is None:
            return TokenResult(None, (), "invalid bearer token")
        try:
            if payload.get("iss") == LEGACY_ISSUER:
                info = validate_legacy(payload, token, self._objects, api_audiences=self.api_audiences,
                                       requested_audiences=audiences)
            else:
                info = validate(payload, self._objects, api_audiences=self.api_audiences,
                                requested_audiences=audiences)
        except TokenError as exc:
            return TokenResult(None, (), f"invalid bearer token, {exc}")
        return TokenResult(service_account_user(info), info.audiences)

    def from_bearer(self, token: str) -> User | None:
        return self.review(token).user

    def authenticate(self, authorization: str | None, peercert: dict | None) -> User | None:
        user = user_from_peercert(peercert)
        if user is not None:
            return user
        if authorization and authorization[:7].lower() == "bearer ":
            return self.from_bearer(authorization[7:].strip())
        return None
