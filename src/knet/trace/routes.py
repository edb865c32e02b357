"""The HTTP routing step of `knet trace`: which route of which controller a request matches and
where it sends it. Pure.

A Router answers one question, `route(request) -> RouteMatch`: the route that matched (kind,
namespace/name, host, path, pathType), the rewrite, the backend Service and port, or the
controller's own answer (default backend 404, a 308 redirect to HTTPS). IngressRouter answers it
for Ingresses with the ingress controller's own routing table (knet.ingress.routing.build_table,
the code the controller serves with); GatewayRouter (gatewayroutes.py) answers it for the
HTTPRoutes of one Gateway port with the controller's gateway.compile_all/decide, and the trace
(http.py) needs nothing else from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from knet.ingress import routing
from knet.ingress.controller import Options, default_backend, served_ingresses
from knet.ingress.decide import RequestLine, decide_ingress, matched_path, split_target

Obj = dict[str, Any]
# The Service port of the controller's listeners (ingress-nginx's `http`/`https` Service ports).
SCHEME_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HttpRequest:
    scheme: str   # "http" or "https"
    host: str     # the Host header (or SNI name)
    path: str     # the request path as sent (query string kept)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"


@dataclass(frozen=True)
class BackendRef:
    namespace: str
    service: str
    port: int | str   # the Service port's number or name

    def text(self) -> str:
        return f"Service {self.namespace}/{self.service} port {self.port}"


@dataclass(frozen=True)
class WeightedRef:
    """One backendRef of a Gateway rule: its Service (None when refused), weight, and why refused."""
    backend: BackendRef | None
    weight: int
    refused: str = ""      # why the controller cannot send to it (e.g. no ReferenceGrant): 500
    chosen: bool = False   # the one the trace follows

    def text(self) -> str:
        what = self.backend.text() if self.backend else "an invalid backendRef"
        return f"{what} weight {self.weight}" + (f" (refused: {self.refused})" if self.refused else "")


@dataclass
class RouteMatch:
    """What a controller does with one request."""
    kind: str                   # the route's kind: "Ingress" (a Gateway router: "HTTPRoute")
    route: str = ""             # NAMESPACE/NAME of the route that matched; "" when none did
    host: str = ""              # the rule's host ("*" for a rule without host)
    path: str = ""              # the rule's path
    path_type: str = ""         # Exact, Prefix, ImplementationSpecific (a Gateway: PathPrefix, ...)
    backend: BackendRef | None = None
    upstream_path: str = ""     # the path the backend gets (after any rewrite)
    rewrite: str = ""           # the rewrite rule, as written ("" when none)
    default_backend: bool = False  # no rule matched: the default backend took it
    status: int = 0             # the controller's own answer (404, 308, 400); 0: proxied to the backend
    location: str = ""          # where a redirect points
    notes: list[str] = field(default_factory=list)
    # a Gateway's route (empty for an Ingress)
    gateway: str = ""           # NAMESPACE/NAME of the Gateway the request reached
    listener: str = ""          # the listener (by name) serving the request's host on that port
    rule: int = -1              # the HTTPRoute rule's index
    match: int = -1             # the index of the match within the rule
    filters: list[str] = field(default_factory=list)         # the rule's filters, as applied
    backends: list[WeightedRef] = field(default_factory=list)  # the rule's backendRefs with weights
    error: str = ""             # why the controller answers 500

    def describe(self) -> str:
        if self.gateway:
            return self._describe_gateway()
        return self._describe_ingress()

    def _describe_gateway(self) -> str:
        if self.status == 400:
            return "the path is malformed: the controller answers 400"
        if not self.route:
            return f"no HTTPRoute of Gateway {self.gateway} matches: the controller answers 404"
        rule = (f"HTTPRoute {self.route} rule {self.rule} match {self.match} (host {self.host}, path "
                f"{self.path_type} {self.path})")
        if 300 <= self.status < 400:
            return f"{rule} matched: RequestRedirect to {self.location} ({self.status})"
        if self.status == 500:
            return f"{rule} matched: {self.error} (500)"
        assert self.backend is not None
        return f"{rule} matched -> {self.backend.text()}"

    def _describe_ingress(self) -> str:
        if self.status == 400:
            return "the path is malformed: the controller answers 400"
        if self.status == 308:
            return f"{self.kind} {self.route} redirects plain HTTP to {self.location} (308)"
        rule = (f"{self.kind} {self.route} rule host {self.host} path {self.path} ({self.path_type})"
                if self.route else "no rule")
        if self.default_backend:
            target = self.backend.text() if self.backend else "the controller's own 404 page"
            return f"{rule} matched: default backend, {target}"
        assert self.backend is not None
        return f"{rule} matched -> {self.backend.text()}"


class Router(Protocol):
    """One controller's routing for the requests it serves."""
    kind: str

    def route(self, request: HttpRequest) -> RouteMatch: ...


