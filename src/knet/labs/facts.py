"""Parsers of what a cluster shows: component flags, `ip -o addr`, `ip route`, `ss -lntp`, the
Corefile, kube-proxy's configuration, label selectors. Pure: text or objects in, facts out."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import yaml


def flag_value(argv: list[str], flag: str) -> str | None:
    """`--flag=value` or `--flag value` in a command line (the last one wins, as pflag's)."""
    found = None
    name = "--" + flag.lstrip("-")
    for i, word in enumerate(argv):
        if word.startswith(name + "="):
            found = word.split("=", 1)[1]
        elif word == name and i + 1 < len(argv):
            found = argv[i + 1]
    return found


def container_argv(pod: dict[str, Any], container: str | None = None) -> list[str]:
    """A pod's container command + args (the first container unless named)."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        if container is None or c.get("name") == container:
            return [*(c.get("command") or []), *(c.get("args") or [])]
    return []


def parse_ip_addr(text: str) -> list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """`ip -o addr show` lines -> (interface, address/prefix)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*\d+:\s+(\S+?)(?:@\S+)?\s+inet6?\s+(\S+)", line)
        if m:
            out.append((m.group(1), ipaddress.ip_interface(m.group(2))))
    return out


def parse_default_gateway(text: str) -> str | None:
    """`ip route show default` -> the gateway of the default route."""
    m = re.search(r"^default\s+via\s+(\S+)", text, re.M)
    return m.group(1) if m else None


def parse_listeners(text: str) -> list[tuple[str, int, str]]:
    """`ss -lntp` -> (local address, port, process name) of each listening socket with a process."""
    out = []
    for line in text.splitlines():
        proc = re.search(r'users:\(\("([^"]+)"', line)
        fields = line.split()
        if not proc or len(fields) < 4:
            continue
        for local in fields:
            m = re.fullmatch(r"\[?([0-9a-fA-F.:*%\w]*?)\]?:(\d+)", local)
            if m:
                out.append((m.group(1), int(m.group(2)), proc.group(1)))
                break
    return out


def corefile_zones(corefile: str) -> list[str]:
    """The zones of the Corefile's `kubernetes` plugin (`kubernetes cluster.local in-addr.arpa ...`)."""
    m = re.search(r"^\s*kubernetes\s+([^{\n]*)", corefile, re.M)
    return m.group(1).split() if m else []


def kube_proxy_mode(config_conf: str) -> str:
    """kube-proxy's effective mode from its KubeProxyConfiguration: "" means iptables on Linux
    (cmd/kube-proxy/app/server_linux.go: platformCheckSupported falls back to iptables)."""
    conf = yaml.safe_load(config_conf or "") or {}
    return str(conf.get("mode") or "").strip() or "iptables"


def kube_proxy_configured_mode(config_conf: str) -> str:
    """The mode as written in the ConfigMap ("" when unset)."""
    conf = yaml.safe_load(config_conf or "") or {}
    return str(conf.get("mode") or "")


def with_kube_proxy_mode(config_conf: str, mode: str) -> str:
    """kube-proxy's configuration text with its `mode:` line set to MODE (the rest untouched)."""
    line = f"mode: {mode}"
    if re.search(r"^mode:.*$", config_conf, re.M):
        return re.sub(r"^mode:.*$", line, config_conf, count=1, flags=re.M)
    return config_conf.rstrip("\n") + "\n" + line + "\n"


# The modes kube-proxy knows (pkg/proxy/apis/config: ProxyMode; "" is the platform's default).
KUBE_PROXY_MODES = ("", "iptables", "ipvs", "nftables", "kernelspace")


def waiting_reason(pod: dict[str, Any]) -> str | None:
    """Why a pod's first non-running container waits (CrashLoopBackOff, ...), if one does."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return reason
    return None


def selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    """A Service's selector (equality only); an empty selector selects nothing (no endpoints are made)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def resolv_nameservers(text: str) -> list[str]:
    return re.findall(r"^\s*nameserver\s+(\S+)", text, re.M)


def nslookup_addresses(text: str) -> list[str]:
    """The answer's addresses of `nslookup NAME` (bind9's or busybox's output): the `Address:` lines
    after the `Name:` line (the first `Address:` is the server's, with #53)."""
    after_name = text.split("Name:", 1)[1] if "Name:" in text else ""
    return re.findall(r"Address(?:\s+\d+)?:\s*([0-9a-fA-F.:]+)\s*$", after_name, re.M)


def pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_ip(pod: dict[str, Any]) -> str | None:
    return (pod.get("status") or {}).get("podIP") or None


def internal_ip(node: dict[str, Any]) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address")
    return None


def controller_kind(obj: dict[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("kind")
    return None


def container_ports(pod: dict[str, Any]) -> list[tuple[str | None, int, str]]:
    """(name, containerPort, protocol) of every container of a pod."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            out.append((p.get("name"), int(p["containerPort"]), p.get("protocol") or "TCP"))
    return out
