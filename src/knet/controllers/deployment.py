"""Deployment controller: Deployment -> ReplicaSets (pod-template-hash), rolling update with
maxSurge/maxUnavailable or Recreate, scaling, revisions, and the status `kubectl rollout status`
and `kubectl get deploy` read.

compute_* are pure; DeploymentController.sync_key applies them.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import Controller, InformerFactory, controller_of, owner_reference, split_key
from knet.controllers.conditions import semantically_equal, set_condition
from knet.controllers.podutil import parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# What the controller does not copy from a Deployment to its ReplicaSets (upstream's
# annotationsToSkip): the rest, `kubernetes.io/change-cause` among them, is copied, so that
# `kubectl rollout history` shows each revision's cause.
ANNOTATIONS_NOT_COPIED = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})


def copied_annotations(deploy: Obj, rs: Obj | None = None) -> dict[str, str]:
    """The Deployment's annotations a ReplicaSet of it must carry (upstream
    copyDeploymentAnnotationsToReplicaSet): those RS lacks or holds with another value."""
    have = ((rs or {}).get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in (deploy["metadata"].get("annotations") or {}).items()
            if k not in ANNOTATIONS_NOT_COPIED and have.get(k) != v}
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def compute_template_hash(template: Obj, collision_count: int = 0) -> str:
    """FNV-32a over the template (+ collisionCount), spelled with upstream's SafeEncodeString
    alphabet (no vowels, no 0/1/3), so names look like `web-7d9b8c6f5`."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    return "".join(_SAFE_ALPHANUMS[b % len(_SAFE_ALPHANUMS)] for b in str(fnv32a(data)).encode())


