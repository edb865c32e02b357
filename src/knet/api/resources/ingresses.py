"""networking.k8s.io/v1 Ingress: validation ported from upstream's
pkg/apis/networking/validation (ValidateIngressCreate/Update, validateIngressRules,
validateHTTPIngressPath, validateIngressBackend, validateIngressTLS), and `kubectl get ingress`'s
columns (NAME CLASS HOSTS ADDRESS PORTS AGE, pkg/printers/internalversion printIngress). There are
no v1 defaults (pathType is required). The default class is set by admission
(knet.api.admission.defaultingressclass)."""

from __future__ import annotations

import ipaddress
import re

from knet.api.errors import FieldError, invalid, not_supported, required
from knet.api.printing import age
from knet.api.registry import Column, ResourceType
from knet.api.validation import (
    DNS1035_LABEL,
    DNS1035_MSG,
    DNS1123_SUBDOMAIN,
    IANA_SVC_NAME,
    SUBDOMAIN_MSG,
    name_errors,
)

ANNOTATION_INGRESS_CLASS = "kubernetes.io/ingress.class"
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
# validation.go: invalidPathSequences / invalidPathSuffixes (Exact and Prefix paths only).
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
WILDCARD_DNS1123 = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must "
                "consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character "
                "(e.g. '*.example.com', regex used for validation is "
                "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
PORT_NAME_MSG = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Class", description="The name of the IngressClass resource."),
    Column("Hosts", description="Hosts that incoming requests are matched against before the ingress rule"),
    Column("Address", description="Address is a list containing ingress points for the load-balancer"),
    Column("Ports", description="Ports of TLS configurations that open"),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_errors(host: str, path: str) -> list[FieldError]:
    if "*" in host:
        if len(host) > 253 or not WILDCARD_DNS1123.match(host):
            return [invalid(path, host, WILDCARD_MSG)]
        return []
    return [invalid(path, host, m) for m in name_errors(host, "subdomain")]


def validate_backend(backend: dict, path: str) -> list[FieldError]:
    """validateIngressBackend: exactly one of a Service (name + port name or number) or a resource."""
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        errs = []
        if not resource.get("kind"):
            errs.append(required(f"{path}.resource.kind"))
        if not resource.get("name"):
            errs.append(required(f"{path}.resource.name"))
        group = resource.get("apiGroup")
        if group and not DNS1123_SUBDOMAIN.match(group):
            errs.append(invalid(f"{path}.resource.apiGroup", group, SUBDOMAIN_MSG))
        return errs
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    errs = []
    name = service.get("name") or ""
    if not name:
        errs.append(required(f"{path}.service.name"))
    elif len(name) > 63 or not DNS1035_LABEL.match(name):
        errs.append(invalid(f"{path}.service.name", name, DNS1035_MSG))
    port = service.get("port") or {}
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        errs.append(invalid(f"{path}.service.port", "", "cannot set both port name & port number"))
    elif port_name:
        if len(port_name) > 15:
            errs.append(invalid(f"{path}.service.port.name", port_name, "must be no more than 15 characters"))
        elif not IANA_SVC_NAME.match(port_name) or "--" in port_name:
            errs.append(invalid(f"{path}.service.port.name", port_name, PORT_NAME_MSG))
        elif not re.search("[a-z]", port_name):
            errs.append(invalid(f"{path}.service.port.name", port_name, "must contain at least one letter (a-z)"))
    elif number:
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errs.append(invalid(f"{path}.service.port.number", number, "must be between 1 and 65535, inclusive"))
    else:
        errs.append(required(f"{path}.service.port", "port name or number is required"))
    return errs


def validate_http_path(p: dict, path: str) -> list[FieldError]:
    """validateHTTPIngressPath."""
    errs: list[FieldError] = []
    value = p.get("path") or ""
    path_type = p.get("pathType")
    if path_type is None:
        errs.append(required(f"{path}.pathType", "pathType must be specified"))
    elif path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
        if value:
            for seq in INVALID_PATH_SEQUENCES:
                if seq in value:
                    errs.append(invalid(f"{path}.path", value, f"must not contain '{seq}'"))
            for suffix in INVALID_PATH_SUFFIXES:
                if value.endswith(suffix):
                    errs.append(invalid(f"{path}.path", value, f"cannot end with '{suffix}'"))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errs.append(not_supported(f"{path}.pathType", path_type, list(PATH_TYPES)))
    errs += validate_backend(p.get("backend") or {}, f"{path}.backend")
    return errs


