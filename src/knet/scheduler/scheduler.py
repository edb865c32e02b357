"""The scheduler loop: pending pods -> a node, via the pods/binding subresource.

One pod at a time (so each decision sees the previous ones: bound pods are "assumed" on their
node until the informer shows them). Unschedulable pods get PodScheduled=False/Unschedulable and
a FailedScheduling event, and are retried when nodes change, a pod goes away, or periodically.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.client.informer import object_key
from knet.controllers.base import InformerFactory, WorkQueue, split_key
from knet.controllers.conditions import set_condition
from knet.scheduler.predicates import NodeInfo, format_unschedulable_message, schedule

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_SCHEDULER = "default-scheduler"
ASSUME_TTL = 30.0


def needs_scheduling(pod: Obj, scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == scheduler_name
            and not meta.get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


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
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.pods.add_indexer("occupying-node", lambda p: [p["spec"]["nodeName"]] if _occupies_node(p) else [])
        self.nodes.add_handler(lambda n: self._retry_unschedulable(), lambda o, n: self._node_updated(o, n),
                               lambda n: None)

    # -- event wiring ---------------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        if needs_scheduling(pod, self.scheduler_name):
            self.queue.add(object_key(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        if (new.get("spec") or {}).get("nodeName"):
            self.assumed.pop(key, None)
        if needs_scheduling(new, self.scheduler_name) and key not in self.unschedulable:
            self.queue.add(key)
        elif needs_scheduling(new, self.scheduler_name) and old.get("spec") != new.get("spec"):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self.assumed.pop(key, None)
        self.unschedulable.discard(key)
        if _occupies_node(pod):
            self._retry_unschedulable()  # freed resources may let a pending pod fit

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels") != \
                (new.get("metadata") or {}).get("labels") or \
                (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable"):
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for key in list(self.unschedulable):
            self.queue.add(key)

    # -- decisions --------------------------------------------------------------------------------

    def node_infos(self) -> list[NodeInfo]:
        infos = {n["metadata"]["name"]: NodeInfo(n, list(self.pods.by_index("occupying-node", n["metadata"]["name"])))
                 for n in self.nodes.list()}
        seen = {object_key(p) for info in infos.values() for p in info.pods}
        now = time.monotonic()
        for key, (node, pod, when) in list(self.assumed.items()):
            if key in seen or now - when > ASSUME_TTL:
                self.assumed.pop(key, None)
            elif node in infos:
                infos[node].pods.append(pod)
        return sorted(infos.values(), key=lambda i: i.name)

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
            self.queue.close()

    async def schedule_one(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not needs_scheduling(pod, self.scheduler_name) or key in self.assumed:
            self.unschedulable.discard(key)
            return
        infos = self.node_infos()
        node, rejected = schedule(pod, infos, start=self._next_start)
        if infos:
            self._next_start = (self._next_start + len(rejected) + 1) % len(infos)
        ns, name = split_key(key)
        if node is None:
            self.unschedulable.add(key)
            message = format_unschedulable_message(len(infos), rejected, pod)
            await self._mark_unschedulable(pod, message)
            return
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.api.create("v1", "pods", binding, namespace=ns, name=name, subresource="binding")
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return  # the pod went away or someone else bound it
            raise
        self.unschedulable.discard(key)
        self.assumed[key] = (node, {**pod, "spec": {**pod["spec"], "nodeName": node}}, time.monotonic())
        await self.recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, "Normal", "Scheduled",
                                  f"Successfully assigned {ns}/{name} to {node}")

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
