"""Wire-dict builders for proxy tests (Services and EndpointSlices as the API serves them)."""

from __future__ import annotations

from typing import Any


def service(name: str, cluster_ip: str, *, ns: str = "ns1", ports: list[dict[str, Any]] | None = None,
            **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": cluster_ip, "ports": ports or [{"name": "p80", "port": 80, "protocol": "TCP"}],
                     **spec}}


def endpoint_slice(svc: str, endpoints: list[dict[str, Any]], *, ns: str = "ns1", name: str | None = None,
                   ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name or f"{svc}-1",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports or [{"name": "p80", "port": 80, "protocol": "TCP"}]}


def ep(ip: str, node: str | None = None, *, ready: bool | None = None, serving: bool | None = None,
       terminating: bool | None = None) -> dict[str, Any]:
    cond = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v is not None}
    out: dict[str, Any] = {"addresses": [ip], "conditions": cond}
    if node:
        out["nodeName"] = node
    return out
