"""The node's containers, sandboxes and images as a CRI runtime reports them (what `crictl` shows).
Pure: built from a snapshot of the kubelet's pod workers (knet.node.criserver takes it).

knet's runtime endpoint speaks JSON over HTTP on a unix socket, not CRI's gRPC; its objects are
CRI's messages in their protobuf JSON names (runtime/v1 api.proto: Container, ContainerStatus,
PodSandbox, PodSandboxStatus, Image, VersionResponse, StatusResponse), so that crictl's columns
and `crictl inspect`'s JSON come out as they do over containerd. Labels and annotations are the
kubelet's (pkg/kubelet/kuberuntime/labels.go): io.kubernetes.pod.name/namespace/uid,
io.kubernetes.container.name, io.kubernetes.container.restartCount...
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from knet.node.status import image_id

Obj = dict[str, Any]

RUNTIME_NAME = "knet"
RUNTIME_API_VERSION = "v1"
CRI_VERSION = "0.1.0"  # VersionResponse.version: the CRI version, "0.1.0" for every runtime

# kubelet's label keys (pkg/kubelet/types/labels.go, kuberuntime/labels.go)
POD_NAME, POD_NAMESPACE, POD_UID = "io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"

CONTAINER_STATES = {"running": "CONTAINER_RUNNING", "terminated": "CONTAINER_EXITED", "waiting": "CONTAINER_CREATED"}


@dataclass(frozen=True)
class ContainerView:
    """One container instance as the kubelet knows it."""
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    state: str                  # waiting | running | terminated (ContainerRecord.state)
    created: float              # wall time, seconds
    started_at: str | None      # RFC 3339 (ContainerRecord.started_at)
    finished_at: str | None
    exit_code: int | None
    reason: str
    message: str
    pod: str
    namespace: str
    uid: str
    log_path: str
    pid: int | None
    restart_count: int = 0
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: str = "File"
    termination_grace_period: int = 30


@dataclass(frozen=True)
class SandboxView:
    """One pod sandbox (its pause process)."""
    id: str
    pod: str
    namespace: str
    uid: str
    ready: bool
    created: float
    ip: str
    pid: int | None
    host_network: bool
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def container_labels(c: ContainerView) -> dict[str, str]:
    return {CONTAINER_NAME: c.name, POD_NAME: c.pod, POD_NAMESPACE: c.namespace, POD_UID: c.uid}


def container_annotations(c: ContainerView) -> dict[str, str]:
    return {"io.kubernetes.container.restartCount": str(c.restart_count),
            "io.kubernetes.container.terminationMessagePath": c.termination_message_path,
            "io.kubernetes.container.terminationMessagePolicy": c.termination_message_policy,
            "io.kubernetes.pod.terminationGracePeriod": str(c.termination_grace_period)}


def image_digest(image: str) -> str:
    """The image's ID (sha256:...), the digest knet's imageID carries (knet.node.status.image_id)."""
    return "sha256:" + image_id(image).rsplit("sha256:", 1)[1]


def container(c: ContainerView) -> Obj:
    """runtime.v1.Container (ListContainers). image.image is the image ID, as containerd reports it."""
    return {"id": c.id, "podSandboxId": c.sandbox_id, "metadata": {"name": c.name, "attempt": c.attempt},
            "image": {"image": image_digest(c.image)}, "imageRef": image_id(c.image),
            "state": CONTAINER_STATES.get(c.state, "CONTAINER_UNKNOWN"), "createdAt": _ns(c.created),
            "labels": container_labels(c), "annotations": container_annotations(c)}


def container_status(c: ContainerView, sandbox: SandboxView | None) -> Obj:
    """`crictl inspect`'s object: {"status": ContainerStatus, "info": {...}} with the times as crictl
    prints them (RFC 3339; startedAt/finishedAt the zero time until the container started/ended)."""
    state = CONTAINER_STATES.get(c.state, "CONTAINER_UNKNOWN")
    zero = "0001-01-01T00:00:00Z"
    status = {
        "id": c.id,
        "metadata": {"attempt": c.attempt, "name": c.name},
        "state": state,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(c.created)) + f".{int(c.created % 1 * 1e9):09d}Z",
        "startedAt": c.started_at if state != "CONTAINER_CREATED" and c.started_at else zero,
        "finishedAt": c.finished_at if state == "CONTAINER_EXITED" and c.finished_at else zero,
        "exitCode": c.exit_code or 0,
        "image": {"annotations": {}, "image": c.image, "runtimeHandler": "", "userSpecifiedImage": ""},
        "imageRef": image_id(c.image),
        "reason": c.reason if state == "CONTAINER_EXITED" else "",
        "message": c.message if state == "CONTAINER_EXITED" else "",
        "labels": container_labels(c),
        "annotations": container_annotations(c),
        "mounts": [],
        "logPath": c.log_path,
        "resources": None,
    }
    info: Obj = {"sandboxID": c.sandbox_id, "pid": c.pid or 0, "removing": False,
                 "runtimeType": "io.knet.runc", "snapshotter": "knet"}
    if sandbox is not None:
        info["podIP"] = sandbox.ip
    return {"status": status, "info": info}


def sandbox_labels(s: SandboxView) -> dict[str, str]:
    return {**s.labels, POD_NAME: s.pod, POD_NAMESPACE: s.namespace, POD_UID: s.uid}


def sandbox(s: SandboxView) -> Obj:
    """runtime.v1.PodSandbox (ListPodSandbox)."""
    return {"id": s.id, "metadata": {"name": s.pod, "uid": s.uid, "namespace": s.namespace, "attempt": 0},
            "state": "SANDBOX_READY" if s.ready else "SANDBOX_NOTREADY", "createdAt": _ns(s.created),
            "labels": sandbox_labels(s), "annotations": dict(s.annotations), "runtimeHandler": ""}


def sandbox_status(s: SandboxView, pause_image: str) -> Obj:
    """`crictl inspectp`'s object: {"status": PodSandboxStatus, "info": {...}}."""
    network = "NODE" if s.host_network else "POD"
    status = {
        "id": s.id,
        "metadata": {"attempt": 0, "name": s.pod, "namespace": s.namespace, "uid": s.uid},
        "state": "SANDBOX_READY" if s.ready else "SANDBOX_NOTREADY",
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s.created)) + f".{int(s.created % 1 * 1e9):09d}Z",
        "network": {"additionalIps": [], "ip": "" if s.host_network else s.ip},
        "linux": {"namespaces": {"options": {"ipc": "POD", "network": network, "pid": "CONTAINER",
                                              "targetId": "", "usernsOptions": None}}},
        "labels": sandbox_labels(s),
        "annotations": dict(s.annotations),
        "runtimeHandler": "",
    }
    info = {"pid": s.pid or 0, "processStatus": "running" if s.ready else "deleted",
            "image": pause_image, "runtimeHandler": "", "runtimeType": "io.knet.runc"}
    return {"status": status, "info": info}


