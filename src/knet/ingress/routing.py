"""From Ingresses, Services, EndpointSlices and Secrets to a routing table, and the request
matching the proxy does with it. Pure: no I/O.

Semantics follow ingress-nginx (how it renders nginx `server`/`location` blocks):
- a host's rules from every Ingress of the class merge into one server; a rule without a host
  goes to the catch-all server `_`; `*.example.com` matches one more label;
- Exact paths match the whole path; Prefix paths match whole path segments (`/foo` matches
  `/foo`, `/foo/`, `/foo/bar`, not `/foobar`; a trailing slash in the rule is ignored);
  ImplementationSpecific paths are nginx prefix locations (a plain string prefix);
  the longest path wins, Exact before the others;
- when any Ingress of a host uses `rewrite-target` or `use-regex`, every path of that host is a
  case-insensitive regular expression anchored at its start (nginx `location ~* "^PATH"`), tried
  longest first; Exact paths stay exact;
- `rewrite-target` replaces the whole request path with the target, `$1`... taken from the path's
  capture groups (nginx `rewrite "(?i)PATH" TARGET break;`), the query string kept;
- a server with TLS redirects plain HTTP with 308 unless `ssl-redirect: "false"`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

Obj = dict[str, Any]
ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
CATCH_ALL = "_"
BACKEND_PROTOCOLS = ("HTTP", "HTTPS")
# ingress-nginx's strict path validation (strict-validate-path-type, on by default since v1.8):
# Exact and Prefix paths may hold only these characters; other Ingress paths are ignored.
STRICT_PATH = re.compile(r"^/[A-Za-z0-9\-._~/]*$")


@dataclass(frozen=True)
class Backend:
    namespace: str
    service: str
    port: int | str  # the Service port's number or name

    @property
    def upstream_name(self) -> str:
        """ingress-nginx's $proxy_upstream_name: NAMESPACE-SERVICE-PORT."""
        return f"{self.namespace}-{self.service}-{self.port}"


@dataclass(frozen=True)
class Location:
    path: str
    path_type: str
    backend: Backend | None  # None: the default backend (404)
    ingress: str             # NAMESPACE/NAME of the Ingress it came from
    regex: re.Pattern | None = None
    rewrite_target: str | None = None
    backend_protocol: str = "HTTP"
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False

    def matches(self, path: str) -> bool:
        if self.path_type == "Exact":
            return path == self.path
        if self.regex is not None:
            return self.regex.match(path) is not None
        if self.path_type == "Prefix":
            base = self.path.rstrip("/")
            return base == "" or path == base or path.startswith(base + "/")
        return path.startswith(self.path)

    def rewrite(self, path: str) -> str:
        """The path the backend gets (nginx `rewrite` semantics: the whole path replaced)."""
        if self.rewrite_target is None:
            return path
        pattern = self.regex or re.compile(re.escape(self.path), re.I)
        m = pattern.search(path)
        if m is None:
            return path
        groups = [m.group(0), *m.groups()]

        def group(g: re.Match) -> str:
            i = int(g.group(1))
            return (groups[i] or "") if i < len(groups) else ""
        return re.sub(r"\$(\d)", group, self.rewrite_target)


@dataclass
class Server:
    host: str
    locations: list[Location] = field(default_factory=list)
    tls_secret: str | None = None      # NAMESPACE/NAME of its certificate's Secret
    default_backend: Backend | None = None

    def match(self, path: str) -> Location | None:
        for loc in self.locations:
            if loc.matches(path):
                return loc
        return None


@dataclass
class RouteTable:
    servers: dict[str, Server] = field(default_factory=dict)
    default_backend: Backend | None = None
    # Why an Ingress or path was left out (NAMESPACE/NAME -> reasons), for logs and Events.
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def server_for(self, host: str) -> Server:
        host = normalize_host(host)
        if host in self.servers:
            return self.servers[host]
        if "." in host:
            wildcard = "*." + host.split(".", 1)[1]
            if wildcard in self.servers:
                return self.servers[wildcard]
        return self.servers.get(CATCH_ALL) or Server(CATCH_ALL, default_backend=self.default_backend)

    def route(self, host: str, path: str) -> tuple[Server, Location | None]:
        server = self.server_for(host)
        return server, server.match(path)


