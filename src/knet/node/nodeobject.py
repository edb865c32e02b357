"""The Node object a kubelet registers and the status it reports. Pure."""

from __future__ import annotations

import os
import platform
from typing import Any

Obj = dict[str, Any]

RUNTIME_VERSION = "knet://0.1.0"


def os_image(os_release: str) -> str:
    for line in os_release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def host_facts() -> dict[str, str]:
    try:
        with open("/etc/os-release") as f:
            release = f.read()
    except OSError:
        release = ""
    try:
        with open("/etc/machine-id") as f:
            machine_id = f.read().strip()
    except OSError:
        machine_id = ""
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"osImage": os_image(release), "kernelVersion": platform.release(), "machineID": machine_id,
            "cpu": str(os.cpu_count() or 1), "memoryKi": str(mem_kib), "arch": _arch()}


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def node_object(name: str, *, labels: dict[str, str], taints: list[Obj], pod_cidr: str | None,
                annotations: dict[str, str] | None = None, facts: dict[str, str]) -> Obj:
    all_labels = {
        "beta.kubernetes.io/arch": facts["arch"], "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": facts["arch"], "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        **labels,
    }
    node: Obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": all_labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                                     **(annotations or {})}},
        "spec": {},
    }
    if taints:
        node["spec"]["taints"] = taints
    if pod_cidr:
        node["spec"]["podCIDR"] = pod_cidr
        node["spec"]["podCIDRs"] = [pod_cidr]
    return node


def _cond(ctype: str, status: str, reason: str, message: str, now: str, previous: dict[str, Obj]) -> Obj:
    prev = previous.get(ctype)
    transition = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
    return {"type": ctype, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": transition,
            "reason": reason, "message": message}


NETWORK_NOT_READY = ("container runtime network not ready: NetworkReady=false "
                     "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")


def node_status(*, node_ip: str, hostname: str, facts: dict[str, str], kubelet_version: str, port: int,
                max_pods: int, network_ready: bool, now: str, previous: list[Obj] | None = None) -> Obj:
    prev = {c["type"]: c for c in previous or []}
    capacity = {"cpu": facts["cpu"], "memory": f"{facts['memoryKi']}Ki", "pods": str(max_pods),
                "ephemeral-storage": "20134592Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    ready = _cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", now, prev) if network_ready \
        else _cond("Ready", "False", "KubeletNotReady", NETWORK_NOT_READY, now, prev)
    return {
        "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": hostname}],
        "capacity": capacity,
        "allocatable": dict(capacity, **{"ephemeral-storage": "18556039957"}),
        "conditions": [
            _cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
                  now, prev),
            _cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now, prev),
            _cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", now, prev),
            ready,
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "architecture": facts["arch"], "bootID": facts["machineID"], "machineID": facts["machineID"],
            "systemUUID": facts["machineID"], "containerRuntimeVersion": RUNTIME_VERSION,
            "kernelVersion": facts["kernelVersion"], "kubeProxyVersion": kubelet_version,
            "kubeletVersion": kubelet_version, "operatingSystem": "linux", "osImage": facts["osImage"],
        },
    }
