"""Authentication: client certificates (CN = user, O = groups), static bearer tokens
(--token-auth-file) and service-account JWTs. Every authenticated user may do everything
(knet has no RBAC); anonymous requests get 401 except on the health and version paths."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from knet.api.tokens import TokenVerifier

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


class Authenticator:
    def __init__(self, tokens: dict[str, User] | None = None, sa_verifier: TokenVerifier | None = None) -> None:
        self._tokens = tokens or {}
        self._sa = sa_verifier

    def from_bearer(self, token: str) -> User | None:
        user = self._tokens.get(token)
        if user is not None:
            return user
        if self._sa is not None:
            claims = self._sa.verify(token)
            if claims is not None:
                kube = claims.get("kubernetes.io") or {}
                ns = kube.get("namespace", "")
                sa = kube.get("serviceaccount") or {}
                return User(claims.get("sub", ""), sa.get("uid", ""),
                            ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"))
        return None

    def authenticate(self, authorization: str | None, peercert: dict | None) -> User | None:
        user = user_from_peercert(peercert)
        if user is not None:
            return user
        if authorization and authorization[:7].lower() == "bearer ":
            return self.from_bearer(authorization[7:].strip())
        return None
