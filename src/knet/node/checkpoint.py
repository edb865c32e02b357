"""The kubelet's checkpoint of a pod (as the kubelet's and containerd's own state): what a
restarted kubelet needs to re-adopt the pod's sandbox and containers instead of recreating them.

One JSON file per pod, pods/UID/checkpoint.json, written atomically on every change (sandbox
made, container started or exited). Pure data and (de)serialisation here; `save`/`load` are the
only file I/O; the liveness checks take a function so that tests pass fakes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE = "checkpoint.json"
VERSION = 1


@dataclass
class ContainerCheckpoint:
    container_id: str
    restart_count: int = 0
    log_index: int = 0
    started_at: str | None = None
    created_at: float = 0.0
    crashes: int = 0
    ready: bool = False
    started: bool = True               # passed its startup probe (or has none)
    shim_pid: int | None = None        # the process waiting for the container (its exit file's writer)
    shim_start: int | None = None      # its start time (/proc/PID/stat field 22): guards pid reuse
    exit_file: str = ""                # where the shim writes the container's exit code
    last_state: dict[str, Any] | None = None
    # The final state (state.terminated) of a container that is never started again (an
    # ephemeral one): a restarted kubelet reports it as it was.
    terminated: dict[str, Any] | None = None


@dataclass
class PodCheckpoint:
    uid: str
    sandbox_id: str
    ip: str
    pause_pid: int | None
    pause_start: int | None
    new_net: bool
    new_pid: bool
    start_time: str
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    containers: dict[str, ContainerCheckpoint] = field(default_factory=dict)
    init_done: bool = True             # every init container completed (else: not adoptable)

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = VERSION
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> PodCheckpoint:
        data = json.loads(text)
        if data.pop("version", None) != VERSION:
            raise ValueError("unknown checkpoint version")
        containers = {name: ContainerCheckpoint(**c) for name, c in (data.pop("containers") or {}).items()}
        mounts = [(str(s), str(d), bool(ro)) for s, d, ro in data.pop("mounts") or []]
        return cls(**data, containers=containers, mounts=mounts)


def save(pod_dir: Path, cp: PodCheckpoint) -> None:
    pod_dir.mkdir(parents=True, exist_ok=True)
    tmp = pod_dir / (FILE + ".tmp")
    tmp.write_text(cp.to_json())
    os.replace(tmp, pod_dir / FILE)


def load(pod_dir: Path) -> PodCheckpoint | None:
    try:
        return PodCheckpoint.from_json((pod_dir / FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None


def load_all(pods_dir: Path) -> dict[str, PodCheckpoint]:
    out: dict[str, PodCheckpoint] = {}
    if not pods_dir.is_dir():
        return out
    for entry in pods_dir.iterdir():
        cp = load(entry)
        if cp is not None and cp.uid == entry.name:
            out[cp.uid] = cp
    return out


def remove(pod_dir: Path) -> None:
    (pod_dir / FILE).unlink(missing_ok=True)


# -- re-adoption decisions ------------------------------------------------------------------
StartTime = Callable[[int], "int | None"]  # pid -> its start time, None when gone


def sandbox_alive(cp: PodCheckpoint, start_time: StartTime) -> bool:
    """The pod's pause is still the process the checkpoint names (not a reused pid)."""
    return cp.pause_pid is not None and cp.pause_start is not None and start_time(cp.pause_pid) == cp.pause_start


def shim_alive(c: ContainerCheckpoint, start_time: StartTime) -> bool:
    return c.shim_pid is not None and c.shim_start is not None and start_time(c.shim_pid) == c.shim_start


def adoptable(checkpoints: dict[str, PodCheckpoint], start_time: StartTime) -> dict[str, PodCheckpoint]:
    """The pods a restarted kubelet keeps: a live sandbox whose init containers had completed.
    Whether the API still wants each is decided later, when the pod (or static manifest) shows up."""
    return {uid: cp for uid, cp in checkpoints.items() if cp.init_done and sandbox_alive(cp, start_time)}


def read_exit_code(path: str) -> int | None:
    """The container's exit code as its shim wrote it (None: not written, the shim died too)."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
