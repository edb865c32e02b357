"""Which endpoints a node sends a service port's traffic to (upstream CategorizeEndpoints).

Ready endpoints first; when a policy has none, its serving-and-terminating endpoints (KEP-1669).
Topology-aware hints are not used: every ready endpoint is a cluster endpoint.
"""

from __future__ import annotations

from typing import NamedTuple

from knet.proxy.model import Endpoint, ServicePort


class Categorized(NamedTuple):
    cluster: list[Endpoint]
    local: list[Endpoint]
    all_reachable: list[Endpoint]
    has_any: bool


def categorize_endpoints(endpoints: list[Endpoint], svc: ServicePort) -> Categorized:
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if svc.uses_cluster_endpoints:
        cluster = [e for e in endpoints if e.ready]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not svc.uses_local_endpoints:
        return Categorized(cluster, [], cluster, has_any)

    local_ready = local_terminating = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.is_local
        elif e.serving and e.terminating:
            has_any = True
            local_terminating = local_terminating or e.is_local
    if local_ready:
        local = [e for e in endpoints if e.is_local and e.ready]
    elif local_terminating:
        local = [e for e in endpoints if e.is_local and e.serving and e.terminating]

    if not svc.uses_cluster_endpoints:
        return Categorized(cluster, local, local, has_any)
    if not local:
        return Categorized(cluster, local, cluster, has_any)
    merged = {str(e): e for e in cluster}
    merged.update((str(e), e) for e in local)
    return Categorized(cluster, local, [merged[k] for k in sorted(merged)], has_any)
