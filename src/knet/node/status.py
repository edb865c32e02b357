"""A pod's status as the kubelet reports it, computed from what its containers are doing. Pure.

Follows kubelet's getPhase and its condition generators (PodReadyToStartContainers,
Initialized, Ready, ContainersReady, PodScheduled).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    """What the kubelet knows about one container of a pod."""

    name: str
    image: str
    container_id: str = ""
    restart_count: int = 0
    state: str = "waiting"          # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    ran: bool = False               # has run at least once (restarting, not first start)

    def state_dict(self) -> Obj:
        if self.state == "running":
            return {"running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            term: Obj = {"exitCode": self.exit_code if self.exit_code is not None else 0,
                         "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                         "startedAt": self.started_at, "finishedAt": self.finished_at,
                         "containerID": f"knet://{self.container_id}"}
            if self.signal:
                term["signal"] = self.signal
            if self.message:
                term["message"] = self.message
            return {"terminated": term}
        waiting: Obj = {"reason": self.reason}
        if self.message:
            waiting["message"] = self.message
        return {"waiting": waiting}

    def status_dict(self) -> Obj:
        status: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": image_id(self.image),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started and self.state == "running",
            "state": self.state_dict(),
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = f"knet://{self.container_id}"
        return status


@functools.lru_cache(maxsize=1024)
def image_id(image: str) -> str:
    """A stable digest-style imageID (there are no images, so the name is the content)."""
    repo = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def pod_phase(restart_policy: str, records: list[ContainerRecord]) -> str:
    """kubelet's getPhase for regular containers."""
    if not records:
        return "Pending"
    pending = running = stopped = succeeded = 0
    for rec in records:
        if rec.state == "running":
            running += 1
        elif rec.state == "terminated":
            stopped += 1
            if rec.exit_code == 0:
                succeeded += 1
        elif rec.ran or rec.last_state.get("terminated"):
            stopped += 1  # waiting to restart after having run
            if rec.last_state.get("terminated", {}).get("exitCode") == 0:
                succeeded += 1
        else:
            pending += 1
    if pending:
        return "Pending"
    if running:
        return "Running"
    if stopped == len(records):
        if restart_policy == "Always":
            return "Running"
        if succeeded == len(records):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: failed ones restart
    return "Pending"


def _condition(ctype: str, ok: bool, previous: dict[str, Obj], reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    transition = prev["lastTransitionTime"] if prev and prev.get("status") == status else now_rfc3339()
    cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": transition}
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    elif ok and reason == "PodCompleted":
        cond["reason"] = reason
    return cond


def compute_pod_status(
    pod: Obj,
    records: list[ContainerRecord],
    *,
    host_ip: str,
    pod_ip: str | None,
    start_time: str,
    sandbox_ready: bool,
    message: str = "",
    reason: str = "",
    init_records: list[ContainerRecord] | None = None,
) -> Obj:
    spec = pod.get("spec") or {}
    init_records = init_records or []
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    incomplete = [r.name for r in init_records if not (r.state == "terminated" and r.exit_code == 0)]
    policy = spec.get("restartPolicy") or "Always"
    if incomplete:
        init_failed = any(r.state == "terminated" and r.exit_code not in (0, None) for r in init_records)
        phase = "Failed" if init_failed and policy == "Never" else "Pending"
    else:
        phase = pod_phase(policy, records)
    completed = phase in ("Succeeded", "Failed")
    unready = [r.name for r in records if not r.ready]
    all_ready = not unready and not completed
    not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready and not completed, previous),
        _condition("Initialized", not incomplete, previous, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(incomplete)}]"),
        _condition("Ready", all_ready, previous, ready_reason, not_ready_msg if not completed else ""),
        _condition("ContainersReady", all_ready, previous, ready_reason, not_ready_msg if not completed else ""),
        _condition("PodScheduled", True, previous),
    ]
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [r.status_dict() for r in records],
        **({"initContainerStatuses": [r.status_dict() for r in init_records]} if init_records else {}),
        "qosClass": (pod.get("status") or {}).get("qosClass") or qos_class(spec),
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    return status


def qos_class(spec: Obj) -> str:
    containers = spec.get("containers") or []
    requests = [c.get("resources", {}).get("requests") or {} for c in containers]
    limits = [c.get("resources", {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu") and lim.get("memory") and (req.get("cpu", lim["cpu"]) == lim["cpu"])
        and (req.get("memory", lim["memory"]) == lim["memory"])
        for req, lim in zip(requests, limits, strict=False)
    )
    return "Guaranteed" if guaranteed else "Burstable"
