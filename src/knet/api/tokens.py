"""Service-account JWTs (RS256), as kube-apiserver issues for TokenRequest and checks as
bearer tokens: claims iss, sub=system:serviceaccount:NS:NAME, aud, exp, iat, nbf and the
`kubernetes.io` private claim naming the namespace, service account (and pod) with uids."""

from __future__ import annotations

import base64
import time
import uuid

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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

    def issue(self, *, namespace: str, sa_name: str, sa_uid: str, audiences: list[str], expiration_seconds: int,
              bound: dict | None = None) -> tuple[str, int]:
        """Returns (token, expiry unix time)."""
        now = int(time.time())
        exp = now + expiration_seconds
        private: dict = {"namespace": namespace, "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if bound and bound.get("kind") == "Pod":
            private["pod"] = {"name": bound.get("name", ""), "uid": bound.get("uid", "")}
        claims = {"aud": audiences, "exp": exp, "iat": now, "iss": self.issuer, "jti": str(uuid.uuid4()),
                  "kubernetes.io": private, "nbf": now, "sub": f"system:serviceaccount:{namespace}:{sa_name}"}
        header = {"alg": "RS256", "kid": self.key_id}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}".encode()
        sig = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(sig)}", exp


class TokenVerifier:
    def __init__(self, public_key_pems: list[bytes], issuers: list[str]) -> None:
        self._keys = []
        for pem in public_key_pems:
            try:
                self._keys.append(serialization.load_pem_public_key(pem))
            except ValueError:
                self._keys.append(serialization.load_pem_private_key(pem, password=None).public_key())
        self._issuers = set(issuers)

    def verify(self, token: str) -> dict | None:
        """The claims of a valid, unexpired token of one of our issuers, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = orjson.loads(_unb64(parts[0]))
            claims = orjson.loads(_unb64(parts[1]))
            sig = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return None
        if header.get("alg") != "RS256":
            return None
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        for key in self._keys:
            try:
                key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
                break
            except (InvalidSignature, TypeError, AttributeError):
                continue
        else:
            return None
        now = time.time()
        if claims.get("iss") not in self._issuers or claims.get("exp", 0) < now - 60 or claims.get("nbf", 0) > now + 60:
            return None
        return claims
