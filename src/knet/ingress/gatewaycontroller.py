"""The Gateway API side of knet's ingress controller (GatewayClass controllerName
`knet.io/gateway-controller`).

How a Gateway is reached (as cloud-provider-kind does, with the controller's pods as the data
plane): for every accepted Gateway the controller creates a LoadBalancer Service in its own
namespace (`gw-<namespace>-<name>`, label gateway.networking.k8s.io/gateway-name, annotation
knet.io/gateway) that selects the controller's pods (the --publish-service's selector) and
exposes each listener port, its targetPort a pod port of the controller (20000 and up) that
serves that Gateway alone. knet's LoadBalancer controller gives the Service an address; that
address is the Gateway's status.addresses, and the Gateway is Programmed once it has one. Every
worker process listens on the pod ports it reads from these Services (SO_REUSEPORT), so all read
the same mapping; only the first worker (the one writing status) creates, updates or deletes them.

The Gateway API CRDs may be installed after the controller starts (or never): its informers
retry in the background and Gateways are served once they have synced."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import ssl
from typing import Any

from knet.client import ApiClient, Informer
from knet.client.errors import ApiError
from knet.ingress import certs, gateway, gatewaystatus
from knet.ingress.gateway import Compiled, GatewayState, PortTable
from knet.ingress.proxy import Listener, serve_gateway_port

log = logging.getLogger("knet.ingress.gateway")
Obj = dict[str, Any]
GW_VERSION = f"{gateway.GROUP}/v1"
GRANT_VERSION = f"{gateway.GROUP}/v1beta1"
NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
KEY_ANNOTATION = "knet.io/gateway"
FIRST_POD_PORT = 20000
INFORMER_BACKOFF = 5.0
DISCOVERY_POLL = 2.0


# ---- pure: the per-Gateway Service ------------------------------------------------------------

def service_name(gkey: str) -> str:
    ns, name = gkey.split("/", 1)
    full = f"gw-{ns}-{name}"
    if len(full) <= 63:
        return full
    return full[:52].rstrip("-") + "-" + hashlib.sha256(gkey.encode()).hexdigest()[:10]


def gateway_service(state: GatewayState, existing: Obj | None, used: set[int], namespace: str,
                    selector: dict[str, str]) -> Obj:
    """The LoadBalancer Service serving a Gateway; a listener port keeps the pod port it had,
    a new one takes the lowest free pod port (marked in `used`)."""
    gkey = gateway.key(state.obj)
    had = {p.get("port"): p.get("targetPort") for p in ((existing or {}).get("spec") or {}).get("ports") or []}
    ports = []
    for port in gateway.served_ports(state):
        target = had.get(port)
        if not isinstance(target, int):
            target = FIRST_POD_PORT
            while target in used:
                target += 1
            used.add(target)
        ports.append({"name": f"p{port}", "port": port, "protocol": "TCP", "targetPort": target})
    spec: Obj = {"type": "LoadBalancer", "selector": dict(selector), "ports": ports}
    if state.requested_ip:
        spec["loadBalancerIP"] = state.requested_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": service_name(gkey), "namespace": namespace,
        "labels": {NAME_LABEL: gkey.split("/", 1)[1][:63].rstrip("-._"), "app.kubernetes.io/managed-by": "knet"},
        "annotations": {KEY_ANNOTATION: gkey}}, "spec": spec}


def owned_services(services: list[Obj], namespace: str) -> dict[str, Obj]:
    """The Gateway Services in the controller's namespace, by Gateway NAMESPACE/NAME."""
    return {((s.get("metadata") or {}).get("annotations") or {})[KEY_ANNOTATION]: s for s in services
            if (s.get("metadata") or {}).get("namespace") == namespace
            and KEY_ANNOTATION in ((s.get("metadata") or {}).get("annotations") or {})}


def pod_ports(owned: dict[str, Obj]) -> dict[int, tuple[str, int]]:
    """pod port -> (Gateway, listener port), as the Services say."""
    out = {}
    for gkey, svc in owned.items():
        for p in (svc.get("spec") or {}).get("ports") or []:
            if isinstance(p.get("targetPort"), int):
                out[p["targetPort"]] = (gkey, int(p["port"]))
    return out


