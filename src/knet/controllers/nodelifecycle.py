"""Node lifecycle: a node whose heartbeats (its Lease in kube-node-lease, or the Ready condition's
lastHeartbeatTime) stop for --node-monitor-grace-period gets Ready=Unknown ("Kubelet stopped
posting node status."), its pods Ready=False so their endpoints stop being ready, and the
node.kubernetes.io/unreachable taints; not-ready/unreachable taints follow the Ready condition.

Heartbeats are timed by when this controller *observed* them change (as upstream does), so
clock skew between components does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import InformerFactory, WorkQueue
from knet.controllers.conditions import set_condition
from knet.controllers.podutil import get_condition, is_pod_ready, parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def heartbeat_of(node: Obj, lease: Obj | None) -> tuple[str, str]:
    ready = get_condition(node, "Ready") or {}
    renew = ((lease or {}).get("spec") or {}).get("renewTime") or ""
    return (str(ready.get("lastHeartbeatTime") or ""), str(renew))


def compute_unknown_conditions(node: Obj, now: str) -> list[Obj]:
    conditions = list((node.get("status") or {}).get("conditions") or [])
    for ctype in NODE_CONDITIONS:
        existing = next((c for c in conditions if c.get("type") == ctype), None)
        if existing is None and ctype != "Ready":
            continue
        conditions = set_condition(conditions, {
            "type": ctype, "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": (existing or {}).get("lastHeartbeatTime") or now}, now)
    return conditions


def compute_taints(node: Obj, now: str) -> list[Obj]:
    """The node's taints with not-ready/unreachable set to match its Ready condition."""
    ready = (get_condition(node, "Ready") or {}).get("status")
    want_key = {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready or "Unknown")
    if ready is None:
        want_key = None  # a node that never posted status: kubelet has not started yet
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") not in (NOT_READY, UNREACHABLE)
              or t.get("key") == want_key]
    if want_key:
        for effect in ("NoSchedule", "NoExecute"):
            if not any(t.get("key") == want_key and t.get("effect") == effect for t in taints):
                taint: Obj = {"key": want_key, "effect": effect}
                if effect == "NoExecute":
                    taint["timeAdded"] = now
                taints.append(taint)
    return taints


