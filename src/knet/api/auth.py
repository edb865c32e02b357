"""Authentication: client certificates (CN = user, O = groups), static bearer tokens
(--token-auth-file) and service-account JWTs (knet.api.tokens), checked as kube-apiserver does:
issuer, signature, audience, expiry, and that the account and the objects the token is bound to
still exist with the uids it names."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field

from knet.api.tokens import (
    LEEWAY_SECONDS,
    LEGACY_ISSUER,
    LEGACY_NAMESPACE,
    LEGACY_SA_NAME,
    LEGACY_SECRET_NAME,
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


def _bound_refs(payload: dict) -> list[tuple[str, str, str]]:
    """(resource, namespace, name) of every object a service-account token's validity rests on."""
    if payload.get("iss") == LEGACY_ISSUER:
        ns = payload.get(LEGACY_NAMESPACE, "")
        return [("serviceaccounts", ns, payload.get(LEGACY_SA_NAME, "")),
                ("secrets", ns, payload.get(LEGACY_SECRET_NAME, ""))]
    private = payload.get("kubernetes.io") or {}
    ns = private.get("namespace", "")
    refs = [("serviceaccounts", ns, (private.get("serviceaccount") or {}).get("name", ""))]
    for key, resource in (("pod", "pods"), ("secret", "secrets")):
        if private.get(key):
            refs.append((resource, ns, private[key].get("name", "")))
    if private.get("node") and not private.get("pod"):
        refs.append(("nodes", "", private["node"].get("name", "")))
    return refs


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
        self._accepted: dict[str, tuple[tuple, float, TokenResult]] = {}

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
        result = TokenResult(service_account_user(info), info.audiences)
        if audiences is None:
            self._remember(token, payload, result)
        return result

    def _remember(self, token: str, payload: dict, result: TokenResult) -> None:
        """Keep an accepted token with the very stored objects it was checked against: while
        those are unchanged (stored objects are replaced, never mutated) and it has not expired,
        it stays valid, and a request needs a few lookups instead of the whole validation.
        Objects being deleted are not remembered (their validity runs out with the clock)."""
        refs = []
        for resource, ns, name in _bound_refs(payload):
            obj = self._objects(resource, ns, name)
            if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
                return
            refs.append((resource, ns, name, obj))
        exp = payload.get("exp")
        valid_until = float(exp) + LEEWAY_SECONDS if isinstance(exp, int | float) else float("inf")
        if len(self._accepted) >= self._CACHE_SIZE:
            self._accepted.clear()
        self._accepted[token] = (tuple(refs), valid_until, result)

    def _remembered(self, token: str) -> TokenResult | None:
        hit = self._accepted.get(token)
        if hit is None:
            return None
        refs, valid_until, result = hit
        if time.time() > valid_until or any(self._objects(r, ns, n) is not obj for r, ns, n, obj in refs):
            del self._accepted[token]
            return None
        return result

    def from_bearer(self, token: str) -> User | None:
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered.user
        return self.review(token).user

    def authenticate(self, authorization: str | None, peercert: dict | None) -> User | None:
        user = user_from_peercert(peercert)
        if user is not None:
            return user
        if authorization and authorization[:7].lower() == "bearer ":
            return self.from_bearer(authorization[7:].strip())
        return None
