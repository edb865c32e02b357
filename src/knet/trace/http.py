"""`knet trace FROM http://HOST/PATH`: a request through the ingress controller, in three steps.
Pure (rules from a Dataplane, objects from a ClusterView, routing from a Router).

1. The connection from FROM to the controller's address (its LoadBalancer address, NodePort or
   ClusterIP; lb.trace_from: ARP, kube-proxy's rules, DNAT to one controller pod).
2. The routing in that controller pod: the Router (routes.py) built from the pod's own flags says
   which rule matched (route, host, path, pathType), any rewrite, the backend Service and port,
   or the controller's own answer (default backend 404, 308 to HTTPS, 400). When the connection
   reached a Gateway's pod port, the Gateway's router (gatewayroutes.py) says it: the HTTPRoute
   rule and match, filters, weighted backends, or a redirect's 30x, a refused backendRef's 500, 404.
3. The controller's connection to the backend: it connects to an endpoint of the backend Service
   (from the Service's EndpointSlices, in turn, not through the ClusterIP: ingress-nginx's
   upstreams are endpoints), so the walk goes from the controller pod to that endpoint.

The verdict: delivered to pod X on node Y, the default backend's 404, 503 when the backend has no
endpoints, 502/504 when the controller cannot reach the endpoint, or the first leg's failure.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from knet.ipam.lbpool import Pool
from knet.trace import lb, report
from knet.trace.dataplane import Dataplane
from knet.trace.gatewayroutes import GatewayObjects, gateway_service_key
from knet.trace.path import TraceResult, trace
from knet.trace.routes import SCHEME_PORTS, HttpRequest, RouteMatch, Router, backend_endpoints
from knet.trace.view import ClusterView, Obj, Place, TraceError, is_ip, place_of_ip

DEFAULT_CONTROLLER = "ingress-nginx/ingress-nginx-controller"


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


@dataclass
class Target:
    """What TO asks for: the request, and where to connect when TO names an address."""
    request: HttpRequest
    connect: str = ""   # an address or object to connect to ("": the controller's Service)
    port: int = 0       # the port to connect to (0: the scheme's)


def http_target(to: str, host: str = "", path: str = "") -> Target:
    """TO as a URL (`http://foo.example/wear`, `https://10.0.0.5:30443/x`), or (with --host or
    --path) TO is the address to connect to and the request is built from the options."""
    if is_url(to):
        u = urlsplit(to)
        if not u.hostname:
            raise TraceError(f"no host in {to!r}")
        req_path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        named = u.hostname
        req = HttpRequest(u.scheme, host or (u.netloc.rsplit("@", 1)[-1]), path or req_path)
        return Target(req, named if is_ip(named) else "", u.port or 0)
    scheme = "https" if to.endswith(":443") else "http"
    addr, _, port = to.rpartition(":") if is_ip(to.rpartition(":")[0]) else (to, "", "")
    return Target(HttpRequest(scheme, host or (addr if is_ip(addr) else ""), path or "/"), addr,
                  int(port) if port else 0)


def controller_address(view: ClusterView, source: Place, key: str, scheme: str, port: int = 0
                       ) -> tuple[Place, int, str]:
    """Where FROM reaches the controller's Service: (place, port, why). A pod uses its ClusterIP
    (the Service's DNS name); the host its LoadBalancer address, else its NodePort on the first node.
    `port`: that Service port (a Gateway's listener port), else the scheme's."""
    svc = view.service(key)
    if svc is None:
        raise TraceError(f"no ingress controller Service {key} (name it with --controller, or give its "
                         "address as TO with --host/--path)")
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    sp = next((p for p in ports if p.get("port") == port), None) if port else \
        next((p for p in ports if p.get("name") == scheme), None) or \
        next((p for p in ports if p.get("port") == SCHEME_PORTS[scheme]), None)
    if sp is None:
        raise TraceError(f"Service {key} has no {f'port {port}' if port else scheme + ' port'}")
    lb_ips = [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
              if i.get("ip")]
    if source.kind == "host":
        if lb_ips:
            return Place("service", lb_ips[0], key), sp["port"], f"Service {key}'s LoadBalancer address"
        if sp.get("nodePort") and view.node_names():
            node = view.node_names()[0]
            return (Place("node", view.node_ip(node), node, node), sp["nodePort"],
                    f"Service {key}'s NodePort {sp['nodePort']} on node {node} (it has no LoadBalancer address)")
        raise TraceError(f"the host cannot reach Service {key}: it has neither a LoadBalancer address nor a NodePort")
    ip = spec.get("clusterIP", "")
    if ip in ("", "None"):
        raise TraceError(f"Service {key} is headless")
    return Place("service", ip, key), sp["port"], f"Service {key}'s ClusterIP"


def gateway_address(view: ClusterView, source: Place, objs: GatewayObjects, namespace: str, ref: str, scheme: str,
                    port: int = 0) -> tuple[Place, int, str]:
    """Where FROM reaches Gateway `ref` (`[ns/]name`): its Service's address as for the controller's
    (controller_address), at the listener port `port` (default: the scheme's). `namespace`: the
    controller's, where the Gateways' Services are. `ref` may end in `:PORT` (`gateway/x/gw:443`)."""
    if ":" in ref:
        ref, _, named = ref.rpartition(":")
        port = port or int(named) if named.isdigit() else port
    try:
        key = gateway_service_key(objs, namespace, ref)
    except LookupError as exc:
        raise TraceError(str(exc)) from None
    place, p, why = controller_address(view, source, key, scheme, port or SCHEME_PORTS[scheme])
    return place, p, f"Gateway {ref}: {why}"


@dataclass
class HttpTrace:
    request: HttpRequest
    front: TraceResult
    connect_why: str = ""
    controller: str = ""               # NAMESPACE/POD of the controller the request reached
    controller_node: str = ""
    route: RouteMatch | None = None
    endpoints: list[str] = field(default_factory=list)  # "ip:port" the controller takes in turn
    back: list[TraceResult] = field(default_factory=list)  # the chosen endpoint's walk (--all: every one)
    verdict: str = ""   # delivered, not-found, redirect, bad-request, unavailable, bad-gateway,
    #                     gateway-timeout, server-error (a Gateway's 500), not-a-controller, or the first leg's (rejected, dropped, unrouted)
    status: int = 0     # the HTTP status the client gets (0: no HTTP answer, the connection failed)
    reason: str = ""


def trace_http(view: ClusterView, dp: Dataplane, source: Place, request: HttpRequest, connect: Place, port: int,
               router_for: Callable[[Obj, int], Router | None], *, connect_why: str = "", via: str = "",
               pool: Pool | None = None, all_paths: bool = False, rng: random.Random | None = None) -> HttpTrace:
    rng = rng or random.Random()
    front = lb.trace_from(view, dp, source, connect, port, "tcp", via=via, pool=pool, rng=rng)
    out = HttpTrace(request, front, connect_why)
    fp = front.path
    if fp.verdict != "delivered":
        out.verdict, out.reason = fp.verdict, f"the connection to the ingress controller fails: {fp.reason}"
        return out
    pod = view.pod(fp.endpoint_pod) if fp.endpoint_pod else None
    # the pod port the connection reached: a Gateway's own port (20000+) or the Ingress listeners
    pod_port = int(fp.endpoint.rpartition(":")[2] or 0) if fp.endpoint else 0
    router = router_for(pod, pod_port) if pod is not None else None
    if pod is None or router is None:
        out.verdict = "not-a-controller"
        out.reason = (f"the connection ends at {fp.endpoint_pod or fp.endpoint}, which runs no ingress "
                      f"controller: {fp.reason}")
        return out
    out.controller, out.controller_node = fp.endpoint_pod, fp.node
    m = out.route = router.route(request)
    if m.status == 400:
        out.verdict, out.status, out.reason = "bad-request", 400, "the controller answers 400: the path is malformed"
        return out
    if m.status == 308 and not m.gateway:
        out.verdict, out.status = "redirect", 308
        out.reason = f"the controller answers 308 Permanent Redirect to {m.location} ({m.kind} {m.route} has TLS)"
        return out
    if m.gateway and 300 <= m.status < 400:
        out.verdict, out.status = "redirect", m.status
        out.reason = (f"the controller answers {m.status} to {m.location} (HTTPRoute {m.route} rule {m.rule}'s "
                      "RequestRedirect)")
        return out
    if m.gateway and m.status == 500:
        out.verdict, out.status = "server-error", 500
        out.reason = (f"the controller answers 500 Internal Server Error: HTTPRoute {m.route} rule {m.rule}: "
                      f"{m.error}")
        return out
    if m.gateway and m.backend is None:
        out.verdict, out.status = "not-found", 404
        out.reason = (f"no HTTPRoute attached to Gateway {m.gateway} matches host {request.host} path "
                      f"{request.path}: the controller answers 404 Not Found")
        return out
    if m.backend is None:
        out.verdict, out.status = "not-found", 404
        out.reason = (f"no rule of the controller matches host {request.host} path {request.path}: the default backend "
                      "answers 404 Not Found" if m.default_backend and not m.route else
                      f"{m.kind} {m.route}'s rule has no Service backend: the default backend answers 404 Not Found")
        return out
    svc, eps = backend_endpoints(m.backend, view.services, view.slices)
    out.endpoints = [f"{ip}:{p}" for ip, p in eps]
    if svc is None:
        out.verdict, out.status = "unavailable", 503
        out.reason = f"{m.backend.text()} does not exist: the controller answers 503 Service Temporarily Unavailable"
        return out
    if not eps:
        out.verdict, out.status = "unavailable", 503
        out.reason = (f"{m.backend.text()} has no ready endpoints: the controller answers 503 Service "
                      "Temporarily Unavailable")
        return out
    ctrl = place_of_ip(view, fp.endpoint.rpartition(":")[0])
    chosen = rng.randrange(len(eps))
    picks = list(range(len(eps))) if all_paths else [chosen]
    for i in picks:
        ip, p = eps[i]
        out.back.append(trace(view, dp, ctrl, place_of_ip(view, ip), p, "tcp", rng=rng))
    leg = out.back[picks.index(chosen)].path
    rewritten = f", path {m.upstream_path}" if m.upstream_path.split("?")[0] != request.path.split("?")[0] else ""
    if leg.verdict == "delivered":
        out.verdict, out.status = "delivered", 0
        out.reason = (f"{leg.reason}: the backend answers the request ({m.backend.text()}{rewritten}, "
                      f"via the controller {out.controller})")
    elif leg.verdict == "dropped":
        out.verdict, out.status = "gateway-timeout", 504
        out.reason = f"the controller's connection to {leg.endpoint} is {leg.reason}: it answers 504 Gateway Timeout"
    else:
        out.verdict, out.status = "bad-gateway", 502
        out.reason = f"the controller's connection to {leg.endpoint} fails ({leg.reason}): it answers 502 Bad Gateway"
    return out


# -- the report ---------------------------------------------------------------------------------------

def _indent(text: str, by: str = "  ") -> list[str]:
    return [by + line for line in text.rstrip("\n").splitlines()]


def text(view: ClusterView, t: HttpTrace, *, all_paths: bool = False) -> str:
    src = t.front.source
    out = [f"trace {t.request.scheme.upper()} request Host {t.request.host} path {t.request.path} "
           f"from {src.describe()}"]
    out.append(f"1. to the ingress controller: {t.connect_why or t.front.target.describe()}")
    out += _indent(report.text(view, t.front, all_paths=all_paths))
    if t.controller:
        out.append(f"2. in the ingress controller pod {t.controller} on node {t.controller_node}:")
        m = t.route
        assert m is not None
        out += [f"  {n}" for n in m.notes]
        out.append(f"  {m.describe()}")
        out += [f"  filter {f}" for f in m.filters]
        if len(m.backends) > 1 or any(w.refused for w in m.backends):
            shown = m.backends if all_paths else [w for w in m.backends if w.chosen]
            total = sum(w.weight for w in m.backends)
            out += [f"  backend {w.text()} of total weight {total}" + (" (chosen)" if w.chosen and all_paths else "")
                    for w in shown]
        if m.rewrite and not m.gateway:
            out.append(f"  rewrite-target {m.rewrite}: the backend gets path {m.upstream_path}")
        if t.endpoints:
            out.append(f"  endpoints of {m.backend.text() if m.backend else ''}: {', '.join(t.endpoints)} "
                       "(the controller connects to them in turn)")
    for i, leg in enumerate(t.back):
        head = "3. from the controller to the backend endpoint"
        out.append(head + (f" ({i + 1} of {len(t.back)})" if len(t.back) > 1 else "") + ":")
        out += _indent(report.text(view, leg))
    out.append(f"verdict: {t.reason}" + (f" (HTTP {t.status})" if t.status else ""))
    return "\n".join(out) + "\n"


def data(t: HttpTrace, *, all_paths: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"request": dataclasses.asdict(t.request), "connect": t.connect_why,
                         "front": report.data(t.front, all_paths=all_paths), "controller": t.controller,
                         "controller_node": t.controller_node,
                         "route": dataclasses.asdict(t.route) if t.route is not None else None,
                         "endpoints": t.endpoints, "back": [report.data(b) for b in t.back],
                         "verdict": t.verdict, "status": t.status, "reason": t.reason}
    return d
