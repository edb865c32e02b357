"""`knet trace FROM TO`: where a new connection goes and why, hop by hop, from the rules the nodes
hold (a real cluster: read live in each node; a simulated one: rendered by knet's kube-proxy and
policy controller from the API objects)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click
import yaml

from knet.cluster.config import DEFAULT_NAME

READS = (("v1", "pods"), ("v1", "services"), ("discovery.k8s.io/v1", "endpointslices"), ("v1", "nodes"),
         ("networking.k8s.io/v1", "networkpolicies"), ("v1", "namespaces"),
         ("networking.k8s.io/v1", "ingresses"), ("networking.k8s.io/v1", "ingressclasses"))
KINDS = {"pods": "Pod", "services": "Service", "endpointslices": "EndpointSlice", "nodes": "Node",
         "networkpolicies": "NetworkPolicy", "namespaces": "Namespace", "ingresses": "Ingress",
         "ingressclasses": "IngressClass"}


async def _read_cluster(kubeconfig: str) -> tuple[list[dict[str, Any]], str]:
    """Every object the trace needs (one list per kind, concurrently) and kube-proxy's mode."""
    from knet.client import ApiClient, load_config

    async with ApiClient(load_config(kubeconfig)) as api:
        async def kube_proxy_mode() -> str:
            try:
                cm = await api.get("v1", "configmaps", "kube-proxy", namespace="kube-system")
            except Exception:  # no ConfigMap (or not readable): the cluster config's mode
                return ""
            conf = yaml.safe_load((cm.get("data") or {}).get("config.conf") or "") or {}
            return str(conf.get("mode") or "") if isinstance(conf, dict) else ""

        lists = await asyncio.gather(*(api.list(v, r, namespace=None) for v, r in READS), kube_proxy_mode(),
                                     _read_gateway_api(api))
    objects = [{**o, "kind": KINDS[r]} for (_, r), got in zip(READS, lists[:-2], strict=True)
               for o in got.get("items") or []]
    return objects + lists[-1], lists[-2]


GATEWAY_READS = (("gateway.networking.k8s.io/v1", "gatewayclasses", "GatewayClass"),
                 ("gateway.networking.k8s.io/v1", "gateways", "Gateway"),
                 ("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute"),
                 ("gateway.networking.k8s.io/v1beta1", "referencegrants", "ReferenceGrant"))


async def _read_gateway_api(api: Any) -> list[dict[str, Any]]:
    """The Gateway API objects, when its CRDs are installed (else none), and the TLS Secrets that
    HTTPS listeners name (their keys only: the trace needs to know they are usable, not what they hold)."""
    from knet.client.errors import ApiError

    async def read(version: str, resource: str) -> list[dict[str, Any]]:
        try:
            return (await api.list(version, resource, namespace=None)).get("items") or []
        except ApiError:
            return []
    got = await asyncio.gather(*(read(v, r) for v, r, _ in GATEWAY_READS))
    out = [{**o, "kind": k} for (_, _, k), items in zip(GATEWAY_READS, got, strict=True) for o in items]
    refs = {((ref.get("namespace") or g["metadata"]["namespace"]), ref.get("name", ""))
            for g in out if g["kind"] == "Gateway" for ls in (g.get("spec") or {}).get("listeners") or []
            for ref in (ls.get("tls") or {}).get("certificateRefs") or []}

    async def secret(ns: str, name: str) -> dict[str, Any] | None:
        try:
            s = await api.get("v1", "secrets", name, namespace=ns)
        except ApiError:
            return None
        return {"kind": "Secret", "metadata": {"namespace": ns, "name": name},
                "data": {k: "" for k in (s.get("data") or {})}}
    out += [s for s in await asyncio.gather(*(secret(ns, n) for ns, n in sorted(refs))) if s is not None]
    return out


@click.command("trace")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Cluster name.")
@click.argument("source", metavar="FROM")
@click.argument("destination", metavar="TO")
@click.option("--port", type=int, default=0, help="Destination port (default: the Service's first port, "
              "the pod's first containerPort).")
