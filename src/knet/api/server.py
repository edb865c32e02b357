"""The knet API server: aiohttp over TLS, one dispatcher for every Kubernetes path.

Request flow: authenticate (client certificate, bearer token) -> parse the path into
(group, version, resource, namespace, name, subresource) -> decode the body (JSON or YAML,
3 MiB limit) -> ObjectService verb -> encode (JSON, or a Table for kubectl) -> or a
metav1.Status for any error."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml
from aiohttp import web

from knet.api import (
    decoding,
    discovery,
    errors,
    negotiation,
    nodeproxy,
    openapi,
    podproxy,
    promexport,
    protobuf,
    requestinfo,
    subresources,
    tables,
    typecheck,
    versions,
)
from knet.api.alias import AliasedKind
from knet.api.allocation import ServiceAllocator
from knet.api.auth import PUBLIC_PATHS, Authenticator, User, read_token_file, store_getter, user_from_peercert
from knet.api.authinfo import AuthenticationInfo
from knet.api.authz import Attributes, Authorizer, impersonation
from knet.api.authz.request import forbidden, request_attributes
from knet.api.authz.union import AlwaysAllow, PrivilegedGroups, Union
from knet.api.bootstrap import Bootstrapper
from knet.api.crd.controller import CrdController
from knet.api.errors import ApiError
from knet.api.health import HealthChecks, StoreProbe
from knet.api.lifecycle import Lifecycle
from knet.api.metrics import MetricsServer
from knet.api.registry import ResourceType
from knet.api.relay import KubeletRelay
from knet.api.requestheader import (
    NOT_A_PROXY,
    ClientCertificates,
    RequestHeaderAuthenticator,
    RequestHeaderConfig,
)
from knet.api.resources import build_registry, reviews
from knet.api.rest import ObjectService, Options
from knet.api.selectors import parse_field_selector, parse_label_selector
from knet.api.storage import Store, open_store
from knet.api.storage.etcd import EtcdTLS
from knet.api.tokens import LEGACY_ISSUER, TokenPolicy, TokenSigner, TokenVerifier
from knet.api.watch import watch_events

log = logging.getLogger("knet.api")

MAX_BODY = decoding.MAX_BODY
# Admission plugins kube-apiserver has that knet accepts in --enable-admission-plugins; the
# defaulting and validation they stand for is built into knet's kinds (NamespaceLifecycle,
# ServiceAccount, DefaultStorageClass, ...) or has nothing to act on.
KNOWN_ADMISSION_PLUGINS = frozenset({
    "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "TaintNodesByCondition", "Priority",
    "DefaultTolerationSeconds", "DefaultStorageClass", "StorageObjectInUseProtection", "PersistentVolumeClaimResize",
    "RuntimeClass", "CertificateApproval", "CertificateSigning", "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction", "DefaultIngressClass", "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook", "ResourceQuota", "PodSecurity"})
YAML_INLINE_BYTES = 64 * 1024  # larger YAML bodies are decoded in a thread
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-knet", "gitCommit": "knet", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "python", "compiler": "cpython", "platform": "linux/amd64"}
_SEMVER = re.compile(r"^v(\d+)\.(\d+)\.\d+([-+].*)?$")


def version_info(kubernetes_version: str = "") -> dict[str, str]:
    """/version: knet's own, or the cluster's kubernetesVersion (v1.29.0), so that `kubectl
    version` shows the server at the version its nodes' kubelets report."""
    match = _SEMVER.match(kubernetes_version)
    if not match:
        return dict(VERSION)
    return {**VERSION, "major": match.group(1), "minor": match.group(2), "gitVersion": kubernetes_version}

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply-cbor",
}


@dataclass
class ApiServerConfig:
    bind_address: str = "127.0.0.1"
    secure_port: int = 6443
    advertise_address: str | None = None
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: str = "30000-32767"
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    # --requestheader-* (front-proxy authentication, knet.api.requestheader); None: off
    requestheader: RequestHeaderConfig | None = None
    token_auth_file: str | None = None
    service_account_key_files: list[str] = field(default_factory=list)
    service_account_signing_key_file: str | None = None
    service_account_issuer: str = "https://kubernetes.default.svc.cluster.local"
    # --api-audiences (default: the issuer), --service-account-max-token-expiration (seconds, 0:
    # none), --service-account-extend-token-expiration
    api_audiences: list[str] = field(default_factory=list)
    service_account_max_token_expiration: int = 0
    service_account_extend_token_expiration: bool = True
    storage: str = "memory:"
    kubelet_client_certificate: str | None = None
    kubelet_client_key: str | None = None
    kubelet_certificate_authority: str | None = None
    # kube-apiserver's --authorization-mode (AlwaysAllow, AlwaysDeny, Node, RBAC; its default is
    # AlwaysAllow, kubeadm's and `knet up`'s Node,RBAC), --anonymous-auth and
    # --enable-admission-plugins (NamespaceLifecycle is always on; NodeRestriction on request).
    authorization_modes: list[str] = field(default_factory=lambda: ["AlwaysAllow"])
    anonymous_auth: bool = True
    admission_plugins: list[str] = field(default_factory=list)
    # metrics.k8s.io: how often the kubelets are scraped (metrics-server's --metric-resolution;
    # 0: never, the group answers empty lists).
    metric_resolution: float = 0.0
    kubernetes_version: str = ""  # what /version reports ("" = knet's own); see version_info
    # knet only (--kubelet-endpoint-annotation): reach a node's kubelet at its
    # `knet.io/kubelet-endpoint` annotation (simulated nodes, many on one loopback port); off,
    # the annotation is ignored and kubelets are reached at their address and port, as upstream.
    kubelet_endpoint_annotation: bool = False

    # TLS to etcd (kube-apiserver's --etcd-cafile/--etcd-certfile/--etcd-keyfile): an etcd://
    # storage URL is reached over HTTPS when any is set.
    etcd_cafile: str | None = None
    etcd_certfile: str | None = None
    etcd_keyfile: str | None = None

    def etcd_tls(self) -> EtcdTLS | None:
        if not (self.etcd_cafile or self.etcd_certfile or self.etcd_keyfile):
            return None
        return EtcdTLS(self.etcd_cafile, self.etcd_certfile, self.etcd_keyfile)


