"""DaemonSet controller: one pod per eligible node (nodeSelector, required node affinity, taints
with the tolerations upstream adds to daemon pods), pinned with nodeAffinity matchFields
metadata.name (the scheduler binds it), rolling replacement of outdated pods, status.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers import history
from knet.controllers.base import (
    Controller,
    InformerFactory,
    controller_of,
    controller_uid_index,
    owner_reference,
    split_key,
)
from knet.controllers.conditions import semantically_equal
from knet.controllers.deployment import compute_template_hash, resolve_int_or_percent
from knet.controllers.expectations import Expectations
from knet.controllers.podutil import is_active, is_pod_available, is_pod_ready, is_terminal
from knet.scheduler.predicates import node_matches_selector_and_affinity, untolerated_taint

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REVISION_HASH = "controller-revision-hash"
TEMPLATE_GENERATION = "pod-template-generation"

# Tolerations the DaemonSet controller adds to every daemon pod (pkg/controller/daemon/util).
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}


def daemon_pod_tolerations(template_spec: Obj) -> list[Obj]:
    tolerations = list(template_spec.get("tolerations") or [])
    extra = DAEMON_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if template_spec.get("hostNetwork") else [])
    for t in extra:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tolerations):
            tolerations.append(t)
    return tolerations


def daemon_probe(ds: Obj) -> Obj:
    """A stand-in daemon pod (template spec + the automatic tolerations) to test nodes against."""
    spec = dict(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    spec["tolerations"] = daemon_pod_tolerations(spec)
    return {"metadata": {}, "spec": spec}


def node_should_run_daemon(ds: Obj, node: Obj, probe: Obj | None = None) -> bool:
    """The node passes the template's nodeSelector/affinity and its taints are tolerated."""
    probe = probe or daemon_probe(ds)
    if not node_matches_selector_and_affinity(probe, node):
        return False
    return untolerated_taint(probe, node) is None


def pinned_affinity(affinity: Obj | None, node_name: str) -> Obj:
    """Replace required node affinity terms' matchFields with metadata.name In [node] (upstream
    ReplaceDaemonSetPodNodeNameNodeAffinity), keeping the template's own match expressions."""
    affinity = copy.deepcopy(affinity or {})
    node_aff = affinity.setdefault("nodeAffinity", {})
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or [{}]
    field_req = {"key": "metadata.name", "operator": "In", "values": [node_name]}
    new_terms = []
    for term in terms:
        t = dict(term)
        t["matchFields"] = [field_req]
        new_terms.append(t)
    node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": new_terms}
    return affinity


def pod_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: bound nodeName, else its pinned matchFields."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return None


def ds_template_hash(ds: Obj) -> str:
    return compute_template_hash(((ds.get("spec") or {}).get("template")) or {},
                                 int((ds.get("status") or {}).get("collisionCount") or 0))


def daemon_pod(ds: Obj, node_name: str, template_hash: str) -> Obj:
    meta, spec = ds["metadata"], ds.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[REVISION_HASH] = template_hash
    labels[TEMPLATE_GENERATION] = str(meta.get("generation", 1))
    pod_spec = template.get("spec") or {}
    pod_spec["tolerations"] = daemon_pod_tolerations(pod_spec)
    pod_spec["affinity"] = pinned_affinity(pod_spec.get("affinity"), node_name)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"], "labels": labels,
                         "annotations": (template.get("metadata") or {}).get("annotations") or {},
                         "ownerReferences": [owner_reference(ds)]},
            "spec": pod_spec}


@dataclass
class DaemonPlan:
    create_on: list[str] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


ShouldRun = Callable[[Obj], bool]


def eligibility(ds: Obj) -> ShouldRun:
    """node -> whether the DaemonSet should run on it (node_should_run_daemon, probe built once)."""
    probe = daemon_probe(ds)
    return lambda node: node_should_run_daemon(ds, node, probe)


