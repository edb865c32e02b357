"""Service-account JWTs (RS256) as kube-apiserver issues and checks them.

Pure logic, no I/O: `claims` builds what TokenRequest signs (upstream pkg/serviceaccount/claims.go:
iss, sub, aud, exp, iat, nbf, jti and the `kubernetes.io` private claim naming the namespace, the
service account and the bound pod (with its node) or secret, plus `warnafter` for extended
kubelet tokens); `TokenVerifier` checks a token's signature and issuer (jwt.go); `validate`
checks the rest (jwt.go's audience intersection, claims.go's Validate: expiry with go-jose's 60 s
leeway, and that the service account and bound objects still exist with the claimed uids), with
the objects looked up through a getter so the caller decides where they come from. Legacy
Secret-based tokens (issuer `kubernetes/serviceaccount`, upstream legacy.go) are checked by
`validate_legacy`."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

# upstream pkg/serviceaccount/claims.go
WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS = 60 * 60 + 7  # what the kubelet asks for its projected tokens
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60
LEEWAY_SECONDS = 60  # go-jose's jwt.DefaultLeeway, used for exp/nbf/iat and for deletions
LEGACY_ISSUER = "kubernetes/serviceaccount"
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 2 ** 32

# k8s.io/apiserver/pkg/authentication/serviceaccount/util.go: keys of UserInfo.extra
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"

# legacy Secret-token claims (upstream pkg/serviceaccount/legacy.go)
LEGACY_NAMESPACE = "kubernetes.io/serviceaccount/namespace"
LEGACY_SA_NAME = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_SA_UID = "kubernetes.io/serviceaccount/service-account.uid"
LEGACY_SECRET_NAME = "kubernetes.io/serviceaccount/secret.name"

Getter = Callable[[str, str, str], "dict | None"]  # (resource, namespace, name) -> object or None


class TokenError(Exception):
    """Why a token is not accepted (upstream's error text; TokenReview shows it)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _ref(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    ref = {"name": meta.get("name", "")}
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    return ref


def claims(*, sa: dict, audiences: list[str], expiration_seconds: int, now: int, issuer: str,
           pod: dict | None = None, secret: dict | None = None, node: dict | None = None, warn_after: int = 0,
           jti: str | None = None) -> dict:
    """The JWT claims of a bound token (upstream claims.go Claims): a pod-bound token also names
    the pod's node (ServiceAccountTokenPodNodeInfo, on since 1.30)."""
    meta = sa["metadata"]
    private: dict = {"namespace": meta.get("namespace", ""), "serviceaccount": _ref(sa)}
    if pod is not None and secret is not None:
        raise ValueError("a token can only be bound to one object")
    if pod is not None:
        private["pod"] = _ref(pod)
        if node is not None:
            private["node"] = _ref(node)
    elif secret is not None:
        private["secret"] = _ref(secret)
    if warn_after:
        private["warnafter"] = now + warn_after
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer,
            "jti": jti or str(uuid.uuid4()), "kubernetes.io": private, "nbf": now,
            "sub": username(meta.get("namespace", ""), meta.get("name", ""))}


def legacy_claims(sa: dict, secret: dict) -> dict:
    """The claims of a Secret-based token (upstream legacy.go LegacyClaims): no audience, no expiry."""
    sa_meta, secret_meta = sa["metadata"], secret["metadata"]
    ns = sa_meta.get("namespace", "")
    return {"iss": LEGACY_ISSUER, LEGACY_NAMESPACE: ns, LEGACY_SECRET_NAME: secret_meta.get("name", ""),
            LEGACY_SA_NAME: sa_meta.get("name", ""), LEGACY_SA_UID: sa_meta.get("uid", ""),
            "sub": username(ns, sa_meta.get("name", ""))}


