"""The apiserver's Prometheus metrics (`GET /metrics`), named and labelled as kube-apiserver's
(k8s.io/apiserver/pkg/endpoints/metrics, pkg/storage/etcd3/metrics): requests by verb, group,
version, resource, subresource, scope and code, their latency, what is in flight, the storage's
write latency and object counts. Pure: counters and histograms in memory, and their text
exposition format (version 0.0.4)."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

# kube-apiserver's buckets for apiserver_request_duration_seconds and etcd_request_duration_seconds.
REQUEST_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
                   10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
ETCD_BUCKETS = REQUEST_BUCKETS

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass
class Counter:
    name: str
    help: str
    kind: str = "counter"
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: Labels, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        out += [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(self.values.items())]
        return out


def Gauge(name: str, help: str) -> Counter:  # noqa: N802 -- reads as the Prometheus type it is
    return Counter(name, help, kind="gauge")


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    series: dict[Labels, list] = field(default_factory=dict)  # labels -> [bucket counts..., sum, count]

    def observe(self, labels: Labels, seconds: float) -> None:
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0] * len(self.buckets) + [0.0, 0]
        bucket = bisect.bisect_left(self.buckets, seconds)  # the first bound >= seconds ("le")
        if bucket < len(self.buckets):
            row[bucket] += 1
        row[-2] += seconds
        row[-1] += 1

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, row in sorted(self.series.items()):
            cumulative = 0
            for bound, count in zip(self.buckets, row[:len(self.buckets)], strict=True):
                cumulative += count
                out.append(f"{self.name}_bucket{_labels(labels, [('le', _number(bound))])} {cumulative}")
            out.append(f"{self.name}_bucket{_labels(labels, [('le', '+Inf')])} {row[-1]}")
            out.append(f"{self.name}_sum{_labels(labels)} {_number(row[-2])}")
            out.append(f"{self.name}_count{_labels(labels)} {row[-1]}")
        return out


@dataclass(frozen=True)
class RequestInfo:
    """What a request was, in the metrics' terms (upstream's RequestInfo, normalised as
    CleanVerb does: LIST and WATCH apart from GET, APPLY apart from PATCH)."""
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    scope: str = ""  # cluster, namespace, resource; "" for non-resource paths
    dry_run: bool = False

    @property
    def read_only(self) -> bool:
        return self.verb in ("GET", "LIST", "WATCH")


def clean_verb(method: str, *, has_name: bool, watch: bool, apply: bool, connect: bool) -> str:
    """Upstream CleanVerb: the HTTP method as the metrics name it."""
    method = method.upper()
    if connect:
        return "CONNECT"
    if method == "GET":
        if watch:
            return "WATCH"
        return "GET" if has_name else "LIST"
    if method == "PATCH" and apply:
        return "APPLY"
    return method


class ApiServerMetrics:
    def __init__(self) -> None:
        self.requests = Counter("apiserver_request_total",
                                "[STABLE] Counter of apiserver requests broken out for each verb, dry run value, "
                                "group, version, resource, scope, component, and HTTP response code.")
        self.latency = Histogram("apiserver_request_duration_seconds",
                                 "[STABLE] Response latency distribution in seconds for each verb, dry run value, "
                                 "group, version, resource, subresource, scope and component.", REQUEST_BUCKETS)
        self.inflight = Gauge("apiserver_current_inflight_requests",
                              "[STABLE] Maximal number of currently used inflight request limit of this apiserver "
                              "per request kind in last second.")
        self.longrunning = Gauge("apiserver_longrunning_requests",
                                 "[STABLE] Gauge of all active long-running apiserver requests broken out by verb, "
                                 "group, version, resource, scope and component. Not all requests are tracked this "
                                 "way.")
        self.etcd = Histogram("etcd_request_duration_seconds",
                              "[ALPHA] Etcd request latency in seconds for each operation and object type.",
                              ETCD_BUCKETS)
        self.objects = Gauge("apiserver_storage_objects",
                             "[STABLE] Number of stored objects at the time of last check split by kind. In case of "
                             "a fetching error, the value will be -1.")
        self.inflight.set((("request_kind", "mutating"),), 0)
        self.inflight.set((("request_kind", "readOnly"),), 0)

    @staticmethod
    def _request_labels(info: RequestInfo) -> Labels:
        return (("component", "apiserver"), ("dry_run", "All" if info.dry_run else ""), ("group", info.group),
                ("resource", info.resource), ("scope", info.scope), ("subresource", info.subresource),
                ("verb", info.verb), ("version", info.version))

    def begin(self, read_only: bool) -> None:
        """A request came in (counted in flight until `end`)."""
        self.inflight.inc((("request_kind", "readOnly" if read_only else "mutating"),))

    def long_running(self, info: RequestInfo) -> None:
        """The request turned out to be a watch or a connection (exec, port-forward): counted
        among the long-running ones until `end`."""
        self.longrunning.inc(self._long_labels(info))

    def _long_labels(self, info: RequestInfo) -> Labels:
        return tuple(p for p in self._request_labels(info) if p[0] != "dry_run")

    def end(self, info: RequestInfo, code: int, seconds: float, read_only: bool) -> None:
        self.inflight.inc((("request_kind", "readOnly" if read_only else "mutating"),), -1)
        labels = self._request_labels(info)
        self.requests.inc((("code", str(code)), *labels))
        if info.verb in ("WATCH", "CONNECT"):
            self.longrunning.inc(self._long_labels(info), -1)
        else:  # upstream leaves long-running requests out of the latency histogram
            self.latency.observe(labels, seconds)

    def storage_request(self, operation: str, resource: str, seconds: float) -> None:
        self.etcd.observe((("operation", operation), ("type", resource)), seconds)

    def exposition(self, object_counts: dict[str, int]) -> str:
        for resource, count in object_counts.items():
            self.objects.set((("resource", resource),), count)
        families = (self.inflight, self.longrunning, self.latency, self.requests, self.objects, self.etcd)
        return "\n".join(line for f in families for line in f.lines()) + "\n"


class TimedStore:
    """A Store whose writes are timed into etcd_request_duration_seconds; everything else
    passes through."""

    def __init__(self, store, metrics: ApiServerMetrics) -> None:
        self._store, self._metrics = store, metrics

    def __getattr__(self, name: str):
        value = getattr(self._store, name)
        if callable(value):
            # the read path calls store.get/list on every request: keep the bound method so
            # later lookups find it on the instance; plain attributes (revision) are read live
            setattr(self, name, value)
        return value

    async def _timed(self, operation: str, bucket: str, call):
        started = time.monotonic()
        try:
            return await call
        finally:
            self._metrics.storage_request(operation, f"/registry/{bucket}", time.monotonic() - started)

    async def create(self, bucket: str, namespace: str, name: str, obj: dict, *args, **kwargs):
        return await self._timed("create", bucket, self._store.create(bucket, namespace, name, obj, *args, **kwargs))

    async def update(self, bucket: str, namespace: str, name: str, obj: dict, *args, **kwargs):
        return await self._timed("update", bucket, self._store.update(bucket, namespace, name, obj, *args, **kwargs))

    async def delete(self, bucket: str, namespace: str, name: str, *args, **kwargs):
        return await self._timed("delete", bucket, self._store.delete(bucket, namespace, name, *args, **kwargs))