def compute_daemon_plan(ds: Obj, nodes: list[Obj], pods: list[Obj], template_hash: str, now: datetime,
                        should_run: ShouldRun | None = None) -> DaemonPlan:
    """`should_run(node)`, if given, answers node_should_run_daemon(ds, node) (from a cache)."""
    plan = DaemonPlan()
    by_node: dict[str, list[Obj]] = {}
    for p in pods:
        node = pod_node(p)
        if node:
            by_node.setdefault(node, []).append(p)
        elif is_active(p):
            plan.delete.append(p)  # a daemon pod for no node: not ours to keep
    node_names = {n["metadata"]["name"] for n in nodes}
    for node_name, node_pods in by_node.items():
        if node_name not in node_names:
            plan.delete.extend(p for p in node_pods if not (p.get("metadata") or {}).get("deletionTimestamp"))
    spec = ds.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    should_run = should_run or eligibility(ds)
    outdated: list[Obj] = []
    unavailable = 0
    desired = 0
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        wanted = should_run(node)
        node_pods = by_node.get(name, [])
        failed = [p for p in node_pods if is_terminal(p) and (p.get("status") or {}).get("phase") == "Failed"]
        plan.delete.extend(failed)
        active = [p for p in node_pods if is_active(p)]
        if not wanted:
            plan.delete.extend(active)
            continue
        desired += 1
        if not active:
            if not any((p.get("metadata") or {}).get("deletionTimestamp") for p in node_pods):
                plan.create_on.append(name)
            unavailable += 1
            continue
        # keep the oldest; extra copies go
        active.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        plan.delete.extend(active[1:])
        keep = active[0]
        if not is_pod_available(keep, min_ready, now):
            unavailable += 1
        if (keep["metadata"].get("labels") or {}).get(REVISION_HASH) != template_hash:
            outdated.append(keep)
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
        max_unavailable = resolve_int_or_percent((strategy.get("rollingUpdate") or {}).get("maxUnavailable"),
                                                 desired, round_up=False, default="1") or 1
        # not-ready outdated pods first: replacing them costs no availability
        outdated.sort(key=lambda p: is_pod_ready(p))
        budget = max_unavailable - unavailable
        for p in outdated:
            if not is_pod_available(p, min_ready, now):
                plan.delete.append(p)
            elif budget > 0:
                plan.delete.append(p)
                budget -= 1
    return plan


def compute_daemon_status(ds: Obj, nodes: list[Obj], pods: list[Obj], template_hash: str, now: datetime,
                          should_run: ShouldRun | None = None) -> Obj:
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    should_run = should_run or eligibility(ds)
    eligible = {n["metadata"]["name"] for n in nodes if should_run(n)}
    scheduled, misscheduled, ready, available, updated = set(), set(), 0, 0, 0
    for p in pods:
        if not is_active(p):
            continue
        node = (p.get("spec") or {}).get("nodeName")
        if not node:
            continue
        if node in eligible:
            if node in scheduled:
                continue
            scheduled.add(node)
            ready += is_pod_ready(p)
            available += is_pod_available(p, min_ready, now)
            updated += (p["metadata"].get("labels") or {}).get(REVISION_HASH) == template_hash
        else:
            misscheduled.add(node)
    return {"currentNumberScheduled": len(scheduled), "numberMisscheduled": len(misscheduled),
            "desiredNumberScheduled": len(eligible), "numberReady": ready, "numberAvailable": available,
            "numberUnavailable": max(len(eligible) - available, 0), "updatedNumberScheduled": updated,
            "observedGeneration": ds["metadata"].get("generation", 1)}


