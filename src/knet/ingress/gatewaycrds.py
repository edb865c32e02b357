"""The Gateway API's standard channel CustomResourceDefinitions (gateway.networking.k8s.io:
GatewayClass, Gateway and HTTPRoute v1 (v1beta1 served too, same schema), GRPCRoute v1 (knet's
controller does not serve it: attached to its Gateways it is not Accepted), ReferenceGrant v1beta1),
written from the API reference (v1.2 standard channel): the same groups, versions, kinds, short
names, categories, printer columns, status subresources, defaults, enums, patterns and size limits.

Left out: the CEL rules (x-kubernetes-validations: knet's apiserver does not evaluate CEL, so the
controller checks what it needs, e.g. ReplacePrefixMatch only with a PathPrefix match), the
descriptions, and the experimental fields (CORS, retries, session persistence, TLS options).

`deploy/gateway-api/standard-install.yaml` is `manifest_yaml()` (a unit test keeps them equal);
users apply it with `kubectl apply -f` as they would upstream's standard-install.yaml."""

from __future__ import annotations

from typing import Any

GROUP = "gateway.networking.k8s.io"
BUNDLE_VERSION = "v1.2.1"
S = dict[str, Any]

DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECTION_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KIND_PATTERN = "^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PRECISE_HOSTNAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HEADER_NAME = "^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$"
CONTROLLER_NAME = (r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/"
                   r"[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$")
