"""A container's environment as the kubelet builds it. Pure.

Order and rules follow kubelet's makeEnvironmentVariables: Service links first (docker-link
style variables of every Service in the pod's namespace, plus `kubernetes` of the default
namespace), then envFrom, then env with $(VAR) expansion against what came before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Obj = dict[str, Any]

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, `$$` escapes, unknown stay as is."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(sub, text)


def service_env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: list[Obj]) -> dict[str, str]:
    """FOO_SERVICE_HOST/PORT, FOO_PORT, FOO_PORT_80_TCP... for ClusterIP services (kubelet's
    envvars.FromServices)."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        ports = spec.get("ports") or []
        if not ports:
            continue
        prefix = service_env_name(svc["metadata"]["name"])
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{service_env_name(port['name'])}"] = str(port["port"])
        first = ports[0]
        proto = (first.get("protocol") or "TCP").lower()
        env[f"{prefix}_PORT"] = f"{proto}://{ip}:{first['port']}"
        for port in ports:
            protocol = port.get("protocol") or "TCP"
            base = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[base] = f"{protocol.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def visible_services(pod: Obj, services: list[Obj]) -> list[Obj]:
    """The services whose env vars a pod gets: its namespace's (if enableServiceLinks) and the
    master service `default/kubernetes` always."""
    ns = pod["metadata"].get("namespace", "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta = svc["metadata"]
        if meta.get("namespace") == "default" and meta["name"] == "kubernetes":
            chosen[meta["name"]] = svc
    for svc in services:
        meta = svc["metadata"]
        if links and meta.get("namespace") == ns and meta["name"] not in chosen:
            chosen[meta["name"]] = svc
    return sorted(chosen.values(), key=lambda s: s["metadata"]["name"])


def field_value(pod: Obj, path: str, node_name: str, host_ip: str) -> str:
    meta = pod["metadata"]
    status = pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        "status.hostIP": host_ip,
        "status.podIP": status.get("podIP", ""),
    }
    if path in simple:
        return simple[path]
    if path == "status.podIPs":
        return ",".join(p["ip"] for p in status.get("podIPs") or [])
    if path == "status.hostIPs":
        return host_ip
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise ValueError(f"unsupported fieldPath {path!r}")


DataLookup = Callable[[str, str], dict[str, str] | None]  # (namespace, name) -> the object's data, None: not found


def env_sources(container: Obj) -> set[tuple[str, str]]:
    """The ConfigMaps and Secrets (resource, name) a container's env reads: what the kubelet's
    configmap/secret managers fetch before each start attempt."""
    wanted: set[tuple[str, str]] = set()
    for var in container.get("env") or []:
        src = var.get("valueFrom") or {}
        if "configMapKeyRef" in src:
            wanted.add(("configmaps", src["configMapKeyRef"]["name"]))
        if "secretKeyRef" in src:
            wanted.add(("secrets", src["secretKeyRef"]["name"]))
    for src in container.get("envFrom") or []:
        if "configMapRef" in src:
            wanted.add(("configmaps", src["configMapRef"]["name"]))
        if "secretRef" in src:
            wanted.add(("secrets", src["secretRef"]["name"]))
    return wanted


# Upstream's messages (kubelet_pods.go makeEnvironmentVariables; the managers' NotFound is for the
# singular resource "configmap"/"secret").
_KIND = {"configmaps": ("configmap", "ConfigMap"), "secrets": ("secret", "Secret")}


def _object_data(lookup: DataLookup, resource: str, ns: str, name: str, optional: bool) -> dict[str, str] | None:
    data = lookup(ns, name)
    if data is None and not optional:
        raise LookupError(f'{_KIND[resource][0]} "{name}" not found')
    return data


def _key_value(lookup: DataLookup, resource: str, ns: str, ref: Obj) -> str | None:
    optional = bool(ref.get("optional"))
    data = _object_data(lookup, resource, ns, ref["name"], optional)
    if data is None:
        return None
    if ref["key"] not in data:
        if optional:
            return None
        raise LookupError(f"couldn't find key {ref['key']} in {_KIND[resource][1]} {ns}/{ref['name']}")
    return data[ref["key"]]


def container_env(
    pod: Obj,
    container: Obj,
    *,
    node_name: str,
    host_ip: str,
    services: list[Obj],
    config_map_data: DataLookup,
    secret_data: DataLookup,
) -> dict[str, str]:
    """Raises LookupError (the container's CreateContainerConfigError) for a missing ConfigMap or
    Secret, or key, that is not optional."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = dict(service_env(visible_services(pod, services)))
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = _object_data(config_map_data, "configmaps", ns, ref["name"], bool(ref.get("optional")))
        elif "secretRef" in source:
            ref = source["secretRef"]
            data = _object_data(secret_data, "secrets", ns, ref["name"], bool(ref.get("optional")))
        else:
            data = None
        for key, value in (data or {}).items():
            env[prefix + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom") or {}
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], node_name, host_ip)
        elif "configMapKeyRef" in source:
            value = _key_value(config_map_data, "configmaps", ns, source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _key_value(secret_data, "secrets", ns, source["secretKeyRef"])
        elif "resourceFieldRef" in source:
            value = "0"
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def command_and_args(container: Obj, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    return command, args