class DaemonSetController(Controller):
    name = "daemonset"

    def __init__(self, api: Api, informers: InformerFactory, *, recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.recorder = recorder or EventRecorder(api, "daemonset-controller")
        self.expectations = Expectations()
        self.daemonsets = informers.get("apps/v1", "daemonsets")
        self.pods = informers.get("v1", "pods")
        self.nodes = informers.get("v1", "nodes")
        self.revisions = informers.get("apps/v1", "controllerrevisions")
        self.revisions.add_indexer("controller-uid", controller_uid_index)
        self.daemonsets.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.pods.add_handler(self._pod_changed, lambda o, n: self._pod_changed(n), self._pod_changed)
        self.nodes.add_handler(self._all, lambda o, n: self._node_updated(o, n), self._all)
        # A sync reads its own pods by owner (not all of kube-system) ...
        self.pods.add_indexer("controller-uid", controller_uid_index)
        # ... and whether each node should run the daemon from here: (node object, template
        # hash, answer) per DaemonSet and node, recomputed only when either changed. With 1,000
        # nodes, every kube-proxy pod event otherwise re-checked 1,000 selectors and taint lists twice.
        self._should_run: dict[tuple[str, str], tuple[Obj, str, bool]] = {}

    def initial_keys(self) -> list[str]:
        return self.daemonsets.keys()

    def _all(self, _obj: Obj | None = None) -> None:
        for key in self.daemonsets.keys():
            self.queue.add(key)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("labels") == (new.get("metadata") or {}).get("labels") and \
                (old.get("spec") or {}).get("taints") == (new.get("spec") or {}).get("taints"):
            return
        # Only the DaemonSets for which the node's eligibility changed (upstream's updateNode):
        # the node lifecycle controller lifting the not-ready taint off 1,000 fresh nodes
        # otherwise re-synced every DaemonSet over all nodes 1,000 times.
        for key in self.daemonsets.keys():
            ds = self.daemonsets.get(key)
            if ds is None:
                continue
            should_run = eligibility(ds)
            if should_run(old) != should_run(new):
                self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref and ref.get("kind") == "DaemonSet":
            self.queue.add(f"{pod['metadata']['namespace']}/{ref['name']}")

    def _should_run_cached(self, ds: Obj, key: str, template_hash: str) -> ShouldRun:
        uncached = eligibility(ds)
        cache = self._should_run

        def should_run(node: Obj) -> bool:
            slot = (key, node["metadata"]["name"])
            hit = cache.get(slot)
            if hit is not None and hit[0] is node and hit[1] == template_hash:
                return hit[2]
            answer = uncached(node)
            cache[slot] = (node, template_hash, answer)
            return answer

        return should_run

    async def _construct_history(self, ds: Obj, pods: list[Obj]) -> str:
        """constructHistory + cleanupHistory: the ControllerRevision of the current template (made,
        or renumbered when an older one matches: a rollback), old ones beyond revisionHistoryLimit
        that no pod runs deleted. Returns the hash its pods are labelled with."""
        ns, uid = ds["metadata"]["namespace"], ds["metadata"]["uid"]
        revisions = [r for r in self.revisions.by_index("controller-uid", uid) if r["metadata"].get("namespace") == ns]
        data = history.template_patch(ds)
        current = history.sorted_revisions(history.equal_revisions(revisions, data))
        old = [r for r in revisions if r.get("data") != data]
        number = history.next_revision(old)
        if current:
            cur = current[-1]
            if int(cur.get("revision") or 0) < number:
                cur = await self.api.update("apps/v1", "controllerrevisions", {**cur, "revision": number},
                                            namespace=ns)
        else:
            hash_ = ds_template_hash(ds)
            revision = history.new_revision(ds, data, number, hash_=hash_, hash_label=REVISION_HASH)
            try:
                cur = await self.api.create("apps/v1", "controllerrevisions", revision, namespace=ns)
            except ApiError as exc:
                if not exc.already_exists:
                    raise
                cur = await self.api.get("apps/v1", "controllerrevisions", revision["metadata"]["name"], namespace=ns)
                if cur.get("data") != data:  # a hash collision: label pods by the template all the same
                    log.warning("daemonset %s: revision %s holds another template", ds["metadata"]["name"],
                                revision["metadata"]["name"])
                    return hash_
        live = {(p["metadata"].get("labels") or {}).get(REVISION_HASH) for p in pods}
        limit = int((ds.get("spec") or {}).get("revisionHistoryLimit", 10))
        excess = len(old) - limit
        for rev in history.sorted_revisions(old):
            if excess <= 0:
                break
            if (rev["metadata"].get("labels") or {}).get(REVISION_HASH) in live:
                continue
            try:
                await self.api.delete("apps/v1", "controllerrevisions", rev["metadata"]["name"], namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise
            excess -= 1
        return (cur["metadata"].get("labels") or {}).get(REVISION_HASH) or ds_template_hash(ds)

    async def sync_key(self, key: str) -> None:
        ns, name = split_key(key)
        ds = self.daemonsets.get(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            self.expectations.forget(key)
            return
        ds = {**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}
        uid = ds["metadata"]["uid"]
        pods = [p for p in self.pods.by_index("controller-uid", uid) if p["metadata"].get("namespace") == ns]
        seen = {p["metadata"]["name"] for p in pods}
        pending_creates, pending_deletes = self.expectations.pending(key, seen)
        pods = [p for p in pods if p["metadata"]["name"] not in pending_deletes]
        if pending_creates:
            # wait for our own creations to show up before deciding again (avoids doubles)
            self.queue.add_after(key, 0.2)
            return
        nodes = self.nodes.list()
        template_hash = await self._construct_history(ds, pods)
        now = datetime.now(UTC)
        should_run = self._should_run_cached(ds, key, template_hash)
        plan = compute_daemon_plan(ds, nodes, pods, template_hash, now, should_run)
        for node_name in plan.create_on:
            created = await self.api.create("v1", "pods", daemon_pod(ds, node_name, template_hash), namespace=ns)
            self.expectations.expect_create(key, created["metadata"]["name"])
            await self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        for pod in plan.delete:
            try:
                await self.api.delete("v1", "pods", pod["metadata"]["name"], namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise
            self.expectations.expect_delete(key, pod["metadata"]["name"])
            await self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        status = compute_daemon_status(ds, nodes, pods, template_hash, now, should_run)
        current = {k: v for k, v in (ds.get("status") or {}).items() if k in status}
        if not semantically_equal(current, status):
            try:
                merged = {**(ds.get("status") or {}), **status}
                await self.api.update("apps/v1", "daemonsets", {**ds, "status": merged}, namespace=ns,
                                      subresource="status")
            except ApiError as exc:
                if exc.conflict:
                    self.queue.add_after(key, 0.1)
                elif not exc.not_found:
                    raise
        if int((ds.get("spec") or {}).get("minReadySeconds") or 0) and status["numberReady"] > status["numberAvailable"]:
            self.queue.add_after(key, 1.0)  # pods become available minReadySeconds after Ready
