"""The legacy token controller (kube-controller-manager's `serviceaccount-token`, upstream
pkg/controller/serviceaccount/tokens_controller.go): a Secret of type
kubernetes.io/service-account-token annotated kubernetes.io/service-account.name gets a
never-expiring JWT of issuer `kubernetes/serviceaccount` signed with
--service-account-private-key-file, the cluster CA and the namespace; a Secret whose account is
gone (or is another account of that name: the uid annotation differs) is deleted. Only Secrets
that ask for one get a token: ServiceAccounts get none of their own, as since Kubernetes 1.24."""

from __future__ import annotations

import base64
import logging
from typing import Any

from knet.api.tokens import TokenSigner, legacy_claims
from knet.client import Api, ApiError
from knet.controllers.base import Controller, InformerFactory

log = logging.getLogger(__name__)

Obj = dict[str, Any]
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_KEY = "kubernetes.io/service-account.name"
UID_KEY = "kubernetes.io/service-account.uid"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def wanted_data(secret: Obj, sa: Obj, signer: TokenSigner, root_ca: str | None) -> dict[str, str] | None:
    """The data keys the Secret lacks or holds wrong (token, ca.crt, namespace), or None when it
    is complete (upstream generateTokenIfNeeded: an existing token is kept)."""
    data = secret.get("data") or {}
    ns = sa["metadata"].get("namespace", "")
    changes: dict[str, str] = {}
    if not data.get("token"):
        changes["token"] = _b64(signer.sign(legacy_claims(sa, secret)))
    if root_ca and data.get("ca.crt") != _b64(root_ca):
        changes["ca.crt"] = _b64(root_ca)
    if data.get("namespace") != _b64(ns):
        changes["namespace"] = _b64(ns)
    return changes or None


class TokensController(Controller):
    name = "serviceaccount-token"

    def __init__(self, api: Api, informers: InformerFactory, *, signer: TokenSigner, root_ca: str | None) -> None:
        super().__init__()
        self.api = api
        self.signer = signer
        self.root_ca = root_ca
        self.secrets = informers.get("v1", "secrets")
        self.serviceaccounts = informers.get("v1", "serviceaccounts")
        self.secrets.add_handler(self._secret_changed, lambda old, new: self._secret_changed(new))
        self.serviceaccounts.add_handler(self._account_changed, lambda old, new: self._account_changed(new),
                                         self._account_changed)

    def _secret_changed(self, secret: Obj) -> None:
        if secret.get("type") == TOKEN_TYPE:
            meta = secret["metadata"]
            self.queue.add(f"{meta.get('namespace', '')}/{meta['name']}")

    def _account_changed(self, sa: Obj) -> None:
        """Its token Secrets: filled when it appears, deleted when it goes."""
        ns, name = sa["metadata"].get("namespace", ""), sa["metadata"]["name"]
        for secret in self.secrets.list():
            meta = secret["metadata"]
            if secret.get("type") == TOKEN_TYPE and meta.get("namespace") == ns and \
                    (meta.get("annotations") or {}).get(NAME_KEY) == name:
                self.queue.add(f"{ns}/{meta['name']}")

    def initial_keys(self) -> list[str]:
        return [f"{s['metadata'].get('namespace', '')}/{s['metadata']['name']}" for s in self.secrets.list()
                if s.get("type") == TOKEN_TYPE]

    async def _account(self, ns: str, name: str, uid: str) -> Obj | None:
        """The account the Secret names (a live read on a cache miss, as upstream), or None when
        there is none with that uid."""
        sa = self.serviceaccounts.get(f"{ns}/{name}")
        if sa is None:
            try:
                sa = await self.api.get("v1", "serviceaccounts", name, namespace=ns)
            except ApiError as exc:
                if exc.status == 404:
                    return None
                raise
        if uid and sa["metadata"].get("uid") != uid:
            return None
        return sa

    async def sync_key(self, key: str) -> None:
        secret = self.secrets.get(key)
        if secret is None or secret.get("type") != TOKEN_TYPE or secret["metadata"].get("deletionTimestamp"):
            return
        meta = secret["metadata"]
        annotations = meta.get("annotations") or {}
        ns, name = meta.get("namespace", ""), meta["name"]
        sa = await self._account(ns, annotations.get(NAME_KEY, ""), annotations.get(UID_KEY, ""))
        if sa is None:
            log.info("deleting token secret %s: its service account is gone", key)
            try:
                await self.api.delete("v1", "secrets", name, namespace=ns, preconditions={"uid": meta.get("uid", "")})
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise
            return
        changes = wanted_data(secret, sa, self.signer, self.root_ca)
        if changes is None and annotations.get(UID_KEY) == sa["metadata"].get("uid"):
            return
        new = {**secret, "metadata": {**meta, "annotations": {**annotations, UID_KEY: sa["metadata"].get("uid", "")}},
               "data": {**(secret.get("data") or {}), **(changes or {})}}
        await self.api.update("v1", "secrets", new, namespace=ns)
