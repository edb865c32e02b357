"""EndpointSlice and Endpoints controllers: Service selector + pod readiness -> endpoints.

compute_* functions are pure (desired objects from a Service, its pods and the nodes);
EndpointSliceController.sync_key reads the informer caches and applies the difference.
Services without a selector (default/kubernetes, manual endpoints) are left alone, as upstream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from knet.client import Api, ApiError
from knet.controllers.base import Controller, InformerFactory, owner_reference, split_key
from knet.controllers.conditions import semantically_equal
from knet.controllers.expectations import Expectations
from knet.controllers.podutil import find_port, is_pod_ready, is_terminal, is_terminating, pod_ips
from knet.selectors import labels_match_selector

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_ENDPOINTS_PER_SLICE = 100
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
HEADLESS_LABEL = "service.kubernetes.io/headless"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def service_selects_pods(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def selected_pods(service: Obj, pods: list[Obj]) -> list[Obj]:
    selector = (service.get("spec") or {}).get("selector") or {}
    ns = service["metadata"].get("namespace")
    return [p for p in pods if p["metadata"].get("namespace") == ns
            and labels_match_selector({"matchLabels": selector}, p["metadata"].get("labels"))]


def _address_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def service_address_type(service: Obj) -> str:
    families = (service.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return families[0]


def endpoint_ports(service: Obj, pod: Obj) -> tuple[tuple[str, str, int, str | None], ...]:
    """(name, protocol, resolved port, appProtocol) per Service port the pod can serve."""
    out = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        protocol = sp.get("protocol") or "TCP"
        port = find_port(pod, sp.get("targetPort"), protocol, int(sp["port"]))
        if port is None:
            continue
        out.append((sp.get("name") or "", protocol, port, sp.get("appProtocol")))
    return tuple(out)


def pod_hostname_for(service: Obj, pod: Obj) -> str | None:
    """A pod's hostname is published only through the Service named by its spec.subdomain (that is
    what gives `HOSTNAME.SUBDOMAIN.NS.svc` DNS records, as upstream)."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return spec["hostname"]
    return None


def _slice_ports(ports: tuple[tuple[str, str, int, str | None], ...]) -> list[Obj]:
    result = []
    for name, protocol, port, app in ports:
        entry: Obj = {"name": name, "port": port, "protocol": protocol}
        if app:
            entry["appProtocol"] = app
        result.append(entry)
    return result


@dataclass
class DesiredSlice:
    ports: list[Obj]
    endpoints: list[Obj] = field(default_factory=list)


