"""The node agent's settings, from its command line (docs/contracts.md sections 6 and 7)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass
class KubeletConfig:
    hostname_override: str = ""
    node_ip: str = ""
    kubeconfig: str | None = None
    root_dir: str = "/var/lib/kubelet"
    pod_manifest_path: str | None = None
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    dataplane: str = "real"
    cni_bin_dir: str = "/usr/lib/cni"
    cni_conf_dir: str = "/etc/cni/net.d"
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    address: str = "0.0.0.0"
    port: int = 10250
    register_with_taints: list[dict] = field(default_factory=list)
    node_labels: dict[str, str] = field(default_factory=dict)
    pod_cidr: str | None = None
    kubernetes_version: str = "v1.29.0"
    max_pods: int = 110
    node_status_update_frequency: float = 10.0
    node_lease_duration_seconds: int = 40
    sim_nodes: list[tuple[str, str]] = field(default_factory=list)  # (name, ip)
    # The kubelet's --cgroup-root (empty: /knet/<cluster>/<node>, see node/cgroups.py) and
    # --pod-max-pids (-1: no limit, upstream's default).
    cgroup_root: str = ""
    pod_max_pids: int = -1
    # unix:///PATH where the kubelet serves its runtime endpoint for crictl (knet.node.criserver);
    # empty: none. The sandbox image pods' sandboxes are reported with (--pod-infra-container-image).
    container_runtime_endpoint: str = ""
    pod_infra_container_image: str = "registry.k8s.io/pause:3.9"


def parse_taints(text: str) -> list[dict]:
    """`key[=value]:Effect,...` as --register-with-taints takes them."""
    taints = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        kv, sep, effect = item.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"invalid taint {item!r}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
        key, _, value = kv.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def sim_node_names(count: int, prefix: str, cidr: str) -> list[tuple[str, str]]:
    net = ipaddress.IPv4Network(cidr, strict=False)
    return [(f"{prefix}{i:04d}", str(net.network_address + 1 + i)) for i in range(1, count + 1)]


def parse_node_list(text: str, cidr: str) -> list[tuple[str, str]]:
    net = ipaddress.IPv4Network(cidr, strict=False)
    out = []
    for i, line in enumerate(filter(None, (raw.split("#", 1)[0].strip() for raw in text.splitlines())), start=1):
        words = line.split()
        out.append((words[0], words[1] if len(words) > 1 else str(net.network_address + 1 + i)))
    return out