# -- Ingress (ingress-nginx semantics, knet.ingress.routing) -------------------------------------

def controller_options(pod: Obj) -> Options | None:
    """The ingress controller's flags as the pod runs it (None: the pod runs no ingress controller)."""
    from knet.ingress import flags
    from knet.node.workloads import workload_kind

    meta = pod.get("metadata") or {}
    env = {"POD_NAMESPACE": meta.get("namespace", ""), "POD_NAME": meta.get("name", "")}
    for c in (pod.get("spec") or {}).get("containers") or []:
        if workload_kind(c.get("image", "")) != "ingress-nginx":
            continue
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        for k, v in env.items():  # the kubelet's $(VAR) expansion of the manifest's fieldRef env
            argv = [a.replace(f"$({k})", v) for a in argv]
        try:
            return flags.parse(argv)
        except flags.FlagError:
            return None
    return None


@dataclass
class IngressRouter:
    """The Ingresses one ingress controller serves, routed as it routes them."""
    table: routing.RouteTable
    kind: str = "Ingress"

    @classmethod
    def of(cls, opts: Options, ingresses: list[Obj], classes: list[Obj]) -> IngressRouter:
        return cls(routing.build_table(served_ingresses(opts, ingresses, classes), default_backend(opts)))

    def route(self, request: HttpRequest) -> RouteMatch:
        # the proxy's own decision (decide_ingress); the table's match explains it
        d = decide_ingress(self.table, RequestLine(request.scheme, "GET", request.host, request.path))
        if d.status == 400:
            return RouteMatch(self.kind, status=400)
        path = matched_path(split_target(request.path)[0])
        assert path is not None  # decide_ingress answers 400 otherwise
        server, loc = self.table.route(request.host, path)
        notes = [f"server {server.host!r} serves host {routing.normalize_host(request.host) or '(none)'}"
                 + (" (the catch-all server: no rule names this host)" if server.host == routing.CATCH_ALL else "")]
        if loc is None:
            match = RouteMatch(self.kind, notes=notes)
        else:
            match = RouteMatch(self.kind, loc.ingress, "*" if server.host == routing.CATCH_ALL else server.host,
                               loc.path, loc.path_type, notes=notes)
            if loc.regex is not None:
                notes.append(f"paths of host {server.host} are regular expressions (rewrite-target or use-regex): "
                             f"{loc.path!r} matched as ^{loc.path}, case-insensitive")
        match.status, match.location = d.status, d.location
        match.default_backend = loc is None or (loc.backend is None and d.status == 404)
        if d.status:  # a redirect, or the 404 page
            return match
        match.backend, match.upstream_path = _ref(d.backend), d.target
        if loc is not None and loc.rewrite_target is not None:
            match.rewrite = loc.rewrite_target
        if loc is not None and loc.backend_protocol != "HTTP":
            notes.append(f"backend-protocol {loc.backend_protocol}: the controller speaks {loc.backend_protocol} "
                         "to the backend")
        return match


def _ref(b: routing.Backend | None) -> BackendRef | None:
    return BackendRef(b.namespace, b.service, b.port) if b is not None else None


def backend_endpoints(backend: BackendRef, services: list[Obj], slices: list[Obj]) -> tuple[Obj | None, list[tuple[str, int]]]:
    """The backend's Service and its ready (address, port) pairs, as the controller's proxy picks
    among them (routing.endpoints_for on the Service's own EndpointSlices)."""
    svc = next((s for s in services if (s.get("metadata") or {}).get("namespace") == backend.namespace
                and (s.get("metadata") or {}).get("name") == backend.service), None)
    if svc is None:
        return None, []
    own = [s for s in slices if (s.get("metadata") or {}).get("namespace") == backend.namespace
           and ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == backend.service]
    return svc, routing.endpoints_for(svc, backend.port, own)