class TokenSigner:
    def __init__(self, private_key_pem: bytes, issuer: str) -> None:
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        pub = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        # kube-apiserver's key id: base64url(sha256(DER public key)).
        digest = hashes.Hash(hashes.SHA256())
        digest.update(pub)
        self.key_id = _b64(digest.finalize())
        self.issuer = issuer

    def sign(self, payload: dict) -> str:
        header = {"alg": "RS256", "kid": self.key_id}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}".encode()
        sig = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(sig)}"

    def issue(self, *, namespace: str, sa_name: str, sa_uid: str, audiences: list[str], expiration_seconds: int,
              bound: dict | None = None) -> tuple[str, int]:
        """A token for an account known by name and uid; returns (token, expiry unix time)."""
        sa = {"metadata": {"namespace": namespace, "name": sa_name, "uid": sa_uid}}
        pod = secret = None
        if bound and bound.get("kind") == "Pod":
            pod = {"metadata": {"name": bound.get("name", ""), "uid": bound.get("uid", "")}}
        elif bound and bound.get("kind") == "Secret":
            secret = {"metadata": {"name": bound.get("name", ""), "uid": bound.get("uid", "")}}
        payload = claims(sa=sa, audiences=audiences, expiration_seconds=expiration_seconds, now=int(time.time()),
                         issuer=self.issuer, pod=pod, secret=secret)
        return self.sign(payload), payload["exp"]


class TokenVerifier:
    """Signature and issuer (upstream jwt.go: hasCorrectIssuer, then the keys in turn)."""

    def __init__(self, public_key_pems: list[bytes], issuers: Iterable[str]) -> None:
        self._keys = []
        for pem in public_key_pems:
            try:
                self._keys.append(serialization.load_pem_public_key(pem))
            except ValueError:
                self._keys.append(serialization.load_pem_private_key(pem, password=None).public_key())
        self.issuers = frozenset(issuers)

    def verify(self, token: str) -> dict | None:
        """The claims of a token signed by one of our keys for one of our issuers, else None
        (not a token of ours: other authenticators may know it). Times are `validate`'s job."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = orjson.loads(_unb64(parts[0]))
            payload = orjson.loads(_unb64(parts[1]))
            sig = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(header, dict) or not isinstance(payload, dict) or header.get("alg") != "RS256":
            return None
        if payload.get("iss") not in self.issuers:
            return None
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        for key in self._keys:
            try:
                key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
                return payload
            except (InvalidSignature, TypeError, AttributeError, ValueError):
                continue
        return None


@dataclass(frozen=True)
class ServiceAccountInfo:
    """Who a valid token speaks for (upstream serviceaccount.ServiceAccountInfo)."""
    namespace: str
    name: str
    uid: str
    pod_name: str = ""
    pod_uid: str = ""
    node_name: str = ""
    node_uid: str = ""
    credential_id: str = ""
    audiences: tuple[str, ...] = ()  # the intersection with the requested audiences

    @property
    def username(self) -> str:
        return username(self.namespace, self.name)

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}")

    @property
    def extra(self) -> dict[str, list[str]]:
        """UserInfo.extra as upstream's ServiceAccountInfo.UserInfo fills it."""
        extra: dict[str, list[str]] = {}
        if self.pod_name and self.pod_uid:
            extra[POD_NAME_KEY] = [self.pod_name]
            extra[POD_UID_KEY] = [self.pod_uid]
        if self.credential_id:
            extra[CREDENTIAL_ID_KEY] = [self.credential_id]
        if self.node_name:
            extra[NODE_NAME_KEY] = [self.node_name]
            if self.node_uid:
                extra[NODE_UID_KEY] = [self.node_uid]
        return extra


