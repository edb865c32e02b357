"""The kubelet's gate on the pod network (upstream pkg/kubelet/kubelet.go SyncPod and
fastStatusUpdateOnce): until the runtime's network is ready -- on a real node, until the network
add-on has written the CNI config -- only hostNetwork pods start; the others wait with a
`NetworkNotReady` Warning and are tried again a second later (pod_workers.go's
backOffOnTransientErrorPeriod). The node's Ready condition follows as soon as the network is
ready, not at the next periodic status report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from knet.node.nodeobject import NETWORK_NOT_READY

REASON = "NetworkNotReady"                   # events.NetworkNotReady
NOT_READY_MESSAGE = "network is not ready"   # kubelet.go NetworkNotReadyErrorMsg
RETRY_SECONDS = 1.0                          # backOffOnTransientErrorPeriod
POLL_SECONDS = 0.1                           # fastStatusUpdateOnce's period
SLOW_POLL_SECONDS = 1.0


def pod_network_error(pod: dict[str, Any], network_ready: bool) -> str | None:
    """The message a pod waits with, or None if it may start: upstream's
    `network is not ready: container runtime network not ready: NetworkReady=false
    reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized`.
    hostNetwork pods never wait (that is how the network add-on itself starts). Pure."""
    if network_ready or (pod.get("spec") or {}).get("hostNetwork"):
        return None
    return f"{NOT_READY_MESSAGE}: {NETWORK_NOT_READY}"


class NetworkNode(Protocol):
    def network_ready(self) -> bool: ...


async def watch_network_ready(nodes: Iterable[NetworkNode], report: Callable[[], None],
                              fast: float = POLL_SECONDS, slow: float = SLOW_POLL_SECONDS) -> None:
    """Call `report` (post the node status now) whenever some node's network readiness changed:
    checked every `fast` seconds while a node is not ready (its add-on pod is starting), every
    `slow` seconds once all are (someone removed the config)."""
    nodes = list(nodes)
    ready = [n.network_ready() for n in nodes]
    while True:
        await asyncio.sleep(slow if all(ready) else fast)
        now = [n.network_ready() for n in nodes]
        if now != ready:
            report()
        ready = now
