"""The routing step of `knet trace` for a Gateway API Gateway. Pure.

knet's ingress controller serves each Gateway on pod ports of its own (20000 and up): the
Gateway's LoadBalancer Service `ingress-nginx/gw-<ns>-<name>` maps each listener port to one
(gatewaycontroller.owned_services/pod_ports). So the pod port the first leg of the trace ends at
says which Gateway and listener port the request reached, and the controller's own compile
(gateway.compile_all, as GatewaySync.compile calls it) and request decision (gateway.decide) say
what it does with it: the HTTPRoute rule and match, the filters, the weighted backend, or its own
answer (a RequestRedirect's 30x, 500 for a refused backendRef, 404 when nothing matches).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from knet.ingress import gateway, gatewaycontroller
from knet.ingress.gateway import Compiled, HeaderEdit, Match, PathModifier, PortTable
from knet.ingress.routing import normalize_host, normalize_path
from knet.trace.routes import BackendRef, HttpRequest, Obj, RouteMatch, WeightedRef

KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")
# gateway.CONTROLLER_NAME: GatewaySync runs with it (controller.py passes no other)
CONTROLLER_NAME = gateway.CONTROLLER_NAME


@dataclass
class GatewayObjects:
    """The objects the controller compiles its Gateways from (as its informers hold them)."""
    classes: list[Obj] = field(default_factory=list)
    gateways: list[Obj] = field(default_factory=list)
    routes: list[Obj] = field(default_factory=list)
    grants: list[Obj] = field(default_factory=list)
    namespaces: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    secrets: list[Obj] = field(default_factory=list)

    @classmethod
    def of(cls, objects: list[Obj]) -> GatewayObjects:
        by: dict[str, list[Obj]] = {}
        for o in objects:
            by.setdefault(o.get("kind", ""), []).append(o)
        return cls(by.get("GatewayClass", []), by.get("Gateway", []), by.get("HTTPRoute", []),
                   by.get("ReferenceGrant", []), by.get("Namespace", []), by.get("Service", []),
                   by.get("Secret", []))


def gateway_services(objs: GatewayObjects, namespace: str) -> dict[str, Obj]:
    """Each Gateway's Service in the controller's namespace, by Gateway NAMESPACE/NAME."""
    return gatewaycontroller.owned_services(objs.services, namespace)


def compile_gateways(objs: GatewayObjects, namespace: str) -> Compiled:
    """The controller's model, compiled as GatewaySync.compile compiles it."""
    owned = gateway_services(objs, namespace)
    addresses = {gkey: gatewaycontroller.service_addresses(svc) for gkey, svc in owned.items()}
    return gateway.compile_all(objs.classes, objs.gateways, objs.routes, objs.grants, objs.namespaces,
                               objs.services, CONTROLLER_NAME, addresses, objs.secrets)


