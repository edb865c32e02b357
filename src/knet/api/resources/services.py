"""core/v1 Service: defaults, validation and columns (printService). ClusterIP and NodePort
allocation lives in knet.api.allocation (it needs the allocators' state)."""

from __future__ import annotations

from knet.api.errors import FieldError, duplicate, invalid, not_supported, required
from knet.api.printing import age, label_map
from knet.api.registry import Column, ResourceType
from knet.api.validation import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_MSG,
    SUBDOMAIN_MSG,
    qualified_name_errors,
    validate_ip,
    validate_port,
)

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Type", description="type determines how the Service is exposed."),
    Column("Cluster-IP", description="clusterIP is the IP address of the service and is usually assigned randomly."),
    Column("External-IP", description="externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    Column("Port(s)", description="The list of ports that are exposed by this service."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Selector", priority=1, description="Route service traffic to pods with label keys and values matching this selector."),
)


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("sessionAffinity") == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}})
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if "targetPort" not in p and isinstance(p.get("port"), int):
            p["targetPort"] = p["port"]
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


# The allocator of ClusterIPs and NodePorts (knet.api.allocation.ServiceAllocator).
SERVICE_ADDRESSES = "service-addresses"


def carry_over(new: dict, old: dict) -> None:
    """PrepareForUpdate: an update that omits the ClusterIP(s) keeps the old ones."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    # upstream dropTypeDependentFields: a type change away from LoadBalancer drops the class the
    # user did not change (a class is only for LoadBalancers)
    if old_spec.get("type") == "LoadBalancer" and spec.get("type") != "LoadBalancer" \
            and spec.get("loadBalancerClass") is not None \
            and spec.get("loadBalancerClass") == old_spec.get("loadBalancerClass"):
        del spec["loadBalancerClass"]
    if spec.get("type") == "ExternalName" or old_spec.get("type") == "ExternalName":
        return
    if not spec.get("clusterIP") and not spec.get("clusterIPs") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
        spec["clusterIPs"] = list(old_spec.get("clusterIPs") or [old_spec["clusterIP"]])


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    stype = spec.get("type")
    if stype not in TYPES:
        return [not_supported("spec.type", stype, TYPES)]
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if stype == "ExternalName":
        name = spec.get("externalName")
        if not name:
            errs.append(required("spec.externalName"))
        elif not DNS1123_SUBDOMAIN.match(name.rstrip(".")):
            errs.append(invalid("spec.externalName", name, SUBDOMAIN_MSG))
    elif not ports and not headless:
        errs.append(required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple] = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = p.get("name", "")
        if len(ports) > 1 and not name:
            errs.append(required(f"{path}.name"))
        elif name:
            if not DNS1123_LABEL.match(name) or len(name) > 63:
                errs.append(invalid(f"{path}.name", name, LABEL_MSG))
            elif name in names:
                errs.append(duplicate(f"{path}.name", name))
            names.add(name)
        errs += validate_port(p.get("port"), f"{path}.port")
        proto = p.get("protocol")
        if proto not in ("TCP", "UDP", "SCTP"):
            errs.append(not_supported(f"{path}.protocol", proto, ["SCTP", "TCP", "UDP"]))
        key = (p.get("port"), proto)
        if key in seen:
            errs.append(duplicate(f"{path}", {"port": p.get("port"), "protocol": proto}))
        seen.add(key)
        tp = p.get("targetPort")
        if isinstance(tp, int) and not isinstance(tp, bool):
            errs += validate_port(tp, f"{path}.targetPort")
        elif isinstance(tp, str):
            if not tp or len(tp) > 15 or not DNS1123_LABEL.match(tp) or tp.isdigit():
                errs.append(invalid(f"{path}.targetPort", tp, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"))
        if "nodePort" in p and p["nodePort"] not in (None, 0):
            # A type change away from NodePort wipes the old ports (the allocator does).
            old_type = ((old or {}).get("spec") or {}).get("type")
            if stype not in ("NodePort", "LoadBalancer") and old_type not in ("NodePort", "LoadBalancer"):
                errs.append(FieldError("Forbidden", f"{path}.nodePort", None,
                                       "may not be used when `type` is 'ClusterIP'"))
    if spec.get("sessionAffinity") not in (None, "None", "ClientIP"):
        errs.append(not_supported("spec.sessionAffinity", spec.get("sessionAffinity"), ["ClientIP", "None"]))
    for i, ip in enumerate(spec.get("externalIPs") or []):
        errs += [invalid(f"spec.externalIPs[{i}]", ip, e.detail) for e in validate_ip(ip, "")]
    for k, policy in (("externalTrafficPolicy", ("Cluster", "Local")), ("internalTrafficPolicy", ("Cluster", "Local"))):
        if spec.get(k) is not None and spec[k] not in policy:
            errs.append(not_supported(f"spec.{k}", spec[k], list(policy)))
    errs += _validate_load_balancer(obj, old)
    if old is not None:
        old_spec = old.get("spec") or {}
        old_ip, new_ip = old_spec.get("clusterIP"), spec.get("clusterIP")
        if old_ip and new_ip != old_ip and stype != "ExternalName" and old_spec.get("type") != "ExternalName":
            errs.append(invalid("spec.clusterIPs[0]", (spec.get("clusterIPs") or [new_ip])[0] if new_ip else [],
                                "may not change once set"))
    return errs


_ONLY_LB = "may only be used when `type` is 'LoadBalancer'"


def _validate_load_balancer(obj: dict, old: dict | None) -> list[FieldError]:
    """upstream's validateLoadBalancerClassField, the LoadBalancerSourceRanges check and
    ValidateLoadBalancerStatus (what the service-lb-controller and kube-proxy read)."""
    import ipaddress

    spec = obj.get("spec") or {}
    is_lb = spec.get("type") == "LoadBalancer"
    errs: list[FieldError] = []
    cls = spec.get("loadBalancerClass")
    if cls is not None:
        if not is_lb:
            errs.append(FieldError("Forbidden", "spec.loadBalancerClass", None, _ONLY_LB))
        else:
            errs += [invalid("spec.loadBalancerClass", cls, m) for m in qualified_name_errors(str(cls))]
    old_spec = (old or {}).get("spec") or {}
    if old is not None and is_lb and old_spec.get("type") == "LoadBalancer" \
            and old_spec.get("loadBalancerClass") != cls:
        errs.append(invalid("spec.loadBalancerClass", cls, "may not change once set"))
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and not is_lb:
        errs.append(FieldError("Forbidden", "spec.LoadBalancerSourceRanges", None, _ONLY_LB))
    for i, value in enumerate(ranges):
        try:
            ipaddress.ip_network(str(value).strip(), strict=False)
            ok = "/" in str(value)
        except ValueError:
            ok = False
        if not ok:
            errs.append(invalid(f"spec.LoadBalancerSourceRanges[{i}]", value,
                                "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 "))
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for i, ing in enumerate(ingress if isinstance(ingress, list) else []):
        path = f"status.loadBalancer.ingress[{i}]"
        ing = ing if isinstance(ing, dict) else {}
        if ing.get("ip"):
            errs += [invalid(f"{path}.ip", ing["ip"], e.detail) for e in validate_ip(ing["ip"], "")]
        mode = ing.get("ipMode")
        if mode is not None and not ing.get("ip"):
            errs.append(FieldError("Forbidden", f"{path}.ipMode", None, "may not be specified when `ip` is not set"))
        elif mode is not None and mode not in ("Proxy", "VIP"):
            errs.append(not_supported(f"{path}.ipMode", mode, ["Proxy", "VIP"]))
        host = ing.get("hostname")
        if host:
            if not DNS1123_SUBDOMAIN.match(str(host)):
                errs.append(invalid(f"{path}.hostname", host, SUBDOMAIN_MSG))
            elif not validate_ip(host, ""):
                errs.append(invalid(f"{path}.hostname", host, "must be a DNS name, not an IP address"))
    return errs


def _port_string(ports: list[dict]) -> str:
    out = []
    for p in ports:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            out.append(f"{p.get('port')}/{proto}")
    return ",".join(out)


def _external_ip(svc: dict) -> str:
    spec = svc.get("spec") or {}
    stype = spec.get("type")
    ext = spec.get("externalIPs") or []
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(ext) if ext else "<none>"
    if stype == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        if ext:
            return ",".join(lb + ext)
        return ",".join(lb) if lb else "<pending>"
    if stype == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def row(svc: dict) -> list:
    spec = svc.get("spec") or {}
    meta = svc.get("metadata") or {}
    ips = spec.get("clusterIPs") or []
    return [meta.get("name", ""), spec.get("type", ""), ips[0] if ips else "<none>", _external_ip(svc),
            _port_string(spec.get("ports") or []) or "<none>", age(meta.get("creationTimestamp")),
            label_map(spec.get("selector"))]


RESOURCE = ResourceType(
    group="", version="v1", resource="services", kind="Service", short_names=("svc",), categories=("all",),
    subresources=("status", "proxy"), model="V1Service", name_rule="dns1035", defaults=defaults,
    validate=validate, columns=COLUMNS, row=row, field_labels=("spec.clusterIP", "spec.type"),
    carry_over=carry_over, allocator=SERVICE_ADDRESSES,
)