def normalize_host(host: str) -> str:
    """The Host header's name: lower case, without port or trailing dot."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def normalize_path(raw: str) -> str | None:
    """The path as nginx matches it: percent-decoded, `.`/`..` segments resolved, slashes merged.
    None: a path that climbs above the root (nginx answers 400)."""
    path = unquote(raw.split("?", 1)[0])
    if not path.startswith("/") or "\x00" in path:
        return None
    depth = 0
    for seg in path.split("/"):
        if seg == "..":
            depth -= 1
            if depth < 0:
                return None
        elif seg not in ("", "."):
            depth += 1
    out = posixpath.normpath(path)
    out = "/" + out.lstrip("/")
    if path.endswith("/") and out != "/":
        out += "/"
    return out


def _annotation(ing: Obj, name: str) -> str | None:
    return ((ing.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PREFIX + name)


def _backend(ing: Obj, backend: Obj | None) -> Backend | None:
    svc = (backend or {}).get("service")
    if not svc:
        return None  # resource backends: not served (ingress-nginx ignores them too)
    port = svc.get("port") or {}
    return Backend((ing.get("metadata") or {}).get("namespace", "default"), svc.get("name", ""),
                   port.get("number") or port.get("name") or 0)


def _key(ing: Obj) -> str:
    meta = ing.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def build_table(ingresses: list[Obj], default_backend: Backend | None = None) -> RouteTable:
    """The routing table of the Ingresses this controller serves (already filtered by class)."""
    table = RouteTable(default_backend=default_backend)
    # oldest first: the first Ingress to claim a host/path keeps it (ingress-nginx's rule)
    ordered = sorted(ingresses, key=lambda i: ((i.get("metadata") or {}).get("creationTimestamp") or "", _key(i)))
    regex_hosts: set[str] = set()
    for ing in ordered:
        if _annotation(ing, "rewrite-target") is not None or _annotation(ing, "use-regex") == "true":
            regex_hosts |= {r.get("host") or CATCH_ALL for r in (ing.get("spec") or {}).get("rules") or []}
    claimed: set[tuple[str, str, str]] = set()
    for ing in ordered:
        spec, key = ing.get("spec") or {}, _key(ing)
        protocol = (_annotation(ing, "backend-protocol") or "HTTP").upper()
        if protocol not in BACKEND_PROTOCOLS:
            table.skipped.setdefault(key, []).append(f"backend-protocol {protocol} is not supported; using HTTP")
            protocol = "HTTP"
        ssl_redirect = (_annotation(ing, "ssl-redirect") or "true").lower() != "false"
        force = (_annotation(ing, "force-ssl-redirect") or "false").lower() == "true"
        rewrite = _annotation(ing, "rewrite-target")
        ing_default = _backend(ing, spec.get("defaultBackend"))
        rules = spec.get("rules") or []
        if ing_default is not None and not rules:
            table.default_backend = ing_default
        tls_hosts = {}
        for tls in spec.get("tls") or []:
            for host in tls.get("hosts") or []:
                tls_hosts[host] = f"{key.split('/')[0]}/{tls['secretName']}" if tls.get("secretName") else None
        for rule in rules:
            host = rule.get("host") or CATCH_ALL
            server = table.servers.setdefault(host, Server(host))
            if ing_default is not None and server.default_backend is None:
                server.default_backend = ing_default
            if host in tls_hosts and server.tls_secret is None:
                server.tls_secret = tls_hosts[host]
            for p in (rule.get("http") or {}).get("paths") or []:
                path, ptype = p.get("path") or "/", p.get("pathType") or "ImplementationSpecific"
                if ptype in ("Exact", "Prefix") and not STRICT_PATH.match(path):
                    table.skipped.setdefault(key, []).append(
                        f"path {path!r} ({ptype}) has characters ingress-nginx's strict path validation refuses")
                    continue
                if (host, path, ptype) in claimed:
                    table.skipped.setdefault(key, []).append(f"{host}{path} ({ptype}) is already served "
                                                             "by an older Ingress")
                    continue
                regex = None
                if host in regex_hosts and ptype != "Exact":
                    try:
                        regex = re.compile("^" + path, re.I)
                    except re.error as exc:
                        table.skipped.setdefault(key, []).append(f"path {path!r} is no regular expression: {exc}")
                        continue
                claimed.add((host, path, ptype))
                server.locations.append(Location(path, ptype, _backend(ing, p.get("backend")), key, regex, rewrite,
                                                 protocol, ssl_redirect, force))
    # TLS hosts without rules still get a server (their certificate is served)
    for ing in ordered:
        key = _key(ing)
        for tls in (ing.get("spec") or {}).get("tls") or []:
            for host in tls.get("hosts") or []:
                server = table.servers.setdefault(host, Server(host))
                if server.tls_secret is None and tls.get("secretName"):
                    server.tls_secret = f"{key.split('/')[0]}/{tls['secretName']}"
    for server in table.servers.values():
        server.locations.sort(key=_location_order)
    return table


def _location_order(loc: Location) -> tuple:
    """Exact first, then longer paths before shorter (nginx: `=` locations, then the longest
    prefix; ingress-nginx orders regex locations by length, longest first)."""
    return (loc.path_type != "Exact", -len(loc.path.rstrip("/")) if loc.path_type == "Prefix" else -len(loc.path),
            loc.path_type != "Prefix")


# ---- Services and EndpointSlices -> addresses ---------------------------------------------------

def service_port(service: Obj, port: int | str) -> Obj | None:
    for sp in (service.get("spec") or {}).get("ports") or []:
        if (isinstance(port, int) and sp.get("port") == port) or (isinstance(port, str) and sp.get("name") == port):
            return sp
    return None


def endpoints_for(service: Obj, port: int | str, slices: list[Obj]) -> list[tuple[str, int]]:
    """The ready (address, port) pairs behind a Service port, from its EndpointSlices."""
    sp = service_port(service, port)
    if sp is None:
        return []
    name = sp.get("name") or ""
    out: list[tuple[str, int]] = []
    for es in slices:
        number = next((p.get("port") for p in es.get("ports") or [] if (p.get("name") or "") == name
                       and (p.get("protocol") or "TCP") == "TCP"), None)
        if number is None:
            continue
        for ep in es.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for addr in ep.get("addresses") or []:
                out.append((addr, int(number)))
    return sorted(set(out))


def ingress_class_selected(ing: Obj, class_name: str, classes: dict[str, Obj], controller: str,
                           watch_without_class: bool = False) -> bool:
    """Whether this controller serves the Ingress: its class (field, else the deprecated
    annotation) names an IngressClass whose spec.controller is ours; an Ingress without class
    only with --watch-ingress-without-class."""
    name = (ing.get("spec") or {}).get("ingressClassName") or ((ing.get("metadata") or {}).get("annotations")
                                                                 or {}).get("kubernetes.io/ingress.class")
    if not name:
        return watch_without_class
    if name == class_name and name not in classes:
        return False
    ic = classes.get(name)
    return ic is not None and (ic.get("spec") or {}).get("controller") == controller
