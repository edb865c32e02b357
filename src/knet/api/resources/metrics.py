"""metrics.k8s.io/v1beta1 NodeMetrics and PodMetrics: read-only (get, list), answered from the
apiserver's metrics scraper (knet.api.metrics), never stored."""

from __future__ import annotations

from knet.api.registry import ResourceType

READ_ONLY = ("get", "list")

NODES = ResourceType(group="metrics.k8s.io", version="v1beta1", resource="nodes", kind="NodeMetrics",
                     namespaced=False, verbs=READ_ONLY)
PODS = ResourceType(group="metrics.k8s.io", version="v1beta1", resource="pods", kind="PodMetrics",
                    namespaced=True, verbs=READ_ONLY)
RESOURCES = (NODES, PODS)
