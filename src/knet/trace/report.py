"""A TraceResult as text (hop by hop) or as data (-o json). Pure."""

from __future__ import annotations

import dataclasses
from typing import Any

from knet.trace.path import Path, TraceResult, selecting_policies
from knet.trace.view import ClusterView


def _pct(p: float) -> str:
    return f"{p * 100:.4g}%"


def _path_lines(result: TraceResult, path: Path, indent: str = "") -> list[str]:
    out: list[str] = []
    node = ""
    for hop in path.hops:
        if hop.node != node:
            node = hop.node
            if not node:  # the packet reached no node
                out.append(f"{indent}{hop.note}")
                continue
            out.append(f"{indent}node {node}  ({result.sources.get(node, '')})")
        if hop.hook == "source":
            out.append(f"{indent}  {hop.note}")
            continue
        if hop.hook == "route":
            out.append(f"{indent}  route: {hop.note}")
            continue
        if not hop.steps:
            out.append(f"{indent}  {hop.hook}: no rule matched (accepted)")
            continue
        out.append(f"{indent}  {hop.hook}:")
        for s in hop.steps:
            out.append(f"{indent}    {s.table} {s.chain}: {s.rule}" + (f"   [{s.note}]" if s.note else ""))
    if path.dnat:
        pinned = f" (pinned by session affinity: {path.affinity})" if path.affinity else ""
        out.append(f"{indent}DNAT: -> {path.dnat}, probability {_pct(path.probability)}{pinned}")
    if path.verdict == "delivered" or path.masquerade:
        out.append(f"{indent}masquerade: " + (f"yes, {path.masquerade_why}" if path.masquerade else
                                              "no (no rule marked the packet: the source address is kept)"))
    out += [f"{indent}policy: {line}" for line in path.policy]
    return out


def text(view: ClusterView, result: TraceResult, *, all_paths: bool = False) -> str:
    pk = result.packet
    out = [f"trace {result.source.describe()} -> {result.target.describe()} port {pk.dport}/{pk.proto} "
           f"(kube-proxy mode {result.mode})"]
    for line in result.target.dns:
        out.append(f"DNS (as the source pod resolves it): {line}")
    out += result.notes
    egress = selecting_policies(view, result.source, "egress")
    if egress:
        out.append(f"egress policies selecting {result.source.name}: {', '.join(egress)}")
    delivered = {p.endpoint_pod for p in result.paths if p.endpoint_pod}
    for pod in sorted(delivered):
        node = next(p.node for p in result.paths if p.endpoint_pod == pod)
        from knet.trace.view import Place
        ingress = selecting_policies(view, Place("pod", "", pod, node), "ingress")
        out.append(f"ingress policies selecting {pod}: {', '.join(ingress) if ingress else 'none (not isolated)'}")
    if len(result.paths) > 1:
        out.append(f"{len(result.paths)} possible paths: "
                   + ", ".join(f"{p.endpoint if p.verdict == 'delivered' else p.verdict} ({_pct(p.probability)})"
                               for p in result.paths))
    chosen = result.paths if all_paths else [result.path]
    for i, path in enumerate(chosen):
        if all_paths and len(chosen) > 1:
            out.append(f"-- path {i + 1} of {len(chosen)} (probability {_pct(path.probability)})")
        elif len(result.paths) > 1:
            out.append("-- one of them, chosen at random as the kernel would (--all shows every one)")
        out += _path_lines(result, path)
        out.append(f"verdict: {path.reason}")
    return "\n".join(out) + "\n"


def data(result: TraceResult, *, all_paths: bool = False) -> dict[str, Any]:
    d = dataclasses.asdict(result)
    if not all_paths:
        d["paths"] = [d["paths"][result.chosen]]
        d["chosen"] = 0
    d["verdict"] = result.path.verdict
    d["reason"] = result.path.reason
    return d