def images(used: list[str], pause_image: str) -> list[Obj]:
    """runtime.v1.Image of every image the node's containers use, and the sandbox image. knet has
    no image store (a container's files are the host's: see ARCHITECTURE.md, Workloads), so an
    image's size is 0: nothing was pulled for it."""
    out = []
    for name in sorted(set(used) | {pause_image}):
        if not name:
            continue
        last = name.rsplit("/", 1)[-1]
        tag = name if ":" in last or "@" in name else f"{name}:latest"
        out.append({"id": image_digest(name), "repoTags": [tag] if "@" not in name else [],
                    "repoDigests": [image_id(name)], "size": "0", "pinned": name == pause_image,
                    "username": ""})
    return out


def find(ids: list[str], prefix: str) -> str | None:
    """containerd's lookup: a full ID or a prefix that names exactly one."""
    if prefix in ids:
        return prefix
    matches = [i for i in ids if prefix and i.startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def not_found(kind: str, ref: str) -> Obj:
    """The error object of an unknown ID, worded as containerd's NotFound."""
    return {"code": "NotFound", "message": f'an error occurred when try to find {kind} "{ref}": not found'}


def version(runtime_version: str) -> Obj:
    return {"version": CRI_VERSION, "runtimeName": RUNTIME_NAME, "runtimeVersion": runtime_version,
            "runtimeApiVersion": RUNTIME_API_VERSION}


def runtime_status(network_ready: bool, config: Obj) -> Obj:
    """`crictl info`: StatusResponse's conditions and the runtime's own info (config)."""
    net: Obj = {"type": "NetworkReady", "status": network_ready, "reason": "", "message": ""}
    if not network_ready:
        net.update(reason="NetworkPluginNotReady", message="Network plugin returns error: cni plugin not initialized")
    return {"status": {"conditions": [{"type": "RuntimeReady", "status": True, "reason": "", "message": ""}, net]},
            "info": {"config": config, "lastCNILoadStatus": "OK" if network_ready else "cni config load failed"}}


def tail(data: bytes, lines: int | None) -> bytes:
    """The last `lines` lines (None or negative: all, as `crictl logs --tail=-1`)."""
    if lines is None or lines < 0:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])