@click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp", show_default=True)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--all", "all_paths", is_flag=True, help="Every possible path (each endpoint), not one.")
@click.option("--via", default="", help="For a source outside the cluster: the node it arrives at.")
@click.option("--probe", is_flag=True, help="Also make a real connection from FROM (TCP; UDP: a datagram an "
              "agnhost netexec/UDP echo server answers) and check the walk against what the kernel did, on every "
              "node it crosses (exit 1 when they disagree).")
@click.option("--probe-timeout", default=2.0, show_default=True, help="Seconds a probe waits to connect.")
@click.option("--host", "http_host", default="", help="An HTTP request with this Host header to TO (the ingress "
              "controller's address), followed through the controller to the backend pod.")
@click.option("--path", "http_path", default="", help="An HTTP request for this path (see --host).")
@click.option("--controller", default="ingress-nginx/ingress-nginx-controller", show_default=True,
              help="For an HTTP trace: the ingress controller's Service (NAMESPACE/NAME), reached when TO is a URL "
              "with a host name.")
def trace_command(name: str, source: str, destination: str, port: int, protocol: str, output: str,
                  all_paths: bool, via: str, probe: bool, probe_timeout: float, http_host: str, http_path: str,
                  controller: str) -> None:
    """Where a new connection from FROM to TO goes, and why: each rule it matches on each node
    (kube-proxy's iptables or nftables, the network add-on's NetworkPolicy rules), every DNAT
    choice with its probability, masquerade, the routes, the policies, and the verdict.

    FROM and TO: a pod (`ns/name`, `name`), a Service (`svc/name`, `svc/ns/name`,
    `name.ns.svc`), a node (`node/name` or its name) or an IP; TO may also be a DNS name,
    resolved as the source pod's resolver would. FROM may be `host` (this machine, on the node
    network: it reaches a LoadBalancer address through the node answering ARP for it). TO may be
    a LoadBalancer address or `lb/[ns/]name` (a Service at its external address), or an HTTP URL
    (`http://foo.example/wear`; or --host/--path with TO the controller's address): the request is
    followed to the ingress controller, through its routing rules, and on to the backend pod. Through
    a Gateway API Gateway: TO its address as a URL, or `gateway/[ns/]name` with --host/--path."""
    from knet.cluster import config as config_mod
    from knet.cluster.paths import ClusterPaths
    from knet.trace import report
    from knet.trace.dataplane import Dataplane, RealDataplane, RenderedDataplane
    from knet.trace.view import ClusterView, TraceError, resolve

    paths = ClusterPaths.of(name)
    try:
        cfg = config_mod.from_dict(yaml.safe_load(paths.config_file.read_text()))
    except FileNotFoundError:
        from knet.cluster.paths import list_cluster_names, missing_cluster_message

        raise click.ClickException(missing_cluster_message(name, list_cluster_names())) from None
    objects, mode = asyncio.run(_read_cluster(str(paths.admin_kubeconfig)))
    mode = mode or cfg.proxy_mode or "iptables"
    if mode not in ("iptables", "nftables"):
        raise click.ClickException(f"kube-proxy's mode is {mode!r}: knet trace walks iptables and nftables rules")
    view = ClusterView.of(objects, cfg.dns_domain)
    dp: Dataplane
    if cfg.dataplane == "real":
        dp = real = RealDataplane(name, mode)
        names = view.node_names()
        real.prefetch(names if len(names) <= 16 else [])  # larger clusters: only the nodes the walk visits
    else:
        dp = RenderedDataplane(view, mode, cfg.pod_subnet, (cfg.service_subnet,))
    from knet.trace import http, lb

    pool = _pool(cfg.load_balancer_pool)
    try:
        src = lb.host_place(cfg.host_ip) if lb.is_host(source) else resolve(view, source)
        if http.is_url(destination) or http_host or http_path or destination.startswith("gateway/"):
            if probe:
                raise click.ClickException("--probe does not follow an HTTP request through the ingress controller")
            _trace_http(view, dp, objects, src, destination, http_host, http_path, controller, port, via, pool,
                        output, all_paths)
            return
        if probe and src.kind == "host":
            raise click.ClickException("--probe sends from a pod or a node, not from the host")
        dst = lb.resolve_target(view, destination, src)
        result = lb.trace_from(view, dp, src, dst, port or dst.port, protocol, via=via, pool=pool)
    except (TraceError, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    checked: dict[str, Any] | None = None
    if probe:
        checked = _probe(name, cfg.dataplane, mode, probe_timeout, result,
                         {n: view.node_ip(n) for n in view.node_names()})
    if output == "json":
        data = report.data(result, all_paths=all_paths)
        if checked is not None:
            data["probe"] = checked
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.text(view, result, all_paths=all_paths))
        if checked is not None:
            click.echo(f"probe: {checked['message']} ({'agrees with' if checked['agrees'] else 'DISAGREES with'} "
                       "the walk)")
            click.echo(f"kernel trace: {checked['rules']}"
                       + ("" if checked["rules_agree"] else " (DISAGREES with the walk)"))
    if checked is not None and not (checked["agrees"] and checked["rules_agree"]):
        sys.exit(1)


