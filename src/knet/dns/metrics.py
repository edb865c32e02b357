"""CoreDNS's Prometheus metrics, counted in plain dicts and rendered in the text format.

Names and labels follow CoreDNS (plugin/metrics/vars, plugin/cache/metrics.go). Counting is a
dict increment and a bisect on the request path; rendering happens only on a scrape.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections import defaultdict

import dns.rcode
import dns.rdatatype

# prometheus.ExponentialBuckets(0.00025, 2, 16), CoreDNS's request-duration buckets.
DURATION_BUCKETS = tuple(0.00025 * 2**i for i in range(16))
MONITORED_TYPES = {"A", "AAAA", "NS", "PTR", "SRV", "TXT", "CNAME", "SOA", "MX", "NAPTR", "DS", "DNSKEY",
                   "HTTPS", "SVCB", "IXFR", "AXFR", "ANY"}


@functools.lru_cache(maxsize=1024)
def type_label(qtype: int) -> str:
    text = dns.rdatatype.to_text(qtype) if qtype >= 0 else "other"
    return text if text in MONITORED_TYPES else "other"


@functools.lru_cache(maxsize=64)
def rcode_label(rcode: int) -> str:
    try:
        return dns.rcode.to_text(rcode)
    except Exception:  # noqa: BLE001 - unknown rcodes are labelled by number
        return str(rcode)


class Metrics:
    def __init__(self, server: str = "dns://:53", zone: str = ".") -> None:
        self.server = server
        self.zone = zone
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # (proto, family, type)
        self.responses: dict[str, int] = defaultdict(int)  # rcode
        self.bucket_counts: dict[str, list[int]] = {}  # type -> per-bucket counts (+Inf last)
        self.duration_sum: dict[str, float] = defaultdict(float)
        self.cache_hits: dict[str, int] = defaultdict(int)  # "success" | "denial"
        self.cache_misses = 0
        self.cache_entries = 0
        self.forward_requests: dict[str, int] = defaultdict(int)
        self.dropped = 0
        self.panics = 0

    def observe(self, proto: str, family: str, qtype: str, rcode: str, seconds: float) -> None:
        self.requests[(proto, family, qtype)] += 1
        self.responses[rcode] += 1
        counts = self.bucket_counts.get(qtype)
        if counts is None:
            counts = self.bucket_counts[qtype] = [0] * (len(DURATION_BUCKETS) + 1)
        counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum[qtype] += seconds

    def render(self) -> str:
        s, z = self.server, self.zone
        out = [
            "# HELP coredns_build_info A metric with a constant '1' value labeled by version, revision, and goversion.",
            "# TYPE coredns_build_info gauge",
            'coredns_build_info{goversion="python",revision="knet",version="1.11.1"} 1',
            "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.",
            "# TYPE coredns_dns_requests_total counter",
        ]
        for (proto, family, qtype), n in sorted(self.requests.items()):
            out.append(f'coredns_dns_requests_total{{family="{family}",proto="{proto}",server="{s}",'
                       f'type="{qtype}",view="",zone="{z}"}} {n}')
        out += ["# HELP coredns_dns_responses_total Counter of response status codes.",
                "# TYPE coredns_dns_responses_total counter"]
        for rcode, n in sorted(self.responses.items()):
            out.append(f'coredns_dns_responses_total{{plugin="",rcode="{rcode}",server="{s}",view="",zone="{z}"}} {n}')
        out += ["# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took per zone.",
                "# TYPE coredns_dns_request_duration_seconds histogram"]
        for qtype, counts in sorted(self.bucket_counts.items()):
            labels = f'server="{s}",type="{qtype}",view="",zone="{z}"'
            running = 0
            for bound, n in zip(DURATION_BUCKETS, counts, strict=False):
                running += n
                out.append(f'coredns_dns_request_duration_seconds_bucket{{{labels},le="{bound:g}"}} {running}')
            running += counts[-1]
            out.append(f'coredns_dns_request_duration_seconds_bucket{{{labels},le="+Inf"}} {running}')
            out.append(f"coredns_dns_request_duration_seconds_sum{{{labels}}} {self.duration_sum[qtype]:.9f}")
            out.append(f"coredns_dns_request_duration_seconds_count{{{labels}}} {running}")
        out += ["# HELP coredns_cache_hits_total The count of cache hits.", "# TYPE coredns_cache_hits_total counter"]
        for kind in ("denial", "success"):
            out.append(f'coredns_cache_hits_total{{server="{s}",type="{kind}",view="",zones="{z}"}} {self.cache_hits[kind]}')
        out += ["# HELP coredns_cache_misses_total The count of cache misses.",
                "# TYPE coredns_cache_misses_total counter",
                f'coredns_cache_misses_total{{server="{s}",view="",zones="{z}"}} {self.cache_misses}',
                "# HELP coredns_cache_entries The number of elements in the cache.",
                "# TYPE coredns_cache_entries gauge",
                f'coredns_cache_entries{{server="{s}",type="success",view="",zones="{z}"}} {self.cache_entries}']
        out += ["# HELP coredns_forward_requests_total Counter of requests made per upstream.",
                "# TYPE coredns_forward_requests_total counter"]
        for to, n in sorted(self.forward_requests.items()):
            out.append(f'coredns_forward_requests_total{{to="{to}"}} {n}')
        out += ["# HELP knet_dns_dropped_total Queries dropped unanswered (malformed, rate limited).",
                "# TYPE knet_dns_dropped_total counter", f"knet_dns_dropped_total {self.dropped}"]
        return "\n".join(out) + "\n"
