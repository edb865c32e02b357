"""ReplicaSet controller: keep spec.replicas active pods from the template; report status."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import UTC, datetime
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import (
    Controller,
    InformerFactory,
    WorkQueue,
    controller_of,
    controller_uid_index,
    orphan_namespace_index,
    owner_reference,
    slow_start_batch,
    split_key,
)
from knet.controllers.conditions import semantically_equal
from knet.controllers.expectations import Expectations
from knet.controllers.podutil import (
    get_condition,
    is_active,
    is_pod_ready,
    parse_time,
    ready_for_long_enough,
)
from knet.selectors import labels_match_selector, matches, selector_requirements

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}
# A ReplicaSet's status is reported at most once per this period (computing it reads all of its
# pods): at once after a quiet period, else when the period since the last report is over.
STATUS_REPORT_PERIOD = 1.0


def pod_from_template(template: Obj, owner: Obj, namespace: str, generate_name: str) -> Obj:
    meta = copy.deepcopy(template.get("metadata") or {})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": generate_name, "namespace": namespace,
                     "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
                     "ownerReferences": [owner_reference(owner)]},
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: pods to delete first come first (upstream ActivePods ordering)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready_since = parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (
        bool(spec.get("nodeName")),                      # unscheduled first
        _PHASE_RANK.get(status.get("phase") or "Pending", 0),  # pending < unknown < running
        is_pod_ready(pod),                               # not ready first
        -(ready_since.timestamp() if ready_since else 0),  # ready for less time first
        -restarts,                                       # more restarts first
        -(created.timestamp() if created else 0),        # newer first
    )


def compute_replica_diff(replicas: int, pods: list[Obj], pending_creates: int = 0) -> tuple[int, list[Obj]]:
    """(pods to create, pods to delete) so that `replicas` active pods exist."""
    active = [p for p in pods if is_active(p)]
    diff = replicas - len(active) - pending_creates
    if diff > 0:
        return diff, []
    if diff < 0 and len(active) > replicas:
        victims = sorted(active, key=deletion_rank)[: len(active) - replicas]
        return 0, victims
    return 0, []


def compute_rs_status(rs: Obj, pods: list[Obj], now: datetime) -> Obj:
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
    # One pass over the pods (a ReplicaSet may have thousands, and this runs on their changes).
    replicas = labeled = ready = available = 0
    for pod in pods:
        if not is_active(pod):
            continue
        replicas += 1
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            labeled += 1
        ready_condition = get_condition(pod, "Ready")
        if ready_condition is None or ready_condition.get("status") != "True":
            continue
        ready += 1
        available += ready_for_long_enough(ready_condition, min_ready, now)
    out: Obj = {
        "replicas": replicas, "fullyLabeledReplicas": labeled, "readyReplicas": ready,
        "availableReplicas": available, "observedGeneration": rs["metadata"].get("generation", 1),
    }
    for cond in (rs.get("status") or {}).get("conditions") or []:
        out.setdefault("conditions", []).append(cond)
    return out


class ReplicaSetController(Controller):
    name = "replicaset"
    # The kind this controller keeps (ReplicationManager: the same for v1 ReplicationControllers,
    # as upstream's replication controller is this one over converted objects).
    api_version, resource, kind = "apps/v1", "replicasets", "ReplicaSet"
    event_source = "replicaset-controller"
    # upstream --concurrent-replicaset-syncs: with two, ReplicaSets busy creating their burst held
    # up the status syncs (readyReplicas) of all the others.
    workers = 5

    def __init__(self, api: Api, informers: InformerFactory, *, recorder: EventRecorder | None = None,
                 burst: int = 500) -> None:
        super().__init__()
        self.api = api
        self.recorder = recorder or EventRecorder(api, self.event_source)
        self.burst = burst
        self.expectations = Expectations()
        self.status_queue = WorkQueue()  # ReplicaSets whose pods changed, for _report_statuses
        self._last_report: dict[str, float] = {}  # key -> when its status was last counted
        self.replicasets = informers.get(self.api_version, self.resource)
        self.pods = informers.get("v1", "pods")
        self.replicasets.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.pods.add_handler(self._pod_changed, self._pod_updated, self._pod_changed)
        # Indexed so a sync costs O(its own pods), not O(every pod in the namespace).
        self.pods.add_indexer("controller-uid", controller_uid_index)
        self.pods.add_indexer("orphans", orphan_namespace_index)
        self.replicasets.add_indexer("namespace", lambda rs: [rs["metadata"].get("namespace") or ""])

    def initial_keys(self) -> list[str]:
        return self.replicasets.keys()

    @staticmethod
    def selector_of(rs: Obj) -> Obj | None:
        """The set's pod selector as a metav1.LabelSelector."""
        return (rs.get("spec") or {}).get("selector")

    def _pod_changed(self, pod: Obj, *, sync: bool = True) -> None:
        ref = controller_of(pod)
        if ref is None:
            if sync and is_active(pod):
                self._enqueue_adopters(pod)
        elif ref.get("kind") == self.kind:
            key = f"{pod['metadata']['namespace']}/{ref['name']}"
            if sync:
                self.queue.add(key)
            self._report_status_soon(key)

    def _enqueue_adopters(self, orphan: Obj) -> None:
        """An orphan pod: sync the ReplicaSets whose selector matches it, one of which may adopt
        it (upstream's addPod/updatePod do the same)."""
        labels = orphan["metadata"].get("labels")
        for rs in self.replicasets.by_index("namespace", orphan["metadata"].get("namespace") or ""):
            if not rs["metadata"].get("deletionTimestamp") and \
                    labels_match_selector(self.selector_of(rs), labels):
                self.enqueue_obj(rs)

    def _report_status_soon(self, key: str) -> None:
        last = self._last_report.get(key)
        wait = 0.0 if last is None else last + STATUS_REPORT_PERIOD - time.monotonic()
        if wait > 0:
            self.status_queue.add_after(key, wait)
        else:
            self.status_queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        """Upstream syncs the ReplicaSet on every update of its pods. Here a sync (which looks at
        all of its pods) follows only the changes that can alter what it does: a pod stopping
        being active, or moving in or out of the set. The rest -- the scheduler binding it, the
        kubelet reporting it Running and Ready -- only changes the status, which the reporter
        recounts at most once a second."""
        old_meta, new_meta = old["metadata"], new["metadata"]
        moved = (old_meta.get("labels") != new_meta.get("labels")
                 or old_meta.get("ownerReferences") != new_meta.get("ownerReferences"))
        if moved:
            self._pod_changed(old)
        self._pod_changed(new, sync=moved or is_active(old) != is_active(new))

    async def run(self) -> None:
        reporter = asyncio.create_task(self._report_statuses())
        try:
            await super().run()
        finally:
            reporter.cancel()
            self.status_queue.close()

    async def _report_statuses(self) -> None:
        """Status from the pod cache, apart from the sync workers. A sync creating its burst of
        500 pods holds its worker for a long while under load, and the other ReplicaSets queue
        behind it: with status written only at the end of syncs, readyReplicas (and so the
        Deployments') stayed 0 while thousands of pods were already Running and Ready."""
        while True:
            key = await self.status_queue.get()
            self._last_report[key] = time.monotonic()
            try:
                rs = self.replicasets.get(key)
                if rs is None:
                    self._last_report.pop(key, None)
                elif not rs["metadata"].get("deletionTimestamp"):
                    rs = {**rs, "apiVersion": self.api_version, "kind": self.kind}
                    await self._update_status(key, rs, self.owned_pods(rs))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the next pod change reports again
                log.warning("%s: status of %s: %s", self.name, key, exc)
            finally:
                self.status_queue.done(key)

    def owned_pods(self, rs: Obj) -> list[Obj]:
        ns, uid = rs["metadata"]["namespace"], rs["metadata"]["uid"]
        return [p for p in self.pods.by_index("controller-uid", uid) if p["metadata"].get("namespace") == ns]

    async def sync_key(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.replicasets.get(key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            self.expectations.forget(key)
            return
        rs = {**rs, "apiVersion": self.api_version, "kind": self.kind}
        pods = self.owned_pods(rs)
        seen = {p["metadata"]["name"] for p in pods}
        pods = await self._release_unmatched(rs, pods)
        await self._adopt_orphans(rs, pods)
        pending_creates, pending_deletes = self.expectations.pending(key, seen)
        pods = [p for p in pods if p["metadata"]["name"] not in pending_deletes]
        replicas = int((rs.get("spec") or {}).get("replicas", 1))
        to_create, to_delete = compute_replica_diff(replicas, pods, len(pending_creates))
        template = (rs.get("spec") or {}).get("template") or {}

        async def create_one() -> None:
            body = pod_from_template(template, rs, ns or "default", f"{name}-")
            created = await self.api.create("v1", "pods", body, namespace=ns)
            self.expectations.expect_create(key, created["metadata"]["name"])
            await self.recorder.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

        if to_create:
            await slow_start_batch(min(to_create, self.burst), create_one)
        for pod in to_delete:
            try:
                await self.api.delete("v1", "pods", pod["metadata"]["name"], namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise
            self.expectations.expect_delete(key, pod["metadata"]["name"])
            await self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        # Status follows the pods through the reporter (at most once a second per ReplicaSet): a
        # sync writes it only for a new spec (observedGeneration), so that the stream of events
        # from a thousand pods starting does not recount all of them for each event.
        if (rs.get("status") or {}).get("observedGeneration") != rs["metadata"].get("generation", 1):
            # the status reporter may have written a newer view meanwhile: not older
            await self._update_status(key, rs, self.owned_pods(rs) if to_create or to_delete else pods)
        else:
            self._report_status_soon(key)

    async def _update_status(self, key: str, rs: Obj, pods: list[Obj]) -> None:
        """Write the status computed from `pods` if it differs from the cached ReplicaSet's."""
        status = compute_rs_status(rs, pods, datetime.now(UTC))
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and status["readyReplicas"] > status["availableReplicas"]:
            self.status_queue.add_after(key, 1.0)  # pods become available with time, not with an event
        current = self.replicasets.get(key) or rs
        if semantically_equal(current.get("status") or {}, status):
            return
        try:
            await self.api.update(self.api_version, self.resource, {**current, "apiVersion": self.api_version,
                                                                    "kind": self.kind, "status": status},
                                  namespace=rs["metadata"]["namespace"], subresource="status")
        except ApiError as exc:
            if exc.conflict:
                self.status_queue.add_after(key, 0.1)  # a newer version is in flight; count again
            elif not exc.not_found:
                raise

    async def _release_unmatched(self, rs: Obj, owned: list[Obj]) -> list[Obj]:
        """Owned pods whose labels no longer match the selector are let go (their ownerReference
        removed), as upstream ClaimPods does: relabelling a pod takes it out of the set."""
        # parsed once per sync, not once per owned pod (a sync looks at up to 1,000 of them)
        requirements = selector_requirements(self.selector_of(rs))
        kept = []
        for pod in owned:
            if matches(requirements, pod["metadata"].get("labels")):
                kept.append(pod)
                continue
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != rs["metadata"]["uid"]]
            try:
                await self.api.patch("v1", "pods", pod["metadata"]["name"],
                                     {"metadata": {"ownerReferences": refs or None}},
                                     namespace=pod["metadata"]["namespace"])
            except ApiError as exc:
                if not exc.not_found:
                    raise
        return kept

    async def _adopt_orphans(self, rs: Obj, owned: list[Obj]) -> None:
        """Pods matching the selector with no controller become ours (upstream ClaimPods)."""
        selector = self.selector_of(rs)
        ns = rs["metadata"]["namespace"]
        for pod in self.pods.by_index("orphans", ns):
            if controller_of(pod) is not None or not is_active(pod):
                continue
            if not labels_match_selector(selector, pod["metadata"].get("labels")):
                continue
            refs = list(pod["metadata"].get("ownerReferences") or []) + [owner_reference(rs)]
            try:
                adopted = await self.api.patch("v1", "pods", pod["metadata"]["name"],
                                               {"metadata": {"ownerReferences": refs}}, namespace=ns)
                owned.append(adopted)
            except ApiError as exc:
                if not exc.not_found:
                    raise


class ReplicationManager(ReplicaSetController):
    """The replication controller: v1 ReplicationControllers kept as ReplicaSets are (upstream
    pkg/controller/replication runs the ReplicaSet controller over converted objects); their
    selector is a plain label map."""

    name = "replicationcontroller"
    api_version, resource, kind = "v1", "replicationcontrollers", "ReplicationController"
    event_source = "replication-controller"

    @staticmethod
    def selector_of(rc: Obj) -> Obj | None:
        selector = (rc.get("spec") or {}).get("selector")
        return None if selector is None else {"matchLabels": selector}