ANONYMOUS = User("system:anonymous", "", ("system:unauthenticated",))


CACHE_CONTROL = "no-cache, private"  # kube-apiserver's WithCacheControl: on every answer unless set


class _ApiRequest(web.BaseRequest):
    """A request whose every response (plain, streamed or upgraded) carries Cache-Control."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        response.headers.setdefault("Cache-Control", CACHE_CONTROL)


async def _cache_control(request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers.setdefault("Cache-Control", CACHE_CONTROL)


def _json(obj, status: int = 200, content_type: str = "application/json", headers: dict | None = None) -> web.Response:
    body = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    h = dict(headers) if headers else {}
    h["Content-Type"] = content_type
    return web.Response(body=body, status=status, headers=h)


def _status_response(exc: ApiError, headers: dict | None = None) -> web.Response:
    return _json(exc.status(), exc.code, headers=headers)


_CONTROL_TO_SPACE = {c: " " for c in [*range(0x20), 0x7F]}


def _json_error(exc: Exception) -> str:
    """A JSON decoding error as Go's encoding/json words the common ones."""
    if isinstance(exc, decoding.JsonDepthError) or "depth limit exceeded" in str(exc):
        return "exceeded max depth"
    return str(exc)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "t", "yes")


class ApiServer:
    def __init__(self, config: ApiServerConfig, store: Store | None = None) -> None:
        self.config = config
        self.registry = build_registry()
        self.prom = promexport.ApiServerMetrics()  # GET /metrics
        self.store = promexport.TimedStore(store or open_store(config.storage, config.etcd_tls()), self.prom)
        self.health = HealthChecks(StoreProbe(self.store), started=lambda: self._runner is not None,
                                   serving=lambda: self.ready)
        self.allocator = ServiceAllocator(config.service_cluster_ip_range, config.service_node_port_range)
        self.service = ObjectService(self.registry, self.store, self.allocator)
        tokens = read_token_file(Path(config.token_auth_file).read_text()) if config.token_auth_file else {}
        verifier = None
        pub_keys = [Path(p).read_bytes() for p in config.service_account_key_files]
        if config.service_account_signing_key_file:
            signing = Path(config.service_account_signing_key_file).read_bytes()
            self.signer: TokenSigner | None = TokenSigner(signing, config.service_account_issuer)
            pub_keys.append(signing)
        else:
            self.signer = None
        audiences = tuple(config.api_audiences) or (config.service_account_issuer,)
        self.token_policy = TokenPolicy(audiences, config.service_account_max_token_expiration,
                                        config.service_account_extend_token_expiration)
        if pub_keys:
            # Legacy Secret tokens (issuer kubernetes/serviceaccount) are signed with the same keys.
            verifier = TokenVerifier(pub_keys, [config.service_account_issuer, LEGACY_ISSUER])
        self.auth = Authenticator(tokens, verifier, objects=store_getter(self.store), api_audiences=audiences)
        self.authorizer = self._authorizer(config.authorization_modes)
        self._authorizing = config.authorization_modes != ["AlwaysAllow"]
        # As kube-apiserver: "AnonymousAuth is not allowed with the AlwaysAllow authorizer".
        self._anonymous = config.anonymous_auth and "AlwaysAllow" not in config.authorization_modes
        self.service.admission += self._admission_plugins(config.admission_plugins)
        # As kube-apiserver: kubelet serving certificates are verified only against
        # --kubelet-certificate-authority, when given.
        self.relay = KubeletRelay(self.service, config.kubelet_certificate_authority,
                                  config.kubelet_client_certificate, config.kubelet_client_key,
                                  config.kubelet_endpoint_annotation)
        self.metrics = MetricsServer(self.service, self.relay.summary, config.metric_resolution,
                                     config.kubelet_endpoint_annotation)
        advertise = config.advertise_address or (config.bind_address if config.bind_address not in ("0.0.0.0", "::")
                                                 else "127.0.0.1")
        self.advertise = advertise
        self.version = version_info(config.kubernetes_version)
        rh = config.requestheader
        self.requestheader = RequestHeaderAuthenticator(rh) if rh else None
        self._client_certs = ClientCertificates(config.client_ca_file, self.requestheader) if rh else None
        self.bootstrap = Bootstrapper(self.registry, self.service, advertise, config.secure_port, AuthenticationInfo(
            client_ca=Path(config.client_ca_file).read_text() if config.client_ca_file else "",
            requestheader_client_ca=Path(rh.client_ca_file).read_text() if rh else "",
            requestheader_username_headers=list(rh.username_headers) if rh else [],
            requestheader_group_headers=list(rh.group_headers) if rh else [],
            requestheader_extra_headers_prefix=list(rh.extra_headers_prefix) if rh else [],
            requestheader_allowed_names=list(rh.allowed_names) if rh else []))
        self.lifecycle = Lifecycle(self.registry, self.service)
        self.crds = CrdController(self.registry, self.service)
        self.openapi = openapi.OpenAPI(self.registry)
        self.ready = False
        self._cert_users: dict[bytes, tuple] = {}  # client certificate (DER) -> (its user, proxy check)
        self._conn_users: weakref.WeakKeyDictionary[ssl.SSLObject, tuple] = weakref.WeakKeyDictionary()
        self._runner: web.BaseRunner | None = None

    def _authorizer(self, modes: list[str]) -> Authorizer:
        """kube-apiserver's chain: system:masters first, then the modes in the order given."""
        from knet.api.authz import union

        chain: list[Authorizer] = [PrivilegedGroups()]
        self.rbac = None
        for mode in modes:
            if mode == "AlwaysAllow":
                chain.append(AlwaysAllow())
            elif mode == "AlwaysDeny":
                chain.append(union.AlwaysDeny())
            elif mode == "Node":
                from knet.api.authz.node import NodeAuthorizer

                chain.append(NodeAuthorizer.for_store(self.store))
            elif mode == "RBAC":
                from knet.api.authz.rbac import RBACAuthorizer, StoreRbacSource

                self.rbac = RBACAuthorizer(StoreRbacSource(self.store))
                chain.append(self.rbac)
            else:
                raise ValueError(f"unknown authorization mode {mode!r} (AlwaysAllow, AlwaysDeny, Node, RBAC)")
        return Union(chain)

    def _admission_plugins(self, names: list[str]) -> list:
        from knet.api.admission.defaultingressclass import DefaultIngressClass
        from knet.api.admission.namespacelifecycle import namespace_lifecycle
        from knet.api.admission.priority import Priority

        plugins = [namespace_lifecycle, Priority(self.store), DefaultIngressClass(self.store)]
        if "RBAC" in self.config.authorization_modes:
            # The RBAC storage's own check (not an admission plugin upstream, but the same place
            # in the write path): no one grants what they do not hold.
            from knet.api.authz.escalation import escalation_admission

            plugins.append(escalation_admission(self.authorizer, resolver=self.rbac))
        for name in names:
            if name == "NodeRestriction":
                from knet.api.admission.noderestriction import NodeRestriction

                plugins.append(NodeRestriction(self.store))
            elif name not in KNOWN_ADMISSION_PLUGINS:
                raise ValueError(f"unknown admission plugin {name!r}")
        return plugins

    # --- lifecycle -----------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext | None:
        c = self.config
        if not (c.tls_cert_file and c.tls_private_key_file):
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # As Go's TLS server: no renegotiation, so a connection's client certificate (and the
        # user cached for it) is the one of its handshake.
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        ctx.load_cert_chain(c.tls_cert_file, c.tls_private_key_file)
        # As upstream's serving ClientCAs: the union of --client-ca-file and
        # --requestheader-client-ca-file; each authenticator then checks its own CA.
        for ca_file in (c.client_ca_file, c.requestheader.client_ca_file if c.requestheader else None):
            if ca_file:
                ctx.load_verify_locations(ca_file)
                ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def app(self) -> web.Application:
        """The API as an aiohttp Application (for embedding); `start` serves `handle` directly."""
        app = web.Application(client_max_size=MAX_BODY + 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_response_prepare.append(_cache_control)
        return app

    async def start(self) -> None:
        self.allocator.rebuild([e.obj for e in self.store.list("services")[0]])
        await self.bootstrap.ensure()
        await self.crds.start()  # custom resources are served before anything reads the registry
        self.lifecycle.start()
        self.bootstrap.start()
        if self.config.metric_resolution > 0:
            self.metrics.start()
        # Open watches and exec sessions are cut at shutdown instead of being waited for.
        # aiohttp's low-level server: every path goes to `handle`, which routes itself, so the
        # Application's regex router and middleware chain would only add cost to every request.
        loop = asyncio.get_running_loop()
        server = web.Server(self.handle, access_log=None,
                            request_factory=lambda message, payload, protocol, writer, task:
                            _ApiRequest(message, payload, protocol, writer, task, loop))
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.bind_address, self.config.secure_port,
                           ssl_context=self.ssl_context(), backlog=1024, reuse_address=True)
        await site.start()
        self.ready = True
        log.info("knet apiserver serving on %s:%s", self.config.bind_address, self.config.secure_port)

    async def stop(self) -> None:
        self.ready = False
        await self.bootstrap.stop()
        await self.lifecycle.stop()
        await self.crds.stop()
        await self.metrics.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.relay.close()
        await self.health.close()
        await self.store.close()

    # --- dispatch ------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request, counted and timed into /metrics."""
        started = time.monotonic()
        read_only = request.method in ("GET", "HEAD")
        self.prom.begin(read_only)
        status = 500
        try:
            response = await self._handle(request)
            status = response.status
            return response
        finally:
            info = request.get("request_info") or promexport.RequestInfo(request.method.upper())
            self.prom.end(info, status, time.monotonic() - started, read_only)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/version/":  # as /version (kr8s asks this first)
            path = "/version"
        try:
            public = path in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/"))
            if public and not self._authorizing:
                return self._public(path, request)
            user = self._authenticate(request)
            if user is None:
                raise errors.unauthorized()
            if impersonation.requested(request.headers):
                user = impersonation.impersonate(request.headers, user, self.authorizer.authorize)
            request["user"] = user
            if public:
                self._authorize(Attributes(user, request.method.lower(), resource_request=False, path=path))
                return self._public(path, request)
            if path == "/metrics":  # system:monitoring's, as kube-apiserver's
                self._authorize(Attributes(user, request.method.lower(), resource_request=False, path=path))
                counts = {errors.qualified(rt.resource, rt.group): len(self.store.list(rt.bucket)[0])
                          for rt in self.registry.all()
                          if rt.stored_as is None and "create" in rt.verbs and rt.group != "metrics.k8s.io"}
                return web.Response(text=self.prom.exposition(counts),
                                    content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-cache, private"})
            return await self._route(request, path)
        except ApiError as exc:
            return _status_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(errors.too_large())
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: answer like kube-apiserver's panic handler, keep serving
            log.exception("internal error on %s %s", request.method, path)
            return _status_response(ApiError(500, "InternalError", f"an error on the server has prevented the request from succeeding: {exc}"))

    def _authorize(self, attrs: Attributes) -> None:
        decision = self.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)

    def _authenticate(self, request: web.Request) -> User | None:
        """The request's user: its client certificate's (verified in the TLS handshake), else its
        bearer token's, else (with --anonymous-auth) system:anonymous; None for a bearer token
        that is not valid (401, as upstream: a bad credential is never anonymous). A
        connection's certificate is decoded once, not on every request."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            try:
                user, proxy = self._conn_users[ssl_object]
            except KeyError:
                user, proxy = self._conn_users[ssl_object] = self._cert_user(ssl_object)
            if proxy.verified:
                # A request-header CA certificate: the front proxy's user (upstream: first in the
                # chain), else, as upstream's union with its errors, a bearer token's user or 401.
                proxied = self.requestheader.authenticate(proxy, request.headers)
                if proxied is not None:
                    return proxied
                if user is None:
                    authorization = request.headers.get("Authorization")
                    return self.auth.authenticate(authorization, None) if authorization else None
            if user is not None:
                return user
        authorization = request.headers.get("Authorization")
        if not authorization and self._anonymous:
            return ANONYMOUS
        return self.auth.authenticate(authorization, None)

    def _cert_user(self, ssl_object: ssl.SSLObject):
        """(x509 user or None, what the certificate is to the request-header authenticator)."""
        der = ssl_object.getpeercert(binary_form=True)
        if der is None:
            return None, NOT_A_PROXY
        try:
            return self._cert_users[der]
        except KeyError:
            if len(self._cert_users) >= 1024:
                self._cert_users.clear()
            found = (self._client_certs.identify(ssl_object, user_from_peercert) if self._client_certs
                     else (user_from_peercert(ssl_object.getpeercert()), NOT_A_PROXY))
            self._cert_users[der] = found
            return found

    def _public(self, path: str, request: web.Request) -> web.Response:
        if path == "/version":
            return _json(self.version)
        # /healthz, /livez, /readyz and their per-check paths (knet.api.health).
        q = request.query
        answer = self.health.answer(path, verbose="verbose" in q, exclude=q.getall("exclude", ()))
        if answer is None:
            raise errors.not_found_path()
        return web.Response(status=answer.status, text=answer.text, charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        """Parse the request once (knet.api.requestinfo), authorize what it says, and serve
        that same thing: a non-resource path (discovery, OpenAPI) or a resource."""
        try:
            info = requestinfo.parse(request.method, path, request.query)
        except requestinfo.RequestInfoError as exc:
            raise ApiError(500, "InternalError", f"failed to create RequestInfo: {exc}") from None
        request["requestinfo"] = info
        if self._authorizing:
            # Discovery, OpenAPI and the root are non-resource paths (system:discovery and
            # system:public-info-viewer grant them). As kube-apiserver, authorization comes
            # before routing: a path that names nothing is still a 403 for whom it is denied.
            self._authorize(request_attributes(request["user"], info))
        if not info.is_resource_request:
            return self._non_resource(request, path)
        return await self._resource(request, info)

    def _non_resource(self, request: web.Request, path: str) -> web.StreamResponse:
        parts = requestinfo.split_path(path)
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3",
                                    "/readyz", "/version"] + [f"/apis/{g}" for g in self.registry.group_versions() if g]})
        if parts[0] == "openapi":
            return self.openapi.serve(request, parts[1:])
        accept = request.headers.get("Accept", "")
        doc = None
        if parts == ["api"]:
            return self._discovery_root(accept, core=True)
        if parts == ["apis"]:
            return self._discovery_root(accept, core=False)
        if parts[0] == "api" and len(parts) == 2:
            doc = discovery.api_resource_list(self.registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            doc = discovery.api_group(self.registry, parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.api_resource_list(self.registry, parts[1], parts[2])
        if doc is None:
            raise errors.not_found_path()
        return _json(doc)

    async def _resource(self, request: web.Request, info: requestinfo.RequestInfo) -> web.StreamResponse:
        """A resource request: its kind, then by verb to a collection handler or `_object`."""
        if info.verb_via_path:
            if info.verb != "watch":  # /api/v1/proxy/...: removed upstream
                raise errors.not_found_path()
            if request.method != "GET":
                raise errors.method_not_allowed()
        if len(info.parts) > 3 and info.subresource != "proxy":  # only proxy takes a path after it
            raise errors.not_found_path()
        rt = self.registry.lookup(info.api_group, info.api_version, info.resource)
        if rt is None:
            raise errors.not_found_path()
        method = request.method
        version = info.api_version
        ns = info.namespace if info.namespace_in_path else None
        name = info.path_name or None
        sub = info.subresource or None
        if sub is not None and sub not in rt.subresources:
            raise errors.not_found_path()
        if rt.namespaced and ns is None and name is not None:
            raise errors.not_found_path()
        if not rt.namespaced and ns is not None:
            raise errors.not_found_path()
        q = request.query
        watching = info.verb == "watch"
        connect = sub in ("exec", "attach", "portforward", "proxy")
        request["request_info"] = metric = promexport.RequestInfo(
            promexport.clean_verb(method, has_name=name is not None, watch=watching,
                                  apply=request.content_type == "application/apply-patch+yaml", connect=connect),
            rt.group, version, rt.resource, sub or "", info.scope, dry_run=bool(q.getall("dryRun", ())))
        if watching or connect:
            self.prom.long_running(metric)
        if not connect and sub != "log":
            # As the REST handlers: the output is negotiated before anything is read or written.
            request["output"] = negotiation.negotiate(request.headers.get("Accept"), watch=watching)
        if rt.group == "metrics.k8s.io":
            return self._metrics(request, rt, ns, name, watching)
        if watching and name is not None:
            # The legacy /watch/.../NAME: a watch of the collection narrowed to the name.
            if sub is not None:
                raise errors.method_not_allowed()
            return await self._watch(request, rt, ns, name=name)
        review = reviews.HANDLERS.get((rt.group, rt.resource))
        if review is not None:
            if method != "POST" or name is not None:
                raise errors.method_not_allowed()
            body, _ = await self._body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("the request body must be an object")
            return _json(review(body, request["user"], self, ns), 201)
        if name is not None:
            return await self._object(request, rt, ns or "", name, sub)
        collection = self._COLLECTION_VERBS.get(info.verb)
        if collection is None or method == "HEAD":
            raise errors.method_not_allowed()
        return await collection(self, request, rt, ns)

    def _metrics(self, request: web.Request, rt: ResourceType, ns: str | None, name: str | None,
                 watching: bool) -> web.Response:
        """metrics.k8s.io: get and list only (as metrics-server), from the scraper's figures."""
        if request.method != "GET" or watching:
            raise errors.method_not_allowed()
        if name is not None:
            obj = self.metrics.get(rt.resource, ns or "", name)
            return self._render(request, rt, obj) if tables.wants_table(request.headers.get("Accept")) else _json(obj)
        labels, fields = self._selectors(request, rt)
        if rt.namespaced and ns is None:
            ns = fields.value_of("metadata.namespace")
        answer = self.metrics.list(rt.resource, ns, labels, fields)
        accept = request.headers.get("Accept")
        if tables.wants_table(accept):
            return _json(tables.table(rt, answer["items"], list_meta={}, include=request.query.get("includeObject", "Metadata"),
                                      api_version=tables.table_version(accept)))
        return _json(answer)

    def _discovery_root(self, accept: str, core: bool) -> web.Response:
        for media in accept.split(","):
            media = media.strip().replace(" ", "")
            if "as=APIGroupDiscoveryList" in media and "g=apidiscovery.k8s.io" in media:
                v = "v2" if "v=v2;" in media + ";" or media.endswith("v=v2") else "v2beta1"
                ct = discovery.AGGREGATED_V2 if v == "v2" else discovery.AGGREGATED_V2BETA1
                return _json(discovery.aggregated(self.registry, core, f"apidiscovery.k8s.io/{v}"), content_type=ct)
            if media.split(";")[0] in ("application/json", "*/*", ""):
                break
        if core:
            return _json(discovery.api_versions(f"{self.advertise}:{self.config.secure_port}"))
        return _json(discovery.api_group_list(self.registry))

    # --- bodies and options --------------------------------------------------------------------
    async def _body(self, request: web.Request, allow_patch: bool = False) -> tuple[object, str]:
        raw = await decoding.read_body(request)
        ctype = (request.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        kind = "object"
        if ctype in PATCH_TYPES:
            if not allow_patch:
                raise errors.unsupported_media_type(ctype)
            kind = PATCH_TYPES[ctype]
            if kind == "apply-cbor":
                raise errors.unsupported_media_type(ctype)
        elif allow_patch:
            raise errors.unsupported_media_type(ctype)
        elif ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw), kind
            except (protobuf.ProtobufError, ValueError, IndexError, UnicodeDecodeError) as exc:
                raise errors.bad_request(str(exc)) from None
        elif ctype not in ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "*/*"):
            raise errors.unsupported_media_type(ctype)
        if not raw.strip():
            raise errors.bad_request("the body of the request was empty" if not allow_patch else "empty patch")
        try:
            json_type = ctype in ("application/json", "application/json-patch+json", "application/merge-patch+json",
                                  "application/strategic-merge-patch+json", "*/*")
            # JSON is YAML: a YAML body that is JSON (what kubectl sends, server-side apply too)
            # is decoded as JSON, many times faster than PyYAML.
            if json_type or raw.lstrip()[:1] in (b"{", b"["):
                try:
                    return decoding.loads_json(raw), kind
                except orjson.JSONDecodeError:
                    if json_type and ctype != "*/*":
                        raise
            if len(raw) > YAML_INLINE_BYTES:
                # Seconds of PyYAML for a large document: off the event loop, which keeps serving.
                return await asyncio.to_thread(decoding.loads_yaml, raw), kind
            return decoding.loads_yaml(raw), kind
        except (orjson.JSONDecodeError, decoding.JsonDepthError) as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {_json_error(exc)}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None

    @staticmethod
    def _options(request: web.Request, body: dict | None = None) -> Options:
        q = request.query
        dry = q.getall("dryRun", [])
        if body and isinstance(body.get("dryRun"), list):
            dry = dry + body["dryRun"]
        for d in dry:
            if d != "All":
                raise errors.bad_request(f'Invalid dryRun value: "{d}": valid values are "All"')
        fv = q.get("fieldValidation", "Warn")
        if fv not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn", "Strict", got "{fv}"')
        manager = q.get("fieldManager")
        if manager is not None and len(manager) > 128:
            raise errors.bad_request("fieldManager: Too long: may not be longer than 128 characters")
        return Options(dry_run=bool(dry), field_validation=fv, field_manager=manager, force=_flag(q.get("force")),
                       user=request.get("user"), user_agent=request.headers.get("User-Agent", ""))

    @staticmethod
    def _warn_headers(opts: Options) -> dict | None:
        if not opts.warnings:
            return None
        def quoted(text: str) -> str:  # RFC 7234 warn-text: a quoted-string
            # A control character (a field name may hold one) cannot go into a header: aiohttp
            # refused to send the response and dropped the connection after the write stored.
            text = text.translate(_CONTROL_TO_SPACE)
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return {"Warning": ", ".join(f"299 - {quoted(w)}" for w in opts.warnings)}

    @staticmethod
    def _output(request: web.Request) -> negotiation.Output:
        out = request.get("output")
        return out if out is not None else negotiation.negotiate(request.headers.get("Accept"))

    @staticmethod
    def _answer(out: negotiation.Output, body: dict | bytes, status: int = 200,
                headers: dict | None = None) -> web.Response:
        return _json(negotiation.encode(out.media_type, body), status, content_type=out.media_type, headers=headers)

    def _render(self, request: web.Request, rt: ResourceType, obj: dict, status: int = 200,
                headers: dict | None = None) -> web.Response:
        """One object in the negotiated form (a Status is never converted, as upstream)."""
        out = self._output(request)
        if out.convert is None or obj.get("kind") == "Status":
            body: dict | bytes = self._encoded(rt, obj)
        elif out.convert == negotiation.TABLE:
            body = tables.table(rt, [obj], list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                include=request.query.get("includeObject", "Metadata"), api_version=out.group_version)
        elif out.convert == negotiation.PARTIAL:
            body = negotiation.partial(obj, out.group_version)
        else:
            raise negotiation.object_refused(rt)
        return self._answer(out, body, status, headers)

    def _render_list(self, request: web.Request, rt: ResourceType, objs: list[dict], list_meta: dict,
                     raws: list[bytes] | None = None) -> web.Response:
        """A list in the negotiated form; `raws` (the items' JSON) spares re-encoding plain JSON."""
        out = self._output(request)
        if out.convert == negotiation.TABLE:
            body: dict | bytes = tables.table(rt, objs, list_meta=list_meta, api_version=out.group_version,
                                              include=request.query.get("includeObject", "Metadata"))
        elif out.convert == negotiation.PARTIAL_LIST:
            body = negotiation.partial_list(objs, list_meta, out.group_version)
        elif out.convert == negotiation.PARTIAL:
            raise negotiation.list_refused(rt)
        elif raws is not None and out.media_type == negotiation.JSON:
            head = orjson.dumps({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": list_meta})
            body = head[:-1] + b',"items":[' + b",".join(raws) + b"]}"
        else:
            body = {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": list_meta, "items": objs}
        return self._answer(out, body)

    def _encoded(self, rt: ResourceType, obj: dict) -> bytes | dict:
        """The stored JSON when `obj` is the stored object itself (what a write returns), so a
        write's response does not encode the object a second time; else `obj`."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return obj
        entry = self.store.get(rt.bucket, meta.get("namespace", "") if rt.namespaced else "", meta.get("name", ""))
        return entry.raw if entry is not None and entry.obj is obj else obj

    # --- verbs ---------------------------------------------------------------------------------
    def _selectors(self, request: web.Request, rt: ResourceType):
        q = request.query
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt.supported_fields)
        return labels, fields

    def _list(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        q = request.query
        labels, fields = self._selectors(request, rt)
        if rt.namespaced and ns is None:
            ns = fields.value_of("metadata.namespace")
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {q.get('limit')}") from None
        stored = self._stored(rt)
        versions.check_list(q, self.store.revision)
        entries, list_meta = self.service.list(stored, ns, labels, fields, max(limit, 0), q.get("continue"))
        if rt.from_storage is not None:  # another kind's storage, or a custom resource's defaults
            objs = [rt.from_storage(e.obj) for e in entries]
            raws = [orjson.dumps(o) for o in objs]
        else:
            objs, raws = [e.obj for e in entries], [e.raw for e in entries]
        return self._render_list(request, rt, objs, list_meta, raws)

    async def _watch(self, request: web.Request, rt: ResourceType, ns: str | None,
                     name: str | None = None) -> web.StreamResponse:
        q = request.query
        labels, fields = self._selectors(request, rt)
        if name is not None:
            # As ListResource for a name in the path: the field selector is metadata.name=NAME,
            # and one given must select exactly that name.
            if not fields.empty:
                if fields.value_of("metadata.name") != name:
                    raise errors.bad_request("fieldSelector metadata.name doesn't match requested name")
            else:
                fields = parse_field_selector(f"metadata.name={name}", rt.supported_fields)
        if rt.namespaced and ns is None:
            ns = fields.value_of("metadata.namespace")
        timeout = None
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError:
                raise errors.bad_request("invalid timeoutSeconds") from None
        # Checked before the stream starts: a bad version is a plain 400/422 answer.
        versions.check_list_options(q, watch=True)
        since = versions.parse(q.get("resourceVersion"))
        too_large = None
        if since > self.store.revision and _flag(q.get("sendInitialEvents")):
            # WatchList waits (up to 3 s, as the watch cache) for the version it must start
            # from, then ends with a 504 ERROR event.
            for _ in range(30):
                await asyncio.sleep(0.1)
                if since <= self.store.revision:
                    break
            else:
                too_large = versions.too_large(since, self.store.revision)
        out = request.get("output") or negotiation.negotiate(request.headers.get("Accept"), watch=True)
        if out.convert == negotiation.PARTIAL_LIST:  # each event holds one object
            raise negotiation.object_refused(rt)
        as_table, as_partial = out.convert == negotiation.TABLE, out.convert == negotiation.PARTIAL
        table_version = out.group_version
        include = q.get("includeObject", "Metadata")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if too_large is not None:
            await resp.write(b'{"type":"ERROR","object":' + orjson.dumps(too_large.status()) + b"}\n")
            return resp
        first = True
        stored = self._stored(rt)
        events = watch_events(self.service, stored, ns, resource_version=q.get("resourceVersion"), labels=labels,
                              fields=fields, bookmarks=_flag(q.get("allowWatchBookmarks")), timeout=timeout,
                              convert=rt.from_storage, send_initial_events=_flag(q.get("sendInitialEvents")))
        try:
            async for batch in events:
                lines = []
                for etype, obj, raw in batch:
                    if as_table and etype not in ("ERROR", "BOOKMARK"):
                        obj = tables.table(rt, [obj], list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                           include=include, api_version=table_version, headers=first)
                        first, raw = False, None
                    elif as_partial and etype != "ERROR":
                        obj, raw = negotiation.partial(obj, table_version), None
                    lines.append(b'{"type":"' + etype.encode() + b'","object":' + (raw or orjson.dumps(obj)) + b"}\n")
                # Everything ready goes out in one chunk: one TLS record and send for many events.
                await resp.write(b"".join(lines))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await events.aclose()
        return resp

    def _stored(self, rt: ResourceType) -> ResourceType:
        return self.registry.lookup(*rt.stored_as) if rt.stored_as else rt

    async def _create(self, request: web.Request, rt: ResourceType, ns: str) -> web.Response:
        body, _ = await self._body(request)
        opts = self._options(request)
        if rt.stored_as:
            obj = await AliasedKind(self.registry, self.service, rt).create(ns, body, opts)
        else:
            obj = await self.service.create(rt, ns, body, opts)
        return self._render(request, rt, obj, 201, self._warn_headers(opts))

    async def _delete_options(self, request: web.Request) -> tuple[dict, Options]:
        options: dict = {}
        if request.can_read_body:
            raw = await decoding.read_body(request)
            if raw.strip():
                try:
                    options = protobuf.decode(raw) if raw.startswith(protobuf.MAGIC) else decoding.loads_json(raw)
                except (protobuf.ProtobufError, ValueError, IndexError, UnicodeDecodeError) as exc:
                    if not isinstance(exc, orjson.JSONDecodeError):
                        raise errors.bad_request(str(exc)) from None
                    try:
                        options = decoding.loads_yaml(raw) or {}
                    except (yaml.YAMLError, UnicodeDecodeError) as exc:
                        raise errors.bad_request(f"invalid DeleteOptions: {exc}") from None
                if not isinstance(options, dict):
                    raise errors.bad_request("invalid DeleteOptions")
                typecheck.check_delete_options(options)
        q = request.query
        if "gracePeriodSeconds" in q:
            try:
                options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("invalid gracePeriodSeconds") from None
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            options["orphanDependents"] = _flag(q["orphanDependents"])
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise errors.invalid_object("DeleteOptions", "", "", [errors.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"])])
        return options, self._options(request, options)

    async def _delete_collection(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        labels, fields = self._selectors(request, rt)
        options, opts = await self._delete_options(request)
        stored = self._stored(rt)
        entries, meta = self.service.list(stored, ns, labels, fields)
        async def delete_one(m: dict) -> dict | None:
            try:
                _, obj = await self.service.delete(stored, m.get("namespace", ""), m["name"], options, opts)
                return rt.from_storage(obj) if rt.from_storage else obj
            except ApiError as exc:
                if exc.code != 404:
                    raise
                return None

        items = []
        metas = [e.obj["metadata"] for e in entries]
        for i in range(0, len(metas), 200):  # in parallel, sharing commits
            items += [o for o in await asyncio.gather(*(delete_one(m) for m in metas[i:i + 200])) if o is not None]
        return self._render_list(request, rt, items, meta)

    async def _list_collection(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        return self._list(request, rt, ns)

    async def _create_in(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        if rt.namespaced and ns is None:
            raise errors.method_not_allowed()
        return await self._create(request, rt, ns or "")

    # A collection's handlers by RequestInfo verb (a named object goes to `_object`).
    _COLLECTION_VERBS = {"list": _list_collection, "watch": _watch, "create": _create_in,
                         "deletecollection": _delete_collection}

    async def _proxy(self, request: web.Request, rt: ResourceType, ns: str, name: str) -> web.StreamResponse:
        """pods/proxy, services/proxy, nodes/proxy: on to the pod, a ready endpoint of the
        Service's port, or the node's kubelet (knet.api.nodeproxy)."""
        subpath = request["requestinfo"].subpath()
        if rt.resource == "nodes":
            scheme, name, port = nodeproxy.split_name(name)
            where = nodeproxy.location(self.service.entry(rt, "", name).obj, scheme, port,
                                       self.config.kubelet_endpoint_annotation)
            return await podproxy.forward(self.relay.session(), request, where.scheme, where.host, where.port, subpath,
                                          ssl=self.relay.ssl_context if where.kubelet else False)
        scheme, name, port = podproxy.split_name(name)
        obj = self.service.entry(rt, ns, name).obj
        if rt.resource == "pods":
            host, number = podproxy.target_of_pod(obj, port)
        else:
            slices = self.registry.lookup("discovery.k8s.io", "v1", "endpointslices")
            owned = [e.obj for e in self.store.list(slices.bucket, ns)[0]
                     if ((e.obj.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == name]
            host, number = podproxy.target_of_service(obj, owned, port)
        return await podproxy.forward(self.relay.session(), request, scheme, host, number, subpath)

    async def _object(self, request: web.Request, rt: ResourceType, ns: str, name: str, sub: str | None) -> web.StreamResponse:
        method = request.method
        svc = self.service
        if sub == "log":
            if method != "GET":
                raise errors.method_not_allowed()
            return await self.relay.logs(request, ns, name)
        if sub in ("exec", "attach"):
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed()
            return await self.relay.exec(request, ns, name, attach=sub == "attach")
        if sub == "portforward":
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed()
            return await self.relay.portforward(request, ns, name)
        if sub in ("binding", "eviction", "token"):
            if method != "POST":
                raise errors.method_not_allowed()
            body, _ = await self._body(request)
            opts = self._options(request)
            if sub == "binding":
                return _json(await subresources.bind(svc, rt, ns, name, body, opts), 201)
            if sub == "eviction":
                return _json(await subresources.evict(svc, rt, ns, name, body, opts), 201)
            answer = await subresources.token_request(svc, self.signer, rt, ns, name, body, opts, self.token_policy)
            return _json(answer, 201, headers=self._warn_headers(opts))
        if sub == "scale":
            return await self._scale(request, rt, ns, name)
        if sub == "proxy":
            return await self._proxy(request, rt, ns, name)
        if rt.stored_as:
            return await self._aliased_object(request, rt, ns, name, sub)
        if method == "GET":
            if "resourceVersion" in request.query:
                versions.check_get(request.query, self.store.revision)
            entry = svc.entry(rt, ns, name)
            if rt.from_storage is not None:  # a custom resource's defaults
                return self._render(request, rt, rt.from_storage(entry.obj))
            if not self._output(request).plain_json:
                return self._render(request, rt, entry.obj)
            return _json(entry.raw)
        if method == "PUT":
            body, _ = await self._body(request)
            opts = self._options(request)
            code, obj = await svc.update(rt, ns, name, body, opts, sub)
            return self._render(request, rt, obj, code, self._warn_headers(opts))
        if method == "PATCH":
            body, patch_type = await self._body(request, allow_patch=True)
            opts = self._options(request)
            if patch_type == "apply" and not opts.field_manager:
                raise errors.bad_request("PATCH with apply requires fieldManager query parameter")
            code, obj = await svc.patch(rt, ns, name, patch_type, body, opts, sub)
            return self._render(request, rt, obj, code, self._warn_headers(opts))
        if method == "DELETE":
            if sub is not None:
                raise errors.method_not_allowed()
            options, opts = await self._delete_options(request)
            code, obj = await svc.delete(rt, ns, name, options, opts)
            return self._render(request, rt, obj, code)
        raise errors.method_not_allowed()

    async def _aliased_object(self, request: web.Request, rt: ResourceType, ns: str, name: str,
                              sub: str | None = None) -> web.Response:
        alias = AliasedKind(self.registry, self.service, rt)
        method = request.method
        if method == "GET":
            return self._render(request, rt, rt.from_storage(self.service.entry(alias.stored, ns, name).obj))
        if method == "DELETE":
            if sub is not None:
                raise errors.method_not_allowed()
            options, opts = await self._delete_options(request)
            code, obj = await alias.delete(ns, name, options, opts)
            return self._render(request, rt, obj, code)
        if method == "PUT":
            body, _ = await self._body(request)
            opts = self._options(request)
            code, obj = await alias.update(ns, name, body, opts, sub)
        elif method == "PATCH":
            body, patch_type = await self._body(request, allow_patch=True)
            opts = self._options(request)
            code, obj = await alias.patch(ns, name, patch_type, body, opts, sub)
        else:
            raise errors.method_not_allowed()
        return self._render(request, rt, obj, code, self._warn_headers(opts))

    async def _scale(self, request: web.Request, rt: ResourceType, ns: str, name: str) -> web.Response:
        svc = self.service
        method = request.method
        rt = self._stored(rt)  # a scale write goes to the stored kind
        if method == "GET":
            return _json(subresources.scale_of(svc.entry(rt, ns, name).obj, rt.scale_paths))
        opts = self._options(request)
        if method == "PUT":
            body, _ = await self._body(request)
            return _json(await subresources.update_scale(svc, rt, ns, name, body or {}, opts))
        if method == "PATCH":
            body, patch_type = await self._body(request, allow_patch=True)
            from knet.api import patch as patches

            current = subresources.scale_of(svc.entry(rt, ns, name).obj, rt.scale_paths)
            try:
                if patch_type == "json":
                    new = patches.json_patch(current, body)
                else:
                    new = patches.merge_patch(current, body)
            except patches.PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from None
            return _json(await subresources.update_scale(svc, rt, ns, name, new, opts))
        raise errors.method_not_allowed()


async def serve(config: ApiServerConfig, stop: asyncio.Event | None = None) -> None:
    server = ApiServer(config)
    await server.start()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.stop()