def _timestamp(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _deleted_before(obj: dict, cutoff: float) -> bool:
    when = _timestamp((obj.get("metadata") or {}).get("deletionTimestamp"))
    return when is not None and when.timestamp() < cutoff


def _str_ref(value: object) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TokenError("service account token claims could not be validated due to unexpected private claim")
    return value


def _uid(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("uid", "")


def audiences_of(payload: dict) -> list[str]:
    aud = payload.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


def check_audiences(payload: dict, api_audiences: Iterable[str], requested: Iterable[str] | None = None) -> tuple[str, ...]:
    """jwt.go: the token's audiences (the apiserver's for a token with none) intersected with the
    requested ones (default: the apiserver's); an empty intersection is refused."""
    api = list(api_audiences)
    token_auds = audiences_of(payload) or api
    wanted = list(requested) if requested else api
    both = tuple(a for a in token_auds if a in wanted)
    if not both and api:
        raise TokenError(f"token audiences {_go_quote(token_auds)} is invalid for the target audiences "
                         f"{_go_quote(wanted)}")
    return both


def _go_quote(values: list[str]) -> str:
    return "[" + " ".join(orjson.dumps(v).decode() for v in values) + "]"


def _check_times(payload: dict, now: float) -> None:
    """go-jose Claims.Validate with DefaultLeeway (claims.go maps its errors to these)."""
    def number(key: str) -> float | None:
        value = payload.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TokenError("service account token claims could not be validated due to unexpected validation error")
        return float(value)

    nbf, exp, iat = number("nbf"), number("exp"), number("iat")
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise TokenError("service account token is not valid yet")
    if exp is not None and now - LEEWAY_SECONDS > exp:
        raise TokenError("service account token has expired")
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise TokenError("service account token is issued in the future")


def validate(payload: dict, get: Getter, *, api_audiences: Iterable[str], requested_audiences: Iterable[str] | None = None,
             now: float | None = None) -> ServiceAccountInfo:
    """A bound token's claims (signature and issuer already checked) -> who it speaks for, or
    TokenError. Port of upstream jwt.go's audience check and claims.go's validator.Validate."""
    now = time.time() if now is None else now
    auds = check_audiences(payload, api_audiences, requested_audiences)
    if payload.get("exp") is None:
        # A bound token always expires; one without exp is not ours (legacy tokens have their own issuer).
        raise TokenError("service account token claims could not be validated due to unexpected validation error")
    _check_times(payload, now)
    private = payload.get("kubernetes.io")
    if not isinstance(private, dict):
        raise TokenError("service account token claims could not be validated due to unexpected private claim")
    cutoff = now - LEEWAY_SECONDS  # things deleted before now-leeway are gone
    namespace = private.get("namespace") or ""
    saref = _str_ref(private.get("serviceaccount")) or {}
    podref = _str_ref(private.get("pod"))
    secref = _str_ref(private.get("secret"))
    noderef = _str_ref(private.get("node"))
    sa_name = saref.get("name") or ""
    if not isinstance(namespace, str) or not isinstance(sa_name, str) or not namespace or not sa_name:
        raise TokenError("service account token claims could not be validated due to unexpected private claim")
    sa = get("serviceaccounts", namespace, sa_name)
    if sa is None:
        raise TokenError(f'serviceaccounts "{sa_name}" not found')
    if _uid(sa) != saref.get("uid"):
        raise TokenError(f"service account UID ({_uid(sa)}) does not match claim ({saref.get('uid', '')})")
    if _deleted_before(sa, cutoff):
        raise TokenError(f"service account {namespace}/{sa_name} has been deleted")
    if secref is not None:
        secret = get("secrets", namespace, secref.get("name") or "")
        if secret is None:
            raise TokenError("service account token has been invalidated")
        if secref.get("uid") != _uid(secret):
            raise TokenError(f"secret UID ({_uid(secret)}) does not match service account secret ref claim "
                             f"({secref.get('uid', '')})")
        if _deleted_before(secret, cutoff):
            raise TokenError("service account token has been invalidated")
    pod_name = pod_uid = node_name = node_uid = ""
    if podref is not None:
        pod = get("pods", namespace, podref.get("name") or "")
        if pod is None:
            raise TokenError("service account token has been invalidated")
        if podref.get("uid") != _uid(pod):
            raise TokenError(f"pod UID ({_uid(pod)}) does not match service account pod ref claim "
                             f"({podref.get('uid', '')})")
        if _deleted_before(pod, cutoff):
            raise TokenError("service account token has been invalidated")
        pod_name, pod_uid = podref.get("name", ""), podref.get("uid", "")
        if noderef is not None:
            node_name, node_uid = noderef.get("name", ""), noderef.get("uid", "")
    elif noderef is not None:
        # A node-bound token (ServiceAccountTokenNodeBindingValidation): knet does not issue
        # them, but checks them as upstream does.
        node = get("nodes", "", noderef.get("name") or "")
        if node is None:
            raise TokenError("service account token has been invalidated")
        if noderef.get("uid") != _uid(node):
            raise TokenError(f"node UID ({_uid(node)}) does not match service account node ref claim "
                             f"({noderef.get('uid', '')})")
        if _deleted_before(node, cutoff):
            raise TokenError("service account token has been invalidated")
        node_name, node_uid = noderef.get("name", ""), noderef.get("uid", "")
    jti = payload.get("jti")
    return ServiceAccountInfo(namespace=namespace, name=sa_name, uid=saref.get("uid", ""), pod_name=pod_name,
                              pod_uid=pod_uid, node_name=node_name, node_uid=node_uid,
                              credential_id=f"JTI={jti}" if isinstance(jti, str) and jti else "",
                              audiences=auds)


def validate_legacy(payload: dict, token: str, get: Getter, *, api_audiences: Iterable[str],
                    requested_audiences: Iterable[str] | None = None) -> ServiceAccountInfo:
    """A Secret-based token (upstream legacy.go Validate): valid while its Secret (holding this
    very token) and its service account (with the claimed uid) exist and are not being deleted."""
    auds = check_audiences(payload, api_audiences, requested_audiences)
    namespace, sa_name = payload.get(LEGACY_NAMESPACE), payload.get(LEGACY_SA_NAME)
    secret_name, sa_uid = payload.get(LEGACY_SECRET_NAME), payload.get(LEGACY_SA_UID)
    if not all(isinstance(v, str) and v for v in (namespace, sa_name, secret_name, sa_uid)):
        raise TokenError("namespace, service-account.name, secret.name and service-account.uid claims are required")
    if payload.get("sub") != username(namespace, sa_name):
        raise TokenError("sub claim is invalid")
    secret = get("secrets", namespace, secret_name)
    if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
        raise TokenError("token has been invalidated")
    stored = ((secret.get("data") or {}).get("token")) or ""
    try:
        stored_token = base64.b64decode(stored).decode()
    except (ValueError, UnicodeDecodeError):
        stored_token = ""
    if stored_token != token:
        raise TokenError("token does not match the token in its secret")
    sa = get("serviceaccounts", namespace, sa_name)
    if sa is None or (sa.get("metadata") or {}).get("deletionTimestamp"):
        raise TokenError("service account has been deleted" if sa is not None else f'serviceaccounts "{sa_name}" not found')
    if _uid(sa) != sa_uid:
        raise TokenError(f"service account UID ({_uid(sa)}) does not match claim ({sa_uid})")
    return ServiceAccountInfo(namespace=namespace, name=sa_name, uid=sa_uid, audiences=auds)


# --- TokenRequest (upstream pkg/registry/core/serviceaccount/storage/token.go) --------------------

@dataclass(frozen=True)
class TokenPolicy:
    """The apiserver's token settings: --api-audiences, --service-account-max-token-expiration,
    --service-account-extend-token-expiration."""
    audiences: tuple[str, ...]
    max_expiration_seconds: int = 0  # 0: no cap
    extend_expiration: bool = True

    def lifetime(self, requested_seconds: int, *, pod_bound: bool, audiences: Iterable[str]) -> tuple[int, int, int]:
        """(expirationSeconds as the response says it, the token's real lifetime, warnafter):
        capped at the maximum; a kubelet's pod-bound token for the apiserver's own audiences
        (exactly 3607 s) lives a year and warns after the requested time, so the kubelet still
        refreshes it on schedule while clients that never reload the file keep working."""
        seconds = requested_seconds
        if self.max_expiration_seconds > 0 and seconds > self.max_expiration_seconds:
            seconds = self.max_expiration_seconds
        if (self.extend_expiration and pod_bound and seconds == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
                and set(audiences) <= set(self.audiences)):
            return seconds, EXPIRATION_EXTENSION_SECONDS, seconds
        return seconds, seconds, 0
