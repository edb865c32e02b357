"""Node IPAM (the range allocator): a podCIDR per node from the cluster CIDR.

Allocation is sequential (CidrSet), rebuilt from the nodes' spec.podCIDRs after a restart before
any new allocation, released when a node is deleted. On exhaustion the node gets a
CIDRNotAvailable event and a NetworkUnavailable condition, as upstream records.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import Controller, InformerFactory
from knet.controllers.conditions import set_condition
from knet.ipam.cidrset import CIDRRangeNoCIDRsRemainingError, CidrSet

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def node_pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


def detect_needs_cidr(node: Obj) -> bool:
    return not node_pod_cidrs(node) and not (node.get("metadata") or {}).get("deletionTimestamp")


class NodeIpamController(Controller):
    name = "nodeipam"
    workers = 1  # allocation order is part of the behaviour (sequential like upstream)

    def __init__(self, api: Api, informers: InformerFactory, *, cluster_cidr: str, node_mask_size: int = 24,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.cidrs = CidrSet(cluster_cidr, node_mask_size)
        self.recorder = recorder or EventRecorder(api, "cidrAllocator")
        self.nodes = informers.get("v1", "nodes")
        self._owned: dict[str, list[str]] = {}  # node name -> cidrs we count as used by it
        self._occupied_initial = False
        self.nodes.add_handler(self.enqueue_obj, lambda old, new: self.enqueue_obj(new), self.enqueue_obj)

    def initial_keys(self) -> list[str]:
        self._occupy_existing()
        # oldest first, then by name: nodes registered together get ranges in a stable order
        nodes = sorted(self.nodes.list(), key=lambda n: (n["metadata"].get("creationTimestamp") or "",
                                                         n["metadata"]["name"]))
        return [n["metadata"]["name"] for n in nodes]

    def _occupy_existing(self) -> None:
        """Mark every podCIDR the API already records, before handing out any (restart safety)."""
        for node in self.nodes.list():
            self._record(node["metadata"]["name"], node_pod_cidrs(node))
        self._occupied_initial = True

    def _record(self, name: str, cidrs: list[str]) -> None:
        mine = []
        for cidr in cidrs:
            if self.cidrs.contains(cidr):
                self.cidrs.occupy(cidr)
                mine.append(cidr)
        if mine:
            self._owned[name] = mine

    async def sync_key(self, key: str) -> None:
        if not self._occupied_initial:
            self._occupy_existing()
        node = self.nodes.get(key)
        if node is None:
            for cidr in self._owned.pop(key, []):
                self.cidrs.release(cidr)
                log.info("released %s of deleted node %s", cidr, key)
            return
        if not detect_needs_cidr(node):
            self._record(key, node_pod_cidrs(node))
            return
        try:
            cidr = str(self.cidrs.allocate_next())
        except CIDRRangeNoCIDRsRemainingError:
            await self._report_exhausted(node)
            return
        try:
            await self.api.patch("v1", "nodes", key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except ApiError:
            self.cidrs.release(cidr)
            raise
        self._owned[key] = [cidr]
        log.info("allocated %s to node %s", cidr, key)

    async def _report_exhausted(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        await self.recorder.event({**node, "apiVersion": "v1", "kind": "Node"}, "Normal", "CIDRNotAvailable",
                                  f"Node {name} status is now: CIDRNotAvailable")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fresh = await self.api.get("v1", "nodes", name)
        status = fresh.setdefault("status", {})
        conditions = set_condition(status.get("conditions"), {
            "type": "NetworkUnavailable", "status": "True", "reason": "CIDRNotAvailable",
            "message": f"no pod CIDR left in {self.cidrs.cluster} for this node"}, now)
        if conditions != status.get("conditions"):
            status["conditions"] = conditions
            await self.api.update("v1", "nodes", fresh, subresource="status")
        # retry later: a node deletion may free a range
        self.queue.add_after(name, 10.0)
