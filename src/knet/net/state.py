"""Where a cluster's state lives on the host (docs/contracts.md section 5)."""

from __future__ import annotations

import os
from pathlib import Path


def state_root() -> Path:
    if env := os.environ.get("KNET_STATE_DIR"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/knet")
    return Path.home() / ".local" / "share" / "knet"


def cluster_dir(cluster: str) -> Path:
    return state_root() / cluster


def node_dir(cluster: str, node: str) -> Path:
    return cluster_dir(cluster) / "nodes" / node
