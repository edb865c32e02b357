"""StatefulSet controller (upstream pkg/controller/statefulset): pods NAME-0..N-1 with stable
identities (hostname = pod name, subdomain = spec.serviceName, so the headless Service gives each
`NAME-i.SERVICE.NS.svc` DNS records), created in ordinal order and removed in reverse
(OrderedReady: each waits for its predecessor to be Running and Ready; Parallel: all at once),
rolled from the highest ordinal down to the partition (RollingUpdate) or replaced only when
deleted (OnDelete), with ControllerRevisions as the history `kubectl rollout undo` restores.

`plan_sync` is upstream's updateStatefulSet as a pure function (what to create, delete or fix,
and the status); StatefulSetController.sync_key reads the caches, keeps the revisions and
applies the plan.

Storage: knet serves no PersistentVolumeClaims. A pod of a set with volumeClaimTemplates needs
its claims first (as upstream); when the apiserver does not serve them, the pod is not created
and the set gets a Warning event (FailedCreate) saying that knet has no storage. Nothing is
refused: the set is stored as written.
"""

from __future__ import annotations

import copy
import logging
import re
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
    orphan_namespace_index,
    owner_reference,
    split_key,
)
from knet.controllers.conditions import semantically_equal
from knet.controllers.podutil import is_pod_available, is_pod_ready
from knet.selectors import labels_match_selector

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")
NO_STORAGE = ("knet has no storage: this cluster serves no PersistentVolumeClaims, so the volumeClaimTemplates "
              "cannot be provisioned and the pod is not created")
NO_STORAGE_RETRY = 30.0


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """getParentNameAndOrdinal: ("", -1) for a name that is not NAME-ORDINAL."""
    m = _ORDINAL.match((pod.get("metadata") or {}).get("name") or "")
    if not m or int(m.group(2)) >= 1 << 31:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def is_member(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod)[0] == sts["metadata"]["name"]


def start_ordinal(sts: Obj) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(sts: Obj, claim: Obj, ordinal: int) -> str:
    return f"{(claim.get('metadata') or {}).get('name', '')}-{sts['metadata']['name']}-{ordinal}"


def pod_claims(sts: Obj, ordinal: int) -> list[Obj]:
    """The PersistentVolumeClaims a pod of the set needs (getPersistentVolumeClaims)."""
    spec = sts.get("spec") or {}
    out = []
    for template in spec.get("volumeClaimTemplates") or []:
        claim = copy.deepcopy(template)
        claim.pop("status", None)
        meta = claim.setdefault("metadata", {})
        meta.pop("creationTimestamp", None)
        meta["name"] = claim_name(sts, template, ordinal)
        meta["namespace"] = sts["metadata"]["namespace"]
        meta["labels"] = {**(meta.get("labels") or {}), **((spec.get("selector") or {}).get("matchLabels") or {})}
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        out.append(claim)
    return out


def revision_of(pod: Obj) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL, "")


