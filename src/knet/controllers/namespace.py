"""Namespace controller: a namespace being deleted has its contents deleted, then its `kubernetes`
finalizer removed through the finalize subresource, so it disappears (phase Terminating until then).
"""

from __future__ import annotations

from typing import Any

from knet.client import Api, ApiError
from knet.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
FINALIZER = "kubernetes"

# Used when the API cannot be asked (FakeApi) -- otherwise discovery lists every namespaced kind.
FALLBACK_RESOURCES = (
    ("apps/v1", "deployments"), ("apps/v1", "daemonsets"), ("apps/v1", "replicasets"),
    ("apps/v1", "statefulsets"), ("v1", "pods"), ("v1", "services"), ("v1", "endpoints"),
    ("discovery.k8s.io/v1", "endpointslices"), ("v1", "configmaps"), ("v1", "secrets"),
    ("v1", "serviceaccounts"), ("v1", "events"), ("networking.k8s.io/v1", "networkpolicies"),
    ("coordination.k8s.io/v1", "leases"),
)


async def discover_namespaced_resources(api: Api) -> list[tuple[str, str]]:
    request = getattr(api, "request", None)
    if request is None:
        return list(FALLBACK_RESOURCES)
    found: list[tuple[str, str]] = []
    try:
        versions = ["v1"]
        groups = await request("GET", "/apis")
        for g in groups.get("groups") or []:
            pref = (g.get("preferredVersion") or {}).get("groupVersion")
            if pref:
                versions.append(pref)
        for gv in versions:
            path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            res = await request("GET", path)
            for r in res.get("resources") or []:
                verbs = set(r.get("verbs") or [])
                if r.get("namespaced") and "/" not in r["name"] and {"list", "delete"} <= verbs:
                    found.append((gv, r["name"]))
    except ApiError:
        return list(FALLBACK_RESOURCES)
    return found or list(FALLBACK_RESOURCES)


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, api: Api, informers: InformerFactory) -> None:
        super().__init__()
        self.api = api
        self.namespaces = informers.get("v1", "namespaces")
        self.namespaces.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n))

    def initial_keys(self) -> list[str]:
        return self.namespaces.keys()

    async def sync_key(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for api_version, resource in await discover_namespaced_resources(self.api):
            try:
                items = (await self.api.list(api_version, resource, namespace=key)).get("items") or []
            except ApiError as exc:
                if exc.status in (404, 405, 403):
                    continue
                raise
            for item in items:
                remaining += 1
                if item["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.api.delete(api_version, resource, item["metadata"]["name"], namespace=key,
                                          propagation_policy="Background")
                except ApiError as exc:
                    if not (exc.not_found or exc.status in (405, 403)):
                        raise
        if remaining:
            # pods terminate gracefully: look again shortly (upstream re-queues the same way)
            self.queue.add_after(key, 1.0)
            return
        finalizers = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        if finalizers == ((ns.get("spec") or {}).get("finalizers") or []):
            return
        body = {**ns, "spec": {**(ns.get("spec") or {}), "finalizers": finalizers}}
        try:
            await self.api.update("v1", "namespaces", body, subresource="finalize")
        except ApiError as exc:
            if not exc.not_found:
                raise
