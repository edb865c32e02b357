"""The scheduler loop: pending pods -> a node, via the pods/binding subresource.

One pod at a time (so each decision sees the previous ones: bound pods are "assumed" on their
node until the informer shows them). Unschedulable pods get PodScheduled=False/Unschedulable and
a FailedScheduling event, and are retried when nodes change, a pod goes away, or periodically.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.client.informer import object_key
from knet.controllers.base import InformerFactory, WorkQueue, split_key
from knet.controllers.conditions import set_condition
from knet.scheduler.predicates import NodeInfo, NodeSummary, format_unschedulable_message, schedule

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_SCHEDULER = "default-scheduler"
ASSUME_TTL = 30.0
MAX_BINDINGS_IN_FLIGHT = 32


def needs_scheduling(pod: Obj, scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == scheduler_name
            and not meta.get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


def _placement_changed(old: Obj, new: Obj) -> bool:
    """Whether an update changes what the pod counts for on its node (where it is, whether it
    still occupies it, its requests and ports, its workload). Status-only updates -- most of them
    -- leave the node's NodeInfo as it is."""
    if _occupies_node(old) != _occupies_node(new):
        return True
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return (old.get("spec") != new.get("spec") or old_meta.get("labels") != new_meta.get("labels")
            or old_meta.get("ownerReferences") != new_meta.get("ownerReferences"))


