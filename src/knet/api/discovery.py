"""Discovery documents: legacy (/api, /apis, /api/v1, /apis/G/V) and aggregated
(apidiscovery.k8s.io/v2 APIGroupDiscoveryList, which kubectl 1.32 asks for first)."""

from __future__ import annotations

from knet.api.registry import Registry, ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# subresource -> (verbs, response kind (group, version, kind) or None for the parent's kind)
SUBRESOURCES: dict[str, tuple[tuple[str, ...], tuple[str, str, str] | None]] = {
    "status": (("get", "patch", "update"), None),
    "scale": (("get", "patch", "update"), ("autoscaling", "v1", "Scale")),
    "binding": (("create",), ("", "v1", "Binding")),
    "eviction": (("create",), ("policy", "v1", "Eviction")),
    "log": (("get",), ("", "v1", "Pod")),
    "exec": (("create", "get"), ("", "v1", "PodExecOptions")),
    "attach": (("create", "get"), ("", "v1", "PodAttachOptions")),
    "portforward": (("create", "get"), ("", "v1", "PodPortForwardOptions")),
    "token": (("create",), ("authentication.k8s.io", "v1", "TokenRequest")),
    "finalize": (("update",), None),
    "proxy": (("create", "delete", "get", "patch", "update"), None),
    "ephemeralcontainers": (("get", "patch", "update"), None),
}


def verbs_of(rt: ResourceType) -> list[str]:
    if rt.resource == "namespaces":
        return ["create", "delete", "get", "list", "patch", "update", "watch"]
    return list(rt.verbs)


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_entry(group: str, versions: list[str]) -> dict:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> dict:
    groups = [_group_entry(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict | None:
    versions = registry.group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(registry: Registry, group: str, version: str) -> dict | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = []
    for rt in types:
        entry = {"name": rt.resource, "singularName": rt.singular, "namespaced": rt.namespaced,
                 "kind": rt.kind, "verbs": verbs_of(rt)}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            verbs, kind = SUBRESOURCES[sub]
            sub_entry = {"name": f"{rt.resource}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                         "kind": kind[2] if kind else rt.kind, "verbs": list(verbs)}
            if kind and kind[0] != rt.group:
                sub_entry["group"], sub_entry["version"] = kind[0], kind[1]
            resources.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": rt.group_version, "resources": resources}


def _aggregated_resource(rt: ResourceType) -> dict:
    entry: dict = {
        "resource": rt.resource,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": verbs_of(rt),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = []
    for sub in rt.subresources:
        verbs, kind = SUBRESOURCES[sub]
        g, v, k = kind or (rt.group, rt.version, rt.kind)
        subs.append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": list(verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, core: bool, api_version: str = "apidiscovery.k8s.io/v2") -> dict:
    """The APIGroupDiscoveryList for /api (core=True) or /apis."""
    items = []
    for group, versions in registry.group_versions().items():
        if bool(group) == core:
            continue
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [{"version": v, "resources": [_aggregated_resource(rt) for rt in registry.in_group_version(group, v)],
                          "freshness": "Current"} for v in versions],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}
