"""knet.api.metrics: metrics-server's arithmetic (CPU as the rate between two scrapes of
usageCoreNanoSeconds, memory as the last working set), its quantity forms, and the scraper
against an in-memory store and a scripted kubelet fetch."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from knet.api import metrics
from knet.api.errors import ApiError
from knet.api.metrics import MetricsServer, MetricsStore, Point
from knet.api.selectors import parse_field_selector, parse_label_selector


@pytest.mark.parametrize(("nanocores", "text"), [(0, "0"), (1, "1n"), (1500, "1500n"), (2000, "2u"),
                                                 (150_000_000, "150m"), (1_000_000_000, "1"), (123_456_789, "123456789n")])
def test_cpu_quantity_canonical(nanocores, text):
    assert metrics.cpu_quantity(nanocores) == text


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (1000, "1000"), (4096, "4Ki"), (10 << 20, "10Mi"),
                                             ((10 << 20) + 4096, "10244Ki"), (3 << 30, "3Gi")])
def test_memory_quantity_canonical(value, text):
    assert metrics.memory_quantity(value) == text


@pytest.mark.parametrize(("seconds", "text"), [(15.0, "15s"), (15.021, "15.021s"), (60.5, "1m0.5s"), (0.25, "0.25s")])
def test_window_as_go_duration(seconds, text):
    assert metrics.go_duration(seconds) == text


def test_parse_summary_time_with_nanoseconds():
    assert metrics.parse_time("2026-01-02T03:04:05.500000Z") == pytest.approx(1767323045.5)
    assert metrics.parse_time("2026-01-02T03:04:05Z") == 1767323045.0


def test_rate_needs_two_points_and_a_forward_counter():
    a, b = Point(100.0, 1_000_000_000, 10), Point(115.0, 2_500_000_000, 20)
    u = metrics.rate(a, b)
    assert (u.nanocores, u.memory, u.window, u.timestamp) == (100_000_000, 20, 15.0, 115.0)
    assert metrics.rate(None, b) is None
    assert metrics.rate(b, a) is None                                   # time went back
    assert metrics.rate(a, Point(116.0, 10, 20)) is None                 # a restarted container's counter


def _summary(node: str, t: str, node_cpu: int, pods: list[tuple[str, str, str, int]]) -> dict:
    return {"node": {"nodeName": node, "cpu": {"time": t, "usageCoreNanoSeconds": node_cpu},
                     "memory": {"time": t, "workingSetBytes": 1 << 20}},
            "pods": [{"podRef": {"namespace": ns, "name": name, "uid": "u"},
                      "containers": [{"name": c, "cpu": {"time": t, "usageCoreNanoSeconds": cpu},
                                      "memory": {"time": t, "workingSetBytes": 2 << 20}}]}
                     for ns, name, c, cpu in pods]}


def test_store_rates_nodes_and_pods_between_scrapes():
    store = MetricsStore()
    store.store([_summary("n1", "2026-01-01T00:00:00Z", 0, [("d", "busy", "main", 0)])])
    assert store.node_usage("n1") is None and store.pod_usage("d", "busy") is None  # one point only
    store.store([_summary("n1", "2026-01-01T00:00:15Z", 3_000_000_000, [("d", "busy", "main", 1_500_000_000)])])
    assert store.node_usage("n1").nanocores == 200_000_000
    [(name, u)] = store.pod_usage("d", "busy")
    assert (name, u.nanocores, u.memory, u.window) == ("main", 100_000_000, 2 << 20, 15.0)
    # The same reading scraped again (a kubelet that did not move on) keeps the earlier window.
    store.store([_summary("n1", "2026-01-01T00:00:15Z", 3_000_000_000, [("d", "busy", "main", 1_500_000_000)])])
    assert store.node_usage("n1").nanocores == 200_000_000
    # A node that stops answering, or reports no stats (a simulated node), has no metrics.
    store.store([{"node": {"nodeName": "n1", "startTime": "x"}, "pods": []}])
    assert store.node_usage("n1") is None and store.pod_usage("d", "busy") is None


@dataclass
class _Entry:
    obj: dict


class _Store:
    def __init__(self, objects: dict[str, list[dict]]) -> None:
        self.objects = objects

    def list(self, bucket: str, ns: str | None = None):
        return [_Entry(o) for o in self.objects.get(bucket, [])], {}

    def get(self, bucket: str, ns: str, name: str):
        for o in self.objects.get(bucket, []):
            if o["metadata"]["name"] == name and o["metadata"].get("namespace", "") == ns:
                return _Entry(o)
        return None


class _Service:
    def __init__(self, store: _Store) -> None:
        self.store = store


def test_scraper_serves_get_and_list_with_selectors():
    nodes = [{"metadata": {"name": "n1", "labels": {"zone": "a"}},
              "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
             {"metadata": {"name": "sim1", "annotations": {"knet.io/kubelet-endpoint": "127.0.0.1:9"}}},
             {"metadata": {"name": "sim2", "annotations": {"knet.io/kubelet-endpoint": "127.0.0.1:9"}}}]
    pods = [{"metadata": {"name": "busy", "namespace": "d", "labels": {"app": "busy"}}},
            {"metadata": {"name": "other", "namespace": "e", "labels": {}}}]
    readings = iter(["2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z"])
    asked: list[str] = []

    async def fetch(endpoint: str) -> dict:
        asked.append(endpoint)
        if endpoint == "127.0.0.1:9":
            return {"node": {"nodeName": "sim1"}, "pods": []}
        t = next(readings)
        cpu = 0 if t.endswith("00Z") else 1_000_000_000
        return _summary("n1", t, cpu, [("d", "busy", "main", cpu), ("e", "other", "c", 0)])

    server = MetricsServer(_Service(_Store({"nodes": nodes, "pods": pods})), fetch, honor_endpoint_annotation=True)
    asyncio.run(server.scrape())
    asyncio.run(server.scrape())
    assert asked.count("10.0.0.1:10250") == 2 and asked.count("127.0.0.1:9") == 2  # one per endpoint
    none = parse_label_selector(None), parse_field_selector(None, frozenset({"metadata.name", "metadata.namespace"}))
    node_list = server.list("nodes", None, *none)
    assert [m["metadata"]["name"] for m in node_list["items"]] == ["n1"]
    n1 = node_list["items"][0]
    assert (n1["kind"], n1["usage"], n1["window"], n1["metadata"]["labels"]) == (
        "NodeMetrics", {"cpu": "100m", "memory": "1Mi"}, "10s", {"zone": "a"})
    pod_list = server.list("pods", None, parse_label_selector("app=busy"), none[1])
    assert [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in pod_list["items"]] == [("d", "busy")]
    assert pod_list["items"][0]["containers"] == [{"name": "main", "usage": {"cpu": "100m", "memory": "2Mi"}}]
    assert [m["metadata"]["name"] for m in server.list("pods", "e", *none)["items"]] == ["other"]
    assert server.get("pods", "d", "busy")["kind"] == "PodMetrics"
    with pytest.raises(ApiError) as exc:
        server.get("pods", "d", "gone")
    assert exc.value.code == 404 and 'podmetrics.metrics.k8s.io "d/gone" not found' in str(exc.value.status())
    with pytest.raises(ApiError, match="not found"):
        server.get("nodes", "", "sim1")