def _pool(text: str):  # noqa: ANN202 - a Pool or None
    from knet.ipam.lbpool import PoolError, parse_pool

    try:
        return parse_pool(text) if text else None
    except PoolError:
        return None


def _trace_http(view: Any, dp: Any, objects: list[dict[str, Any]], src: Any, destination: str, host: str,
                path_: str, controller: str, port: int, via: str, pool: Any, output: str, all_paths: bool) -> None:
    from knet.trace import gatewayroutes, http, lb, routes

    gw_objects = gatewayroutes.GatewayObjects.of(objects)
    target = http.http_target(destination, host, path_)
    if target.connect.startswith("gateway/"):  # a Gateway: its Service's address (as for the controller's)
        connect, port, why = http.gateway_address(view, src, gw_objects, controller.partition("/")[0],
                                                   target.connect.removeprefix("gateway/"), target.request.scheme,
                                                   port)
    elif target.connect:
        connect = lb.resolve_target(view, target.connect, src)
        port = port or target.port or connect.port or routes.SCHEME_PORTS[target.request.scheme]
        why = connect.describe()
    else:
        connect, cport, why = http.controller_address(view, src, controller, target.request.scheme)
        port = port or target.port or cport
    ingresses = [o for o in objects if o.get("kind") == "Ingress"]
    classes = [o for o in objects if o.get("kind") == "IngressClass"]

    def router_for(pod: dict[str, Any], pod_port: int) -> routes.Router | None:
        opts = routes.controller_options(pod)
        if opts is None:
            return None
        if opts.publish_service:  # the controller serves Gateways on the pod ports their Services name
            gw = gatewayroutes.GatewayRouter.for_pod_port(gw_objects, opts.publish_service.partition("/")[0],
                                                          pod_port)
            if gw is not None:
                return gw
        return routes.IngressRouter.of(opts, ingresses, classes)

    result = http.trace_http(view, dp, src, target.request, connect, port, router_for, connect_why=why, via=via,
                             pool=pool, all_paths=all_paths)
    if output == "json":
        json.dump(http.data(result, all_paths=all_paths), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(http.text(view, result, all_paths=all_paths))


def _probe(name: str, dataplane: str, mode: str, timeout: float, result: Any,
           node_ips: dict[str, str]) -> dict[str, Any]:
    from knet.trace import probe

    if dataplane != "real":
        raise click.ClickException("--probe needs a real dataplane: a simulated cluster has no kernel to ask")
    if result.packet.proto not in probe.PROTOCOLS:
        raise click.ClickException(f"--probe sends {' and '.join(p.upper() for p in probe.PROTOCOLS)} only: "
                                   f"drop --probe to walk {result.packet.proto.upper()} without sending")
    try:
        got = probe.RealProber(name, mode).probe(result, timeout, node_ips)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    agrees, message = probe.compare(result, got)
    rules_agree, rules = probe.compare_rules(result, got)
    return {"outcome": got.outcome, "endpoint": got.endpoint, "agrees": agrees, "message": message,
            "rules_agree": rules_agree, "rules": rules, "kernel_node": got.kernel_node,
            "kernel_rules": [list(r) for r in got.kernel], "detail": got.detail,
            "kernel_nodes": {n: [[list(r) for r in seg] for seg in segs] for n, segs in got.traced().items()}}


def register(group: click.Group) -> None:
    group.add_command(trace_command)