PROTOCOL = (r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?"
            r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$")
CONDITION_TYPE = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
DURATION = "^([0-9]{1,5}(h|m|s|ms)){1,4}$"
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


def string(max_len: int | None = None, min_len: int | None = None, pattern: str | None = None, **kw: Any) -> S:
    s: S = {"type": "string"}
    if max_len is not None:
        s["maxLength"] = max_len
    if min_len is not None:
        s["minLength"] = min_len
    if pattern is not None:
        s["pattern"] = pattern
    s.update(kw)
    return s


def obj(props: S, required: list[str] | None = None, **kw: Any) -> S:
    s: S = {"type": "object", "properties": props}
    if required:
        s["required"] = required
    s.update(kw)
    return s


def array(items: S, max_items: int | None = None, min_items: int | None = None, list_type: str = "atomic",
          keys: list[str] | None = None, **kw: Any) -> S:
    s: S = {"type": "array", "items": items}
    if max_items is not None:
        s["maxItems"] = max_items
    if min_items is not None:
        s["minItems"] = min_items
    if keys:
        s["x-kubernetes-list-map-keys"] = keys
    s["x-kubernetes-list-type"] = list_type
    s.update(kw)
    return s


def port() -> S:
    return {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535}


def group(default: str | None = None) -> S:
    return string(253, pattern=GROUP_PATTERN, **({"default": default} if default is not None else {}))


def kind(default: str | None = None) -> S:
    return string(63, 1, KIND_PATTERN, **({"default": default} if default is not None else {}))


def name() -> S:
    return string(253, 1)


def namespace() -> S:
    return string(63, 1, DNS_LABEL)


def label_selector() -> S:
    return obj({
        "matchExpressions": array(obj({"key": string(), "operator": string(),
                                       "values": array(string())}, ["key", "operator"])),
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    }, **{"x-kubernetes-map-type": "atomic"})


def condition() -> S:
    return obj({
        "lastTransitionTime": string(format="date-time"),
        "message": string(32768),
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "reason": string(1024, 1, "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
        "status": string(enum=["True", "False", "Unknown"]),
        "type": string(316, pattern=CONDITION_TYPE),
    }, ["lastTransitionTime", "message", "reason", "status", "type"])


def conditions(default: list[S] | None = None, min_items: int | None = None) -> S:
    kw = {"default": default} if default is not None else {}
    return array(condition(), 8, min_items, "map", ["type"], **kw)


def pending(*types: str) -> list[S]:
    return [{"lastTransitionTime": "1970-01-01T00:00:00Z", "message": "Waiting for controller", "reason": "Pending",
             "status": "Unknown", "type": t} for t in types]


def parent_ref() -> S:
    return obj({"group": group(GROUP), "kind": kind("Gateway"), "name": name(), "namespace": namespace(),
                "port": port(), "sectionName": string(253, 1, SECTION_NAME)}, ["name"])


def backend_object_ref() -> S:
    return obj({"group": group(""), "kind": kind("Service"), "name": name(), "namespace": namespace(),
                "port": port()}, ["name"])


def header_modifier() -> S:
    header = obj({"name": string(256, 1, HEADER_NAME), "value": string(4096, 1)}, ["name", "value"])
    return obj({"add": array(header, 16, list_type="map", keys=["name"]),
                "remove": array(string(), 16, list_type="set"),
                "set": array(header, 16, list_type="map", keys=["name"])})


def path_modifier() -> S:
    return obj({"replaceFullPath": string(1024), "replacePrefixMatch": string(1024),
                "type": string(enum=["ReplaceFullPath", "ReplacePrefixMatch"])}, ["type"])


def http_filter() -> S:
    return obj({
        "extensionRef": obj({"group": group(), "kind": kind(), "name": name()}, ["group", "kind", "name"]),
        "requestHeaderModifier": header_modifier(),
        "requestMirror": obj({"backendRef": backend_object_ref()}, ["backendRef"]),
        "requestRedirect": obj({
            "hostname": string(253, 1, PRECISE_HOSTNAME), "path": path_modifier(), "port": port(),
            "scheme": string(enum=["http", "https"]),
            "statusCode": {"type": "integer", "default": 302, "enum": [301, 302]}}),
        "responseHeaderModifier": header_modifier(),
        "type": string(enum=["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
                             "URLRewrite", "ExtensionRef"]),
        "urlRewrite": obj({"hostname": string(253, 1, PRECISE_HOSTNAME), "path": path_modifier()}),
    }, ["type"])


def http_route_spec() -> S:
    header_match = obj({"name": string(256, 1, HEADER_NAME),
                        "type": string(default="Exact", enum=["Exact", "RegularExpression"]),
                        "value": string(4096, 1)}, ["name", "value"])
    query_match = obj({"name": string(256, 1, HEADER_NAME),
                       "type": string(default="Exact", enum=["Exact", "RegularExpression"]),
                       "value": string(1024, 1)}, ["name", "value"])
    default_match = [{"path": {"type": "PathPrefix", "value": "/"}}]
    match = obj({
        "headers": array(header_match, 16, list_type="map", keys=["name"]),
        "method": string(enum=METHODS),
        "path": obj({"type": string(default="PathPrefix", enum=["Exact", "PathPrefix", "RegularExpression"]),
                     "value": string(1024, default="/")}, default={"type": "PathPrefix", "value": "/"}),
        "queryParams": array(query_match, 16, list_type="map", keys=["name"]),
    })
    backend_ref = obj({**backend_object_ref()["properties"],
                       "filters": array(http_filter(), 16),
                       "weight": {"type": "integer", "format": "int32", "default": 1, "minimum": 0,
                                  "maximum": 1000000}}, ["name"])
    rule = obj({
        "backendRefs": array(backend_ref, 16),
        "filters": array(http_filter(), 16),
        "matches": array(match, 64, default=default_match),
        "timeouts": obj({"backendRequest": string(pattern=DURATION), "request": string(pattern=DURATION)}),
    })
    return obj({
        "hostnames": array(string(253, 1, HOSTNAME), 16),
        "parentRefs": array(parent_ref(), 32),
        "rules": array(rule, 16, default=[{"matches": default_match}]),
    })


def grpc_route_spec() -> S:
    header_match = obj({"name": string(256, 1, HEADER_NAME),
                        "type": string(default="Exact", enum=["Exact", "RegularExpression"]),
                        "value": string(4096, 1)}, ["name", "value"])
    match = obj({
        "headers": array(header_match, 16, list_type="map", keys=["name"]),
        "method": obj({"method": string(1024), "service": string(1024),
                       "type": string(default="Exact", enum=["Exact", "RegularExpression"])}),
    })
    grpc_filter = obj({
        "extensionRef": obj({"group": group(), "kind": kind(), "name": name()}, ["group", "kind", "name"]),
        "requestHeaderModifier": header_modifier(),
        "requestMirror": obj({"backendRef": backend_object_ref()}, ["backendRef"]),
        "responseHeaderModifier": header_modifier(),
        "type": string(enum=["ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"]),
    }, ["type"])
    backend_ref = obj({**backend_object_ref()["properties"], "filters": array(grpc_filter, 16),
                       "weight": {"type": "integer", "format": "int32", "default": 1, "minimum": 0,
                                  "maximum": 1000000}}, ["name"])
    rule = obj({"backendRefs": array(backend_ref, 16), "filters": array(grpc_filter, 16),
                "matches": array(match, 64)})
    return obj({
        "hostnames": array(string(253, 1, HOSTNAME), 16),
        "parentRefs": array(parent_ref(), 32),
        "rules": array(rule, 16),
    })


def route_status() -> S:
    return obj({"parents": array(obj({
        "conditions": conditions(min_items=1),
        "controllerName": string(253, 1, CONTROLLER_NAME),
        "parentRef": parent_ref(),
    }, ["conditions", "controllerName", "parentRef"]), 32)}, ["parents"])


def gateway_spec() -> S:
    address = obj({"type": string(253, 1, r"^IPAddress$|^Hostname$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]"
                                  r"([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$",
                                  default="IPAddress"),
                   "value": string(253)})
    secret_ref = obj({"group": group(""), "kind": kind("Secret"), "name": name(), "namespace": namespace()},
                     ["name"])
    listener = obj({
        "allowedRoutes": obj({
            "kinds": array(obj({"group": group(GROUP), "kind": kind()}, ["kind"]), 8),
            "namespaces": obj({"from": string(default="Same", enum=["All", "Selector", "Same"]),
                               "selector": label_selector()}, default={"from": "Same"}),
        }, default={"namespaces": {"from": "Same"}}),
        "hostname": string(253, 1, HOSTNAME),
        "name": string(253, 1, SECTION_NAME),
        "port": port(),
        "protocol": string(255, 1, PROTOCOL),
        "tls": obj({"certificateRefs": array(secret_ref, 64),
                    "mode": string(default="Terminate", enum=["Terminate", "Passthrough"]),
                    "options": {"type": "object", "maxProperties": 16,
                                "additionalProperties": string(4096, 0)}}),
    }, ["name", "port", "protocol"])
    return obj({
        "addresses": array(address, 16),
        "gatewayClassName": name(),
        "infrastructure": obj({
            "annotations": {"type": "object", "maxProperties": 8, "additionalProperties": string(4096, 0)},
            "labels": {"type": "object", "maxProperties": 8,
                       "additionalProperties": string(63, 0, "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")},
            "parametersRef": obj({"group": group(), "kind": kind(), "name": name()}, ["group", "kind", "name"]),
        }),
        "listeners": array(listener, 64, 1, "map", ["name"]),
    }, ["gatewayClassName", "listeners"])


def gateway_status() -> S:
    return obj({
        "addresses": array(obj({"type": string(253, 1, default="IPAddress"), "value": string(253, 1)}, ["value"]),
                           16),
        "conditions": conditions(pending("Accepted", "Programmed")),
        "listeners": array(obj({
            "attachedRoutes": {"type": "integer", "format": "int32"},
            "conditions": conditions(),
            "name": string(253, 1, SECTION_NAME),
            "supportedKinds": array(obj({"group": group(GROUP), "kind": kind()}, ["kind"]), 8),
        }, ["attachedRoutes", "conditions", "name", "supportedKinds"]), 64, list_type="map", keys=["name"]),
    }, default={"conditions": pending("Accepted", "Programmed")})


def gateway_class_spec() -> S:
    return obj({
        "controllerName": string(253, 1, CONTROLLER_NAME),
        "description": string(64),
        "parametersRef": obj({"group": group(), "kind": kind(), "name": name(), "namespace": namespace()},
                             ["group", "kind", "name"]),
    }, ["controllerName"])


def gateway_class_status() -> S:
    return obj({
        "conditions": conditions(pending("Accepted")),
        "supportedFeatures": array(obj({"name": string()}, ["name"]), 64, list_type="map", keys=["name"]),
    }, default={"conditions": pending("Accepted")})


def reference_grant_spec() -> S:
    return obj({
        "from": array(obj({"group": group(), "kind": kind(), "namespace": namespace()},
                          ["group", "kind", "namespace"]), 16, 1),
        "to": array(obj({"group": group(), "kind": kind(), "name": name()}, ["group", "kind"]), 16, 1),
    }, ["from", "to"])


def _root(spec: S, status: S | None) -> S:
    props: S = {"apiVersion": string(), "kind": string(), "metadata": {"type": "object"}, "spec": spec}
    if status is not None:
        props["status"] = status
    return obj(props, ["spec"])


def _column(col_name: str, path: str, col_type: str = "string", priority: int | None = None) -> S:
    c: S = {"jsonPath": path, "name": col_name, "type": col_type}
    if priority is not None:
        c["priority"] = priority
    return c


AGE = _column("Age", ".metadata.creationTimestamp", "date")


def _crd(plural: str, kind_name: str, scope: str, short: list[str], versions: list[tuple[str, bool]], schema: S,
         columns: list[S], status: bool) -> S:
    names: S = {"categories": ["gateway-api"], "kind": kind_name, "listKind": kind_name + "List",
                "plural": plural}
    if short:
        names["shortNames"] = short
    names["singular"] = kind_name.lower()
    out_versions = []
    for version, storage in versions:
        v: S = {"additionalPrinterColumns": columns, "name": version,
                "schema": {"openAPIV3Schema": schema}, "served": True, "storage": storage}
        if status:
            v["subresources"] = {"status": {}}
        out_versions.append(v)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {
        "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/3328",
                        "gateway.networking.k8s.io/bundle-version": BUNDLE_VERSION,
                        "gateway.networking.k8s.io/channel": "standard"},
        "name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "names": names, "scope": scope, "versions": out_versions}}


def crds() -> list[S]:
    v1_and_beta = [("v1", True), ("v1beta1", False)]
    return [
        _crd("gatewayclasses", "GatewayClass", "Cluster", ["gc"], v1_and_beta,
             _root(gateway_class_spec(), gateway_class_status()),
             [_column("Controller", ".spec.controllerName"),
              _column("Accepted", '.status.conditions[?(@.type=="Accepted")].status'), AGE,
              _column("Description", ".spec.description", priority=1)], True),
        _crd("gateways", "Gateway", "Namespaced", ["gtw"], v1_and_beta, _root(gateway_spec(), gateway_status()),
             [_column("Class", ".spec.gatewayClassName"), _column("Address", ".status.addresses[*].value"),
              _column("Programmed", '.status.conditions[?(@.type=="Programmed")].status'), AGE], True),
        _crd("httproutes", "HTTPRoute", "Namespaced", [], v1_and_beta, _root(http_route_spec(), route_status()),
             [_column("Hostnames", ".spec.hostnames"), AGE], True),
        _crd("grpcroutes", "GRPCRoute", "Namespaced", [], [("v1", True)], _root(grpc_route_spec(), route_status()),
             [_column("Hostnames", ".spec.hostnames"), AGE], True),
        _crd("referencegrants", "ReferenceGrant", "Namespaced", ["refgrant"], [("v1beta1", True)],
             _root(reference_grant_spec(), None), [AGE], False),
    ]


def manifest_yaml() -> str:
    import yaml

    head = ("# Gateway API standard channel CRDs (GatewayClass, Gateway, HTTPRoute, GRPCRoute v1; ReferenceGrant\n"
            "# v1beta1), written for knet from the API reference; generated by knet.ingress.gatewaycrds (do not edit).\n")
    return head + "".join("---\n" + yaml.safe_dump(c, sort_keys=False, width=120) for c in crds())