def compute_eviction_time(pod: Obj, node: Obj, now: datetime) -> datetime | None:
    """When the taint-eviction controller deletes this pod from its node (None: never).
    An untolerated NoExecute taint evicts at once; tolerated ones after the smallest
    tolerationSeconds counted from the taint's timeAdded."""
    from knet.scheduler.predicates import tolerates

    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: datetime | None = None
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return now
        limits = [int(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
        if not limits:
            continue  # tolerated forever
        added = parse_time(taint.get("timeAdded")) or now
        at = added + timedelta(seconds=max(0, min(limits)))
        due = at if due is None or at < due else due
    return due


class NodeLifecycleController:
    name = "nodelifecycle"

    def __init__(self, api: Api, informers: InformerFactory, *, grace_period: float = 40.0,
                 monitor_period: float = 5.0, recorder: EventRecorder | None = None,
                 clock=time.monotonic) -> None:
        self.api = api
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.clock = clock
        self.recorder = recorder or EventRecorder(api, "node-controller")
        self.nodes = informers.get("v1", "nodes")
        self.leases = informers.get("coordination.k8s.io/v1", "leases", namespace=LEASE_NAMESPACE)
        self.pods = informers.get("v1", "pods")
        self.pods.add_indexer("nodeName", lambda p: [p["spec"]["nodeName"]] if (p.get("spec") or {}).get("nodeName")
                              else [])
        self._observed: dict[str, tuple[tuple[str, str], float]] = {}
        # taints follow Ready as soon as it changes (a node that just turned Ready must not keep
        # repelling pods until the next monitor pass)
        self.taint_queue = WorkQueue()
        self.nodes.add_handler(on_add=lambda n: self.taint_queue.add(n["metadata"]["name"]),
                               on_update=self._node_updated)
        self.passes = 0  # completed monitor passes (tests and logs wait on it)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        before = (get_condition(old, "Ready") or {}).get("status")
        after = (get_condition(new, "Ready") or {}).get("status")
        if before != after or (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints"):
            self.taint_queue.add(new["metadata"]["name"])

    async def run(self) -> None:
        taints = asyncio.create_task(self._taint_worker())
        try:
            while True:
                try:
                    await self.monitor_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    log.warning("node lifecycle pass failed: %s", exc)
                await asyncio.sleep(self.monitor_period)
        finally:
            taints.cancel()
            self.taint_queue.close()

    async def _taint_worker(self) -> None:
        while True:
            name = await self.taint_queue.get()
            try:
                node = self.nodes.get(name)
                if node is not None:
                    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    await self._sync_taints(node, now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("taints of node %s: %s", name, exc)
                self.taint_queue.add_rate_limited(name)
            finally:
                self.taint_queue.done(name)

    async def monitor_once(self) -> None:
        now_mono = self.clock()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        names = set()
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            names.add(name)
            beat = heartbeat_of(node, self.leases.get(f"{LEASE_NAMESPACE}/{name}"))
            prev = self._observed.get(name)
            if prev is None or prev[0] != beat:
                self._observed[name] = (beat, now_mono)
                prev = self._observed[name]
            ready = (get_condition(node, "Ready") or {}).get("status")
            if now_mono - prev[1] > self.grace_period and ready is not None and ready != "Unknown":
                await self._mark_unknown(node, now)
                continue
            if ready == "Unknown" and now_mono - prev[1] > self.grace_period:
                await self._mark_pods_not_ready(name)  # keep pods not-ready while it stays silent
            await self._sync_taints(node, now)
            await self._evict_for_taints(node)
        for gone in set(self._observed) - names:
            self._observed.pop(gone, None)
        self.passes += 1

    async def _mark_unknown(self, node: Obj, now: str) -> None:
        name = node["metadata"]["name"]
        log.info("node %s stopped posting status; marking Ready=Unknown", name)
        try:
            fresh = await self.api.get("v1", "nodes", name)
            fresh.setdefault("status", {})["conditions"] = compute_unknown_conditions(fresh, now)
            fresh = await self.api.update("v1", "nodes", fresh, subresource="status")
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return
            raise
        await self.recorder.event({**node, "apiVersion": "v1", "kind": "Node"}, "Normal", "NodeNotReady",
                                  f"Node {name} status is now: NodeNotReady")
        await self._sync_taints(fresh, now)
        await self._mark_pods_not_ready(name)

    async def _sync_taints(self, node: Obj, now: str) -> None:
        taints = compute_taints(node, now)
        current = (node.get("spec") or {}).get("taints") or []
        if [(t.get("key"), t.get("effect")) for t in taints] == [(t.get("key"), t.get("effect")) for t in current]:
            return
        try:
            fresh = await self.api.get("v1", "nodes", node["metadata"]["name"])
            taints = compute_taints(fresh, now)
            fresh.setdefault("spec", {})["taints"] = taints
            if not taints:
                fresh["spec"].pop("taints")
            await self.api.update("v1", "nodes", fresh)
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                raise

    async def _evict_for_taints(self, node: Obj) -> None:
        if not any(t.get("effect") == "NoExecute" for t in (node.get("spec") or {}).get("taints") or []):
            return
        now = datetime.now(UTC)
        for pod in self.pods.by_index("nodeName", node["metadata"]["name"]):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            due = compute_eviction_time(pod, node, now)
            if due is None or due > now:
                continue
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            log.info("evicting %s/%s from node %s (NoExecute taint)", ns, name, node["metadata"]["name"])
            await self.recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, "Normal",
                                      "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
            try:
                await self.api.delete("v1", "pods", name, namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for pod in self.pods.by_index("nodeName", node_name):
            if not is_pod_ready(pod):
                continue
            status = dict(pod.get("status") or {})
            status["conditions"] = set_condition(status.get("conditions"), {
                "type": "Ready", "status": "False", "reason": "NodeNotReady",
                "message": "Node is not ready"}, now)
            try:
                await self.api.update("v1", "pods", {**pod, "status": status},
                                      namespace=pod["metadata"]["namespace"], subresource="status")
            except ApiError as exc:
                if not (exc.not_found or exc.conflict):
                    raise
            await self.recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, "Warning", "NodeNotReady",
                                      "Node is not ready")
