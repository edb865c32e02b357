"""Objects for the netpol unit tests: upstream's e2e model (namespaces x, y, z; pods a, b, c
serving TCP/UDP 80 and 81 as `serve-80-tcp`, ...), on nodes node01/node02."""

from __future__ import annotations

from typing import Any


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"ns": name, "kubernetes.io/metadata.name": name, **labels}}}


def pod(ns: str, name: str, ip: str, node: str = "node01", host_network: bool = False,
        **labels: str) -> dict[str, Any]:
    ports = [{"name": f"serve-{p}-{proto.lower()}", "containerPort": p, "protocol": proto}
             for p in (80, 81) for proto in ("TCP", "UDP")]
    return {"metadata": {"namespace": ns, "name": name, "labels": {"pod": name, **labels}},
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": f"cont-{name}", "image": "agnhost", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip}}


def policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


NAMESPACES = [namespace("x"), namespace("y"), namespace("z")]
PODS = [pod("x", "a", "10.244.1.2"), pod("x", "b", "10.244.1.3"), pod("x", "c", "10.244.2.4", node="node02"),
        pod("y", "a", "10.244.1.5"), pod("y", "b", "10.244.2.6", node="node02"), pod("y", "c", "10.244.1.7"),
        pod("z", "a", "10.244.2.8", node="node02"), pod("z", "b", "10.244.1.9"), pod("z", "c", "10.244.2.10", node="node02")]