def compute_slice_endpoints(service: Obj, pods: list[Obj], nodes: dict[str, Obj]) -> list[DesiredSlice]:
    """Endpoints grouped by their resolved port set, at most 100 per slice, in a stable order."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    family = service_address_type(service)
    groups: dict[tuple[Any, ...], list[Obj]] = {}
    for pod in sorted(selected_pods(service, pods), key=lambda p: p["metadata"]["name"]):
        if is_terminal(pod):
            continue
        ips = [ip for ip in pod_ips(pod) if _address_family(ip) == family]
        if not ips:
            continue
        terminating = is_terminating(pod)
        serving = is_pod_ready(pod)
        ready = publish_not_ready or (serving and not terminating)
        endpoint: Obj = {
            "addresses": [ips[0]],
            "conditions": {"ready": ready, "serving": serving or publish_not_ready, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                          "name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid")},
        }
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            endpoint["nodeName"] = node_name
            zone = ((nodes.get(node_name) or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
            if zone:
                endpoint["zone"] = zone
        hostname = pod_hostname_for(service, pod)
        if hostname:
            endpoint["hostname"] = hostname
        groups.setdefault(endpoint_ports(service, pod), []).append(endpoint)
    desired: list[DesiredSlice] = []
    for ports, endpoints in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        for start in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
            desired.append(DesiredSlice(_slice_ports(ports), endpoints[start:start + MAX_ENDPOINTS_PER_SLICE]))
    if not desired:
        # Upstream keeps one placeholder slice (no endpoints, no ports) per selector service.
        desired.append(DesiredSlice([]))
    return desired


def slice_labels(service: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


def _slice_body_equal(current: Obj, desired: Obj) -> bool:
    return semantically_equal(current.get("endpoints") or [], desired["endpoints"]) \
        and semantically_equal(current.get("ports") or [], desired["ports"]) \
        and current.get("addressType") == desired["addressType"] \
        and (current["metadata"].get("labels") or {}) == desired["metadata"]["labels"]


def compute_slice_plan(service: Obj, pods: list[Obj], nodes: dict[str, Obj], existing: list[Obj]) -> SlicePlan:
    """Which slices to create, update and delete so the service's slices match its pods.

    Existing slices are reused for the desired groups with the same ports (oldest name first), so
    an unchanged service is a no-op and a changed one updates in place instead of churning names.
    """
    meta = service["metadata"]
    address_type = service_address_type(service)
    labels = slice_labels(service)
    owner = owner_reference({**service, "apiVersion": "v1", "kind": "Service"})
    plan = SlicePlan()
    pool = sorted(existing, key=lambda s: s["metadata"]["name"])
    for want in compute_slice_endpoints(service, pods, nodes):
        body = {"addressType": address_type, "endpoints": want.endpoints, "ports": want.ports,
                "metadata": {"labels": labels}}
        match = next((s for s in pool if (s.get("ports") or []) == want.ports
                      and s.get("addressType") == address_type), None)
        if match is None:
            match = next((s for s in pool if s.get("addressType") == address_type), None)
        if match is not None:
            pool.remove(match)
            if not _slice_body_equal(match, body):
                updated = {**match, "endpoints": want.endpoints, "ports": want.ports,
                           "metadata": {**match["metadata"], "labels": labels,
                                        "ownerReferences": [owner]}}
                plan.update.append(updated)
            continue
        plan.create.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                         "labels": labels, "ownerReferences": [owner]},
            "addressType": address_type, "endpoints": want.endpoints, "ports": want.ports,
        })
    plan.delete.extend(pool)
    return plan


def compute_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    """The legacy Endpoints object (`kubectl describe svc` reads it): ready addresses and
    notReadyAddresses per port set; terminating pods are left out (unless publishNotReadyAddresses)."""
    spec = service.get("spec") or {}
    meta = service["metadata"]
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    subsets: dict[tuple[Any, ...], dict[str, list[Obj]]] = {}
    for pod in sorted(selected_pods(service, pods), key=lambda p: p["metadata"]["name"]):
        if is_terminal(pod) or (is_terminating(pod) and not publish_not_ready):
            continue
        ips = pod_ips(pod)
        if not ips:
            continue
        address: Obj = {"ip": ips[0], "targetRef": {"kind": "Pod", "namespace": meta["namespace"],
                                                     "name": pod["metadata"]["name"],
                                                     "uid": pod["metadata"].get("uid")}}
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        hostname = pod_hostname_for(service, pod)
        if hostname:
            address["hostname"] = hostname
        ports = endpoint_ports(service, pod)
        bucket = subsets.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        ready = publish_not_ready or is_pod_ready(pod)
        bucket["addresses" if ready else "notReadyAddresses"].append(address)
    out_subsets = []
    for ports, bucket in sorted(subsets.items(), key=lambda kv: repr(kv[0])):
        subset: Obj = {}
        if bucket["addresses"]:
            subset["addresses"] = sorted(bucket["addresses"], key=lambda a: a["ip"])
        if bucket["notReadyAddresses"]:
            subset["notReadyAddresses"] = sorted(bucket["notReadyAddresses"], key=lambda a: a["ip"])
        subset["ports"] = [{k: v for k, v in (("name", n), ("port", p), ("protocol", proto),
                                                ("appProtocol", app)) if v not in (None, "") or k == "port"}
                           for n, proto, p, app in ports]
        if subset["ports"]:
            out_subsets.append(subset)
    labels = dict(meta.get("labels") or {})
    labels[SKIP_MIRROR_LABEL] = "true"
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels},
            "subsets": out_subsets}


class EndpointSliceController(Controller):
    """Keeps EndpointSlices and Endpoints of every selector Service in line with its pods."""

    name = "endpointslice"

    def __init__(self, api: Api, informers: InformerFactory, *, manage_endpoints: bool = True,
                 manage_slices: bool = True, endpoints_api: Api | None = None) -> None:
        super().__init__()
        self.api = api
        self.manage_endpoints = manage_endpoints  # upstream's `endpoint` controller
        self.manage_slices = manage_slices        # upstream's `endpointslice` controller
        # Endpoints are written with the endpoint controller's own client (its service account
        # under --use-service-account-credentials): the endpointslice-controller role may not.
        self.endpoints_api = endpoints_api or api
        self.services = informers.get("v1", "services")
        self.pods = informers.get("v1", "pods")
        self.nodes = informers.get("v1", "nodes")
        self.slices = informers.get("discovery.k8s.io/v1", "endpointslices")
        self.endpoints = informers.get("v1", "endpoints")
        self.expectations = Expectations()
        self.services.add_handler(self.enqueue_obj, lambda old, new: self.enqueue_obj(new), self.enqueue_obj)
        self.pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new, old), self._pod_changed)
        self.slices.add_handler(self._slice_changed, lambda old, new: self._slice_changed(new),
                                self._slice_changed)

    def initial_keys(self) -> list[str]:
        return self.services.keys()

    def _pod_changed(self, pod: Obj, old: Obj | None = None) -> None:
        for candidate in (pod, old):
            if candidate is None:
                continue
            ns = candidate["metadata"].get("namespace")
            labels = candidate["metadata"].get("labels") or {}
            for svc in self.services.in_namespace(ns):
                if service_selects_pods(svc) and \
                        labels_match_selector({"matchLabels": svc["spec"]["selector"]}, labels):
                    self.enqueue_obj(svc)

    def _slice_changed(self, slc: Obj) -> None:
        labels = slc["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(SERVICE_NAME_LABEL):
            self.queue.add(f"{slc['metadata']['namespace']}/{labels[SERVICE_NAME_LABEL]}")

    async def sync_key(self, key: str) -> None:
        ns, name = split_key(key)
        service = self.services.get(key)
        mine = [s for s in self.slices.in_namespace(ns or "")
                if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
                and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]
        if service is None and self.manage_endpoints and self.endpoints.get(key) is not None:
            # upstream's endpoint controller deletes a deleted Service's Endpoints (they have no
            # owner reference for the garbage collector to follow)
            await _ignore_missing(self.endpoints_api.delete("v1", "endpoints", name, namespace=ns))
        if not self.manage_slices:
            if service is not None and service_selects_pods(service) and self.manage_endpoints:
                await self._sync_endpoints(service, self.pods.in_namespace(ns or ""))
            return
        if service is None or not service_selects_pods(service):
            # Deleted service: owner references let GC remove slices; do it directly too.
            if service is None:
                for s in mine:
                    await _ignore_missing(self.api.delete("discovery.k8s.io/v1", "endpointslices",
                                                          s["metadata"]["name"], namespace=ns))
            return
        pending_creates, pending_deletes = self.expectations.pending(key, {s["metadata"]["name"] for s in mine})
        if pending_creates or pending_deletes:
            # our own last writes are not in the cache yet: acting now would duplicate slices
            self.queue.add_after(key, 0.05)
            return
        pods = self.pods.in_namespace(ns or "")
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        plan = compute_slice_plan(service, pods, nodes, mine)
        for obj in plan.create:
            created = await self.api.create("discovery.k8s.io/v1", "endpointslices", obj, namespace=ns)
            self.expectations.expect_create(key, created["metadata"]["name"])
        for obj in plan.update:
            try:
                await self.api.update("discovery.k8s.io/v1", "endpointslices", obj, namespace=ns)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                self.queue.add_after(key, 0.05)  # the cache was behind our previous write; look again
        for obj in plan.delete:
            await _ignore_missing(self.api.delete("discovery.k8s.io/v1", "endpointslices",
                                                  obj["metadata"]["name"], namespace=ns))
            self.expectations.expect_delete(key, obj["metadata"]["name"])
        if self.manage_endpoints:
            await self._sync_endpoints(service, pods)

    async def _sync_endpoints(self, service: Obj, pods: list[Obj]) -> None:
        desired = compute_endpoints(service, pods)
        ns, name = service["metadata"]["namespace"], service["metadata"]["name"]
        current = self.endpoints.get(f"{ns}/{name}")
        for attempt in range(3):
            if current is None:
                try:
                    await self.endpoints_api.create("v1", "endpoints", desired, namespace=ns)
                    return
                except ApiError as exc:
                    if not exc.already_exists:
                        raise
                    current = await self.endpoints_api.get("v1", "endpoints", name, namespace=ns)
            if semantically_equal(current.get("subsets") or [], desired["subsets"]) and \
                    (current["metadata"].get("labels") or {}) == desired["metadata"]["labels"]:
                return
            updated = {**current, "subsets": desired["subsets"],
                       "metadata": {**current["metadata"], "labels": desired["metadata"]["labels"]}}
            try:
                await self.endpoints_api.update("v1", "endpoints", updated, namespace=ns)
                return
            except ApiError as exc:
                # the cache was behind (often our own previous write): re-read and re-apply
                if not exc.conflict or attempt == 2:
                    raise
                try:
                    current = await self.endpoints_api.get("v1", "endpoints", name, namespace=ns)
                except ApiError as get_exc:
                    if not get_exc.not_found:
                        raise
                    current = None


async def _ignore_missing(coro: Any) -> None:
    try:
        await coro
    except ApiError as exc:
        if not exc.not_found:
            raise
