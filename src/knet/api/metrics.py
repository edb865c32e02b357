"""metrics.k8s.io/v1beta1 (NodeMetrics, PodMetrics), done the way metrics-server does it: every
`resolution` seconds each kubelet's `/stats/summary` is scraped, CPU is the rate of
`usageCoreNanoSeconds` between two scrapes, memory the last `workingSetBytes`; get/list answer
from the last computed figures (nothing is stored).

Unlike upstream, where metrics-server is a Deployment behind an APIService, the scraper runs in
the apiserver process and the group is built in; it authenticates to the kubelets with the
apiserver's --kubelet-client-certificate (the credential exec and logs use), which the kubelets'
SubjectAccessReview allows `nodes/stats`. Each distinct kubelet endpoint is scraped once (the
simulated nodes of one process share it, and report no stats).

The pure part (rates, quantities, objects) is apart from the scraping loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from knet.api import errors, nodeproxy

log = logging.getLogger(__name__)
Obj = dict[str, Any]
GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
RESOLUTION = 15.0        # metrics-server's --metric-resolution default
SCRAPE_TIMEOUT = 10.0    # metrics-server's --kubelet-request-timeout default
MAX_PARALLEL = 16


# -- pure ---------------------------------------------------------------------------------
def parse_time(text: str) -> float:
    """An RFC 3339 time with optional fraction (Go's, up to nanoseconds) as epoch seconds."""
    text = text.rstrip("Z")
    whole, _, frac = text.partition(".")
    base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_quantity(nanocores: int) -> str:
    """resource.NewScaledQuantity(n, Nano) in canonical form ("150m", "1", "12345n")."""
    if nanocores <= 0:
        return "0"
    for suffix, div in (("", 10**9), ("m", 10**6), ("u", 10**3)):
        if nanocores % div == 0:
            return f"{nanocores // div}{suffix}"
    return f"{nanocores}n"


def memory_quantity(value: int) -> str:
    """resource.NewQuantity(bytes, BinarySI) in canonical form ("12Mi", "4100Ki", "1000")."""
    if value <= 0:
        return "0"
    for suffix, div in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value % div == 0:
            return f"{value // div}{suffix}"
    return str(value)


def go_duration(seconds: float) -> str:
    """A metav1.Duration as Go prints it ("15.002s", "1m0.5s")."""
    ns = round(seconds * 1e9)
    minutes, rest = divmod(ns, 60 * 10**9)
    secs = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class Point:
    """One cumulative reading: CPU seconds used (ns) and the working set, at a time."""

    timestamp: float
    cpu_ns: int
    memory: int


def point_of(stats: Obj) -> Point | None:
    """A Point from a Summary API entry (node, pod or container) with both cpu and memory."""
    cpu, mem = stats.get("cpu") or {}, stats.get("memory") or {}
    if "usageCoreNanoSeconds" not in cpu or "workingSetBytes" not in mem or not cpu.get("time"):
        return None
    return Point(parse_time(cpu["time"]), int(cpu["usageCoreNanoSeconds"]), int(mem["workingSetBytes"]))


@dataclass(frozen=True)
class Usage:
    timestamp: float
    window: float
    nanocores: int
    memory: int


def rate(prev: Point | None, last: Point) -> Usage | None:
    """metrics-server's resourceUsage: CPU over the window between two points; None with one
    point, when time did not move or the counter went back (a restarted container)."""
    if prev is None:
        return None
    window = last.timestamp - prev.timestamp
    used = last.cpu_ns - prev.cpu_ns
    if window <= 0 or used < 0:
        return None
    return Usage(last.timestamp, window, int(used / window), last.memory)


def usage_dict(u: Usage) -> Obj:
    return {"cpu": cpu_quantity(u.nanocores), "memory": memory_quantity(u.memory)}


def node_metrics(name: str, labels: Obj, u: Usage, now: float) -> Obj:
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": name, "creationTimestamp": rfc3339(now), "labels": labels},
            "timestamp": rfc3339(u.timestamp), "window": go_duration(u.window), "usage": usage_dict(u)}


def pod_metrics(ns: str, name: str, labels: Obj, containers: list[tuple[str, Usage]], now: float) -> Obj:
    first = containers[0][1]
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": rfc3339(now), "labels": labels},
            "timestamp": rfc3339(first.timestamp), "window": go_duration(first.window),
            "containers": [{"name": c, "usage": usage_dict(u)} for c, u in containers]}


