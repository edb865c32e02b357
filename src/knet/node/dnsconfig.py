"""A pod's /etc/resolv.conf and /etc/hosts, as the kubelet writes them. Pure."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

MAX_SEARCH = 32


def resolv_conf(pod: Obj, *, cluster_dns: list[str], cluster_domain: str, host_resolv: str) -> str:
    """dnsPolicy ClusterFirst (default), ClusterFirstWithHostNet, Default, None + dnsConfig."""
    spec = pod.get("spec") or {}
    ns = pod["metadata"].get("namespace", "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    host_servers, host_search, host_options = _parse_resolv(host_resolv)
    if policy == "ClusterFirst" and host_network:
        policy = "Default"  # ClusterFirst falls back to Default for hostNetwork pods
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy in ("ClusterFirst",) and cluster_dns:
        servers = list(cluster_dns)
        search = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host_search]
        options = ["ndots:5"]
    elif policy == "None":
        servers, search, options = [], [], []
    else:
        servers, search, options = host_servers, host_search, host_options
    config = spec.get("dnsConfig") or {}
    servers = _dedup([*servers, *(config.get("nameservers") or [])])
    search = _dedup([*search, *(config.get("searches") or [])])[:MAX_SEARCH]
    options = _merge_options(options, config.get("options") or [])
    lines = []
    if search:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {s}" for s in servers[:3]]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def _parse_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return servers, search, options


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(base: list[str], extra: list[Obj]) -> list[str]:
    merged: dict[str, str | None] = {}
    for opt in base:
        name, _, value = opt.partition(":")
        merged[name] = value or None
    for opt in extra:
        merged[opt["name"]] = opt.get("value")
    return [f"{k}:{v}" if v is not None else k for k, v in merged.items()]


def pod_hostname(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    return spec.get("hostname") or pod["metadata"]["name"][:63]


def hosts_file(pod: Obj, pod_ip: str, *, cluster_domain: str, extra: dict[str, str]) -> str:
    """kubelet's managed hosts file, plus `extra` (e.g. controlplane -> its node IP)."""
    spec = pod.get("spec") or {}
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    hostname = pod_hostname(pod)
    if spec.get("subdomain"):
        ns = pod["metadata"].get("namespace", "default")
        fqdn = f"{hostname}.{spec['subdomain']}.{ns}.svc.{cluster_domain}"
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    for alias in spec.get("hostAliases") or []:
        lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
    for name, ip in sorted(extra.items()):
        if name != hostname:
            lines.append(f"{ip}\t{name}")
    return "\n".join(lines) + "\n"
