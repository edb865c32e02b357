"""Bound service-account tokens: claims, validation (upstream pkg/serviceaccount/claims_test.go's
TestValidatePrivateClaims table, ported), audiences (jwt.go), the TokenRequest lifetime policy
(storage/token.go) and the Authenticator over all of it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from knet.api.auth import Authenticator
from knet.api.tokens import (
    EXPIRATION_EXTENSION_SECONDS,
    TokenError,
    TokenPolicy,
    TokenSigner,
    TokenVerifier,
    claims,
    legacy_claims,
    validate,
)
from knet.cluster.pki import create_sa_keypair

NOW = 1514764800
ISSUER = "https://kubernetes.default.svc.cluster.local"


def _obj(name: str, uid: str, ns: str = "ns", deleted: int | None = None) -> dict:
    meta = {"name": name, "namespace": ns, "uid": uid}
    if deleted is not None:
        meta["deletionTimestamp"] = dt.datetime.fromtimestamp(deleted, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": meta}


SA = _obj("saname", "sauid")
SECRET = _obj("secretname", "secretuid")
POD = _obj("podname", "poduid")
NODE = _obj("nodename", "nodeuid", ns="")


def getter(sa=None, secret=None, pod=None, node=None):
    table = {"serviceaccounts": sa, "secrets": secret, "pods": pod, "nodes": node}
    return lambda resource, ns, name: table[resource]


def private(**refs) -> dict:
    return {"kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "saname", "uid": refs.pop("sa_uid", "sauid")},
                              **refs},
            "aud": [ISSUER], "iss": ISSUER, "exp": refs.get("exp", NOW), "nbf": 0,
            "sub": "system:serviceaccount:ns:saname"}


# (name, getter, payload, expected error) -- upstream TestValidatePrivateClaims
CASES = [
    ("good", getter(SA), private(), ""),
    ("missing serviceaccount", getter(), private(), 'serviceaccounts "saname" not found'),
    ("missing secret", getter(SA), private(secret={"name": "secretname", "uid": "secretuid"}),
     "service account token has been invalidated"),
    ("missing pod", getter(SA), private(pod={"name": "podname", "uid": "poduid"}),
     "service account token has been invalidated"),
    ("missing node", getter(SA), private(node={"name": "nodename", "uid": "nodeuid"}),
     "service account token has been invalidated"),
    ("different uid serviceaccount", getter(SA), private(sa_uid="sauidold"),
     "service account UID (sauid) does not match claim (sauidold)"),
    ("different uid secret", getter(SA, secret=SECRET), private(secret={"name": "secretname", "uid": "secretuidold"}),
     "secret UID (secretuid) does not match service account secret ref claim (secretuidold)"),
    ("different uid pod", getter(SA, pod=POD), private(pod={"name": "podname", "uid": "poduidold"}),
     "pod UID (poduid) does not match service account pod ref claim (poduidold)"),
]
for label, when, fails in [("valid", None, False), ("deleted now", NOW, False), ("deleted near past", NOW - 1, False),
                           ("deleted near future", NOW + 1, False), ("deleted now-leeway", NOW - 60, False),
                           ("deleted now-leeway-1", NOW - 61, True)]:
    CASES += [
        (f"{label} serviceaccount", getter(_obj("saname", "sauid", deleted=when)), private(),
         "service account ns/saname has been deleted" if fails else ""),
        (f"{label} secret", getter(SA, secret=_obj("secretname", "secretuid", deleted=when)),
         private(secret={"name": "secretname", "uid": "secretuid"}),
         "service account token has been invalidated" if fails else ""),
        (f"{label} pod", getter(SA, pod=_obj("podname", "poduid", deleted=when)),
         private(pod={"name": "podname", "uid": "poduid"}), "service account token has been invalidated" if fails else ""),
        (f"{label} node", getter(SA, node=_obj("nodename", "nodeuid", ns="", deleted=when)),
         private(node={"name": "nodename", "uid": "nodeuid"}),
         "service account token has been invalidated" if fails else ""),
    ]


@pytest.mark.parametrize("name,get,payload,error", CASES, ids=[c[0] for c in CASES])
def test_validate_private_claims(name, get, payload, error):
    if error:
        with pytest.raises(TokenError) as exc:
            validate(payload, get, api_audiences=[ISSUER], now=NOW)
        assert str(exc.value) == error
    else:
        assert validate(payload, get, api_audiences=[ISSUER], now=NOW).username == "system:serviceaccount:ns:saname"


@pytest.mark.parametrize("exp,nbf,error", [
    (NOW - 1000 * 3600, 0, "service account token has expired"),
    (NOW - 61, 0, "service account token has expired"),
    (NOW - 60, 0, ""),  # go-jose's one-minute leeway
    (NOW + 3600, NOW + 1000 * 3600, "service account token is not valid yet"),
    (NOW + 3600, NOW + 60, ""),
])
def test_times_with_leeway(exp, nbf, error):
    payload = {**private(), "exp": exp, "nbf": nbf}
    if error:
        with pytest.raises(TokenError, match=error):
            validate(payload, getter(SA), api_audiences=[ISSUER], now=NOW)
    else:
        validate(payload, getter(SA), api_audiences=[ISSUER], now=NOW)


def test_a_bound_token_without_expiry_is_refused():
    payload = private()
    del payload["exp"]
    with pytest.raises(TokenError):
        validate(payload, getter(SA), api_audiences=[ISSUER], now=NOW)


@pytest.mark.parametrize("token_auds,api,requested,ok,result", [
    ([ISSUER], [ISSUER], None, True, (ISSUER,)),
    (["vault"], [ISSUER], None, False, ()),                       # another audience: refused
    (["vault", ISSUER], [ISSUER], None, True, (ISSUER,)),          # the intersection
    (["vault"], [ISSUER], ["vault"], True, ("vault",)),            # TokenReview for vault's audience
    ([ISSUER], [ISSUER], ["vault"], False, ()),
    (["a", "b"], ["b", "c"], None, True, ("b",)),
])
def test_audiences_intersect(token_auds, api, requested, ok, result):
    payload = {**private(), "aud": token_auds}
    if ok:
        assert validate(payload, getter(SA), api_audiences=api, requested_audiences=requested, now=NOW).audiences == result
    else:
        with pytest.raises(TokenError, match="token audiences .* is invalid for the target audiences"):
            validate(payload, getter(SA), api_audiences=api, requested_audiences=requested, now=NOW)


def test_claims_of_a_pod_bound_token_as_upstream():
    pod = {"metadata": {"name": "p", "uid": "pu"}}
    node = {"metadata": {"name": "n", "uid": "nu"}}
    sa = {"metadata": {"name": "saname", "namespace": "ns", "uid": "sauid"}}
    c = claims(sa=sa, audiences=["api"], expiration_seconds=600, now=NOW, issuer=ISSUER, pod=pod, node=node,
               warn_after=3607, jti="fixed")
    assert c == {"aud": ["api"], "exp": NOW + 600, "iat": NOW, "iss": ISSUER, "jti": "fixed", "nbf": NOW,
                 "sub": "system:serviceaccount:ns:saname",
                 "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "saname", "uid": "sauid"},
                                   "pod": {"name": "p", "uid": "pu"}, "node": {"name": "n", "uid": "nu"},
                                   "warnafter": NOW + 3607}}
    with pytest.raises(ValueError):
        claims(sa=sa, audiences=[], expiration_seconds=0, now=NOW, issuer=ISSUER, pod=pod, secret=pod)


@pytest.mark.parametrize("policy,requested,pod_bound,auds,expected", [
    (TokenPolicy((ISSUER,)), 3600, True, [ISSUER], (3600, 3600, 0)),
    # the kubelet's 3607 s for the apiserver's audience: a year, warning after 3607 s
    (TokenPolicy((ISSUER,)), 3607, True, [ISSUER], (3607, EXPIRATION_EXTENSION_SECONDS, 3607)),
    (TokenPolicy((ISSUER,)), 3607, False, [ISSUER], (3607, 3607, 0)),       # not pod-bound
    (TokenPolicy((ISSUER,)), 3607, True, ["vault"], (3607, 3607, 0)),       # another audience
    (TokenPolicy((ISSUER,), extend_expiration=False), 3607, True, [ISSUER], (3607, 3607, 0)),
    (TokenPolicy((ISSUER,), max_expiration_seconds=7200), 86400, False, [ISSUER], (7200, 7200, 0)),
    # a cap below 3607 s (knet's test setting) leaves nothing to extend
    (TokenPolicy((ISSUER,), max_expiration_seconds=20, extend_expiration=False), 3607, True, [ISSUER], (20, 20, 0)),
])
def test_token_request_lifetime(policy, requested, pod_bound, auds, expected):
    assert policy.lifetime(requested, pod_bound=pod_bound, audiences=auds) == expected


@pytest.fixture(scope="module")
def keys():
    return create_sa_keypair()


def test_authenticator_checks_signature_issuer_and_objects(keys):
    signer = TokenSigner(keys.key_pem, ISSUER)
    objects = {("serviceaccounts", "ns", "saname"): SA, ("pods", "ns", "podname"): POD}
    auth = Authenticator({}, TokenVerifier([keys.cert_pem], [ISSUER]),
                         objects=lambda r, ns, n: objects.get((r, ns, n)))
    token, _ = signer.issue(namespace="ns", sa_name="saname", sa_uid="sauid", audiences=[ISSUER],
                            expiration_seconds=600, bound={"kind": "Pod", "name": "podname", "uid": "poduid"})
    user = auth.authenticate(f"Bearer {token}", None)
    assert (user.name, user.uid) == ("system:serviceaccount:ns:saname", "sauid")
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["podname"]
    assert user.extra["authentication.kubernetes.io/pod-uid"] == ["poduid"]
    assert user.extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    assert auth.authenticate(f"Bearer {token}", None) == user  # remembered: the same objects
    # the pod is being deleted, its grace period and the leeway over: refused at once
    objects[("pods", "ns", "podname")] = _obj("podname", "poduid", deleted=int(time.time()) - 61)
    assert auth.authenticate(f"Bearer {token}", None) is None
    objects[("pods", "ns", "podname")] = POD
    assert auth.authenticate(f"Bearer {token}", None) == user
    # the pod goes away: the same token (signature already verified and cached) is refused
    del objects[("pods", "ns", "podname")]
    assert auth.authenticate(f"Bearer {token}", None) is None
    assert "invalidated" in auth.review(token).error
    # tampered signature, other issuer, other audience
    objects[("pods", "ns", "podname")] = POD
    assert auth.from_bearer(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")) is None
    assert Authenticator({}, TokenVerifier([keys.cert_pem], ["https://elsewhere"]),
                         objects=lambda r, ns, n: objects.get((r, ns, n))).from_bearer(token) is None
    vault, _ = signer.issue(namespace="ns", sa_name="saname", sa_uid="sauid", audiences=["vault"],
                            expiration_seconds=600)
    assert auth.from_bearer(vault) is None
    assert auth.review(vault, ["vault"]).user is not None


def test_legacy_secret_tokens_live_while_their_secret_does(keys):
    import base64

    signer = TokenSigner(keys.key_pem, ISSUER)
    secret = {"metadata": {"name": "tok", "namespace": "ns", "uid": "su"}, "data": {}}
    sa = {"metadata": {"name": "saname", "namespace": "ns", "uid": "sauid"}}
    token = signer.sign(legacy_claims(sa, secret))
    secret["data"]["token"] = base64.b64encode(token.encode()).decode()
    objects = {("serviceaccounts", "ns", "saname"): sa, ("secrets", "ns", "tok"): secret}
    auth = Authenticator({}, TokenVerifier([keys.cert_pem], [ISSUER, "kubernetes/serviceaccount"]),
                         objects=lambda r, ns, n: objects.get((r, ns, n)))
    assert auth.from_bearer(token).name == "system:serviceaccount:ns:saname"
    del objects[("secrets", "ns", "tok")]
    assert auth.from_bearer(token) is None


def test_unsigned_or_hmac_tokens_are_refused(keys):
    """alg none, and HS256 "signed" with the public key as the secret (the classic JWT attacks)."""
    import base64 as b64
    import hashlib
    import hmac
    import json

    def enc(obj) -> str:
        return b64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    payload = {**private(), "exp": 4102444800}
    verifier = TokenVerifier([keys.cert_pem], [ISSUER])
    auth = Authenticator({}, verifier, objects=getter(SA))
    good = TokenSigner(keys.key_pem, ISSUER).sign(payload)
    assert auth.from_bearer(good) is not None
    unsigned = f"{enc({'alg': 'none'})}.{enc(payload)}."
    signing_input = f"{enc({'alg': 'HS256'})}.{enc(payload)}"
    forged = signing_input + "." + b64.urlsafe_b64encode(hmac.new(
        keys.cert_pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    for token in (unsigned, forged, "a.b.c", "", good + "x"):
        assert verifier.verify(token) is None and auth.from_bearer(token) is None
