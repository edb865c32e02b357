"""kube-proxy's Prometheus metrics (upstream pkg/proxy/metrics names and buckets), as text."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    return [start * factor ** i for i in range(count)]


def linear_buckets(start: float, width: float, count: int) -> list[float]:
    return [start + width * i for i in range(count)]


SYNC_BUCKETS = exponential_buckets(0.001, 2, 15)
PROGRAMMING_BUCKETS = (linear_buckets(0.25, 0.25, 2) + linear_buckets(1, 1, 59) + linear_buckets(60, 5, 12)
                       + linear_buckets(120, 30, 7))


@dataclass
class Histogram:
    name: str
    help: str
    buckets: list[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.total += v
        self.n += 1

    def text(self) -> list[str]:
        out = [f"# HELP {self.name} [ALPHA] {self.help}", f"# TYPE {self.name} histogram"]
        for b, c in zip(self.buckets, self.counts, strict=True):
            out.append(f'{self.name}_bucket{{le="{b:g}"}} {c}')
        out += [f'{self.name}_bucket{{le="+Inf"}} {self.n}', f"{self.name}_sum {self.total}",
                f"{self.name}_count {self.n}"]
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds", SYNC_BUCKETS)
        self.sync_full = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                                   "SyncProxyRules latency in seconds for full resyncs", SYNC_BUCKETS)
        self.sync_partial = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                      "SyncProxyRules latency in seconds for partial resyncs", SYNC_BUCKETS)
        self.programming = Histogram("kubeproxy_network_programming_duration_seconds",
                                     "In Cluster Network Programming Latency in seconds", PROGRAMMING_BUCKETS)
        self.gauges: dict[str, float] = {
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds": 0.0,
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": 0.0,
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending": 0,
            "kubeproxy_sync_proxy_rules_service_changes_pending": 0,
        }
        self.counters: dict[str, float] = {
            "kubeproxy_sync_proxy_rules_endpoint_changes_total": 0,
            "kubeproxy_sync_proxy_rules_service_changes_total": 0,
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total": 0,
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total": 0,
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total": 0,
        }
        self.labelled: dict[str, dict[str, float]] = {
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total": {},
            "kubeproxy_sync_proxy_rules_iptables_total": {},
        }

    def inc(self, name: str, by: float = 1) -> None:
        with self._lock:
            self.counters[name] += by

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = value

    def set_labelled(self, name: str, label: str, value: float) -> None:
        with self._lock:
            self.labelled[name][label] = value

    def observe_sync(self, seconds: float, full: bool) -> None:
        with self._lock:
            self.sync.observe(seconds)
            (self.sync_full if full else self.sync_partial).observe(seconds)
            self.gauges["kubeproxy_sync_proxy_rules_last_timestamp_seconds"] = time.time()

    def text(self) -> str:
        with self._lock:
            out: list[str] = []
            for h in (self.sync, self.sync_full, self.sync_partial, self.programming):
                out += h.text()
            for name, v in self.gauges.items():
                out += [f"# TYPE {name} gauge", f"{name} {v}"]
            for name, v in self.counters.items():
                out += [f"# TYPE {name} counter", f"{name} {v}"]
            for name, by_label in self.labelled.items():
                out.append(f"# TYPE {name} gauge")
                out += [f"{name}{{{lab}}} {v}" for lab, v in sorted(by_label.items())]
            return "\n".join(out) + "\n"