@dataclass
class GatewayRouter:
    """The HTTPRoutes one Gateway port serves, routed as the controller routes them."""
    gateway: str                      # NAMESPACE/NAME
    port: int                         # the listener port
    table: PortTable | None           # None: the Gateway is not served (the controller answers 404)
    compiled: Compiled
    objects: GatewayObjects
    pick: Callable[[int], int] = field(default=lambda n: random.randrange(n))
    kind: str = "HTTPRoute"

    @classmethod
    def for_pod_port(cls, objs: GatewayObjects, namespace: str, pod_port: int,
                     pick: Callable[[int], int] | None = None) -> GatewayRouter | None:
        """The router of the Gateway a controller pod serves on `pod_port` (None: no Gateway's
        Service maps a listener to it). `namespace`: the controller's (its publish-service's)."""
        mapped = gatewaycontroller.pod_ports(gateway_services(objs, namespace)).get(pod_port)
        if mapped is None:
            return None
        gkey, port = mapped
        compiled = compile_gateways(objs, namespace)
        table = None
        if gkey in compiled.gateways:  # as GatewaySync.compile: an empty table for a port without routes
            table = compiled.tables.get((gkey, port)) or PortTable(gkey, port)
        router = cls(gkey, port, table, compiled, objs)
        if pick is not None:
            router.pick = pick
        return router

    def listener(self, host: str) -> str:
        """The listener on this port whose hostname serves `host` (exact, longest wildcard, none)."""
        state = self.compiled.gateways.get(self.gateway)
        if state is None:
            return ""
        on_port = [ls for ls in state.listeners if ls.valid and ls.port == self.port]
        host = normalize_host(host)
        exact = next((ls for ls in on_port if ls.hostname == host), None)
        if exact is not None:
            return exact.name
        wild = sorted((ls for ls in on_port if ls.hostname and ls.hostname.startswith("*.")
                       and host.endswith(ls.hostname[1:])), key=lambda ls: -len(ls.hostname or ""))
        if wild:
            return wild[0].name
        return next((ls.name for ls in on_port if ls.hostname is None), "")

    def route(self, request: HttpRequest) -> RouteMatch:
        headers = [("Host", request.host)]
        out = RouteMatch(self.kind, gateway=self.gateway, listener=self.listener(request.host))
        out.notes.append(f"Gateway {self.gateway} port {self.port}"
                         + (f", listener {out.listener}" if out.listener else ", no listener for this host")
                         + " (the controller's pod port for it, from its Service)")
        if self.table is None:
            out.notes.append(f"Gateway {self.gateway} is not accepted by knet's controller")
        # the first match in precedence order, as gateway.decide finds it (then decide says what it does)
        path = normalize_path(request.path)
        query = request.path.split("?", 1)[1] if "?" in request.path else ""
        m = None
        if path is not None and self.table is not None:
            qs = gateway._split_query(query)
            m = next((x for x in self.table.matches_for(request.host)
                      if x.matches("GET", path, {"host": request.host}, qs)), None)
        chosen: list[int] = []

        def pick(n: int) -> int:
            chosen.append(self.pick(n))
            return chosen[-1]
        d = gateway.decide(self.table, "GET", request.path, headers, pick)
        if d.status == 400:
            out.status = 400
            return out
        if m is None:
            out.status = 404
            return out
        self._describe_match(out, m)
        out.status, out.upstream_path = d.status, d.path
        if d.location is not None:
            out.location = d.location
            return out
        if m.rule.broken:
            out.error = "an ExtensionRef filter knet cannot run"
        weighted = self._weighted(m, chosen[0] if chosen else None)
        out.backends = weighted
        if d.status == 500 and not out.error:
            pick_ = next((w for w in weighted if w.chosen), None)
            out.error = (pick_.refused if pick_ is not None and pick_.refused else
                         "the rule has no backend with weight")
        if d.backend is not None:
            out.backend = BackendRef(d.backend.namespace, d.backend.service, d.backend.port)
        return out

    def _describe_match(self, out: RouteMatch, m: Match) -> None:
        rule = m.rule
        out.route, out.rule, out.match = rule.route, rule.index, m.order[-1]
        hosts = [h for h, ms in (self.table.hosts.items() if self.table else ()) if any(x is m for x in ms)]
        out.host = hosts[0] if hosts else "*"
        out.path, out.path_type = m.path, m.path_type
        if m.method:
            out.notes.append(f"the match wants method {m.method} (the trace sends GET)")
        filters = []
        if rule.redirect is not None:
            r = rule.redirect
            parts = [f"{k} {v}" for k, v in (("scheme", r.scheme), ("hostname", r.hostname), ("port", r.port))
                     if v is not None] + ([_modifier(r.path)] if r.path else []) + [f"statusCode {r.status}"]
            filters.append("RequestRedirect " + ", ".join(parts))
        if rule.rewrite is not None:
            parts = ([f"hostname {rule.rewrite.hostname}"] if rule.rewrite.hostname else []) + \
                    ([_modifier(rule.rewrite.path)] if rule.rewrite.path else [])
            filters.append("URLRewrite " + ", ".join(parts))
            out.rewrite = ", ".join(parts)
        if rule.request_headers is not None:
            filters.append("RequestHeaderModifier " + _edit(rule.request_headers))
        if rule.response_headers is not None:
            filters.append("ResponseHeaderModifier " + _edit(rule.response_headers))
        out.filters = filters

    def _weighted(self, m: Match, n: int | None) -> list[WeightedRef]:
        """The rule's backendRefs with their weights; the one `decide` picked (pick(total) == n) chosen."""
        out, left = [], n
        refs = self._backend_refs(m.rule.route, m.rule.index)
        for i, b in enumerate(m.rule.backends):
            is_chosen = left is not None and 0 <= left < b.weight
            if left is not None:
                left = -1 if is_chosen else left - b.weight
            ref = BackendRef(b.backend.namespace, b.backend.service, b.backend.port) if b.backend else None
            why = "" if b.backend else self._refusal(m.rule.route, m.rule.index, refs[i] if i < len(refs) else {})
            out.append(WeightedRef(ref, b.weight, why, is_chosen))
        return out

    def _backend_refs(self, route: str, index: int) -> list[Obj]:
        obj = next((r for r in self.objects.routes if gateway.key(r) == route), None)
        rules = ((obj or {}).get("spec") or {}).get("rules") or [{}]
        return (rules[index] if index < len(rules) else {}).get("backendRefs") or []

    def _refusal(self, route: str, index: int, ref: Obj) -> str:
        """Why the controller refuses this backendRef: gateway's own resolution, its message."""
        problems: dict[str, list[str]] = {}
        gateway._resolve_backend(route.split("/", 1)[0], ref, {gateway.key(s): s for s in self.objects.services},
                                 self.objects.grants, problems, index)
        prefix = f"rule {index}: "
        msgs = [x[len(prefix):] if x.startswith(prefix) else x for ms in problems.values() for x in ms]
        return "; ".join(msgs) or "invalid"


def _modifier(p: PathModifier) -> str:
    return f"path {p.type} {p.value}"


def _edit(e: HeaderEdit) -> str:
    parts = [f"set {k}: {v}" for k, v in e.set] + [f"add {k}: {v}" for k, v in e.add] + \
            [f"remove {k}" for k in e.remove]
    return ", ".join(parts)


def gateway_service_key(objs: GatewayObjects, namespace: str, ref: str) -> str:
    """`[ns/]name` of a Gateway (ns: default) -> NAMESPACE/NAME of its Service."""
    gkey = ref if "/" in ref else f"default/{ref}"
    svc = gateway_services(objs, namespace).get(gkey)
    if svc is None:
        known = any(gateway.key(g) == gkey for g in objs.gateways)
        raise LookupError(f"Gateway {gkey} " + ("has no Service of knet's gateway controller (is it accepted? "
                                               "kubectl describe gateway)" if known else "not found"))
    return f"{namespace}/{svc['metadata']['name']}"