@dataclass
class MetricsStore:
    """The last two points per node / container; usage computed from them (metrics-server's
    storage: a pod is served when every container it reported has a rate)."""

    nodes: dict[str, tuple[Point | None, Point]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, tuple[Point | None, Point]]] = field(default_factory=dict)

    def store(self, summaries: list[Obj]) -> None:
        nodes: dict[str, tuple[Point | None, Point]] = {}
        pods: dict[tuple[str, str], dict[str, tuple[Point | None, Point]]] = {}
        for s in summaries:
            node = s.get("node") or {}
            name = node.get("nodeName")
            p = point_of(node)
            if name and p is not None:
                nodes[name] = (_previous(self.nodes.get(name), p), p)
            for pod in s.get("pods") or []:
                ref = pod.get("podRef") or {}
                key = (ref.get("namespace", ""), ref.get("name", ""))
                old = self.pods.get(key, {})
                containers = {}
                for c in pod.get("containers") or []:
                    cp = point_of(c)
                    if cp is not None:
                        containers[c["name"]] = (_previous(old.get(c["name"]), cp), cp)
                if containers:
                    pods[key] = containers
        self.nodes, self.pods = nodes, pods

    def node_usage(self, name: str) -> Usage | None:
        entry = self.nodes.get(name)
        return rate(*entry) if entry else None

    def pod_usage(self, ns: str, name: str) -> list[tuple[str, Usage]] | None:
        entry = self.pods.get((ns, name))
        if not entry:
            return None
        out = []
        for cname, (prev, last) in entry.items():
            u = rate(prev, last)
            if u is None:
                return None
            out.append((cname, u))
        return out


def _previous(entry: tuple[Point | None, Point] | None, new: Point) -> Point | None:
    """The point to rate `new` against: the last one, unless `new` is the same reading again."""
    if entry is None:
        return None
    prev, last = entry
    return prev if new.timestamp <= last.timestamp else last


# -- the scraper and the API -----------------------------------------------------------------
class MetricsServer:
    """Scrapes the kubelets (through `fetch(endpoint) -> summary`) and answers get/list."""

    def __init__(self, service: Any, fetch: Any, resolution: float = RESOLUTION,
                 honor_endpoint_annotation: bool = False) -> None:
        self.service = service
        self.honor_endpoint_annotation = honor_endpoint_annotation
        self.fetch = fetch
        self.resolution = resolution
        self.store = MetricsStore()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="metrics scraper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 -- stopping
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.scrape()
            except Exception:  # noqa: BLE001 -- keep scraping; the cause is logged
                log.exception("metrics: scrape failed")
            await asyncio.sleep(max(1.0, self.resolution - (time.monotonic() - started)))

    def _endpoints(self) -> list[str]:
        found = []
        for entry in self.service.store.list("nodes")[0]:
            endpoint = kubelet_endpoint(entry.obj, self.honor_endpoint_annotation)
            if endpoint and endpoint not in found:
                found.append(endpoint)
        return found

    async def scrape(self) -> None:
        limit = asyncio.Semaphore(MAX_PARALLEL)

        async def one(endpoint: str) -> Obj | None:
            async with limit:
                try:
                    return await asyncio.wait_for(self.fetch(endpoint), SCRAPE_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 -- a node without metrics this round
                    log.debug("metrics: scraping %s: %s", endpoint, exc)
                    return None

        results = await asyncio.gather(*(one(e) for e in self._endpoints()))
        self.store.store([r for r in results if isinstance(r, dict)])

    # -- answers ------------------------------------------------------------------------------
    def _objects(self, resource: str) -> list[Obj]:
        return [e.obj for e in self.service.store.list(resource)[0]]

    def node(self, name: str) -> Obj | None:
        entry = self.service.store.get("nodes", "", name)
        u = self.store.node_usage(name)
        if entry is None or u is None:
            return None
        return node_metrics(name, (entry.obj.get("metadata") or {}).get("labels") or {}, u, time.time())

    def pod(self, ns: str, name: str) -> Obj | None:
        entry = self.service.store.get("pods", ns, name)
        containers = self.store.pod_usage(ns, name)
        if entry is None or not containers:
            return None
        return pod_metrics(ns, name, (entry.obj.get("metadata") or {}).get("labels") or {}, containers, time.time())

    def get(self, resource: str, ns: str, name: str) -> Obj:
        obj = self.node(name) if resource == "nodes" else self.pod(ns, name)
        if obj is None:
            # metrics-server: NotFound on `nodemetrics`/`podmetrics` named "ns/name" for pods.
            kind = "nodemetrics" if resource == "nodes" else "podmetrics"
            raise errors.not_found(kind, GROUP, name if resource == "nodes" else f"{ns}/{name}")
        return obj

    def list(self, resource: str, ns: str | None, labels: Any, fields: Any) -> Obj:
        items = []
        if resource == "nodes":
            for obj in self._objects("nodes"):
                name = obj["metadata"]["name"]
                if _selected(obj, labels, fields):
                    m = self.node(name)
                    if m is not None:
                        items.append(m)
            kind = "NodeMetricsList"
        else:
            for obj in self._objects("pods"):
                meta = obj["metadata"]
                if ns is not None and meta.get("namespace") != ns:
                    continue
                if _selected(obj, labels, fields):
                    m = self.pod(meta.get("namespace", ""), meta["name"])
                    if m is not None:
                        items.append(m)
            kind = "PodMetricsList"
        return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}


def _selected(obj: Obj, labels: Any, fields: Any) -> bool:
    meta = obj.get("metadata") or {}
    values = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
    return labels.matches(meta.get("labels") or {}) and fields.matches(values.get)


def kubelet_endpoint(node: Obj, honor_annotation: bool) -> str | None:
    """host:port of a node's kubelet, as the apiserver's kubelet relay finds it."""
    try:
        return nodeproxy.host_port(*nodeproxy.kubelet_endpoint(node, honor_annotation))
    except errors.ApiError:  # no address to reach it at
        return None
