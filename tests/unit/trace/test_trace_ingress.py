"""`knet trace` from the host or a pod through a LoadBalancer address and the ingress controller to
the backend pod, on the two-node cluster of tests/unit/trace/cluster.py with the rules knet's
kube-proxy and policy controller render for each node, in both proxy modes. The ingress
controller is the add-on's own objects (knet.ingress.manifests: its Deployment's pod template with
its flags, its Service, its IngressClass), the LoadBalancer announcer is the network add-on's
choice (knet.cniagent.l2announce), the routing is the controller's (knet.ingress.routing)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from tests.unit.proxy.proxy_objects import endpoint_slice, ep, service
from tests.unit.trace.cluster import CLUSTER_CIDR, SERVICE_CIDR, objects, policy

from knet.cniagent.l2announce import announcer
from knet.ingress import manifests
from knet.ipam.lbpool import parse_pool
from knet.trace import http, lb, report, routes
from knet.trace.dataplane import RenderedDataplane
from knet.trace.view import ClusterView, TraceError, resolve

MODES = ["iptables", "nftables"]
HOST_IP = "192.168.0.1"
POOL = parse_pool("192.168.0.192-192.168.0.254")
LB_IP = "192.168.0.200"
CONTROLLER_IP = "10.244.1.20"
CONTROLLER_CLUSTER_IP = "10.96.0.50"
HTTP_NODE_PORT = 30080


def ready(o: dict[str, Any]) -> dict[str, Any]:
    if o.get("kind") == "Node":
        return {**o, "status": {**o["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
    return o


def lb_service(name: str, ip: str = LB_IP, endpoints: tuple[tuple[str, str], ...] = (
        ("10.244.1.3", "node01"), ("10.244.2.4", "node02")), cluster_ip: str = "10.96.0.20",
        **spec: Any) -> list[dict[str, Any]]:
    """A LoadBalancer Service in x (port 80, nodePort 31080) holding `ip`, and its slice."""
    svc = service(name, cluster_ip, ns="x", type="LoadBalancer",
                  ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 31080}], **spec)
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
    return [svc, endpoint_slice(name, [ep(a, n, ready=True) for a, n in endpoints], ns="x")]


def backend(name: str, endpoints: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    ip = {"wear": "10.96.0.31", "watch": "10.96.0.32", "empty": "10.96.0.33", "pair": "10.96.0.34"}[name]
    return [service(name, ip, ns="x"), endpoint_slice(name, [ep(a, n, ready=True) for a, n in endpoints], ns="x")]


def controller_objects(service_type: str = "NodePort", lb_ip: str = "") -> list[dict[str, Any]]:
    """The ingress add-on as `knet up` creates it, with one running controller pod on node01."""
    by_kind = {o["kind"]: o for _, _, o in manifests.objects()}
    template = manifests.deployment()["spec"]["template"]
    pod = {"kind": "Pod", "metadata": {"namespace": manifests.NAMESPACE, "name": "ingress-nginx-controller-abc",
                                       "labels": template["metadata"]["labels"]},
           "spec": {**template["spec"], "nodeName": "node01"}, "status": {"phase": "Running", "podIP": CONTROLLER_IP}}
    svc = json.loads(json.dumps(by_kind["Service"]))
    svc["spec"].update(type=service_type, clusterIP=CONTROLLER_CLUSTER_IP)
    svc["spec"]["ports"][0]["nodePort"] = HTTP_NODE_PORT
    svc["spec"]["ports"][1]["nodePort"] = 30443
    if lb_ip:
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip, "ipMode": "VIP"}]}}
    ports = [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]
    sl = endpoint_slice(manifests.CONTROLLER, [ep(CONTROLLER_IP, "node01", ready=True)], ns=manifests.NAMESPACE,
                        ports=ports)
    return [pod, svc, sl, by_kind["IngressClass"], {"kind": "Namespace", "metadata": {"name": manifests.NAMESPACE}}]


def ingress(name: str, rules: list[dict[str, Any]], ns: str = "x", cls: str | None = "nginx",
            **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name, "creationTimestamp": "2026-01-01T00:00:00Z"}
    if annotations:
        meta["annotations"] = {routes_key(k): v for k, v in annotations.items()}
    spec: dict[str, Any] = {"rules": rules}
    if cls:
        spec["ingressClassName"] = cls
    return {"kind": "Ingress", "metadata": meta, "spec": spec}


def routes_key(k: str) -> str:
    return "nginx.ingress.kubernetes.io/" + k.replace("_", "-")


def rule(paths: list[tuple[str, str, str]], host: str = "") -> dict[str, Any]:
    r: dict[str, Any] = {"http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}} for p, t, s in paths]}}
    if host:
        r["host"] = host
    return r


# the classic lab: /wear and /watch to two Services, a third without endpoints, a rewrite host
LAB = [*backend("wear", (("10.244.2.4", "node02"),)), *backend("watch", (("10.244.1.3", "node01"),)),
       *backend("empty", ()),
       ingress("lab", [rule([("/wear", "Prefix", "wear"), ("/watch", "Prefix", "watch"), ("/gone", "Prefix", "empty")])]),
       ingress("rw", [rule([("/api(/|$)(.*)", "ImplementationSpecific", "wear")], host="rewrite.example")],
               rewrite_target="/$2")]


def cluster(mode: str, *extra: dict[str, Any]) -> tuple[ClusterView, RenderedDataplane]:
    view = ClusterView.of([ready(o) for o in objects(*extra)])
    return view, RenderedDataplane(view, mode, CLUSTER_CIDR, (SERVICE_CIDR,))


def run(mode: str, frm: str, to: str, *extra: dict[str, Any], port: int = 0):
    view, dp = cluster(mode, *extra)
    src = lb.host_place(HOST_IP) if lb.is_host(frm) else resolve(view, frm)
    dst = lb.resolve_target(view, to, src)
    return view, lb.trace_from(view, dp, src, dst, port or dst.port, pool=POOL, rng=random.Random(0))


def run_http(mode: str, frm: str, to: str, *extra: dict[str, Any], host: str = "", path: str = "",
             all_paths: bool = False, service_type: str = "NodePort", lb_ip: str = "") -> http.HttpTrace:
    view, dp = cluster(mode, *controller_objects(service_type, lb_ip), *LAB, *extra)
    src = lb.host_place(HOST_IP) if lb.is_host(frm) else resolve(view, frm)
    target = http.http_target(to, host, path)
    if target.connect:
        connect = lb.resolve_target(view, target.connect, src)
        port, why = target.port or connect.port or 80, connect.describe()
    else:
        connect, port, why = http.controller_address(view, src, http.DEFAULT_CONTROLLER, target.request.scheme)
    ings = [o for o in [*LAB, *extra] if o.get("kind") == "Ingress"]
    classes = [o for o in controller_objects() if o.get("kind") == "IngressClass"]

    def router_for(pod: dict[str, Any], _port: int) -> routes.Router | None:
        opts = routes.controller_options(pod)
        return routes.IngressRouter.of(opts, ings, classes) if opts is not None else None
    result = http.trace_http(view, dp, src, target.request, connect, port, router_for, connect_why=why, pool=POOL,
                             all_paths=all_paths, rng=random.Random(0))
    # the report renders, and -o json is the same walk as data
    assert http.text(view, result, all_paths=all_paths).splitlines()[-1] == \
        f"verdict: {result.reason}" + (f" (HTTP {result.status})" if result.status else "")
    assert json.loads(json.dumps(http.data(result)))["verdict"] == result.verdict
    return result


# -- LoadBalancer addresses ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_host_reaches_a_loadbalancer_address_through_the_node_answering_arp(mode: str) -> None:
    view, r = run(mode, "host", LB_IP, *lb_service("web-lb"))
    expected = announcer(LB_IP, ["node01", "node02"])
    assert r.source.kind == "host" and r.target.name == "x/web-lb" and r.packet.dport == 80
    assert f"ARP for {LB_IP} on the node network: answered by node {expected}" in r.notes[1]
    assert {p.endpoint: p.verdict for p in r.paths} == {"10.244.1.3:80": "delivered", "10.244.2.4:80": "delivered"}
    for p in r.paths:
        assert p.hops[0].node == expected and p.hops[0].note.startswith(f"from the host ({HOST_IP}")
        # ETP Cluster: masqueraded, so the reply comes back through the announcing node
        assert p.masquerade
    text = report.text(view, r, all_paths=True)
    assert f"{LB_IP} is the LoadBalancer address of Service x/web-lb" in text
    assert any("DNAT" in s.note for h in r.path.hops for s in h.steps)


@pytest.mark.parametrize("mode", MODES)
def test_external_traffic_policy_local_is_announced_by_the_endpoints_node_and_keeps_the_source(mode: str) -> None:
    _, r = run(mode, "host", LB_IP, *lb_service("web-local", endpoints=(("10.244.2.4", "node02"),),
                                                   externalTrafficPolicy="Local"))
    assert "answered by node node02" in r.notes[1] and "externalTrafficPolicy Local" in r.notes[0]
    assert [(p.verdict, p.endpoint_pod, p.node, p.masquerade) for p in r.paths] == [
        ("delivered", "x/c", "node02", False)]


@pytest.mark.parametrize("mode", MODES)
def test_source_ranges_refuse_a_pod_and_admit_the_host(mode: str) -> None:
    objs = lb_service("web-ranges", loadBalancerSourceRanges=[f"{HOST_IP}/32"])
    _, r = run(mode, "x/a", LB_IP, *objs)
    assert r.path.verdict == "dropped" and "loadBalancerSourceRanges" in r.path.reason
    assert "stays on the pod's node node01" in r.notes[1]
    _, r = run(mode, "host", LB_IP, *objs)
    assert {p.verdict for p in r.paths} == {"delivered"}


@pytest.mark.parametrize("mode", MODES)
def test_no_ready_endpoint_means_no_node_answers(mode: str) -> None:
    _, r = run(mode, "host", LB_IP, *lb_service("web-empty", endpoints=()))
    assert r.path.verdict == "unrouted"
    assert r.path.reason == (f"no node answers ARP for {LB_IP}: Service x/web-empty has no ready endpoint: "
                             "the connection times out before any node sees it")
    assert r.notes[1].startswith(f"ARP for {LB_IP} on the node network: no node answers (Service x/web-empty")


@pytest.mark.parametrize("mode", MODES)
def test_a_pod_reaches_the_address_on_its_own_node(mode: str) -> None:
    _, r = run(mode, "z/a", "lb/x/web-lb", *lb_service("web-lb"))  # z/a is on node02
    assert r.target.ip == LB_IP and r.packet.dport == 80
    assert {p.verdict for p in r.paths} == {"delivered"}
    assert all(p.hops[1].node == "node02" and p.hops[1].hook == "prerouting" for p in r.paths)


def test_names_of_the_external_address() -> None:
    view, _ = cluster("iptables", *lb_service("web-lb"))
    host = lb.host_place(HOST_IP)
    # from the host a LoadBalancer Service is its external address (its ClusterIP is not routed there)
    assert lb.resolve_target(view, "svc/x/web-lb", host).ip == LB_IP
    assert lb.resolve_target(view, "svc/x/web-lb", resolve(view, "x/a")).ip == "10.96.0.20"
    assert lb.resolve_target(view, "lb/web-lb", resolve(view, "x/a")).ip == LB_IP
    with pytest.raises(TraceError, match="only node addresses and LoadBalancer addresses"):
        lb.trace_from(view, RenderedDataplane(view), host, resolve(view, "x/b"), 80, pool=POOL)
    pending = service("pending", "10.96.0.21", ns="x", type="LoadBalancer")
    view, _ = cluster("iptables", pending)
    with pytest.raises(TraceError, match="EXTERNAL-IP <pending>"):
        lb.resolve_target(view, "lb/x/pending", host)


def test_an_address_outside_the_pool_or_of_another_class_is_not_announced() -> None:
    view, _ = cluster("iptables", *lb_service("elsewhere", ip="10.0.0.9"),
                      *lb_service("metallb", ip="192.168.0.201", cluster_ip="10.96.0.22",
                                  loadBalancerClass="metallb.io/x"))
    outside = lb.lb_address(view, "10.0.0.9", POOL)
    other = lb.lb_address(view, "192.168.0.201", POOL)
    assert outside is not None and outside.announcer is None and "outside the LoadBalancer pool" in outside.why
    assert other is not None and other.announcer is None and "loadBalancerClass 'metallb.io/x'" in other.why
    assert lb.lb_address(view, "10.96.0.20", POOL) is None


# -- HTTP through the ingress controller ------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_pod_request_goes_to_the_controller_then_to_the_backend(mode: str) -> None:
    t = run_http(mode, "y/b", "http://shop.example/wear/shirts")  # y/b on node02
    assert t.front.target.ip == CONTROLLER_CLUSTER_IP and t.front.packet.dport == 80
    assert t.controller == f"{manifests.NAMESPACE}/ingress-nginx-controller-abc" and t.controller_node == "node01"
    m = t.route
    assert m is not None and (m.kind, m.route, m.host, m.path, m.path_type) == ("Ingress", "x/lab", "*", "/wear", "Prefix")
    assert m.backend == routes.BackendRef("x", "wear", 80) and m.upstream_path == "/wear/shirts"
    assert t.endpoints == ["10.244.2.4:80"]
    assert len(t.back) == 1 and t.back[0].source.name == t.controller and t.back[0].path.endpoint_pod == "x/c"
    assert (t.verdict, t.status) == ("delivered", 0)
    assert t.reason.startswith("delivered to pod x/c (10.244.2.4:80) on node node02: the backend answers")


@pytest.mark.parametrize("mode", MODES)
def test_host_request_through_the_nodeport_or_the_loadbalancer_address(mode: str) -> None:
    t = run_http(mode, "host", f"http://192.168.0.2:{HTTP_NODE_PORT}/watch")
    assert t.front.target.kind == "node" and t.front.path.endpoint_pod == t.controller
    assert t.route is not None and t.route.backend == routes.BackendRef("x", "watch", 80)
    assert t.back[0].path.endpoint_pod == "x/b" and t.verdict == "delivered"
    # the controller's Service of type LoadBalancer: a URL with a name goes to its external address
    t = run_http(mode, "host", "http://shop.example/watch", service_type="LoadBalancer", lb_ip="192.168.0.210")
    assert t.front.target.ip == "192.168.0.210" and "LoadBalancer address" in t.connect_why
    assert f"answered by node {announcer('192.168.0.210', ['node01', 'node02'])}" in t.front.notes[1]
    assert t.verdict == "delivered" and t.back[0].path.endpoint_pod == "x/b"


@pytest.mark.parametrize("mode", MODES)
def test_default_backend_404_and_no_endpoints_503(mode: str) -> None:
    t = run_http(mode, "y/b", "http://shop.example/nothing-here")
    assert (t.verdict, t.status, t.back) == ("not-found", 404, [])
    assert t.route is not None and t.route.default_backend and "default backend answers 404" in t.reason
    t = run_http(mode, "y/b", "http://shop.example/gone")
    assert (t.verdict, t.status, t.endpoints, t.back) == ("unavailable", 503, [], [])
    assert t.reason == "Service x/empty port 80 has no ready endpoints: the controller answers 503 Service " \
        "Temporarily Unavailable"


@pytest.mark.parametrize("mode", MODES)
def test_rewrite_target_and_host_with_path_options(mode: str) -> None:
    t = run_http(mode, "y/b", f"svc/{http.DEFAULT_CONTROLLER}", host="rewrite.example", path="/API/v1?q=1")
    m = t.route
    assert m is not None and (m.route, m.host, m.path) == ("x/rw", "rewrite.example", "/api(/|$)(.*)")
    assert (m.rewrite, m.upstream_path) == ("/$2", "/v1?q=1")
    assert t.verdict == "delivered" and "path /v1?q=1" in t.reason


@pytest.mark.parametrize("mode", MODES)
def test_policy_blocking_the_controller_is_a_504(mode: str) -> None:
    deny = {**policy("x", "deny-c", {"podSelector": {"matchLabels": {"pod": "c"}}, "policyTypes": ["Ingress"]}),
            "kind": "NetworkPolicy"}
    t = run_http(mode, "y/b", "http://shop.example/wear", deny)
    assert (t.verdict, t.status) == ("gateway-timeout", 504)
    assert "NetworkPolicy" in t.back[0].path.reason and t.back[0].path.verdict == "dropped"


@pytest.mark.parametrize("mode", MODES)
def test_ingresses_of_other_classes_are_not_served(mode: str) -> None:
    other = ingress("other", [rule([("/other", "Prefix", "watch")])], cls="traefik")
    t = run_http(mode, "y/b", "http://shop.example/other", other)
    assert t.verdict == "not-found"


def test_a_connection_that_ends_elsewhere_is_not_routed() -> None:
    t = run_http("iptables", "y/b", "svc/x/watch", host="shop.example", path="/wear")
    assert t.verdict == "not-a-controller" and t.route is None and "x/b" in t.reason


def test_redirect_to_https_and_bad_paths() -> None:
    secured = ingress("tls", [rule([("/", "Prefix", "watch")], host="secure.example")])
    secured["spec"]["tls"] = [{"hosts": ["secure.example"], "secretName": "cert"}]
    t = run_http("iptables", "y/b", "http://secure.example/x", secured)
    assert (t.verdict, t.status) == ("redirect", 308) and "https://secure.example/x" in t.reason
    t = run_http("iptables", "y/b", "https://secure.example/x", secured)
    assert t.front.packet.dport == 443 and t.verdict == "delivered" and t.back[0].path.endpoint_pod == "x/b"
    t = run_http("iptables", "y/b", "http://shop.example/../../etc/passwd")
    assert (t.verdict, t.status) == ("bad-request", 400)


def test_an_ingress_cannot_route_to_another_namespaces_service() -> None:
    # as the ingress e2e's steal.example.com: the backend is looked up in the Ingress's own namespace
    steal = ingress("steal", [rule([("/", "Prefix", "wear")], host="steal.example")], ns="y")
    t = run_http("iptables", "y/b", "http://steal.example/", steal)
    assert t.route is not None and t.route.backend == routes.BackendRef("y", "wear", 80)
    assert (t.verdict, t.status, t.back) == ("unavailable", 503, [])
    assert t.reason.startswith("Service y/wear port 80 does not exist")


@pytest.mark.parametrize(("to", "host", "path", "request_", "connect", "port"), [
    ("http://shop.example/wear?x=1", "", "", ("http", "shop.example", "/wear?x=1"), "", 0),
    ("https://shop.example:8443", "", "", ("https", "shop.example:8443", "/"), "", 8443),
    ("http://172.30.0.2:31080/wear", "shop.example", "", ("http", "shop.example", "/wear"), "172.30.0.2", 31080),
    ("http://172.30.0.2/", "", "", ("http", "172.30.0.2", "/"), "172.30.0.2", 0),
    ("172.30.0.2:31080", "shop.example", "/wear", ("http", "shop.example", "/wear"), "172.30.0.2", 31080),
    ("svc/ingress-nginx/ingress-nginx-controller", "", "/x", ("http", "", "/x"),
     "svc/ingress-nginx/ingress-nginx-controller", 0),
])
def test_what_an_http_target_asks_for(to: str, host: str, path: str, request_: tuple, connect: str, port: int) -> None:
    t = http.http_target(to, host, path)
    assert (t.request.scheme, t.request.host, t.request.path) == request_
    assert (t.connect, t.port) == (connect, port)


@pytest.mark.parametrize("mode", MODES)
def test_all_walks_the_controller_to_every_endpoint(mode: str) -> None:
    both = [*backend("pair", (("10.244.1.3", "node01"), ("10.244.2.4", "node02"))),
            ingress("two", [rule([("/", "Prefix", "pair")], host="two.example")])]
    t = run_http(mode, "y/b", "http://two.example/", *both, all_paths=True)
    assert t.endpoints == ["10.244.1.3:80", "10.244.2.4:80"]
    assert [(b.path.endpoint_pod, b.path.node) for b in t.back] == [("x/b", "node01"), ("x/c", "node02")]
    t = run_http(mode, "y/b", "http://two.example/", *both)
    assert len(t.back) == 1 and t.verdict == "delivered"
