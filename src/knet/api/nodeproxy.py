"""nodes/proxy: where `/api/v1/nodes/[SCHEME:]NODE[:PORT]/proxy/PATH` goes, as kube-apiserver's
node ResourceLocation (pkg/registry/core/node/strategy.go) decides it.

- No port, or the kubelet's own port: the node's kubelet HTTPS API, reached with the apiserver's
  kubelet transport (--kubelet-client-certificate), so the kubelet authorizes the apiserver's
  identity; `kubectl get --raw /api/v1/nodes/node01/proxy/stats/summary` reads its Summary API.
- Another port: that port of the node's address with the plain proxy transport (no client
  certificate), http unless SCHEME says https.

The node's address is the first of its InternalIP, ExternalIP, Hostname addresses (kubeadm's
--kubelet-preferred-address-types), its port status.daemonEndpoints.kubeletEndpoint.Port (else
10250); an address that is not global unicast (loopback, link-local, multicast, unspecified) is
upstream's 400 `address not allowed`, so a node cannot point the proxy at the apiserver's own
host. knet's difference: a simulated node's kubelet, which registers the endpoint it really
serves on as the `knet.io/kubelet-endpoint` annotation (127.0.0.1:PORT, one process for many
nodes), is reached there for its kubelet port, as the apiserver's exec and logs reach it, but
only when the apiserver runs with `--kubelet-endpoint-annotation=true` (`knet up --dataplane
sim` and the API suite); otherwise the annotation is ignored and every kubelet is reached as
upstream reaches it (`kubelet_endpoint`). NodeRestriction keeps a node from changing it.

Pure: no I/O."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from knet.api import errors, podproxy
from knet.api.errors import ApiError

KUBELET_PORT = 10250  # kube-apiserver's --kubelet-port default
PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
SIM_ENDPOINT_ANNOTATION = "knet.io/kubelet-endpoint"


@dataclass(frozen=True, slots=True)
class Location:
    scheme: str
    host: str
    port: int
    kubelet: bool  # through the kubelet transport (the apiserver's kubelet client certificate)


def split_name(name: str) -> tuple[str, str, str]:
    """`[scheme:]node[:port]` as SplitSchemeNamePort; anything else is upstream's 400."""
    try:
        return podproxy.split_name(name)
    except ApiError:
        raise errors.bad_request(f"invalid node request {name!r}") from None


def _address(node: dict) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in PREFERRED_ADDRESS_TYPES:
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return a["address"]
    name = (node.get("metadata") or {}).get("name", "")
    raise ApiError(500, "InternalError", f'node "{name}": no preferred addresses found; known addresses: []')


def _kubelet_port(node: dict) -> int:
    port = (((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return port if isinstance(port, int) and port > 0 else KUBELET_PORT


def _sim_endpoint(node: dict, honored: bool) -> tuple[str, int] | None:
    if not honored:
        return None
    endpoint = ((node.get("metadata") or {}).get("annotations") or {}).get(SIM_ENDPOINT_ANNOTATION)
    if not endpoint:
        return None
    host, sep, port = endpoint.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        return None
    return host.strip("[]"), int(port)


def check_proxyable(host: str) -> None:
    """isProxyableHostname: every address must be global unicast."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise errors.bad_request("address not allowed") from None
    broadcast = ip.version == 4 and int(ip) == 0xFFFFFFFF
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or broadcast:
        raise errors.bad_request("address not allowed")


def _port_number(port: str) -> int:
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise errors.bad_request(f"invalid port {port!r}")
    return int(port)


def kubelet_endpoint(node: dict, honor_annotation: bool) -> tuple[str, int]:
    """(host, port) of a node's kubelet for exec, attach, logs, port-forward and the metrics
    scraper: its `knet.io/kubelet-endpoint` when the apiserver honors it, else the preferred
    address and status.daemonEndpoints port (upstream's NodeConnectionInfoGetter; no
    proxyable-address check there either)."""
    sim = _sim_endpoint(node, honor_annotation)
    return sim if sim is not None else (_address(node), _kubelet_port(node))


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def location(node: dict, scheme: str, port: str, honor_annotation: bool = False) -> Location:
    """Where a proxy request for NODE (its Node object) with the SCHEME and PORT of its name goes."""
    kubelet_port = _kubelet_port(node)
    if not port or port == str(kubelet_port):
        sim = _sim_endpoint(node, honor_annotation)
        if sim is not None:
            return Location("https", sim[0], sim[1], kubelet=True)
        host = _address(node)
        check_proxyable(host)
        return Location("https", host, kubelet_port, kubelet=True)
    number = _port_number(port)
    host = _address(node)
    check_proxyable(host)
    return Location(scheme or "http", host, number, kubelet=False)


__all__ = ["KUBELET_PORT", "SIM_ENDPOINT_ANNOTATION", "Location", "check_proxyable", "host_port", "kubelet_endpoint",
           "location", "split_name"]