def validate_spec(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    rules = spec.get("rules") or []
    if not rules and spec.get("defaultBackend") is None:
        errs.append(invalid("spec.rules", "", "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        errs += validate_backend(spec["defaultBackend"], "spec.defaultBackend")
    for i, rule in enumerate(rules):
        host = rule.get("host") or ""
        if host:
            if _is_ip(host):
                errs.append(invalid(f"spec.rules[{i}].host", host, "must be a DNS name, not an IP address"))
            errs += _host_errors(host, f"spec.rules[{i}].host")
        http = rule.get("http")
        if http is not None:
            paths = http.get("paths") or []
            if not paths:
                errs.append(required(f"spec.rules[{i}].http.paths"))
            for j, p in enumerate(paths):
                errs += validate_http_path(p, f"spec.rules[{i}].http.paths[{j}]")
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate(tls.get("hosts") or []):
            errs += _host_errors(host, f"spec.tls[{i}].hosts[{j}]")
        secret = tls.get("secretName")
        if secret:
            errs += [invalid(f"spec.tls[{i}].secretName", secret, m) for m in name_errors(secret, "subdomain")]
    cls = spec.get("ingressClassName")
    if cls is not None:
        errs += [invalid("spec.ingressClassName", cls, m) for m in name_errors(cls, "subdomain")]
    return errs


def validate_status(status: dict) -> list[FieldError]:
    """ValidateIngressLoadBalancerStatus."""
    errs = []
    for i, ing in enumerate(((status.get("loadBalancer") or {}).get("ingress")) or []):
        path = f"status.loadBalancer.ingress[{i}]"
        if ing.get("ip") and not _is_ip(ing["ip"]):
            errs.append(invalid(f"{path}.ip", ing["ip"], "must be a valid IP address"))
        if ing.get("hostname"):
            errs += [invalid(f"{path}.hostname", ing["hostname"], m) for m in name_errors(ing["hostname"], "subdomain")]
            if _is_ip(ing["hostname"]):
                errs.append(invalid(f"{path}.hostname", ing["hostname"], "must be a DNS name, not an IP address"))
    return errs


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = validate_spec(spec)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    # ValidateIngressCreate: the annotation and the field may not both be set on a new Ingress.
    if old is None and ANNOTATION_INGRESS_CLASS in annotations and spec.get("ingressClassName") is not None:
        errs.append(invalid(f"metadata.annotations.{ANNOTATION_INGRESS_CLASS}", annotations[ANNOTATION_INGRESS_CLASS],
                            "can not be set when the class field is also set"))
    errs += validate_status(obj.get("status") or {})
    return errs


def hosts_text(spec: dict) -> str:
    """printIngress's formatHosts: the rules' hosts (`*` for none), at most 4 then `+ N more...`."""
    hosts = [r.get("host") or "*" for r in spec.get("rules") or []]
    if not hosts:
        return "*"
    if len(hosts) > 4:
        return ",".join(hosts[:4]) + f" + {len(hosts) - 4} more..."
    return ",".join(hosts)


def address_text(status: dict) -> str:
    return ",".join(i.get("ip") or i.get("hostname") or "" for i in ((status.get("loadBalancer") or {})
                                                                     .get("ingress")) or [])


def row(ing: dict) -> list:
    meta, spec = ing.get("metadata") or {}, ing.get("spec") or {}
    ports = "80, 443" if spec.get("tls") else "80"
    return [meta.get("name", ""), spec.get("ingressClassName") or "<none>", hosts_text(spec),
            address_text(ing.get("status") or {}), ports, age(meta.get("creationTimestamp"))]


RESOURCE = ResourceType(
    group="networking.k8s.io", version="v1", resource="ingresses", kind="Ingress", short_names=("ing",),
    subresources=("status",), model="V1Ingress", validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
