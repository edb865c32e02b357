"""From GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants, Namespaces and Services to what
knet's controller serves on each Gateway port, and what it says about them; and the request
decision on such a port. Pure: no I/O.

Semantics follow the Gateway API specification (v1.2 standard channel):
- a Gateway is ours when its GatewayClass's spec.controllerName is ours (CONTROLLER_NAME);
- HTTP and HTTPS listeners (TLS terminated with the certificate of a kubernetes.io/tls Secret
  of certificateRefs, of another namespace only by a ReferenceGrant; TLS, TCP and UDP listeners
  are refused with UnsupportedProtocol); two listeners of one protocol on one port with the same
  hostname conflict (HostnameConflict), HTTP and HTTPS on one port too (ProtocolConflict);
- an HTTPRoute attaches through each parentRef to the listeners of that Gateway chosen by
  sectionName and port, when the listener allows the route's namespace (Same, All, Selector)
  and kind, and their hostnames intersect; the route's rules serve the intersection;
- a request picks the most specific host (exact, then the longest wildcard suffix, then any),
  then the first match in precedence order: Exact path, the longest PathPrefix, a regular
  expression, then a method match, the most header matches, the most query matches, the oldest
  route, the route's namespace/name, the rule's and the match's index;
- backendRefs to a Service in another namespace need a ReferenceGrant of that namespace (else
  ResolvedRefs False RefNotPermitted); requests to an invalid backendRef get 500, the backends
  are picked by weight.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from knet.ingress.routing import Backend, normalize_host, normalize_path, service_port
from knet.selectors import SelectorError, labels_match_selector

Obj = dict[str, Any]
GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "knet.io/gateway-controller"
HTTP_ROUTE_KIND = {"group": GROUP, "kind": "HTTPRoute"}
SUPPORTED_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite")
DEFAULT_MATCH: Obj = {"path": {"type": "PathPrefix", "value": "/"}}
WELL_KNOWN_PORTS = {"http": 80, "https": 443}


def key(o: Obj) -> str:
    meta = o.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta.get("name", "")


# ---- the compiled model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HeaderEdit:
    """An HTTPHeaderFilter: set replaces, add appends (comma-joined to a present value), remove drops."""
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in headers]
        drop = {n.lower() for n in self.remove} | {n.lower() for n, _ in self.set}
        out = [(k, v) for k, v in out if k.lower() not in drop]
        out += list(self.set)
        for name, value in self.add:
            i = next((i for i, (k, _) in enumerate(out) if k.lower() == name.lower()), None)
            if i is None:
                out.append((name, value))
            else:
                out[i] = (out[i][0], f"{out[i][1]},{value}")
        return out


@dataclass(frozen=True)
class PathModifier:
    type: str          # ReplaceFullPath | ReplacePrefixMatch
    value: str

    def apply(self, path: str, matched_prefix: str | None) -> str:
        if self.type == "ReplaceFullPath":
            return self.value
        prefix = (matched_prefix or "/").rstrip("/")
        rest = path[len(prefix):] if path.startswith(prefix) else path
        new = self.value.rstrip("/") + rest if rest.startswith("/") or not rest else self.value + rest
        return new if new.startswith("/") else "/" + new


@dataclass(frozen=True)
class Redirect:
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None
    status: int = 302


@dataclass(frozen=True)
class Rewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True)
class WeightedBackend:
    backend: Backend | None  # None: an invalid backendRef (requests routed to it get 500)
    weight: int


@dataclass(frozen=True)
class Rule:
    route: str               # NAMESPACE/NAME of the HTTPRoute
    index: int
    backends: tuple[WeightedBackend, ...] = ()
    request_headers: HeaderEdit | None = None
    response_headers: HeaderEdit | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    broken: bool = False     # an ExtensionRef filter knet cannot run: every request gets 500


@dataclass(frozen=True)
class Match:
    rule: Rule
    path_type: str
    path: str
    regex: re.Pattern | None
    method: str | None
    headers: tuple[tuple[str, str, Any], ...]   # (lower-case name, Exact|RegularExpression, value|pattern)
    query: tuple[tuple[str, str, Any], ...]
    order: tuple

    def matches(self, method: str, path: str, headers: dict[str, str], query: dict[str, str]) -> bool:
        if self.path_type == "Exact" and path != self.path:
            return False
        if self.path_type == "PathPrefix":
            base = self.path.rstrip("/")
            if not (base == "" or path == base or path.startswith(base + "/")):
                return False
        if self.path_type == "RegularExpression" and (self.regex is None or not self.regex.fullmatch(path)):
            return False
        if self.method and method != self.method:
            return False
        for name, kind, want in self.headers:
            have = headers.get(name)
            if have is None or not (have == want if kind == "Exact" else want.fullmatch(have)):
                return False
        for name, kind, want in self.query:
            have = query.get(name)
            if have is None or not (have == want if kind == "Exact" else want.fullmatch(have)):
                return False
        return True


@dataclass
class PortTable:
    """What one Gateway serves on one port: its routes' matches by host pattern (an exact name,
    `*.suffix`, or `*` for any host), each list in precedence order."""
    gateway: str
    port: int
    hosts: dict[str, list[Match]] = field(default_factory=dict)
    scheme: str = "http"
    # HTTPS: listener hostname (`*` for none) -> NAMESPACE/NAME of its certificate's Secret
    certificates: dict[str, str] = field(default_factory=dict)

    def matches_for(self, host: str) -> list[Match]:
        host = normalize_host(host)
        if host in self.hosts:
            return self.hosts[host]
        labels = host.split(".")
        for i in range(1, len(labels)):
            wildcard = "*." + ".".join(labels[i:])
            if wildcard in self.hosts:
                return self.hosts[wildcard]
        return self.hosts.get("*", [])


def certificate_for(certificates: dict[str, Any], server_name: str | None) -> Any:
    """The certificate (of `PortTable.certificates`' shape) for a TLS client's SNI name: its
    listener hostname exactly, else the longest wildcard covering it, else the listener without
    hostname, else any."""
    if not certificates:
        return None
    name = normalize_host(server_name or "")
    if name in certificates:
        return certificates[name]
    labels = name.split(".")
    for i in range(1, len(labels)):
        if "*." + ".".join(labels[i:]) in certificates:
            return certificates["*." + ".".join(labels[i:])]
    return certificates.get("*") or next(iter(certificates.values()))


# ---- the request decision -------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    status: int = 0                      # 0: forward to backend; else answer with this status
    backend: Backend | None = None
    path: str = "/"                      # the upstream path with the query string
    host: str | None = None              # the Host the backend gets (URLRewrite hostname)
    request_headers: HeaderEdit | None = None
    response_headers: HeaderEdit | None = None
    location: str | None = None          # for redirects
    route: str = "-"


def apply_plan_headers(d: Decision, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request headers the backend gets: the rule's RequestHeaderModifier, then the
    URLRewrite hostname as Host."""
    out = d.request_headers.apply(headers) if d.request_headers is not None else list(headers)
    if d.host:
        out = [(k, v) for k, v in out if k.lower() != "host"] + [("Host", d.host)]
    return out


def _split_query(qs: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    out: dict[str, str] = {}
    for k, v in parse_qsl(qs, keep_blank_values=True):
        out.setdefault(k, v)   # the first value of a repeated parameter
    return out


def decide(table: PortTable | None, method: str, raw_path: str, headers: Iterable[tuple[str, str]],
           pick: Callable[[int], int]) -> Decision:
    """What to do with one request on a Gateway port. `pick(n)` returns a number in [0, n) (the
    weighted backend choice; random in the proxy, fixed in tests)."""
    hdrs: dict[str, str] = {}
    for k, v in headers:
        hdrs.setdefault(k.lower(), v)
    path = normalize_path(raw_path)
    if path is None:
        return Decision(status=400)
    if table is None:
        return Decision(status=404)
    query_string = raw_path.split("?", 1)[1] if "?" in raw_path else ""
    query = _split_query(query_string)
    host = hdrs.get("host", "")
    for m in table.matches_for(host):
        if m.matches(method, path, hdrs, query):
            return _decide_rule(m, path, query_string, host, table.port, pick, table.scheme)
    return Decision(status=404)


def _decide_rule(m: Match, path: str, query_string: str, host: str, port: int, pick: Callable[[int], int],
                 scheme: str) -> Decision:
    rule = m.rule
    prefix = m.path if m.path_type == "PathPrefix" else None
    suffix = f"?{query_string}" if query_string else ""
    if rule.broken:
        return Decision(status=500, route=rule.route)
    if rule.redirect is not None:
        r = rule.redirect
        to_scheme = r.scheme or scheme
        to_host = r.hostname or normalize_host(host)
        if r.port is not None:
            to_port = r.port
        elif r.scheme is not None:
            to_port = WELL_KNOWN_PORTS.get(to_scheme, port)
        else:
            to_port = port
        netloc = to_host if WELL_KNOWN_PORTS.get(to_scheme) == to_port else f"{to_host}:{to_port}"
        to_path = r.path.apply(path, prefix) if r.path is not None else path
        return Decision(status=r.status, location=f"{to_scheme}://{netloc}{to_path}{suffix}",
                        response_headers=rule.response_headers, route=rule.route)
    total = sum(b.weight for b in rule.backends)
    if total <= 0:
        return Decision(status=500, route=rule.route)
    n = pick(total)
    chosen = rule.backends[-1]
    for b in rule.backends:
        if n < b.weight:
            chosen = b
            break
        n -= b.weight
    if chosen.backend is None:
        return Decision(status=500, route=rule.route)
    upstream = path
    new_host = None
    if rule.rewrite is not None:
        if rule.rewrite.path is not None:
            upstream = rule.rewrite.path.apply(path, prefix)
        new_host = rule.rewrite.hostname
    return Decision(backend=chosen.backend, path=upstream + suffix, host=new_host,
                    request_headers=rule.request_headers, response_headers=rule.response_headers, route=rule.route)


# ---- compiling the objects ----------------------------------------------------------------------

@dataclass
class Cond:
    type: str
    status: bool
    reason: str
    message: str = ""


@dataclass
class ListenerState:
    name: str
    port: int
    protocol: str
    hostname: str | None
    allowed_from: str
    selector: Obj | None
    kinds_ok: bool
    supported_kinds: list[Obj]
    conditions: list[Cond] = field(default_factory=list)
    attached: set[str] = field(default_factory=set)
    valid: bool = True
    certificate: str | None = None   # HTTPS: NAMESPACE/NAME of the Secret served


@dataclass
class GatewayState:
    obj: Obj
    listeners: list[ListenerState]
    conditions: list[Cond] = field(default_factory=list)
    requested_ip: str | None = None


@dataclass
class ParentState:
    parent_ref: Obj
    conditions: list[Cond]


@dataclass
class Compiled:
    classes: dict[str, list[Cond]] = field(default_factory=dict)        # our GatewayClasses
    gateways: dict[str, GatewayState] = field(default_factory=dict)     # NAMESPACE/NAME
    routes: dict[str, list[ParentState]] = field(default_factory=dict)  # HTTPRoute -> our parents' status
    grpc_routes: dict[str, list[ParentState]] = field(default_factory=dict)  # GRPCRoute -> (refused)
    tables: dict[tuple[str, int], PortTable] = field(default_factory=dict)
    backends: set[Backend] = field(default_factory=set)


def hostname_intersection(route_host: str, listener_host: str | None) -> str | None:
    """The hostname a route hostname serves on a listener, None when they do not intersect
    (`*.example.com` covers any name ending in `.example.com`)."""
    if listener_host is None:
        return route_host
    if route_host == listener_host:
        return route_host
    r_wild, l_wild = route_host.startswith("*."), listener_host.startswith("*.")
    if not r_wild and l_wild:
        return route_host if route_host.endswith(listener_host[1:]) else None
    if r_wild and not l_wild:
        return listener_host if listener_host.endswith(route_host[1:]) else None
    if r_wild and l_wild:
        if route_host.endswith(listener_host[1:]):
            return route_host
        if listener_host.endswith(route_host[1:]):
            return listener_host
    return None


def _certificate(gw: Obj, ls_spec: Obj, secrets: dict[str, Obj], grants: list[Obj]) -> tuple[str | None, Cond]:
    """The Secret an HTTPS listener serves, or why none (its ResolvedRefs condition)."""
    tls = ls_spec.get("tls") or {}
    gw_ns = gw["metadata"]["namespace"]
    refs = tls.get("certificateRefs") or []
    if not refs:
        return None, Cond("ResolvedRefs", False, "InvalidCertificateRef", "an HTTPS listener needs certificateRefs")
    for ref in refs:
        ns, name = ref.get("namespace") or gw_ns, ref.get("name", "")
        if (ref.get("group") or "") != "" or ref.get("kind", "Secret") != "Secret":
            return None, Cond("ResolvedRefs", False, "InvalidCertificateRef",
                              f"certificateRef {ref.get('kind')} {name} is not a Secret")
        if ns != gw_ns and not _granted(grants, gw_ns, ns, "Secret", name, from_kind="Gateway"):
            return None, Cond("ResolvedRefs", False, "RefNotPermitted",
                              f"Secret {ns}/{name} is not permitted by any ReferenceGrant")
        secret = secrets.get(f"{ns}/{name}")
        data = (secret or {}).get("data") or {}
        if secret is None or "tls.crt" not in data or "tls.key" not in data:
            return None, Cond("ResolvedRefs", False, "InvalidCertificateRef",
                              f"Secret {ns}/{name} is missing or has no tls.crt and tls.key")
        return f"{ns}/{name}", Cond("ResolvedRefs", True, "ResolvedRefs", "all references are resolved")
    raise AssertionError("unreachable")


def _listeners(gw: Obj, secrets: dict[str, Obj] | None = None, grants: list[Obj] | None = None
               ) -> list[ListenerState]:
    out = []
    specs = (gw.get("spec") or {}).get("listeners") or []
    for ls in specs:
        allowed = ls.get("allowedRoutes") or {}
        ns = allowed.get("namespaces") or {}
        kinds = allowed.get("kinds")
        protocol = ls.get("protocol", "")
        supported = []
        kinds_ok = True
        if kinds is None:
            supported = [dict(HTTP_ROUTE_KIND)] if protocol in ("HTTP", "HTTPS") else []
        else:
            for k in kinds:
                if (k.get("group", GROUP) or "") == GROUP and k.get("kind") == "HTTPRoute":
                    supported.append(dict(HTTP_ROUTE_KIND))
                else:
                    kinds_ok = False
        out.append(ListenerState(ls.get("name", ""), int(ls.get("port") or 0), protocol, ls.get("hostname"),
                                 ns.get("from", "Same"), ns.get("selector"), kinds_ok, supported))
    for ls, ls_spec in zip(out, specs, strict=True):
        same_port = [o for o in out if o is not ls and o.port == ls.port]
        conds: list[Cond] = []
        tls_mode = (ls_spec.get("tls") or {}).get("mode", "Terminate")
        if ls.protocol not in ("HTTP", "HTTPS") or (ls.protocol == "HTTPS" and tls_mode != "Terminate"):
            ls.valid = False
            conds += [Cond("Accepted", False, "UnsupportedProtocol",
                           f"knet's gateway controller serves HTTP and HTTPS (Terminate) listeners, not "
                           f"{ls.protocol}" + (f" ({tls_mode})" if ls.protocol == "HTTPS" else "")),
                      Cond("Programmed", False, "Invalid", "the listener is not accepted")]
        elif any(o.protocol != ls.protocol for o in same_port):
            ls.valid = False
            conds += [Cond("Accepted", False, "ProtocolConflict", f"another listener uses port {ls.port} with "
                                                                  "another protocol"),
                      Cond("Conflicted", True, "ProtocolConflict", "protocols conflict on the port"),
                      Cond("Programmed", False, "Invalid", "the listener conflicts")]
        elif any(o.hostname == ls.hostname for o in same_port):
            ls.valid = False
            conds += [Cond("Accepted", False, "HostnameConflict", f"another listener uses port {ls.port} with "
                                                                  "the same hostname"),
                      Cond("Conflicted", True, "HostnameConflict", "hostnames conflict on the port"),
                      Cond("Programmed", False, "Invalid", "the listener conflicts")]
        else:
            conds += [Cond("Accepted", True, "Accepted", "the listener is accepted"),
                      Cond("Conflicted", False, "NoConflicts", "no conflicts")]
        resolved = Cond("ResolvedRefs", True, "ResolvedRefs", "all references are resolved")
        if ls.protocol == "HTTPS" and tls_mode == "Terminate":
            ls.certificate, resolved = _certificate(gw, ls_spec, secrets or {}, grants or [])
            if ls.certificate is None and ls.valid:
                ls.valid = False
                conds.append(Cond("Programmed", False, "Invalid", "the listener has no usable certificate"))
        if not ls.kinds_ok:
            resolved = Cond("ResolvedRefs", False, "InvalidRouteKinds",
                            "knet serves HTTPRoutes (gateway.networking.k8s.io) only")
        conds.append(resolved)
        ls.conditions = conds
    return out


def _ours(classes: list[Obj], controller: str) -> dict[str, Obj]:
    return {c["metadata"]["name"]: c for c in classes if (c.get("spec") or {}).get("controllerName") == controller}


def _granted(grants: list[Obj], from_ns: str, to_ns: str, to_kind: str, to_name: str, to_group: str = "",
             from_kind: str = "HTTPRoute", from_group: str = GROUP) -> bool:
    """Whether a ReferenceGrant in `to_ns` lets `from_kind` objects in `from_ns` refer to it."""
    for g in grants:
        if (g.get("metadata") or {}).get("namespace") != to_ns:
            continue
        spec = g.get("spec") or {}
        if not any(f.get("namespace") == from_ns and f.get("kind") == from_kind and (f.get("group") or "") ==
                   from_group for f in spec.get("from") or []):
            continue
        if any((t.get("group") or "") == to_group and t.get("kind") == to_kind and
               (not t.get("name") or t.get("name") == to_name) for t in spec.get("to") or []):
            return True
    return False


def _namespace_allowed(ls: ListenerState, gw_ns: str, route_ns: str, namespaces: dict[str, Obj]) -> bool:
    if ls.allowed_from == "All":
        return True
    if ls.allowed_from == "Same":
        return route_ns == gw_ns
    if ls.allowed_from == "Selector":
        ns = namespaces.get(route_ns)
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        try:
            return ns is not None and labels_match_selector(ls.selector, labels)
        except SelectorError:
            return False
    return False


def _header_edit(spec: Obj | None) -> HeaderEdit | None:
    if not spec:
        return None
    return HeaderEdit(tuple((h["name"], h["value"]) for h in spec.get("set") or []),
                      tuple((h["name"], h["value"]) for h in spec.get("add") or []),
                      tuple(spec.get("remove") or []))


def _path_modifier(spec: Obj | None) -> PathModifier | None:
    if not spec:
        return None
    t = spec.get("type")
    value = spec.get("replaceFullPath") if t == "ReplaceFullPath" else spec.get("replacePrefixMatch")
    if value is None:
        raise ValueError(f"path modifier {t} needs its value")
    return PathModifier(t, value)


def _compile_rule(route: Obj, index: int, rule: Obj, services: dict[str, Obj], grants: list[Obj],
                  problems: dict[str, list[str]]) -> Rule:
    """One rule; its problems are added as condition reasons ('Accepted:REASON' or
    'ResolvedRefs:REASON') with a message."""
    ns = route["metadata"]["namespace"]
    rkey = key(route)
    req = resp = None
    redirect = rewrite = None
    broken = False
    matches = rule.get("matches") or [DEFAULT_MATCH]
    single_prefix = len(matches) == 1 and ((matches[0].get("path") or {}).get("type", "PathPrefix") == "PathPrefix")
    for f in rule.get("filters") or []:
        t = f.get("type")
        try:
            if t == "RequestHeaderModifier":
                req = _header_edit(f.get("requestHeaderModifier"))
            elif t == "ResponseHeaderModifier":
                resp = _header_edit(f.get("responseHeaderModifier"))
            elif t == "RequestRedirect":
                r = f.get("requestRedirect") or {}
                redirect = Redirect(r.get("scheme"), r.get("hostname"), r.get("port"), _path_modifier(r.get("path")),
                                    int(r.get("statusCode") or 302))
            elif t == "URLRewrite":
                r = f.get("urlRewrite") or {}
                rewrite = Rewrite(r.get("hostname"), _path_modifier(r.get("path")))
            elif t == "ExtensionRef":
                broken = True
                problems.setdefault("ResolvedRefs:InvalidKind", []).append(
                    f"rule {index}: ExtensionRef {(f.get('extensionRef') or {}).get('kind')} is not known to knet")
            else:
                problems.setdefault("Accepted:UnsupportedValue", []).append(
                    f"rule {index}: filter {t} is not supported by knet")
        except ValueError as exc:
            problems.setdefault("Accepted:UnsupportedValue", []).append(f"rule {index}: {exc}")
    for mod in (redirect.path if redirect else None, rewrite.path if rewrite else None):
        if mod is not None and mod.type == "ReplacePrefixMatch" and not single_prefix:
            problems.setdefault("Accepted:UnsupportedValue", []).append(
                f"rule {index}: ReplacePrefixMatch needs exactly one PathPrefix match")
    if redirect is not None and rewrite is not None:
        problems.setdefault("Accepted:UnsupportedValue", []).append(
            f"rule {index}: RequestRedirect and URLRewrite cannot be used together")
    backends = []
    for b in rule.get("backendRefs") or []:
        backends.append(WeightedBackend(_resolve_backend(ns, b, services, grants, problems, index),
                                        int(b.get("weight", 1))))
        if b.get("filters"):
            problems.setdefault("Accepted:UnsupportedValue", []).append(
                f"rule {index}: filters on a backendRef are not supported by knet")
    return Rule(rkey, index, tuple(backends), req, resp, redirect, rewrite, broken)


def _resolve_backend(route_ns: str, ref: Obj, services: dict[str, Obj], grants: list[Obj],
                     problems: dict[str, list[str]], index: int) -> Backend | None:
    group, kind, name = ref.get("group", "") or "", ref.get("kind", "Service"), ref.get("name", "")
    ns = ref.get("namespace") or route_ns
    if group != "" or kind != "Service":
        problems.setdefault("ResolvedRefs:InvalidKind", []).append(
            f"rule {index}: backendRef {group}/{kind} {name} is not a Service")
        return None
    if ns != route_ns and not _granted(grants, route_ns, ns, "Service", name):
        problems.setdefault("ResolvedRefs:RefNotPermitted", []).append(
            f"rule {index}: backendRef Service {ns}/{name} is not permitted by any ReferenceGrant")
        return None
    svc = services.get(f"{ns}/{name}")
    if svc is None:
        problems.setdefault("ResolvedRefs:BackendNotFound", []).append(
            f"rule {index}: Service {ns}/{name} not found")
        return None
    port = ref.get("port")
    if port is None or service_port(svc, int(port)) is None:
        problems.setdefault("ResolvedRefs:BackendNotFound", []).append(
            f"rule {index}: Service {ns}/{name} has no port {port}")
        return None
    return Backend(ns, name, int(port))


def _matches(rule: Rule, route: Obj, spec_rule: Obj) -> list[Match]:
    out = []
    created = (route.get("metadata") or {}).get("creationTimestamp") or ""
    for mi, m in enumerate(spec_rule.get("matches") or [DEFAULT_MATCH]):
        p = m.get("path") or {"type": "PathPrefix", "value": "/"}
        ptype, pvalue = p.get("type", "PathPrefix"), p.get("value", "/")
        regex = re.compile(pvalue) if ptype == "RegularExpression" else None
        headers = tuple((h["name"].lower(), h.get("type", "Exact"),
                         re.compile(h["value"]) if h.get("type") == "RegularExpression" else h["value"])
                        for h in m.get("headers") or [])
        query = tuple((q["name"], q.get("type", "Exact"),
                       re.compile(q["value"]) if q.get("type") == "RegularExpression" else q["value"])
                      for q in m.get("queryParams") or [])
        order = ({"Exact": 0, "PathPrefix": 1}.get(ptype, 2), -len(pvalue) if ptype != "RegularExpression" else 0,
                 0 if m.get("method") else 1, -len(headers), -len(query), created, rule.route, rule.index, mi)
        out.append(Match(rule, ptype, pvalue, regex, m.get("method"), headers, query, order))
    return out


def _check_regexes(route: Obj, problems: dict[str, list[str]]) -> None:
    for ri, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        for m in rule.get("matches") or []:
            values = [(m.get("path") or {}) | {"what": "path"}] + [h | {"what": "header"} for h in
                                                                   m.get("headers") or []] + \
                     [q | {"what": "query"} for q in m.get("queryParams") or []]
            for v in values:
                if v.get("type") == "RegularExpression":
                    try:
                        re.compile(v.get("value", ""))
                    except re.error as exc:
                        problems.setdefault("Accepted:UnsupportedValue", []).append(
                            f"rule {ri}: {v['what']} {v.get('value')!r} is no regular expression: {exc}")


def compile_all(classes: list[Obj], gateways: list[Obj], routes: list[Obj], grants: list[Obj],
                namespaces: list[Obj], services: list[Obj], controller: str = CONTROLLER_NAME,
                addresses: dict[str, list[str]] | None = None, secrets: list[Obj] = (),
                grpc_routes: list[Obj] = ()) -> Compiled:
    """Everything the controller serves and says. `addresses`: each Gateway's addresses (from its
    LoadBalancer Service) -- a Gateway without one is not Programmed."""
    addresses = addresses or {}
    out = Compiled()
    ours = _ours(classes, controller)
    for name in ours:
        out.classes[name] = [Cond("Accepted", True, "Accepted", "the GatewayClass is accepted by knet")]
    ns_by_name = {n["metadata"]["name"]: n for n in namespaces}
    svc_by_key = {key(s): s for s in services}
    secret_by_key = {key(s): s for s in secrets}
    for gw in sorted(gateways, key=key):
        if (gw.get("spec") or {}).get("gatewayClassName") not in ours:
            continue
        state = GatewayState(gw, _listeners(gw, secret_by_key, grants))
        requested = (gw.get("spec") or {}).get("addresses") or []
        bad_address = next((a for a in requested if a.get("type", "IPAddress") != "IPAddress"), None)
        if bad_address is not None or len(requested) > 1:
            state.conditions.append(Cond("Accepted", False, "UnsupportedAddress",
                                         "knet gives a Gateway one IPAddress (its LoadBalancer Service's)"))
        elif not any(ls.valid for ls in state.listeners):
            state.conditions.append(Cond("Accepted", False, "ListenersNotValid", "no listener is valid"))
        else:
            state.conditions.append(Cond("Accepted", True, "Accepted", "the Gateway is accepted"))
            if requested:
                state.requested_ip = requested[0].get("value")
        out.gateways[key(gw)] = state
    # routes, oldest first (ties: namespace/name), as the precedence rules want
    ordered = sorted(routes, key=lambda r: ((r.get("metadata") or {}).get("creationTimestamp") or "", key(r)))
    for route in ordered:
        rkey, rns = key(route), route["metadata"]["namespace"]
        spec = route.get("spec") or {}
        problems: dict[str, list[str]] = {}
        _check_regexes(route, problems)
        rules = [] if problems else [(r, _compile_rule(route, i, r, svc_by_key, grants, problems))
                                     for i, r in enumerate(spec.get("rules") or [{}])]
        accepted_problem = next((p for p in problems if p.startswith("Accepted:")), None)
        resolved_problem = next((p for p in problems if p.startswith("ResolvedRefs:")), None)
        parents: list[ParentState] = []
        for pref in spec.get("parentRefs") or []:
            if (pref.get("group", GROUP) or "") != GROUP or pref.get("kind", "Gateway") != "Gateway":
                continue
            gkey = f"{pref.get('namespace') or rns}/{pref.get('name')}"
            gstate = out.gateways.get(gkey)
            if gstate is None:
                continue  # not a Gateway of ours: its controller writes this parent's status
            conds: list[Cond] = []
            candidates = [ls for ls in gstate.listeners
                          if (pref.get("sectionName") is None or ls.name == pref.get("sectionName"))
                          and (pref.get("port") is None or ls.port == pref.get("port"))]
            attached: list[tuple[ListenerState, list[str]]] = []
            reason = "NoMatchingParent"
            if not any(c.status for c in gstate.conditions if c.type == "Accepted"):
                reason = "NoMatchingParent"
                candidates = []
            for ls in candidates:
                if not ls.valid or not ls.supported_kinds:
                    reason = "NotAllowedByListeners" if reason == "NoMatchingParent" else reason
                    continue
                if not _namespace_allowed(ls, gkey.split("/")[0], rns, ns_by_name):
                    reason = "NotAllowedByListeners" if reason == "NoMatchingParent" else reason
                    continue
                hostnames = spec.get("hostnames") or []
                if hostnames:
                    hosts = [h for h in (hostname_intersection(rh, ls.hostname) for rh in hostnames) if h]
                    if not hosts:
                        reason = "NoMatchingListenerHostname"
                        continue
                else:
                    hosts = [ls.hostname or "*"]
                attached.append((ls, sorted(set(hosts))))
            if accepted_problem is not None:
                conds.append(Cond("Accepted", False, accepted_problem.split(":")[1], "; ".join(problems[accepted_problem])))
            elif attached:
                conds.append(Cond("Accepted", True, "Accepted", "the route is accepted"))
            else:
                conds.append(Cond("Accepted", False, reason, {
                    "NoMatchingParent": "no listener of the Gateway matches the parentRef's sectionName/port",
                    "NotAllowedByListeners": "no listener of the Gateway allows this route",
                    "NoMatchingListenerHostname": "no listener hostname intersects the route's hostnames",
                }[reason]))
            if resolved_problem is not None:
                conds.append(Cond("ResolvedRefs", False, resolved_problem.split(":")[1],
                                  "; ".join(problems[resolved_problem])))
            else:
                conds.append(Cond("ResolvedRefs", True, "ResolvedRefs", "all references are resolved"))
            parents.append(ParentState(pref, conds))
            if accepted_problem is not None:
                continue
            for ls, hosts in attached:
                ls.attached.add(rkey)
                table = _port_table(out, gkey, ls)
                for spec_rule, rule in rules:
                    for b in rule.backends:
                        if b.backend is not None:
                            out.backends.add(b.backend)
                    ms = _matches(rule, route, spec_rule)
                    for h in hosts:
                        table.hosts.setdefault(h, []).extend(ms)
        if parents:
            out.routes[rkey] = parents
    for route in grpc_routes:
        # knet's proxy speaks HTTP/1.1 only: no listener serves GRPCRoutes (supportedKinds says so)
        refused = [ParentState(pref, [Cond("Accepted", False, "NotAllowedByListeners",
                                           "knet's listeners serve HTTPRoutes only, not GRPCRoutes")])
                   for pref in (route.get("spec") or {}).get("parentRefs") or []
                   if (pref.get("group", GROUP) or "") == GROUP and pref.get("kind", "Gateway") == "Gateway"
                   and f"{pref.get('namespace') or route['metadata']['namespace']}/{pref.get('name')}" in out.gateways]
        if refused:
            out.grpc_routes[key(route)] = refused
    for gkey, state in out.gateways.items():
        for ls in state.listeners:
            if ls.valid:
                _port_table(out, gkey, ls)
    for table in out.tables.values():
        for h, ms in table.hosts.items():
            # one match object may come twice (two parentRefs to the same listener)
            uniq = {id(m): m for m in ms}
            table.hosts[h] = sorted(uniq.values(), key=lambda m: m.order)
    for gkey, state in out.gateways.items():
        addrs = addresses.get(gkey) or []
        accepted = any(c.status for c in state.conditions if c.type == "Accepted")
        if not accepted:
            state.conditions.append(Cond("Programmed", False, "Invalid", "the Gateway is not accepted"))
        elif addrs:
            state.conditions.append(Cond("Programmed", True, "Programmed", "the Gateway is served by knet's "
                                                                          "ingress controller"))
        else:
            state.conditions.append(Cond("Programmed", False, "AddressNotAssigned",
                                         "waiting for the Gateway's LoadBalancer Service to get an address"))
        for ls in state.listeners:
            if ls.valid:
                ls.conditions.append(Cond("Programmed", bool(addrs) and accepted,
                                          "Programmed" if addrs and accepted else "Pending",
                                          "the listener is served" if addrs else "waiting for an address"))
    return out


def _port_table(out: Compiled, gkey: str, ls: ListenerState) -> PortTable:
    table = out.tables.get((gkey, ls.port))
    if table is None:
        table = out.tables[(gkey, ls.port)] = PortTable(gkey, ls.port, scheme=ls.protocol.lower())
    if ls.certificate is not None:
        table.certificates[ls.hostname or "*"] = ls.certificate
    return table


def served_ports(state: GatewayState) -> list[int]:
    """The ports a Gateway's Service must expose: those of its valid listeners."""
    return sorted({ls.port for ls in state.listeners if ls.valid})