def _occupies_node(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, api: Api, informers: InformerFactory, *, scheduler_name: str = DEFAULT_SCHEDULER,
                 retry_interval: float = 30.0) -> None:
        self.api = api
        self.scheduler_name = scheduler_name
        self.retry_interval = retry_interval
        self.recorder = EventRecorder(api, scheduler_name)
        self.pods = informers.get("v1", "pods")
        self.nodes = informers.get("v1", "nodes")
        self.queue = WorkQueue()
        self.unschedulable: set[str] = set()
        self._next_start = 0
        self.assumed: dict[str, tuple[str, Obj, float]] = {}  # pod key -> (node, pod, when)
        self._assumed_on: dict[str, dict[str, Obj]] = {}  # node -> pod key -> assumed pod
        # One NodeInfo per node, in name order, kept between decisions: only the nodes whose pods
        # or object changed since the last decision (marked dirty by the handlers and by
        # assuming) are rebuilt, so a decision reads a plain list.
        self._infos: list[NodeInfo] = []
        self._summaries: list[NodeSummary] = []  # _infos[i].summary(), read by every decision
        self._position: dict[str, int] = {}  # node name -> index in _infos
        self._dirty: set[str] = set()
        self._node_order: list[str] | None = None  # node names sorted; None: re-sort (a node came or went)
        # Binding runs apart from the scheduling loop, as upstream's binding cycle: the next pod is
        # decided while the previous binding (and its event) is on the wire.
        self._bindings: set[asyncio.Task[None]] = set()
        self._binding_slots = asyncio.Semaphore(MAX_BINDINGS_IN_FLIGHT)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.pods.add_indexer("occupying-node", lambda p: [p["spec"]["nodeName"]] if _occupies_node(p) else [])
        self.nodes.add_handler(lambda n: self._retry_unschedulable(), self._node_updated, lambda n: None)
        self.nodes.add_handler(self._node_set_changed, None, self._node_set_changed)

    # -- event wiring ---------------------------------------------------------------------------

    def _touch(self, node: str) -> None:
        self._dirty.add(node)

    def _touch_occupied(self, pod: Obj) -> None:
        if _occupies_node(pod):
            self._touch(pod["spec"]["nodeName"])

    def _assume(self, key: str, node: str, pod: Obj) -> None:
        self._forget_assumed(key)
        self.assumed[key] = (node, pod, time.monotonic())
        self._assumed_on.setdefault(node, {})[key] = pod
        self._touch(node)

    def _forget_assumed(self, key: str) -> None:
        entry = self.assumed.pop(key, None)
        if entry is None:
            return
        node = entry[0]
        on_node = self._assumed_on.get(node)
        if on_node is not None:
            on_node.pop(key, None)
            if not on_node:
                del self._assumed_on[node]
        self._touch(node)

    def _pod_added(self, pod: Obj) -> None:
        self._touch_occupied(pod)
        if needs_scheduling(pod, self.scheduler_name):
            self.queue.add(object_key(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        if _placement_changed(old, new):
            self._touch_occupied(old)
            self._touch_occupied(new)
        if (new.get("spec") or {}).get("nodeName"):
            self._forget_assumed(key)
        if needs_scheduling(new, self.scheduler_name) and key not in self.unschedulable:
            self.queue.add(key)
        elif needs_scheduling(new, self.scheduler_name) and old.get("spec") != new.get("spec"):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self._touch_occupied(pod)
        self._forget_assumed(key)
        self.unschedulable.discard(key)
        if _occupies_node(pod):
            self._retry_unschedulable()  # freed resources may let a pending pod fit

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self._touch(new["metadata"]["name"])
        if old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels") != \
                (new.get("metadata") or {}).get("labels") or \
                (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable"):
            self._retry_unschedulable()

    def _node_set_changed(self, node: Obj) -> None:
        self._node_order = None

    def _retry_unschedulable(self) -> None:
        for key in list(self.unschedulable):
            self.queue.add(key)

    # -- decisions --------------------------------------------------------------------------------

    def node_infos(self) -> Sequence[NodeInfo]:
        """Every node, by name, with the pods on it: those the informer shows bound there, plus the
        ones this scheduler bound that the informer does not show yet (assumed). Kept between
        decisions: only the nodes marked dirty since the last one are rebuilt (with their summaries)."""
        now = time.monotonic()
        for key, (_node, _pod, when) in list(self.assumed.items()):
            current = self.pods.get(key)
            if (current is not None and _occupies_node(current)) or now - when > ASSUME_TTL:
                self._forget_assumed(key)
        if self._node_order is None:
            self._node_order = sorted(self.nodes.keys())
            self._position = {name: i for i, name in enumerate(self._node_order)}
            self._infos = [self._node_info(name) for name in self._node_order]
            self._summaries = [info.summary() for info in self._infos]
        else:
            for name in self._dirty:
                i = self._position.get(name)
                if i is not None:
                    self._infos[i] = info = self._node_info(name)
                    self._summaries[i] = info.summary()
        self._dirty.clear()
        return self._infos

    def _node_info(self, name: str) -> NodeInfo:
        node = self.nodes.get(name)
        if node is None:  # deleted; the node handler re-sorts before the next decision
            return NodeInfo({"metadata": {"name": name}, "spec": {"unschedulable": True}})
        pods = self.pods.by_index("occupying-node", name)
        pods.extend(self._assumed_on.get(name, {}).values())
        return NodeInfo(node, pods)

    async def run(self) -> None:
        async def periodic() -> None:
            while True:
                await asyncio.sleep(self.retry_interval)
                self._retry_unschedulable()
                for pod in self.pods.list():
                    if needs_scheduling(pod, self.scheduler_name):
                        self.queue.add(object_key(pod))

        for pod in self.pods.list():
            if needs_scheduling(pod, self.scheduler_name):
                self.queue.add(object_key(pod))
        ticker = asyncio.create_task(periodic())
        try:
            while True:
                key = await self.queue.get()
                try:
                    await self.schedule_one(key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    log.warning("scheduling %s failed: %s", key, exc)
                    self.queue.add_rate_limited(key)
                finally:
                    self.queue.done(key)
        finally:
            ticker.cancel()
            for task in self._bindings:
                task.cancel()
            self.queue.close()

    async def schedule_one(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not needs_scheduling(pod, self.scheduler_name) or key in self.assumed:
            self.unschedulable.discard(key)
            return
        infos = self.node_infos()
        node, rejected = schedule(pod, infos, start=self._next_start, summaries=self._summaries)
        if infos:
            self._next_start = (self._next_start + len(rejected) + 1) % len(infos)
        ns, name = split_key(key)
        if node is None:
            self.unschedulable.add(key)
            message = format_unschedulable_message(len(infos), rejected, pod)
            await self._mark_unschedulable(pod, message)
            return
        # Assumed before binding, so the next decisions count it on its node (and it is not
        # scheduled twice); forgotten again if the binding fails.
        self._assume(key, node, {**pod, "spec": {**pod["spec"], "nodeName": node}})
        await self._binding_slots.acquire()
        task = asyncio.create_task(self._bind(key, pod, node))
        self._bindings.add(task)
        task.add_done_callback(self._bindings.discard)

    async def _bind(self, key: str, pod: Obj, node: str) -> None:
        # The slot is held for the binding only: the Scheduled event is written after it, as
        # upstream's recorder writes events apart from the binding cycle (holding the slot for
        # both round trips made the slots, not the CPU, the limit on pods bound per second).
        try:
            bound = await self._post_binding(key, node)
        finally:
            self._binding_slots.release()
        if bound:
            self.unschedulable.discard(key)
            ns, name = split_key(key)
            await self.recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, "Normal", "Scheduled",
                                      f"Successfully assigned {ns}/{name} to {node}")

    async def _post_binding(self, key: str, node: str) -> bool:
        ns, name = split_key(key)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.api.create("v1", "pods", binding, namespace=ns, name=name, subresource="binding")
            return True
        except ApiError as exc:
            self._forget_assumed(key)
            if not (exc.not_found or exc.conflict):  # else the pod went away or someone else bound it
                log.warning("binding %s to %s failed: %s", key, node, exc)
                self.queue.add_rate_limited(key)
        except Exception as exc:  # noqa: BLE001 -- e.g. the connection broke: retry later
            self._forget_assumed(key)
            log.warning("binding %s to %s failed: %s", key, node, exc)
            self.queue.add_rate_limited(key)
        return False

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        await self.recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, "Warning", "FailedScheduling",
                                  message)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = pod.get("status") or {}
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None}
        conditions = set_condition(status.get("conditions"), cond, now)
        if conditions == status.get("conditions") and status.get("phase") == "Pending":
            return
        try:
            await self.api.update("v1", "pods", {**pod, "status": {**status, "phase": status.get("phase") or "Pending",
                                                                    "conditions": conditions}},
                                  namespace=pod["metadata"]["namespace"], subresource="status")
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                raise
