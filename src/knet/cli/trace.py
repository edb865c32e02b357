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
         ("networking.k8s.io/v1", "networkpolicies"), ("v1", "namespaces"))
KINDS = {"pods": "Pod", "services": "Service", "endpointslices": "EndpointSlice", "nodes": "Node",
         "networkpolicies": "NetworkPolicy", "namespaces": "Namespace"}


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

        lists = await asyncio.gather(*(api.list(v, r, namespace=None) for v, r in READS), kube_proxy_mode())
    objects = [{**o, "kind": KINDS[r]} for (_, r), got in zip(READS, lists[:-1], strict=True)
               for o in got.get("items") or []]
    return objects, lists[-1]


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
def trace_command(name: str, source: str, destination: str, port: int, protocol: str, output: str,
                  all_paths: bool, via: str, probe: bool, probe_timeout: float) -> None:
    """Where a new connection from FROM to TO goes, and why: each rule it matches on each node
    (kube-proxy's iptables or nftables, the network add-on's NetworkPolicy rules), every DNAT
    choice with its probability, masquerade, the routes, the policies, and the verdict.

    FROM and TO: a pod (`ns/name`, `name`), a Service (`svc/name`, `svc/ns/name`,
    `name.ns.svc`), a node (`node/name` or its name) or an IP; TO may also be a DNS name,
    resolved as the source pod's resolver would."""
    from knet.cluster import config as config_mod
    from knet.cluster.paths import ClusterPaths
    from knet.trace import path, report
    from knet.trace.dataplane import Dataplane, RealDataplane, RenderedDataplane
    from knet.trace.view import ClusterView, TraceError, resolve

    paths = ClusterPaths.of(name)
    try:
        cfg = config_mod.from_dict(yaml.safe_load(paths.config_file.read_text()))
    except FileNotFoundError:
        raise click.ClickException(f'no cluster named "{name}" (see: knet status)') from None
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
    try:
        src = resolve(view, source)
        dst = resolve(view, destination, source=src)
        result = path.trace(view, dp, src, dst, port or dst.port, protocol, entry_node=via)
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
