"""Query names -> record requests (CoreDNS plugin/kubernetes parse.go), and reverse names -> IPs.

Names here are lower-case and fully qualified (trailing dot). Pure functions.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SVC = "svc"
POD = "pod"


class InvalidRequest(Exception):
    """The name cannot exist in the zone (a name error: NXDOMAIN)."""


@dataclass(frozen=True, slots=True)
class RecordRequest:
    port: str = ""  # the named port of _port._protocol.service..., underscore stripped
    protocol: str = ""
    endpoint: str = ""
    service: str = ""
    namespace: str = ""
    pod_or_svc: str = ""  # "svc", "pod", or "" for the apex names (NODATA)


def trim_zone(name: str, zone: str) -> str:
    """NAME minus ZONE, without the joining dot ("" when NAME is the zone)."""
    if name == zone:
        return ""
    return name[: -len(zone) - 1] if zone != "." else name.rstrip(".")


def parse_request(name: str, zone: str) -> RecordRequest:
    """Five shapes: _port._proto.svc.ns.svc.zone, endpoint.svc.ns.svc.zone, svc.ns.svc.zone,
    and the NODATA names zone, svc.zone, ns.svc.zone. Anything longer is a name error."""
    base = trim_zone(name, zone)
    if base in ("", SVC, POD):
        return RecordRequest()
    segs = base.split(".")
    kind = segs[-1]
    if kind not in (SVC, POD):
        raise InvalidRequest(name)
    rest = segs[:-1]
    if len(rest) == 1:
        return RecordRequest(namespace=rest[0], pod_or_svc=kind)
    if len(rest) == 2:
        return RecordRequest(service=rest[0], namespace=rest[1], pod_or_svc=kind)
    if len(rest) == 3:
        return RecordRequest(endpoint=rest[0], service=rest[1], namespace=rest[2], pod_or_svc=kind)
    if len(rest) == 4:
        return RecordRequest(port=_strip_underscore(rest[0]), protocol=_strip_underscore(rest[1]),
                             service=rest[2], namespace=rest[3], pod_or_svc=kind)
    raise InvalidRequest(name)


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def is_reverse(name: str) -> int:
    """1 for an in-addr.arpa name, 2 for an ip6.arpa name, else 0 (dnsutil.IsReverse)."""
    if name.endswith("in-addr.arpa."):
        return 1
    if name.endswith("ip6.arpa."):
        return 2
    return 0


def address_from_reverse(name: str) -> str:
    """The IP a full reverse name stands for, or "" (dnsutil.ExtractAddressFromReverse)."""
    kind = is_reverse(name)
    if kind == 1:
        labels = name[: -len(".in-addr.arpa.")].split(".")
        if len(labels) != 4 or not all(lab.isdigit() and int(lab) < 256 and len(lab) <= 3 for lab in labels):
            return ""
        return ".".join(reversed(labels))
    if kind == 2:
        labels = name[: -len(".ip6.arpa.")].split(".")
        if len(labels) != 32 or not all(len(lab) == 1 and lab in "0123456789abcdef" for lab in labels):
            return ""
        nibbles = "".join(reversed(labels))
        return str(ipaddress.IPv6Address(int(nibbles, 16)))
    return ""
