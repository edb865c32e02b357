"""The ingress controller process: watches Ingresses, IngressClasses, Services, EndpointSlices and
Secrets, turns them into a proxy Snapshot (routing table, endpoints, certificates) whenever one
changes, swaps it into the running proxy, and writes each served Ingress's
status.loadBalancer.ingress (ingress-nginx's --publish-service: the Service's load-balancer
addresses, else the IPs of the nodes running the controller's ready pods)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass

from aiohttp import web

from knet.client import ApiClient, Informer, load_config
from knet.client.errors import ApiError
from knet.client.events import EventRecorder
from knet.ingress import certs, routing
from knet.ingress.gatewaycontroller import GatewayListeners, GatewaySync
from knet.ingress.proxy import Proxy, Snapshot, serve

log = logging.getLogger("knet.ingress")
DEBOUNCE_SECONDS = 0.05
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass
class Options:
    controller_class: str = "k8s.io/ingress-nginx"
    ingress_class: str = "nginx"
    publish_service: str = ""            # NAMESPACE/NAME
    publish_status_address: str = ""
    watch_namespace: str = ""
    watch_ingress_without_class: bool = False
    default_ssl_certificate: str = ""    # NAMESPACE/NAME
    default_backend_service: str = ""    # NAMESPACE/NAME (port 80)
    http_port: int = 80
    https_port: int = 443
    healthz_port: int = 10254
    kubeconfig: str = ""
    update_status: bool = True
    # ingress-nginx's worker-processes: proxy processes sharing the ports (SO_REUSEPORT), each
    # with its own watches; 0: one per CPU the pod may use. Only the first writes status/Events.
    worker_processes: int = 0


def served_ingresses(opts: Options, ingresses: list[dict], classes: list[dict]) -> list[dict]:
    """The Ingresses a controller with these flags serves: of its class (--ingress-class,
    --controller-class, --watch-ingress-without-class) and in --watch-namespace if set."""
    by_name = {(c.get("metadata") or {}).get("name", ""): c for c in classes}
    return [i for i in ingresses
            if (not opts.watch_namespace or (i.get("metadata") or {}).get("namespace") == opts.watch_namespace)
            and routing.ingress_class_selected(i, opts.ingress_class, by_name, opts.controller_class,
                                               opts.watch_ingress_without_class)]


def default_backend(opts: Options) -> routing.Backend | None:
    """--default-backend-service's port 80 (None: nginx's own 404)."""
    if not opts.default_backend_service:
        return None
    ns, _, name = opts.default_backend_service.partition("/")
    return routing.Backend(ns, name, 80)


class IngressController:
    def __init__(self, opts: Options, proxy: Proxy) -> None:
        self.opts = opts
        self.proxy = proxy
        self.informers: dict[str, Informer] = {}
        self._contexts: dict[tuple[str, str], ssl.SSLContext | str] = {}  # (secret key, rv) -> ctx or error
        self._said: dict[str, str] = {}
        self._synced_generation: dict[str, int] = {}
        self.synced = False
        # the Gateway API (gatewaycontroller.py): Gateways' Services go beside the publish-service
        self.gateways = GatewaySync(opts.publish_service.partition("/")[0], opts.publish_service) \
            if opts.publish_service else None
        self.gateway_listeners = GatewayListeners(proxy)

    # -- the snapshot -------------------------------------------------------------------------------
    def served_ingresses(self) -> list[dict]:
        return served_ingresses(self.opts, self.informers["ingresses"].list(), self.informers["ingressclasses"].list())

    def _endpoints(self, backend: routing.Backend) -> list[tuple[str, int]]:
        svc = self.informers["services"].get(f"{backend.namespace}/{backend.service}")
        if svc is None:
            return []
        slices = [s for s in self.informers["endpointslices"].by_index("namespace", backend.namespace)
                  if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == backend.service]
        return routing.endpoints_for(svc, backend.port, slices)

    def _context(self, secret_key: str) -> ssl.SSLContext | None:
        secret = self.informers["secrets"].get(secret_key)
        if secret is None:
            self._say(f"secret {secret_key}", "not found: serving the default certificate")
            return None
        cache_key = (secret_key, secret["metadata"].get("resourceVersion", ""))
        if cache_key not in self._contexts:
            try:
                self._contexts[cache_key] = certs.context_from_secret(secret)
            except certs.CertificateError as exc:
                self._contexts[cache_key] = str(exc)
        ctx = self._contexts[cache_key]
        if isinstance(ctx, str):
            self._say(f"secret {secret_key}", f"{ctx}: serving the default certificate")
            return None
        return ctx

    def _say(self, what: str, message: str) -> None:
        if self._said.get(what) != message:
            self._said[what] = message
            log.warning("%s: %s", what, message)

    def build(self) -> tuple[Snapshot, list[dict]]:
        ingresses = self.served_ingresses()
        table = routing.build_table(ingresses, default_backend(self.opts))
        for key, reasons in table.skipped.items():
            self._say(f"ingress {key}", "; ".join(reasons))
        backends = {table.default_backend} | {s.default_backend for s in table.servers.values()} | {
            loc.backend for s in table.servers.values() for loc in s.locations}
        endpoints = {b: self._endpoints(b) for b in backends if b is not None}
        contexts = {}
        for host, server in table.servers.items():
            if server.tls_secret:
                ctx = self._context(server.tls_secret)
                if ctx is not None:
                    contexts[host] = ctx
        default_ctx = self._context(self.opts.default_ssl_certificate) if self.opts.default_ssl_certificate else None
        gateway_tables = self.gateways.compile(self.informers["services"].list(),
                                               self.informers["secrets"].list()) if self.gateways else {}
        gateway_certificates = {}
        if self.gateways:
            endpoints.update({b: self._endpoints(b) for b in self.gateways.compiled.backends})
            for pod_port, t in gateway_tables.items():
                loaded = {h: self._context(secret) for h, secret in t.certificates.items()}
                gateway_certificates[pod_port] = {h: ctx for h, ctx in loaded.items() if ctx is not None}
        return Snapshot(table, endpoints, contexts, default_ctx, gateway_tables, gateway_certificates), ingresses

    # -- status ---------------------------------------------------------------------------------------
    def status_addresses(self) -> list[dict]:
        if self.opts.publish_status_address:
            return [{"ip": a} if _is_ip(a) else {"hostname": a} for a in self.opts.publish_status_address.split(",")]
        if not self.opts.publish_service:
            return []
        svc = self.informers["services"].get(self.opts.publish_service)
        if svc is None:
            return []
        lb = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if lb:
            return [{k: v for k, v in i.items() if k in ("ip", "hostname")} for i in lb]
        external = (svc.get("spec") or {}).get("externalIPs") or []
        if external:
            return [{"ip": ip} for ip in external]
        selector = (svc.get("spec") or {}).get("selector") or {}
        ips = set()
        for pod in self.informers["pods"].list():
            labels = (pod.get("metadata") or {}).get("labels") or {}
            status = pod.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if selector and all(labels.get(k) == v for k, v in selector.items()) and ready and status.get("hostIP"):
                ips.add(status["hostIP"])
        return [{"ip": ip} for ip in sorted(ips)]

    async def update_status(self, api: ApiClient, ingresses: list[dict], recorder: EventRecorder) -> None:
        want = self.status_addresses()
        for ing in ingresses:
            meta = ing["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            gen = int(meta.get("generation") or 0)
            if self._synced_generation.get(key) != gen and self.opts.update_status:
                self._synced_generation[key] = gen
                recorder.record(ing, "Normal", "Sync", "Scheduled for sync")
            have = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if not self.opts.update_status or have == want:
                continue
            try:
                await api.patch("networking.k8s.io/v1", "ingresses", meta["name"], {"status": {"loadBalancer": {
                    "ingress": want or None}}}, namespace=meta["namespace"], subresource="status")
                log.info("updated status of ingress %s: %s", key, [a.get("ip") or a.get("hostname") for a in want])
            except ApiError as exc:
                log.warning("updating status of ingress %s: %s", key, exc)

    def _selector(self) -> dict[str, str] | None:
        svc = self.informers["services"].get(self.opts.publish_service)
        return ((svc or {}).get("spec") or {}).get("selector")

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self) -> None:
        opts = self.opts
        pod_ns = os.environ.get("POD_NAMESPACE") or (opts.publish_service.partition("/")[0] or None)
        async with ApiClient(load_config(opts.kubeconfig or None), user_agent="knet-ingress-controller") as api:
            recorder = EventRecorder(api, "nginx-ingress-controller")
            wake = asyncio.Event()
            ns = opts.watch_namespace or None
            specs = {"ingresses": ("networking.k8s.io/v1", ns), "ingressclasses": ("networking.k8s.io/v1", None),
                     "services": ("v1", ns), "endpointslices": ("discovery.k8s.io/v1", ns), "secrets": ("v1", ns),
                     "pods": ("v1", pod_ns)}
            for resource, (version, namespace) in specs.items():
                inf = Informer(api, version, resource, namespace=namespace)
                inf.add_handler(on_add=lambda _o: wake.set(), on_update=lambda _o, _n: wake.set(),
                                on_delete=lambda _o: wake.set())
                self.informers[resource] = inf
            tasks = [asyncio.create_task(inf.run()) for inf in self.informers.values()]
            if self.gateways is not None:  # not waited for: the Gateway API CRDs may come later, or never
                tasks += self.gateways.start(api, wake)
            try:
                for inf in self.informers.values():
                    await inf.wait_synced()
                log.info("caches synced (class %s, controller %s)", opts.ingress_class, opts.controller_class)
                while True:
                    wake.clear()
                    snapshot, ingresses = self.build()
                    self.proxy.swap(snapshot)
                    await self.gateway_listeners.reconcile({p: t.scheme for p, t in snapshot.gateways.items()})
                    if not self.synced:
                        log.info("serving %d ingress(es) on :%d and :%d", len(ingresses), opts.http_port,
                                 opts.https_port)
                    self.synced = True
                    await self.update_status(api, ingresses, recorder)
                    if self.gateways is not None and opts.update_status:
                        await self.gateways.reconcile(api, self.informers["services"].list(), self._selector())
                    await wake.wait()
                    await asyncio.sleep(DEBOUNCE_SECONDS)
            finally:
                for t in tasks:
                    t.cancel()
                await self.gateway_listeners.close()


def _is_ip(value: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


async def _healthz(ctl: IngressController, port: int) -> web.AppRunner | None:
    if not port:
        return None

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(status=200 if ctl.synced else 503, text="ok" if ctl.synced else "not synced")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=f"# TYPE knet_ingress_requests_total counter\n"
                                 f"knet_ingress_requests_total {ctl.proxy.requests}\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def run(opts: Options) -> None:
    cert, key = certs.fake_certificate()
    proxy = Proxy(certs.context_from_pem(cert, key))
    await proxy.start()
    ctl = IngressController(opts, proxy)
    runners = await serve(proxy, "0.0.0.0", opts.http_port, opts.https_port, reuse_port=True)
    health = await _healthz(ctl, opts.healthz_port)
    try:
        await ctl.run()
    finally:
        for r in runners + ([health] if health else []):
            await r.cleanup()
        await proxy.close()
