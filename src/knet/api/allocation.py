"""Service ClusterIP and NodePort allocation, inside the apiserver as in Kubernetes: bitmaps
rebuilt from stored Services at start, requested values honoured when free and in range,
others assigned (dynamic band first), everything released on delete or type change."""

from __future__ import annotations

from dataclasses import dataclass, field

from knet.api.errors import FieldError, invalid
from knet.ipam.bitmap import AlreadyAllocated, IPRangeAllocator, NotInRange, PortRangeAllocator, RangeFull


def _go_strings(values: list[str]) -> str:
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


class _Raw(str):
    pass


_Raw.__name__ = "_Raw"


@dataclass
class Allocation:
    """What one create/update took, so a failed write can give it back."""

    ips: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


class ServiceAllocator:
    def __init__(self, cidr: str, node_ports: str) -> None:
        self.ips = IPRangeAllocator(cidr)
        self.ports = PortRangeAllocator.parse(node_ports)
        self.cidr = cidr

    def rebuild(self, services: list[dict]) -> None:
        for svc in services:
            for ip in _cluster_ips(svc):
                if self.ips.contains(ip) and not self.ips.has(ip):
                    self.ips.allocate(ip)
            for p in (svc.get("spec") or {}).get("ports") or []:
                np = p.get("nodePort")
                if np and self.ports.contains(np) and not self.ports.has(np):
                    self.ports.allocate(np)

    def first_ip(self) -> str:
        import ipaddress

        return str(ipaddress.ip_network(self.cidr).network_address + 1)

    def allocate(self, svc: dict, old: dict | None) -> tuple[Allocation, list[FieldError]]:
        """Fill spec.clusterIP(s), ipFamilies, ipFamilyPolicy and nodePorts of `svc` (the new
        state) given `old` (None on create). On errors nothing stays allocated."""
        spec = svc.setdefault("spec", {})
        taken = Allocation()
        errs: list[FieldError] = []
        stype = spec.get("type", "ClusterIP")
        old_spec = (old or {}).get("spec") or {}
        old_ips = _cluster_ips(old) if old else []

        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            spec.pop("ipFamilies", None)
            spec.pop("ipFamilyPolicy", None)
        else:
            requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
            if not requested and old is not None and old_spec.get("type") != "ExternalName":
                # An update that omits the ClusterIP keeps it (also "None" of a headless Service).
                requested = old_ips[0] if old_ips else old_spec.get("clusterIP")
            if requested == "None":
                spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            elif requested and requested in old_ips:
                spec["clusterIP"], spec["clusterIPs"] = requested, [requested]
            elif requested:
                try:
                    self.ips.allocate(requested)
                    taken.ips.append(requested)
                    spec["clusterIP"], spec["clusterIPs"] = requested, [requested]
                except NotInRange:
                    errs.append(invalid("spec.clusterIPs", _Raw(_go_strings([requested])),
                                        f"failed to allocate IP {requested}: the provided IP ({requested}) is not in "
                                        f"the valid range. The range of valid IPs is {self.cidr}"))
                except AlreadyAllocated:
                    errs.append(invalid("spec.clusterIPs", _Raw(_go_strings([requested])),
                                        f"failed to allocate IP {requested}: provided IP is already allocated"))
            else:
                try:
                    ip = self.ips.allocate_next()
                    taken.ips.append(ip)
                    spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                except RangeFull:
                    errs.append(invalid("spec.clusterIPs", _Raw("[]string{}"),
                                        "failed to allocate IP: range is full"))
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")

        old_node_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                          for p in old_spec.get("ports") or [] if p.get("nodePort")}
        old_np_values = set(old_node_ports.values())
        if stype in ("NodePort", "LoadBalancer"):
            mine: dict[int, str] = {}
            for i, p in enumerate(spec.get("ports") or []):
                np = p.get("nodePort")
                if not np:
                    np = old_node_ports.get((p.get("port"), p.get("protocol", "TCP")))
                if np:
                    if np in old_np_values or np in mine:
                        p["nodePort"] = np
                        mine[np] = p.get("protocol", "TCP")
                        continue
                    try:
                        self.ports.allocate(np)
                        taken.ports.append(np)
                        p["nodePort"] = np
                        mine[np] = p.get("protocol", "TCP")
                    except NotInRange:
                        errs.append(invalid(f"spec.ports[{i}].nodePort", np,
                                            f"provided port is not in the valid range. The range of valid ports is {self.ports}"))
                    except AlreadyAllocated:
                        errs.append(invalid(f"spec.ports[{i}].nodePort", np, "provided port is already allocated"))
                else:
                    try:
                        np = self.ports.allocate_next()
                        taken.ports.append(np)
                        p["nodePort"] = np
                        mine[np] = p.get("protocol", "TCP")
                    except RangeFull:
                        errs.append(invalid(f"spec.ports[{i}].nodePort", 0, "range is full"))
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        if errs:
            self.release(taken)
            return Allocation(), errs
        return taken, []

    def release(self, taken: Allocation) -> None:
        for ip in taken.ips:
            self.ips.release(ip)
        for port in taken.ports:
            self.ports.release(port)

    def release_unused(self, old: dict, new: dict | None) -> None:
        """After a committed update or delete: free what `old` held and `new` no longer does."""
        keep_ips = set(_cluster_ips(new)) if new else set()
        for ip in _cluster_ips(old):
            if ip not in keep_ips:
                self.ips.release(ip)
        keep_ports = {p.get("nodePort") for p in ((new or {}).get("spec") or {}).get("ports") or []} if new else set()
        for p in (old.get("spec") or {}).get("ports") or []:
            np = p.get("nodePort")
            if np and np not in keep_ports:
                self.ports.release(np)


def _cluster_ips(svc: dict | None) -> list[str]:
    if not svc:
        return []
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]
