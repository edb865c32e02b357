"""Chain and set names, computed exactly as upstream kube-proxy does (so users see the same names).

iptables: "KUBE-SVC-" + base32(sha256(servicePortName + protocol))[:16] (and SVL/EXT/FW/SEP).
nftables: "service-" + base32(sha256(ns/name/proto/port))[:8] + "-" + ns/name/proto/port.
"""

from __future__ import annotations

import base64
import hashlib

NFT_CHAIN_NAME_MAX = 200  # upstream's chainNameMaxLength: nft allows 256, keep room for prefixes


def _b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    """upstream portProtoHash: the 16-character hash of "ns/name:port" + "tcp"."""
    return _b32(service_port_name + protocol)[:16]


def endpoint_hash(service_port_name: str, protocol: str, endpoint: str) -> str:
    return _b32(service_port_name + protocol + endpoint)[:16]


def iptables_chain(prefix: str, service_port_name: str, protocol: str) -> str:
    """prefix is one of KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-."""
    return prefix + port_proto_hash(service_port_name, protocol)


def iptables_endpoint_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    return "KUBE-SEP-" + endpoint_hash(service_port_name, protocol, endpoint)


def nft_hash_and_truncate(name: str) -> str:
    name = _b32(name)[:8] + "-" + name
    if len(name) > NFT_CHAIN_NAME_MAX:
        name = name[: NFT_CHAIN_NAME_MAX - 3] + "..."
    return name


def nft_service_base(namespace: str, name: str, protocol: str, port_name: str) -> str:
    return nft_hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}")


def nft_endpoint_base(namespace: str, name: str, protocol: str, port_name: str, endpoint: str) -> str:
    # ":" is a separator in nft's grammar, so "ip:port" is written "ip/port" (as upstream does).
    endpoint = endpoint.replace(":", "/")
    return nft_hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}__{endpoint}")
