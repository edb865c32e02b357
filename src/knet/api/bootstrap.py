"""What kube-apiserver maintains itself: the system namespaces, Service default/kubernetes
with its Endpoints and EndpointSlice pointing at --advertise-address:--secure-port, the
bootstrap RBAC policy (the `rbac/bootstrap-roles` post-start hook: created or reconciled once
per start, writing only what differs) and its ConfigMaps in kube-system (knet.api.authinfo)."""

from __future__ import annotations

import asyncio
import datetime
import logging

from knet.api import authinfo, errors
from knet.api.authz.bootstrappolicy import GROUP as RBAC_GROUP
from knet.api.authz.bootstrappolicy import bootstrap_policy, needs_recreate, reconcile
from knet.api.registry import Registry
from knet.api.resources import priorityclasses
from knet.api.rest import ObjectService, Options, deep_copy

log = logging.getLogger("knet.api.bootstrap")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def kubernetes_service(cluster_ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 0}]}}


def kubernetes_endpoints(ip: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def kubernetes_endpointslice(ip: str, port: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv6" if ":" in ip else "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


class Bootstrapper:
    def __init__(self, registry: Registry, service: ObjectService, advertise_address: str, secure_port: int,
                 auth_info: authinfo.AuthenticationInfo | None = None) -> None:
        self.registry, self.service = registry, service
        self.address, self.port = advertise_address, secure_port
        self.auth_info = auth_info or authinfo.AuthenticationInfo()
        self._task: asyncio.Task | None = None
        self._rbac_reconciled = False

    async def ensure(self) -> None:
        ns_rt = self.registry.lookup("", "v1", "namespaces")
        for name in SYSTEM_NAMESPACES:
            if self.service.store.get("namespaces", "", name) is None:
                await self._create(ns_rt, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        svc_rt = self.registry.lookup("", "v1", "services")
        svc = kubernetes_service(self.service.allocator.first_ip())
        svc["spec"]["ports"][0]["targetPort"] = self.port
        await self._reconcile(svc_rt, svc, lambda cur, want: cur["spec"]["ports"] != want["spec"]["ports"],
                              keys=("spec",))
        ep_rt = self.registry.lookup("", "v1", "endpoints")
        await self._reconcile(ep_rt, kubernetes_endpoints(self.address, self.port),
                              lambda cur, want: cur.get("subsets") != want["subsets"], keys=("subsets",))
        es_rt = self.registry.lookup("discovery.k8s.io", "v1", "endpointslices")
        want = kubernetes_endpointslice(self.address, self.port)
        await self._reconcile(es_rt, want, lambda cur, w: (cur.get("endpoints"), cur.get("ports")) !=
                              (w["endpoints"], w["ports"]), keys=("endpoints", "ports", "addressType"))
        await self.ensure_configmaps()
        await self.ensure_priority_classes()
        if not self._rbac_reconciled:
            await self.ensure_rbac_policy()
            self._rbac_reconciled = True

    async def ensure_configmaps(self) -> None:
        """extension-apiserver-authentication kept equal to this apiserver's trust; the legacy
        token tracking date written once."""
        rt = self.registry.lookup("", "v1", "configmaps")
        if rt is None:
            return
        ns = authinfo.NAMESPACE
        want = authinfo.authentication_configmap(self.auth_info)
        current = self.service.store.get(rt.bucket, ns, authinfo.AUTHENTICATION_CONFIGMAP)
        if current is None:
            await self._create(rt, ns, want)
        elif (current.obj.get("data") or {}) != want["data"]:
            await self.service.update(rt, ns, authinfo.AUTHENTICATION_CONFIGMAP, {**current.obj, "data": want["data"]},
                                      Options(field_validation="Ignore"))
        if self.service.store.get(rt.bucket, ns, authinfo.LEGACY_TOKEN_TRACKING_CONFIGMAP) is None:
            await self._create(rt, ns, authinfo.legacy_token_tracking_configmap(datetime.datetime.now(datetime.UTC)))

    async def ensure_priority_classes(self) -> None:
        """The system PriorityClasses (scheduling/bootstrap-system-priority-classes)."""
        rt = self.registry.lookup("scheduling.k8s.io", "v1", "priorityclasses")
        if rt is None:
            return
        for name in priorityclasses.SYSTEM_CLASSES:
            if self.service.store.get(rt.bucket, "", name) is None:
                await self._create(rt, "", priorityclasses.system_class(name))

    async def ensure_rbac_policy(self) -> None:
        """Create the missing default roles and bindings and add what the stored ones lack;
        the writes go out together so the store commits them in few batches."""
        writes = []
        for desired in bootstrap_policy():
            rt = self.registry.by_kind(RBAC_GROUP, desired["kind"])
            if rt is None:  # RBAC kinds not served
                return
            meta = desired["metadata"]
            ns = meta.get("namespace", "")
            entry = self.service.store.get(rt.bucket, ns, meta["name"])
            existing = entry.obj if entry is not None else None
            obj = reconcile(desired, existing)
            if obj is not None:
                writes.append(self._write_policy(rt, ns, obj, existing, needs_recreate(desired, existing)))
        if writes:
            log.info("rbac bootstrap policy: writing %d objects", len(writes))
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    async def _write_policy(self, rt, ns: str, obj: dict, existing: dict | None, recreate: bool) -> None:
        opts = Options(field_validation="Ignore")
        name = obj["metadata"]["name"]
        if existing is not None and recreate:
            await self.service.delete(rt, ns, name, {}, opts)
            existing = None
        if existing is None:
            await self._create(rt, ns, obj)
        else:
            await self.service.update(rt, ns, name, obj, opts)

    async def _create(self, rt, ns: str, obj: dict) -> None:
        try:
            await self.service.create(rt, ns, obj, Options(field_validation="Ignore"))
        except errors.ApiError as exc:
            if exc.code != 409:
                raise

    async def _reconcile(self, rt, want: dict, differs, keys: tuple[str, ...]) -> None:
        current = self.service.store.get(rt.bucket, "default", "kubernetes")
        if current is None:
            await self._create(rt, "default", deep_copy(want))
            return
        if rt.resource == "services":
            want_cmp = deep_copy(want)
            want_cmp["spec"]["ports"] = [{**p} for p in want["spec"]["ports"]]
            if current.obj["spec"].get("ports") == want_cmp["spec"]["ports"]:
                return
        elif not differs(current.obj, want):
            return
        new = deep_copy(current.obj)
        for k in keys:
            if rt.resource == "services":
                new["spec"]["ports"] = want["spec"]["ports"]
            else:
                new[k] = want[k]
        await self.service._write_update(rt, current, new, Options(field_validation="Ignore"), None, current.revision)

    def start(self, interval: float = 10.0) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.ensure()
                except Exception:  # retried on the next round
                    log.exception("bootstrap reconcile failed")

        self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
