"""The disruption controller (upstream pkg/controller/disruption): each PodDisruptionBudget's
status — how many of its pods are expected, healthy, must stay healthy, and so how many
evictions it allows now. The eviction subresource decrements `disruptionsAllowed` and records
the pod in `disruptedPods`; this controller drops that record once the pod is gone (or after
DELETION_TIMEOUT, when the deletion never came) and recounts.

Pure: `expected_and_desired`, `budget_status`. The Controller reads pods, ReplicaSets,
Deployments and the PDBs from informers, other controllers' scale subresource from the API.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from knet.api.resources.poddisruptionbudgets import selects
from knet.client import Api, ApiError
from knet.client.events import EventRecorder
from knet.controllers.base import Controller, InformerFactory, controller_of, split_key
from knet.controllers.conditions import semantically_equal, set_condition
from knet.controllers.podutil import is_pod_ready, parse_time

Obj = dict[str, Any]

# An eviction the controller has not seen lead to a deletion is forgotten after this long
# (upstream DeletionTimeout), giving the budget back.
DELETION_TIMEOUT = 120.0


# Controllers other than ReplicaSets whose scale subresource gives their pods' expected count.
SCALED_KINDS = {("apps/v1", "StatefulSet"): "statefulsets", ("v1", "ReplicationController"): "replicationcontrollers"}


class NoControllerError(ValueError):
    """A pod the budget counts has no controller whose scale says how many pods are expected."""


def _percent(value: Any) -> int | None:
    return int(value[:-1]) if isinstance(value, str) and value.endswith("%") else None


def needs_scale(spec: Obj) -> bool:
    """Whether the budget counts expected pods from their controllers' scale (maxUnavailable or
    a percentage) rather than from the selected pods (an integer minAvailable)."""
    min_available = spec.get("minAvailable")
    return min_available is None or _percent(min_available) is not None


def expected_and_desired(spec: Obj, pods: list[Obj], scales: dict[str, int]) -> tuple[int, int]:
    """(expectedPods, desiredHealthy) as upstream getExpectedPodCount: an integer minAvailable
    counts the selected pods; maxUnavailable or a percentage sums the scale of the pods'
    controllers (SCALES: controller uid -> replicas) and rounds a percentage up."""
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if not needs_scale(spec):
        return len(pods), int(min_available)
    expected = sum(scales.values())
    if max_unavailable is not None:
        percent = _percent(max_unavailable)
        unavailable = math.ceil(percent * expected / 100) if percent is not None else int(max_unavailable)
        return expected, max(0, expected - unavailable)
    if min_available is not None:
        return expected, math.ceil(_percent(min_available) * expected / 100)
    return expected, expected  # neither set: every expected pod must stay


def budget_status(pdb: Obj, pods: list[Obj], expected: int, desired: int, now: dt.datetime) -> Obj:
    """The status the budget should have: healthy pods (Ready, not being deleted, not already
    evicted), the disruptions that leaves room for, and the evictions still awaiting their
    deletion."""
    status = pdb.get("status") or {}
    live = {p["metadata"]["name"]: p for p in pods}
    disrupted = {}
    for name, when in (status.get("disruptedPods") or {}).items():
        pod = live.get(name)
        evicted_at = parse_time(when)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            continue  # the deletion the eviction promised happened
        if evicted_at is not None and (now - evicted_at).total_seconds() > DELETION_TIMEOUT:
            continue  # it never came: the pod counts again
        disrupted[name] = when
    healthy = sum(1 for p in pods if is_pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                  and p["metadata"]["name"] not in disrupted)
    allowed = max(0, healthy - desired) if expected > 0 else 0
    new = {**status, "disruptedPods": disrupted or None, "currentHealthy": healthy, "desiredHealthy": desired,
           "expectedPods": expected, "disruptionsAllowed": allowed,
           "observedGeneration": (pdb.get("metadata") or {}).get("generation")}
    condition = {"type": "DisruptionAllowed", "status": "True" if allowed > 0 else "False",
                 "reason": "SufficientPods" if allowed > 0 else "InsufficientPods", "message": "",
                 "observedGeneration": new["observedGeneration"]}
    new["conditions"] = set_condition(status.get("conditions"), condition, _rfc3339(now))
    return {k: v for k, v in new.items() if v is not None}


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, api: Api, informers: InformerFactory, *, recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.api = api
        self.recorder = recorder or EventRecorder(api, "controllermanager")
        self.pdbs = informers.get("policy/v1", "poddisruptionbudgets")
        self.pods = informers.get("v1", "pods")
        self.replicasets = informers.get("apps/v1", "replicasets")
        self.deployments = informers.get("apps/v1", "deployments")
        self.pdbs.add_handler(self.enqueue_obj, lambda o, n: self.enqueue_obj(n))
        self.pods.add_handler(self._pod_changed, lambda o, n: self._pod_changed(n), self._pod_changed)

    def initial_keys(self) -> list[str]:
        return self.pdbs.keys()

    def _pod_changed(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        for pdb in self.pdbs.list():
            if pdb["metadata"].get("namespace") == ns and selects(pdb, pod):
                self.enqueue_obj(pdb)

    async def _scale_of(self, pod: Obj) -> tuple[str, int]:
        """The pod's controller and its desired replicas (upstream's finders: a ReplicaSet's
        Deployment, else the ReplicaSet; then any other controller's scale subresource, as a
        StatefulSet's)."""
        ns, ref = pod["metadata"].get("namespace"), controller_of(pod)
        if ref is None:
            raise NoControllerError(f"found no controllers for pod {pod['metadata']['name']!r}")
        kind, name = ref.get("kind"), ref.get("name")
        if kind == "ReplicaSet":
            rs = self.replicasets.get(f"{ns}/{name}")
            if rs is not None:
                owner = controller_of(rs)
                if owner is not None and owner.get("kind") == "Deployment":
                    deploy = self.deployments.get(f"{ns}/{owner.get('name')}")
                    if deploy is not None:
                        return deploy["metadata"]["uid"], int((deploy.get("spec") or {}).get("replicas", 1))
                return rs["metadata"]["uid"], int((rs.get("spec") or {}).get("replicas", 1))
        resource = SCALED_KINDS.get((ref.get("apiVersion"), kind))
        if resource is not None:
            try:
                scale = await self.api.get(ref["apiVersion"], resource, name, namespace=ns, subresource="scale")
            except ApiError as exc:
                if not exc.not_found:
                    raise
            else:
                return ref.get("uid", name), int((scale.get("spec") or {}).get("replicas") or 0)
        raise NoControllerError(f"found no controllers for pod {pod['metadata']['name']!r}")

    async def sync_key(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        ns, _ = split_key(key)
        pods = [p for p in self.pods.list() if p["metadata"].get("namespace") == ns and selects(pdb, p)]
        now = dt.datetime.now(dt.UTC)
        spec = pdb.get("spec") or {}
        try:
            scales = dict([await self._scale_of(p) for p in pods]) if needs_scale(spec) else {}
            expected, desired = expected_and_desired(spec, pods, scales)
        except NoControllerError as exc:
            await self.recorder.event({**pdb, "apiVersion": "policy/v1", "kind": "PodDisruptionBudget"},
                                      "Warning", "NoControllers", str(exc))
            expected, desired = 0, 0
        status = budget_status(pdb, pods, expected, desired, now)
        if semantically_equal(status, pdb.get("status") or {}):
            return
        try:
            await self.api.update("policy/v1", "poddisruptionbudgets", {**pdb, "status": status}, namespace=ns,
                                  subresource="status")
        except ApiError as exc:
            if not (exc.conflict or exc.not_found):
                raise
            self.queue.add_after(key, 0.1)  # an eviction updated it meanwhile: count again
            return
        if status.get("disruptedPods"):
            self.queue.add_after(key, DELETION_TIMEOUT)  # to forget evictions whose deletion never came
