"""Renderer options, and the KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) they come from.

Defaults are upstream's: masquerade bit 14, localhost NodePorts on, NodePorts on every local
address, syncPeriod 30s, minSyncPeriod 1s; mode "" means iptables.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000  # upstream largeClusterEndpointsThreshold


@dataclass(frozen=True)
class RenderOptions:
    node_name: str = ""
    node_ip: str = ""
    cluster_cidr: str = ""  # pods' CIDR: traffic from it is "local" (no masquerade); "" = unknown
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    node_port_addresses: tuple[str, ...] = ()  # CIDRs; () = all local addresses
    node_ips: tuple[str, ...] = ()  # the node's addresses, for node_port_addresses that are not "all"
    random_fully: bool = True
    nfacct: bool = False  # newer upstreams count packets with xt_nfacct; needs the module
    tcp_be_liberal: bool = False  # conntrack.tcpBeLiberal: then INVALID packets are not dropped
    service_cidrs: tuple[str, ...] = ()  # nftables: drop traffic to unallocated ClusterIPs
    # the kube-proxy version whose nftables rule shape to write ("" = knet's default, v1.29's);
    # see knet.proxy.nftables.Shape
    kubernetes_version: str = ""

    @property
    def masquerade_mark(self) -> str:
        return hex(1 << self.masquerade_bit)

    @property
    def node_ports_match_all(self) -> bool:
        return not self.node_port_addresses or any(
            ipaddress.ip_network(c, strict=False).prefixlen == 0 for c in self.node_port_addresses
            if ipaddress.ip_network(c, strict=False).version == 4)

    @property
    def node_ports_contain_loopback(self) -> bool:
        loop = ipaddress.ip_address("127.0.0.0")
        return self.node_ports_match_all or any(
            loop in ipaddress.ip_network(c, strict=False) for c in self.node_port_addresses
            if ipaddress.ip_network(c, strict=False).version == 4)

    @property
    def effective_localhost_node_ports(self) -> bool:
        # upstream: if nodePortAddresses excludes 127.0.0.0/8 localhost NodePorts are off
        return self.localhost_node_ports and self.node_ports_contain_loopback

    def node_port_ips(self) -> list[str]:
        """Node addresses inside node_port_addresses (when that is not "all")."""
        nets = [ipaddress.ip_network(c, strict=False) for c in self.node_port_addresses]
        out = []
        for ip in self.node_ips:
            addr = ipaddress.ip_address(ip)
            if any(addr in n for n in nets if n.version == addr.version) and ip not in out:
                out.append(ip)
        return out


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: Any, default: float) -> float:
    """Go duration ("1m30s", "500ms", "0s") in seconds; 0 or empty means "use the default"."""
    if text is None or text == "":
        return default
    if isinstance(text, int | float):
        return float(text) or default
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(str(text)):
        if m.start() != pos:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(str(text)):
        raise ValueError(f"invalid duration {text!r}")
    return total or default


@dataclass
class KubeProxyConfig:
    mode: str = "iptables"
    kubeconfig: str = ""
    hostname_override: str = ""
    cluster_cidr: str = ""
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    sync_period: float = 30.0
    min_sync_period: float = 1.0
    node_port_addresses: list[str] = field(default_factory=list)
    metrics_bind_address: str = "127.0.0.1:10249"
    healthz_bind_address: str = "0.0.0.0:10256"
    conntrack_tcp_be_liberal: bool = False
    conntrack_udp_timeout: float = 0.0
    conntrack_udp_stream_timeout: float = 0.0
    conntrack_tcp_established_timeout: float = 86400.0
    conntrack_tcp_close_wait_timeout: float = 3600.0


def _bind(value: Any, default: str, default_port: int) -> str:
    if not value:
        return default
    value = str(value)
    if value.startswith("[") or value.count(":") == 1:
        return value
    return f"{value}:{default_port}"


def parse_kube_proxy_config(text: str) -> KubeProxyConfig:
    """A KubeProxyConfiguration document (the ConfigMap's config.conf) with upstream defaults."""
    doc = yaml.safe_load(text) or {}
    if doc.get("kind", "KubeProxyConfiguration") != "KubeProxyConfiguration":
        raise ValueError(f"not a KubeProxyConfiguration: kind {doc.get('kind')!r}")
    mode = (doc.get("mode") or "iptables").lower()
    if mode not in ("iptables", "nftables"):
        raise ValueError(f"unsupported proxy mode {mode!r} (knet implements iptables and nftables)")
    section = doc.get(mode) or {}
    ipt = doc.get("iptables") or {}
    ct = doc.get("conntrack") or {}
    client = doc.get("clientConnection") or {}
    masq_bit = section.get("masqueradeBit")
    localhost = ipt.get("localhostNodePorts")
    return KubeProxyConfig(
        mode=mode,
        kubeconfig=client.get("kubeconfig") or "",
        hostname_override=doc.get("hostnameOverride") or "",
        cluster_cidr=(doc.get("clusterCIDR") or "").split(",")[0].strip(),
        masquerade_all=bool(section.get("masqueradeAll") or False),
        masquerade_bit=14 if masq_bit is None else int(masq_bit),
        localhost_node_ports=True if localhost is None else bool(localhost),
        sync_period=parse_duration(section.get("syncPeriod"), 30.0),
        min_sync_period=parse_duration(section.get("minSyncPeriod"), 1.0),
        node_port_addresses=[c for c in (doc.get("nodePortAddresses") or []) if c != "primary"],
        metrics_bind_address=_bind(doc.get("metricsBindAddress"), "127.0.0.1:10249", 10249),
        healthz_bind_address=_bind(doc.get("healthzBindAddress"), "0.0.0.0:10256", 10256),
        conntrack_tcp_be_liberal=bool(ct.get("tcpBeLiberal") or False),
        conntrack_udp_timeout=parse_duration(ct.get("udpTimeout"), 0.0),
        conntrack_udp_stream_timeout=parse_duration(ct.get("udpStreamTimeout"), 0.0),
        conntrack_tcp_established_timeout=parse_duration(ct.get("tcpEstablishedTimeout"), 86400.0),
        conntrack_tcp_close_wait_timeout=parse_duration(ct.get("tcpCloseWaitTimeout"), 3600.0),
    )