def resolve_int_or_percent(value: int | str | None, total: int, *, round_up: bool, default: str) -> int:
    value = default if value is None else value
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def compute_surge_unavailable(deploy: Obj) -> tuple[int, int]:
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate")) or {}
    surge = resolve_int_or_percent(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1  # upstream: both zero would deadlock the rollout
    return surge, min(unavailable, replicas)


def strip_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def rs_replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas") or 0)


def rs_available(rs: Obj) -> int:
    return int((rs.get("status") or {}).get("availableReplicas") or 0)


def revision_of(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def find_new_rs(deploy: Obj, owned: list[Obj], new_name: str) -> Obj | None:
    template = (deploy.get("spec") or {}).get("template") or {}
    for rs in owned:
        if rs["metadata"]["name"] == new_name:
            return rs
    for rs in sorted(owned, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
        if strip_hash((rs.get("spec") or {}).get("template") or {}) == strip_hash(template):
            return rs
    return None


def compute_rollout(deploy: Obj, new_rs: Obj, old_rss: list[Obj]) -> dict[str, int]:
    """Desired spec.replicas per ReplicaSet name for this step of the rollout (only changes)."""
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"
    new_name = new_rs["metadata"]["name"]
    old_active = [rs for rs in old_rss if rs_replicas(rs) > 0]
    changes: dict[str, int] = {}
    if strategy == "Recreate":
        if old_active:
            return {rs["metadata"]["name"]: 0 for rs in old_active}
        if any(int((rs.get("status") or {}).get("replicas") or 0) > 0 for rs in old_rss):
            return {}  # wait for old pods to be gone before starting new ones
        return {new_name: replicas} if rs_replicas(new_rs) != replicas else {}
    if not old_active:
        return {new_name: replicas} if rs_replicas(new_rs) != replicas else {}
    surge, max_unavailable = compute_surge_unavailable(deploy)
    all_rss = [new_rs, *old_rss]
    # scale the new RS up within the surge budget
    new_count = rs_replicas(new_rs)
    total = sum(rs_replicas(rs) for rs in all_rss)
    if new_count > replicas:
        new_count = replicas
    elif new_count < replicas and total < replicas + surge:
        new_count += min(replicas + surge - total, replicas - new_count)
    if new_count != rs_replicas(new_rs):
        changes[new_name] = new_count
        return changes  # upstream returns after scaling up; the old ones follow on the next sync
    # scale old RSs down without going below minAvailable
    min_available = replicas - max_unavailable
    all_count = sum(rs_replicas(rs) for rs in all_rss)
    new_unavailable = rs_replicas(new_rs) - rs_available(new_rs)
    budget = all_count - min_available - new_unavailable
    olds = sorted(old_active, key=lambda r: r["metadata"].get("creationTimestamp") or "")
    target = {rs["metadata"]["name"]: rs_replicas(rs) for rs in olds}
    # first the unhealthy replicas of old RSs: they serve nothing
    for rs in olds:
        if budget <= 0:
            break
        unhealthy = rs_replicas(rs) - rs_available(rs)
        if unhealthy <= 0:
            continue
        cut = min(budget, unhealthy)
        target[rs["metadata"]["name"]] -= cut
        budget -= cut
    available = sum(rs_available(rs) for rs in all_rss)
    # cleaned-up replicas were unavailable, so they do not lower `available`
    scale_down = available - min_available
    for rs in olds:
        if scale_down <= 0:
            break
        name = rs["metadata"]["name"]
        cut = min(scale_down, target[name])
        target[name] -= cut
        scale_down -= cut
    for rs in olds:
        name = rs["metadata"]["name"]
        if target[name] != rs_replicas(rs):
            changes[name] = target[name]
    return changes


def compute_deployment_status(deploy: Obj, new_rs: Obj | None, all_rss: list[Obj], now: str) -> Obj:
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    _, max_unavailable = compute_surge_unavailable(deploy)
    st = lambda rs, f: int((rs.get("status") or {}).get(f) or 0)  # noqa: E731
    total = sum(st(rs, "replicas") for rs in all_rss)
    updated = st(new_rs, "replicas") if new_rs else 0
    ready = sum(st(rs, "readyReplicas") for rs in all_rss)
    available = sum(st(rs, "availableReplicas") for rs in all_rss)
    old = deploy.get("status") or {}
    status: Obj = {"observedGeneration": deploy["metadata"].get("generation", 1), "replicas": total,
                   "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                   "unavailableReplicas": max(replicas - available, 0)}
    if old.get("collisionCount"):
        status["collisionCount"] = old["collisionCount"]
    conditions = old.get("conditions") or []
    if available >= replicas - max_unavailable:
        avail = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability."}
    else:
        avail = {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."}
    conditions = set_condition(conditions, avail, now, heartbeat=False)
    name = new_rs["metadata"]["name"] if new_rs else ""
    complete = new_rs is not None and updated == replicas and available >= replicas and total == replicas
    prev_prog = next((c for c in old.get("conditions") or [] if c.get("type") == "Progressing"), None)
    progressed = detect_progress(old, status)
    deadline = spec.get("progressDeadlineSeconds", 600)
    if spec.get("paused"):
        prog = {"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused",
                "message": "Deployment is paused"}
    elif complete:
        prog = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{name}" has successfully progressed.'}
    elif not progressed and prev_prog is not None and deadline is not None and \
            prev_prog.get("reason") != "NewReplicaSetAvailable" and \
            _seconds_between(prev_prog.get("lastUpdateTime"), now) > int(deadline):
        prog = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{name}" has timed out progressing.'}
    else:
        prog = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{name}" is progressing.'}
    conditions = set_condition(conditions, prog, now)
    # lastUpdateTime moves whenever the condition's content changes, and for Progressing also
    # whenever the rollout made progress (upstream semantics; the progress deadline counts from it)
    for cond in conditions:
        prev = next((c for c in old.get("conditions") or [] if c.get("type") == cond["type"]), None)
        same = prev is not None and all(prev.get(k) == cond.get(k) for k in ("status", "reason", "message"))
        if cond["type"] == "Progressing" and progressed and cond["reason"] == "ReplicaSetUpdated":
            same = False
        cond["lastUpdateTime"] = prev.get("lastUpdateTime", now) if same else now
    status["conditions"] = sorted(conditions, key=lambda c: c["type"])
    return status


def detect_scaling_event(deploy: Obj, rss: list[Obj]) -> bool:
    """An active ReplicaSet annotated with another desired size than spec.replicas: the deployment
    was scaled (upstream isScalingEvent)."""
    desired = str(int((deploy.get("spec") or {}).get("replicas", 1)))
    for rs in rss:
        if rs_replicas(rs) <= 0:
            continue
        annotated = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
        if annotated is not None and annotated != desired:
            return True
    return False


def _rs_fraction(rs: Obj, deploy: Obj) -> int:
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    if replicas == 0:
        return -rs_replicas(rs)
    surge, _ = compute_surge_unavailable(deploy)
    max_now = replicas + surge
    try:
        max_before = int((rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS, "0"))
    except ValueError:
        max_before = 0
    if max_before == 0:
        max_before = int((deploy.get("status") or {}).get("replicas") or 0)
        if max_before == 0:
            return 0
    return int(math.floor(rs_replicas(rs) * max_now / max_before + 0.5)) - rs_replicas(rs)


def compute_proportional_scale(deploy: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """New sizes after the deployment's replicas changed (upstream `scale`): one active (or only the
    newest) ReplicaSet takes the new count; a saturated new one means old ones go to 0; mid-rollout,
    every active ReplicaSet grows or shrinks in proportion, leftovers to the biggest."""
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    all_rss = ([new_rs] if new_rs else []) + old_rss
    active = [rs for rs in all_rss if rs_replicas(rs) > 0]
    if len(active) <= 1:
        target = active[0] if active else (new_rs or (max(all_rss, key=lambda r: r["metadata"].get(
            "creationTimestamp") or "") if all_rss else None))
        if target is None or rs_replicas(target) == replicas:
            return {}
        return {target["metadata"]["name"]: replicas}
    if new_rs is not None and rs_replicas(new_rs) == replicas and \
            int((new_rs.get("status") or {}).get("availableReplicas") or 0) == replicas:
        return {rs["metadata"]["name"]: 0 for rs in old_rss if rs_replicas(rs) > 0}
    if ((spec.get("strategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
        return {}
    surge, _ = compute_surge_unavailable(deploy)
    allowed = replicas + surge if replicas > 0 else 0
    to_add = allowed - sum(rs_replicas(rs) for rs in active)
    if to_add == 0:
        return {}
    created = lambda r: r["metadata"].get("creationTimestamp") or ""  # noqa: E731
    if to_add > 0:  # biggest first, newer first among equals
        ordered = sorted(active, key=lambda r: (-rs_replicas(r), _neg(created(r))))
    else:  # biggest first, older first among equals
        ordered = sorted(active, key=lambda r: (-rs_replicas(r), created(r)))
    added = 0
    sizes: dict[str, int] = {}
    for rs in ordered:
        proportion = 0
        if rs_replicas(rs) and to_add != added:
            fraction = _rs_fraction(rs, deploy)
            remaining = to_add - added
            proportion = min(fraction, remaining) if to_add > 0 else max(fraction, remaining)
        sizes[rs["metadata"]["name"]] = rs_replicas(rs) + proportion
        added += proportion
    first = ordered[0]["metadata"]["name"]
    sizes[first] = max(0, sizes[first] + (to_add - added))
    return {name: size for name, size in sizes.items()
            if size != rs_replicas(next(r for r in active if r["metadata"]["name"] == name))}


def _neg(text: str) -> tuple[int, ...]:
    """Sort key that orders strings descending inside an ascending sort."""
    return tuple(-ord(c) for c in text)


def detect_progress(old: Obj, new: Obj) -> bool:
    """More updated/ready/available replicas or fewer old ones than the last status (upstream
    DeploymentProgressing)."""
    g = lambda st, f: int(st.get(f) or 0)  # noqa: E731
    return (g(new, "updatedReplicas") > g(old, "updatedReplicas")
            or g(new, "replicas") - g(new, "updatedReplicas") < g(old, "replicas") - g(old, "updatedReplicas")
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def _seconds_between(earlier: str | None, later: str) -> float:
    a, b = parse_time(earlier), parse_time(later)
    return (b - a).total_seconds() if a and b else 0.0


def new_replicaset(deploy: Obj, template_hash: str, replicas: int, revision: int) -> Obj:
    meta, spec = deploy["metadata"], deploy.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_hash
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
    surge, _ = compute_surge_unavailable(deploy)
    desired = int(spec.get("replicas", 1))
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{meta['name']}-{template_hash}", "namespace": meta["namespace"],
                     "labels": {**(template["metadata"]["labels"])},
                     "annotations": {**copied_annotations(deploy), REVISION: str(revision),
                                     DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge)},
                     "ownerReferences": [owner_reference(deploy)]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }


@dataclass
class _Owned:
    new: Obj | None
    old: list[Obj]


class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, api: Api, informers: InformerFactory, *, recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.recorder = recorder or EventRecorder(api, "deployment-controller")
        self.deployments = informers.get("apps/v1", "deployments")
        self.replicasets = informers.get("apps/v1", "replicasets")
        self.deployments.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n), self.enqueue_obj)
        self.replicasets.add_handler(self._rs_changed, lambda o, n: self._rs_changed(n), self._rs_changed)

    def initial_keys(self) -> list[str]:
        return self.deployments.keys()

    def _rs_changed(self, rs: Obj) -> None:
        ref = controller_of(rs)
        if ref and ref.get("kind") == "Deployment":
            self.queue.add(f"{rs['metadata']['namespace']}/{ref['name']}")

    def _owned(self, deploy: Obj, new_name: str) -> _Owned:
        ns, uid = deploy["metadata"]["namespace"], deploy["metadata"]["uid"]
        owned = [rs for rs in self.replicasets.in_namespace(ns) if (controller_of(rs) or {}).get("uid") == uid]
        new = find_new_rs(deploy, owned, new_name)
        return _Owned(new, [rs for rs in owned if new is None or rs["metadata"]["uid"] != new["metadata"]["uid"]])

    async def sync_key(self, key: str) -> None:
        ns, name = split_key(key)
        deploy = self.deployments.get(key)
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return
        deploy = {**deploy, "apiVersion": "apps/v1", "kind": "Deployment"}
        spec = deploy.get("spec") or {}
        collision = int((deploy.get("status") or {}).get("collisionCount") or 0)
        template_hash = compute_template_hash(spec.get("template") or {}, collision)
        owned = self._owned(deploy, f"{name}-{template_hash}")
        max_revision = max((revision_of(rs) for rs in owned.old), default=0)
        new_rs = owned.new
        if new_rs is None and not spec.get("paused"):
            start = 0 if any(rs_replicas(rs) > 0 for rs in owned.old) else int(spec.get("replicas", 1))
            strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"
            if strategy == "RollingUpdate" and start == 0:
                surge, _ = compute_surge_unavailable(deploy)
                total = sum(rs_replicas(rs) for rs in owned.old)
                start = max(0, min(int(spec.get("replicas", 1)), int(spec.get("replicas", 1)) + surge - total))
            if strategy == "Recreate" and any(rs_replicas(rs) > 0 for rs in owned.old):
                start = 0
            body = new_replicaset(deploy, template_hash, start, max_revision + 1)
            try:
                new_rs = await self.api.create("apps/v1", "replicasets", body, namespace=ns)
            except ApiError as exc:
                if not exc.already_exists:
                    raise
                new_rs = await self.api.get("apps/v1", "replicasets", body["metadata"]["name"], namespace=ns)
                if (controller_of(new_rs) or {}).get("uid") != deploy["metadata"]["uid"]:
                    # a foreign RS took our name: bump collisionCount so the next hash differs
                    # (an update of the status, as upstream: deployment-controller's role may
                    # update deployments/status, not patch it)
                    status = {**(deploy.get("status") or {}), "collisionCount": collision + 1}
                    await self.api.update("apps/v1", "deployments", {**deploy, "status": status},
                                          namespace=ns, subresource="status")
                    return
            await self.recorder.event(deploy, "Normal", "ScalingReplicaSet",
                                      f"Scaled up replica set {body['metadata']['name']} to {start}")
        elif new_rs is not None and not spec.get("paused"):
            annotations = copied_annotations(deploy, new_rs)
            if revision_of(new_rs) <= max_revision:
                # a rollback to an older template: that RS becomes the newest revision
                annotations[REVISION] = str(max_revision + 1)
            if annotations:
                new_rs = await self.api.patch("apps/v1", "replicasets", new_rs["metadata"]["name"],
                                              {"metadata": {"annotations": annotations}}, namespace=ns)
        all_rss = ([new_rs] if new_rs else []) + owned.old
        if detect_scaling_event(deploy, all_rss):
            # replicas changed (kubectl scale): resize the ReplicaSets first, rollout steps later
            await self._apply_sizes(deploy, all_rss, compute_proportional_scale(deploy, new_rs, owned.old),
                                    annotate_active=True)
        elif new_rs is not None and not spec.get("paused"):
            await self._apply_sizes(deploy, all_rss, compute_rollout(deploy, new_rs, owned.old))
            await self._cleanup_history(deploy, owned.old)
        await self._sync_status(deploy, new_rs, ([new_rs] if new_rs else []) + owned.old)
        deadline = spec.get("progressDeadlineSeconds", 600)
        if deadline is not None and not spec.get("paused"):
            self.queue.add_after(key, float(deadline) + 1.0)  # to notice a rollout that stalls

    async def _apply_sizes(self, deploy: Obj, rss: list[Obj], sizes: dict[str, int], *,
                           annotate_active: bool = False) -> None:
        """Set spec.replicas (and the desired/max-replicas annotations) of the ReplicaSets named in
        `sizes`; with annotate_active also re-annotate every active one, as upstream scale does."""
        spec = deploy.get("spec") or {}
        ns = deploy["metadata"]["namespace"]
        surge, _ = compute_surge_unavailable(deploy)
        desired = int(spec.get("replicas", 1))
        annotations = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge)}
        for rs in rss:
            name = rs["metadata"]["name"]
            before = rs_replicas(rs)
            count = sizes.get(name, before)
            stale = any((rs["metadata"].get("annotations") or {}).get(k) != v for k, v in annotations.items())
            if count == before and not (annotate_active and before > 0 and stale):
                continue
            await self.api.patch("apps/v1", "replicasets", name, {
                "metadata": {"annotations": annotations}, "spec": {"replicas": count}}, namespace=ns)
            if count != before:
                direction = "up" if count > before else "down"
                await self.recorder.event(deploy, "Normal", "ScalingReplicaSet",
                                          f"Scaled {direction} replica set {name} to {count} from {before}")

    async def _cleanup_history(self, deploy: Obj, old: list[Obj]) -> None:
        limit = int((deploy.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = sorted((rs for rs in old if rs_replicas(rs) == 0
                       and int((rs.get("status") or {}).get("replicas") or 0) == 0), key=revision_of)
        for rs in idle[: max(0, len(idle) - limit)]:
            try:
                await self.api.delete("apps/v1", "replicasets", rs["metadata"]["name"],
                                      namespace=rs["metadata"]["namespace"])
            except ApiError as exc:
                if not exc.not_found:
                    raise

    async def _sync_status(self, deploy: Obj, new_rs: Obj | None, all_rss: list[Obj]) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = compute_deployment_status(deploy, new_rs, all_rss, now)
        meta = deploy["metadata"]
        annotations = dict(meta.get("annotations") or {})
        want_rev = str(revision_of(new_rs)) if new_rs else None
        if want_rev and annotations.get(REVISION) != want_rev:
            # an update, as upstream: deployment-controller's role may update deployments, not
            # patch them; a conflict (the cache was behind) is looked at again shortly
            annotations[REVISION] = want_rev
            try:
                await self.api.update("apps/v1", "deployments", {**deploy, "metadata": {**meta, "annotations": annotations}},
                                      namespace=meta["namespace"])
            except ApiError as exc:
                if exc.conflict:
                    self.queue.add_after(f"{meta['namespace']}/{meta['name']}", 0.1)
                elif not exc.not_found:
                    raise
            return  # the update comes back through the informer and syncs status then
        if semantically_equal(status, deploy.get("status") or {}):
            return
        try:
            await self.api.update("apps/v1", "deployments", {**deploy, "status": status},
                                  namespace=meta["namespace"], subresource="status")
        except ApiError as exc:
            if exc.conflict:
                self.queue.add_after(f"{meta['namespace']}/{meta['name']}", 0.1)
            elif not exc.not_found:
                raise
