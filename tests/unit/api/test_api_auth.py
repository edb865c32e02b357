"""Authentication: token file parsing, client certificate subjects, service-account JWTs."""

from __future__ import annotations

from knet.api.auth import Authenticator, read_token_file, user_from_peercert
from knet.api.tokens import TokenSigner, TokenVerifier
from knet.cluster.pki import create_sa_keypair


def test_token_file_and_bearer():
    tokens = read_token_file('# comment\nabc,alice,1000,"devs,ops"\nxyz,bob,1001\n')
    auth = Authenticator(tokens)
    alice = auth.authenticate("Bearer abc", None)
    assert (alice.name, alice.uid, alice.groups) == ("alice", "1000", ("devs", "ops", "system:authenticated"))
    assert auth.authenticate("Bearer nope", None) is None
    assert auth.authenticate(None, None) is None


def test_client_certificate_subject():
    cert = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kubernetes-admin"),))}
    user = user_from_peercert(cert)
    assert (user.name, user.groups) == ("kubernetes-admin", ("system:masters", "system:authenticated"))
    assert user_from_peercert({}) is None


def test_service_account_tokens():
    sa = create_sa_keypair()
    signer = TokenSigner(sa.key_pem, "https://kubernetes.default.svc.cluster.local")
    token, exp = signer.issue(namespace="ns", sa_name="robot", sa_uid="u1", audiences=["api"], expiration_seconds=600)
    verifier = TokenVerifier([sa.cert_pem], ["https://kubernetes.default.svc.cluster.local"])
    claims = verifier.verify(token)
    assert claims["sub"] == "system:serviceaccount:ns:robot" and claims["exp"] == exp
    robot = {"metadata": {"name": "robot", "namespace": "ns", "uid": "u1"}}
    user = Authenticator({}, verifier, objects=lambda r, ns, n: robot if (r, ns, n) == ("serviceaccounts", "ns", "robot")
                         else None, api_audiences=["api"]).authenticate(f"Bearer {token}", None)
    assert user.name == "system:serviceaccount:ns:robot"
    assert "system:serviceaccounts:ns" in user.groups
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert verifier.verify(tampered) is None
    other = TokenVerifier([sa.cert_pem], ["https://elsewhere"])
    assert other.verify(token) is None
