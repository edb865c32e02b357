"""The running lab's state: which lab, the answers given, the questions passed, the hints shown
and the steps that undo its setup. One JSON file under the cluster's state dir
(STATE/NAME/labs/state.json), so `knet lab check` can run again later, from another shell."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LabState:
    lab: str
    answers: dict[str, str] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    hints: dict[str, int] = field(default_factory=dict)
    undo: list[dict[str, Any]] = field(default_factory=list)
    setup_done: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        return cls(lab=data["lab"], answers=dict(data.get("answers") or {}), passed=list(data.get("passed") or []),
                   hints=dict(data.get("hints") or {}), undo=list(data.get("undo") or []),
                   setup_done=bool(data.get("setup_done")))


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> LabState | None:
        try:
            return LabState.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None

    def save(self, state: LabState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # whole or not at all: a crash never leaves half a state

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