def service_addresses(svc: Obj | None) -> list[str]:
    lb = (((svc or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i.get("ip") or i.get("hostname") for i in lb if i.get("ip") or i.get("hostname")]


def _service_differs(have: Obj, want: Obj) -> bool:
    hs, ws = have.get("spec") or {}, want["spec"]
    strip = [{k: p.get(k) for k in ("name", "port", "protocol", "targetPort")} for p in hs.get("ports") or []]
    return (hs.get("type") != ws["type"] or hs.get("selector") != ws["selector"] or strip != ws["ports"]
            or hs.get("loadBalancerIP") != ws.get("loadBalancerIP"))


# ---- the side effects -----------------------------------------------------------------------------

class GatewaySync:
    """Informers for the Gateway API objects, the per-Gateway Services and the status writes."""

    def __init__(self, namespace: str, selector_service: str, controller: str = gateway.CONTROLLER_NAME) -> None:
        self.namespace = namespace                # where the Gateway Services go (the controller's)
        self.selector_service = selector_service  # NAMESPACE/NAME of the Service whose selector they copy
        self.controller = controller
        self.informers: dict[str, Informer] = {}
        self.compiled = Compiled()
        self._said = ""
        self._wake = asyncio.Event()

    def start(self, api: ApiClient, wake: asyncio.Event) -> list[asyncio.Task]:
        self._wake = wake
        return [asyncio.create_task(self._run_when_served(api))]

    def _informer(self, api: ApiClient, version: str, resource: str) -> None:
        wake = self._wake
        inf = Informer(api, version, resource, max_backoff=INFORMER_BACKOFF)
        inf.add_handler(on_add=lambda _o: wake.set(), on_update=lambda _o, _n: wake.set(),
                        on_delete=lambda _o: wake.set())
        self.informers[resource] = inf

    async def _run_when_served(self, api: ApiClient) -> None:
        """Start the informers once the apiserver serves the group (quietly polling discovery
        until then: without the CRDs, informers would log a failed list every few seconds).
        GRPCRoutes are watched when their CRD is there (older standard installs lack it)."""
        while True:
            try:
                served = {r.get("name") for r in (await api.request("GET", f"/apis/{gateway.GROUP}/v1")).get(
                    "resources") or []}
                if {"gatewayclasses", "gateways", "httproutes"} <= served:
                    break
            except ApiError:
                pass
            except OSError as exc:
                log.debug("discovery of %s: %s", gateway.GROUP, exc)
            await asyncio.sleep(DISCOVERY_POLL)
        for resource in ("gatewayclasses", "gateways", "httproutes"):
            self._informer(api, GW_VERSION, resource)
        self._informer(api, GRANT_VERSION, "referencegrants")
        self._informer(api, "v1", "namespaces")
        log.info("the Gateway API is served: watching GatewayClasses of %s", self.controller)
        tasks = [asyncio.create_task(inf.run()) for inf in self.informers.values()]
        try:
            while "grpcroutes" not in served:  # its CRD may come later than the others, or never
                await asyncio.sleep(DISCOVERY_POLL)
                try:
                    served = {r.get("name") for r in (await api.request("GET", f"/apis/{gateway.GROUP}/v1")).get(
                        "resources") or []}
                except (ApiError, OSError):
                    continue
            self._informer(api, GW_VERSION, "grpcroutes")
            tasks.append(asyncio.create_task(self.informers["grpcroutes"].run()))
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    @property
    def ready(self) -> bool:
        required = ("gatewayclasses", "gateways", "httproutes", "referencegrants", "namespaces")
        return all(r in self.informers and self.informers[r].has_synced for r in required)

    def _grpc_routes(self) -> list[Obj]:
        inf = self.informers.get("grpcroutes")
        return inf.list() if inf is not None and inf.has_synced else []

    def compile(self, services: list[Obj], secrets: list[Obj] = ()) -> dict[int, PortTable]:
        """Compile the model; the tables the proxy serves, by pod port."""
        if not self.ready:
            self.compiled = Compiled()
            return {}
        owned = owned_services(services, self.namespace)
        addresses = {gkey: service_addresses(svc) for gkey, svc in owned.items()}
        self.compiled = gateway.compile_all(
            self.informers["gatewayclasses"].list(), self.informers["gateways"].list(),
            self.informers["httproutes"].list(), self.informers["referencegrants"].list(),
            self.informers["namespaces"].list(), services, self.controller, addresses, secrets,
            self._grpc_routes())
        tables = {}
        for pod_port, (gkey, port) in pod_ports(owned).items():
            if gkey in self.compiled.gateways:
                tables[pod_port] = self.compiled.tables.get((gkey, port)) or PortTable(gkey, port)
        return tables

    async def reconcile(self, api: ApiClient, services: list[Obj], selector: dict[str, str] | None) -> None:
        """(The status-writing worker only) the Gateway Services and the objects' status."""
        if not self.ready:
            return
        if not selector:
            self._say(f"no selector on {self.selector_service}: Gateways cannot be served")
            return
        owned = owned_services(services, self.namespace)
        used = {tp for tp in pod_ports(owned)}
        for gkey, state in self.compiled.gateways.items():
            accepted = any(c.status for c in state.conditions if c.type == "Accepted")
            have = owned.get(gkey)
            if not accepted or not gateway.served_ports(state):
                continue
            want = gateway_service(state, have, used, self.namespace, selector)
            try:
                if have is None:
                    await api.create("v1", "services", want, namespace=self.namespace)
                    log.info("created Service %s/%s for Gateway %s", self.namespace, want["metadata"]["name"], gkey)
                elif _service_differs(have, want):
                    await api.patch("v1", "services", want["metadata"]["name"], {"spec": {
                        "ports": want["spec"]["ports"], "selector": want["spec"]["selector"],
                        "loadBalancerIP": want["spec"].get("loadBalancerIP")}}, namespace=self.namespace)
            except ApiError as exc:
                log.warning("Service for Gateway %s: %s", gkey, exc)
        for gkey, svc in owned.items():
            state = self.compiled.gateways.get(gkey)
            if state is None or not any(c.status for c in state.conditions if c.type == "Accepted"):
                try:
                    await api.delete("v1", "services", svc["metadata"]["name"], namespace=self.namespace)
                    log.info("deleted Service %s/%s of Gateway %s", self.namespace, svc["metadata"]["name"], gkey)
                except ApiError as exc:
                    if exc.code != 404:
                        log.warning("deleting Service of Gateway %s: %s", gkey, exc)
        await self._write_status(api, owned)

    async def _write_status(self, api: ApiClient, owned: dict[str, Obj]) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        c = self.compiled
        for name, conds in c.classes.items():
            gc = self.informers["gatewayclasses"].get(name)
            if gc is not None:
                await self._patch_status(api, "gatewayclasses", gc, gatewaystatus.gateway_class_status(gc, conds, now))
        for gkey, state in c.gateways.items():
            status = gatewaystatus.gateway_status(state, service_addresses(owned.get(gkey)), now)
            await self._patch_status(api, "gateways", state.obj, status)
        for resource, routes in (("httproutes", c.routes), ("grpcroutes", c.grpc_routes)):
            for rkey, parents in routes.items():
                route = self.informers[resource].get(rkey) if resource in self.informers else None
                if route is not None:
                    await self._patch_status(api, resource, route,
                                             gatewaystatus.route_status(route, parents, now, self.controller))

    async def _patch_status(self, api: ApiClient, resource: str, o: Obj, status: Obj) -> None:
        old = o.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()) and set(old) <= set(status) | {"supportedFeatures"}:
            return
        meta = o["metadata"]
        body = {"status": {**{k: None for k in old if k not in status and k != "supportedFeatures"}, **status}}
        try:
            await api.patch(GW_VERSION, resource, meta["name"], body, namespace=meta.get("namespace"),
                            subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                log.warning("status of %s %s: %s", resource, gateway.key(o), exc)

    def _say(self, message: str) -> None:
        if message != self._said:
            self._said = message
            log.warning("%s", message)


# ---- the listeners --------------------------------------------------------------------------------

class GatewayListeners:
    """One HTTP(S) server per Gateway pod port, started and stopped as the Services come and go.
    An HTTPS port's certificate is picked per connection by SNI from the current Snapshot's
    gateway_certificates (a fresh fake certificate until one is there)."""

    def __init__(self, proxy: Any, host: str = "0.0.0.0") -> None:
        self.proxy = proxy
        self.host = host
        self.runners: dict[int, tuple[str, Listener]] = {}
        self._fake: tuple[bytes, bytes] | None = None

    async def reconcile(self, ports: dict[int, str]) -> None:
        """`ports`: pod port -> scheme (http or https)."""
        for port in sorted(self.runners):
            if ports.get(port) != self.runners[port][0]:
                await self.runners.pop(port)[1].cleanup()
        for port, scheme in sorted(ports.items()):
            if port in self.runners:
                continue
            try:
                listener = await serve_gateway_port(self.proxy, self.host, port, scheme,
                                                    self._tls(port) if scheme == "https" else None)
            except OSError as exc:
                log.warning("cannot listen on gateway port %d: %s", port, exc)
                continue
            self.runners[port] = (scheme, listener)

    def _tls(self, port: int) -> ssl.SSLContext:
        if self._fake is None:
            self._fake = certs.fake_certificate()
        ctx = certs.context_from_pem(*self._fake)
        proxy = self.proxy

        def sni(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            chosen = gateway.certificate_for(proxy.snapshot.gateway_certificates.get(port) or {}, server_name)
            if chosen is not None:
                sslobj.context = chosen
        ctx.sni_callback = sni
        return ctx

    async def close(self) -> None:
        await self.reconcile({})