def new_pod(sts: Obj, ordinal: int, revision_name: str) -> Obj:
    """newStatefulSetPod at a revision: the template's pod, with its identity and storage."""
    spec = sts.get("spec") or {}
    template = spec.get("template") or {}
    tmeta = copy.deepcopy(template.get("metadata") or {})
    name = pod_name(sts, ordinal)
    labels = dict(tmeta.get("labels") or {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[REVISION_LABEL] = revision_name
    pod_spec = copy.deepcopy(template.get("spec") or {})
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = spec.get("volumeClaimTemplates") or []
    if claims:
        claimed = {(c.get("metadata") or {}).get("name") for c in claims}
        volumes = [{"name": (c.get("metadata") or {}).get("name"),
                    "persistentVolumeClaim": {"claimName": claim_name(sts, c, ordinal)}} for c in claims]
        pod_spec["volumes"] = volumes + [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claimed]
    meta: Obj = {"name": name, "generateName": f"{sts['metadata']['name']}-", "namespace": sts["metadata"]["namespace"],
                 "labels": labels, "ownerReferences": [owner_reference(sts)]}
    if tmeta.get("annotations"):
        meta["annotations"] = tmeta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def with_template(sts: Obj, revision: Obj) -> Obj:
    """ApplyRevision: the set as it was at `revision` (its template restored)."""
    return {**sts, "spec": {**(sts.get("spec") or {}), "template": history.template_of(revision)}}


def new_versioned_pod(current_set: Obj, update_set: Obj, current: str, update: str, ordinal: int) -> Obj:
    """newVersionedStatefulSetPod: below the partition (or, without rollingUpdate, below the
    current replicas) a pod is made at the current revision, else at the update revision."""
    strategy = (current_set.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(current_set)
    current_replicas = int((current_set.get("status") or {}).get("currentReplicas") or 0)
    if (strategy.get("type") == "RollingUpdate" and rolling is None and ordinal < start + current_replicas) or \
            (rolling is not None and ordinal < start + int(rolling.get("partition") or 0)):
        return new_pod(current_set, ordinal, current)
    return new_pod(update_set, ordinal, update)


def is_created(pod: Obj) -> bool:
    return bool((pod.get("status") or {}).get("phase"))


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_ready(pod)


def running_and_available(pod: Obj, min_ready: int, now: datetime) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_available(pod, min_ready, now)


def unavailable(pod: Obj, min_ready: int, now: datetime) -> bool:
    return not is_pod_available(pod, min_ready, now) or is_terminating(pod)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    meta = pod.get("metadata") or {}
    return ordinal >= 0 and parent == sts["metadata"]["name"] and meta.get("name") == pod_name(sts, ordinal) and \
        meta.get("namespace") == sts["metadata"]["namespace"] and (meta.get("labels") or {}).get(POD_NAME_LABEL) == \
        meta.get("name")


def storage_matches(sts: Obj, pod: Obj) -> bool:
    """Every claim template is mounted from the pod's own claim (storageMatches)."""
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        volume = volumes.get((claim.get("metadata") or {}).get("name"))
        if volume is None or (volume.get("persistentVolumeClaim") or {}).get("claimName") != \
                claim_name(sts, claim, ordinal):
            return False
    return True


def with_identity(sts: Obj, pod: Obj) -> Obj:
    """updateIdentity + updateStorage: the pod with its name labels and claim volumes restored."""
    ordinal = ordinal_of(pod)
    labels = {**(pod["metadata"].get("labels") or {}), POD_NAME_LABEL: pod_name(sts, ordinal),
              POD_INDEX_LABEL: str(ordinal)}
    spec = dict(pod.get("spec") or {})
    claims = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
    if claims:
        claimed = {(c.get("metadata") or {}).get("name") for c in claims}
        spec["volumes"] = [{"name": (c.get("metadata") or {}).get("name"),
                            "persistentVolumeClaim": {"claimName": claim_name(sts, c, ordinal)}} for c in claims] + \
            [v for v in spec.get("volumes") or [] if v.get("name") not in claimed]
    return {**pod, "metadata": {**pod["metadata"], "namespace": sts["metadata"]["namespace"], "labels": labels},
            "spec": spec}


@dataclass
class Plan:
    actions: list[tuple[str, Obj]] = field(default_factory=list)  # ("create"|"delete"|"update", pod)
    status: Obj = field(default_factory=dict)


def replica_status(pods: list[Obj], min_ready: int, current: str, update: str, now: datetime) -> Obj:
    """computeReplicaStatus over the created pods."""
    out = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        if is_created(pod):
            out["replicas"] += 1
        if running_and_ready(pod):
            out["readyReplicas"] += 1
            if running_and_available(pod, min_ready, now):
                out["availableReplicas"] += 1
        if is_created(pod) and not is_terminating(pod):
            rev = revision_of(pod)
            out["currentReplicas"] += rev == current
            out["updatedReplicas"] += rev == update
    return out


def plan_sync(sts: Obj, pods: list[Obj], current_rev: Obj, update_rev: Obj, collision_count: int,
              now: datetime) -> Plan:
    """updateStatefulSet: the pod actions of one sync, in upstream's order and with its stops,
    and the status they leave."""
    spec = sts.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    current, update = current_rev["metadata"]["name"], update_rev["metadata"]["name"]
    current_set, update_set = with_template(sts, current_rev), with_template(sts, update_rev)
    plan = Plan()
    plan.status = {"observedGeneration": sts["metadata"].get("generation", 1), "currentRevision": current,
                   "updateRevision": update, "collisionCount": collision_count}
    start = start_ordinal(sts)
    count = int(spec.get("replicas", 1))
    replicas: list[Obj | None] = [None] * count
    condemned: list[Obj] = []
    for pod in pods:
        ordinal = ordinal_of(pod)
        if start <= ordinal < start + count:
            replicas[ordinal - start] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    for i in range(count):
        if replicas[i] is None:
            replicas[i] = new_versioned_pod(current_set, update_set, current, update, start + i)
    members: list[Obj] = [p for p in replicas if p is not None]
    condemned.sort(key=ordinal_of, reverse=True)
    first_unavailable = next((p for p in members if unavailable(p, min_ready, now)), None)
    if first_unavailable is None:
        first_unavailable = next((p for p in reversed(condemned) if unavailable(p, min_ready, now)), None)

    def finish() -> Plan:
        plan.status.update(replica_status(members + condemned, min_ready, current, update, now))
        return plan

    plan.status.update(replica_status(pods, min_ready, current, update, now))
    if sts["metadata"].get("deletionTimestamp"):
        return plan
    monotonic = spec.get("podManagementPolicy") != "Parallel"
    for pod in members:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            if not is_terminating(pod):
                plan.actions.append(("delete", pod))
            if monotonic:
                return finish()
            continue
        if not is_created(pod):
            plan.actions.append(("create", pod))
            if monotonic:
                return finish()
            continue
        if monotonic and (is_terminating(pod) or not running_and_ready(pod)
                          or not running_and_available(pod, min_ready, now)):
            return finish()
        if not (identity_matches(sts, pod) and storage_matches(sts, pod)):
            plan.actions.append(("update", with_identity(sts, pod)))
    for pod in condemned:
        if is_terminating(pod):
            if monotonic:
                return finish()
            continue
        if monotonic and pod is not first_unavailable and (
                not running_and_ready(pod) or not running_and_available(pod, min_ready, now)):
            return finish()
        plan.actions.append(("delete", pod))
        if monotonic:
            return finish()
    finish()
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return plan
    rolling = strategy.get("rollingUpdate")
    update_min = int(rolling.get("partition") or 0) if isinstance(rolling, dict) else 0
    for target in range(len(members) - 1, update_min - 1, -1):
        pod = members[target]
        if revision_of(pod) != update and not is_terminating(pod):
            plan.actions.append(("delete", pod))
            plan.status["currentReplicas"] -= 1
            return plan
        if unavailable(pod, min_ready, now):
            return plan
    return plan


def complete_rolling_update(sts: Obj, status: Obj) -> Obj:
    """completeRollingUpdate: once every replica is updated and ready, the update revision is current."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type") == "RollingUpdate" and status["updatedReplicas"] == status["replicas"] and \
            status["readyReplicas"] == status["replicas"]:
        return {**status, "currentReplicas": status["updatedReplicas"], "currentRevision": status["updateRevision"]}
    return status


STATUS_FIELDS = ("observedGeneration", "replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                 "availableReplicas", "currentRevision", "updateRevision", "collisionCount")


def status_changed(sts: Obj, status: Obj) -> bool:
    """inconsistentStatus (the fields upstream compares, empty equal to absent)."""
    old = sts.get("status") or {}
    return not semantically_equal({k: old.get(k) for k in STATUS_FIELDS if k != "collisionCount"},
                                  {k: status.get(k) for k in STATUS_FIELDS if k != "collisionCount"}) or \
        int(old.get("collisionCount") or 0) != status["collisionCount"] or "collisionCount" not in old


def status_body(old: Obj, status: Obj) -> Obj:
    """The stored status with ours over it, zero counters omitted as Go's omitempty does
    (replicas, availableReplicas and collisionCount are always written)."""
    out = {k: v for k, v in old.items() if k not in STATUS_FIELDS}
    for k in STATUS_FIELDS:
        v = status.get(k)
        if k in ("replicas", "availableReplicas", "collisionCount") or v not in (0, "", None):
            out[k] = v
    return out


class NoStorage(Exception):
    """The apiserver does not serve PersistentVolumeClaims."""


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(self, api: Api, informers: InformerFactory, *, recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.recorder = recorder or EventRecorder(api, "statefulset-controller")
        self.sets = informers.get("apps/v1", "statefulsets")
        self.pods = informers.get("v1", "pods")
        self.revisions = informers.get("apps/v1", "controllerrevisions")
        self.sets.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.pods.add_handler(self._pod_changed, lambda o, n: self._pod_changed(n), self._pod_changed)
        self.revisions.add_handler(self._owned_changed, lambda o, n: self._owned_changed(n), self._owned_changed)
        self.pods.add_indexer("controller-uid", controller_uid_index)
        self.pods.add_indexer("orphans", orphan_namespace_index)
        self.revisions.add_indexer("controller-uid", controller_uid_index)

    def initial_keys(self) -> list[str]:
        return self.sets.keys()

    def _owned_changed(self, obj: Obj) -> None:
        ref = controller_of(obj)
        if ref and ref.get("kind") == "StatefulSet":
            self.queue.add(f"{obj['metadata']['namespace']}/{ref['name']}")

    def _pod_changed(self, pod: Obj) -> None:
        self._owned_changed(pod)
        parent, ordinal = parent_and_ordinal(pod)
        if controller_of(pod) is None and ordinal >= 0 and self.sets.get(f"{pod['metadata'].get('namespace')}/{parent}"):
            self.queue.add(f"{pod['metadata'].get('namespace')}/{parent}")  # an orphan its set may adopt

    async def _adopt_orphans(self, sts: Obj) -> list[Obj]:
        """ClaimPods: pods without a controller that match the selector and are named as the set's
        (NAME-ORDINAL) become ours, e.g. those a `kubectl delete sts --cascade=orphan` left."""
        ns = sts["metadata"]["namespace"]
        selector = (sts.get("spec") or {}).get("selector")
        adopted = []
        for pod in self.pods.by_index("orphans", ns):
            if controller_of(pod) is not None or not is_member(sts, pod) or is_terminating(pod) or \
                    not labels_match_selector(selector, pod["metadata"].get("labels")):
                continue
            refs = list(pod["metadata"].get("ownerReferences") or []) + [owner_reference(sts)]
            try:
                adopted.append(await self.api.patch("v1", "pods", pod["metadata"]["name"],
                                                    {"metadata": {"ownerReferences": refs}}, namespace=ns))
            except ApiError as exc:
                if not exc.not_found:
                    raise
        return adopted

    def _owned(self, informer, sts: Obj) -> list[Obj]:
        ns = sts["metadata"]["namespace"]
        return [o for o in informer.by_index("controller-uid", sts["metadata"]["uid"])
                if o["metadata"].get("namespace") == ns]

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """getStatefulSetRevisions: (current, update, collisionCount); makes the update revision
        (or renumbers an equal older one: that is what a rollback looks like)."""
        ns = sts["metadata"]["namespace"]
        collision = int((sts.get("status") or {}).get("collisionCount") or 0)
        data = history.template_patch(sts)
        number = history.next_revision(revisions)
        equal = history.equal_revisions(revisions, data)
        if equal and revisions[-1]["metadata"]["name"] == equal[-1]["metadata"]["name"]:
            update = revisions[-1]
        elif equal:
            update = await self.api.update("apps/v1", "controllerrevisions", {**equal[-1], "revision": number},
                                           namespace=ns)
        else:
            while True:
                hash_ = history.hash_revision(data, collision)
                revision = history.new_revision(sts, data, number, hash_=hash_,
                                                hash_label=history.REVISION_HASH_LABEL)
                try:
                    update = await self.api.create("apps/v1", "controllerrevisions", revision, namespace=ns)
                    break
                except ApiError as exc:
                    if not exc.already_exists:
                        raise
                existing = await self.api.get("apps/v1", "controllerrevisions", revision["metadata"]["name"],
                                              namespace=ns)
                if existing.get("data") == data:
                    update = existing  # ours, not yet in the cache
                    break
                collision += 1  # a name taken by another template: hash again with the count
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
        return current, update, collision

    async def _ensure_claims(self, sts: Obj, pod: Obj) -> None:
        """createPersistentVolumeClaims: each claim the pod needs, created when missing."""
        ns = sts["metadata"]["namespace"]
        for claim in pod_claims(sts, ordinal_of(pod)):
            try:
                await self.api.get("v1", "persistentvolumeclaims", claim["metadata"]["name"], namespace=ns)
                continue
            except ApiError as exc:
                if not exc.not_found:
                    raise
            try:
                await self.api.create("v1", "persistentvolumeclaims", claim, namespace=ns)
            except ApiError as exc:
                if exc.already_exists:
                    continue
                message = NO_STORAGE if exc.not_found else exc.message
                await self.recorder.event(sts, "Warning", "FailedCreate",
                                          f"create Claim {claim['metadata']['name']} for Pod {pod['metadata']['name']} "
                                          f"in StatefulSet {sts['metadata']['name']} failed error: {message}")
                if exc.not_found:
                    raise NoStorage from None
                raise
            await self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                      f"create Claim {claim['metadata']['name']} Pod {pod['metadata']['name']} "
                                      f"in StatefulSet {sts['metadata']['name']} success")

    async def _apply(self, key: str, sts: Obj, verb: str, pod: Obj) -> None:
        ns, name, set_name = sts["metadata"]["namespace"], pod["metadata"]["name"], sts["metadata"]["name"]
        try:
            if verb == "create":
                await self._ensure_claims(sts, pod)
                await self.api.create("v1", "pods", pod, namespace=ns)
            elif verb == "delete":
                await self.api.delete("v1", "pods", name, namespace=ns)
            else:
                await self.api.update("v1", "pods", pod, namespace=ns)
        except ApiError as exc:
            if verb != "create" and (exc.not_found or exc.conflict):
                self.queue.add_after(key, 0.1)  # the cache is behind our own last write: look again
                return
            await self.recorder.event(sts, "Warning", f"Failed{verb.title()}",
                                      f"{verb} Pod {name} in StatefulSet {set_name} failed error: {exc.message}")
            raise
        await self.recorder.event(sts, "Normal", f"Successful{verb.title()}",
                                  f"{verb} Pod {name} in StatefulSet {set_name} successful")

    async def sync_key(self, key: str) -> None:
        ns, _ = split_key(key)
        sts = self.sets.get(key)
        if sts is None:
            return
        sts = {**sts, "apiVersion": "apps/v1", "kind": "StatefulSet"}
        pods = [p for p in self._owned(self.pods, sts) if is_member(sts, p)]
        if not sts["metadata"].get("deletionTimestamp"):
            pods += await self._adopt_orphans(sts)
        revisions = history.sorted_revisions(self._owned(self.revisions, sts))
        current, update, collision = await self._revisions(sts, revisions)
        now = datetime.now(UTC)
        plan = plan_sync(sts, pods, current, update, collision, now)
        try:
            for verb, pod in plan.actions:
                await self._apply(key, sts, verb, pod)
        except NoStorage:
            self.queue.add_after(key, NO_STORAGE_RETRY)
        status = complete_rolling_update(sts, plan.status)
        if status_changed(sts, status):
            try:
                await self.api.update("apps/v1", "statefulsets",
                                      {**sts, "status": status_body(sts.get("status") or {}, status)},
                                      namespace=ns, subresource="status")
            except ApiError as exc:
                if exc.conflict:
                    self.queue.add_after(key, 0.1)
                elif not exc.not_found:
                    raise
        live = {current["metadata"]["name"], update["metadata"]["name"]} | {revision_of(p) for p in pods}
        limit = int((sts.get("spec") or {}).get("revisionHistoryLimit", 10))
        known = history.sorted_revisions([*[r for r in revisions if r["metadata"]["name"] != update["metadata"]["name"]],
                                          update])
        for old in history.revisions_to_delete(known, live, limit):
            try:
                await self.api.delete("apps/v1", "controllerrevisions", old["metadata"]["name"], namespace=ns)
            except ApiError as exc:
                if not exc.not_found:
                    raise
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and status["readyReplicas"] > status["availableReplicas"]:
            self.queue.add_after(key, min_ready)  # pods become available minReadySeconds after Ready
