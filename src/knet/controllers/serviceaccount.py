"""Per-namespace defaults: ServiceAccount `default` (serviceaccount controller) and ConfigMap
`kube-root-ca.crt` with the cluster CA (root-ca-cert-publisher), in every active namespace."""

from __future__ import annotations

from typing import Any

from knet.client import Api, ApiError
from knet.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, api: Api, informers: InformerFactory, *, root_ca: str | None = None,
                 service_accounts: bool = True) -> None:
        super().__init__()
        self.api = api
        self.root_ca = root_ca
        self.service_accounts = service_accounts  # False: only publish kube-root-ca.crt
        self.namespaces = informers.get("v1", "namespaces")
        self.serviceaccounts = informers.get("v1", "serviceaccounts")
        self.configmaps = informers.get("v1", "configmaps") if root_ca else None
        self.namespaces.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n))
        self.serviceaccounts.add_handler(on_delete=self._owned_deleted)
        if self.configmaps is not None:
            self.configmaps.add_handler(on_delete=self._owned_deleted,
                                        on_update=lambda o, n: self._owned_deleted(n))

    def initial_keys(self) -> list[str]:
        return self.namespaces.keys()

    def _owned_deleted(self, obj: Obj) -> None:
        ns = obj["metadata"].get("namespace")
        if ns:
            self.queue.add(ns)

    async def sync_key(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            return
        if self.service_accounts and self.serviceaccounts.get(f"{key}/default") is None:
            await _create_if_missing(self.api, "serviceaccounts", key, {
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": key}})
        if self.root_ca and self.configmaps is not None:
            current = self.configmaps.get(f"{key}/{ROOT_CA_CONFIGMAP}")
            if current is None:
                await _create_if_missing(self.api, "configmaps", key, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": key,
                                 "annotations": {"kubernetes.io/description": (
                                     "Contains a CA bundle that can be used to verify the kube-apiserver "
                                     "when using internal endpoints such as the internal service IP or "
                                     "kubernetes.default.svc. No other usage is guaranteed across "
                                     "distributions of Kubernetes clusters.")}},
                    "data": {"ca.crt": self.root_ca}})
            elif (current.get("data") or {}).get("ca.crt") != self.root_ca:
                await self.api.update("v1", "configmaps", {**current, "data": {"ca.crt": self.root_ca}},
                                      namespace=key)


async def _create_if_missing(api: Api, resource: str, namespace: str, obj: Obj) -> None:
    try:
        await api.create("v1", resource, obj, namespace=namespace)
    except ApiError as exc:
        if not exc.already_exists:
            raise
