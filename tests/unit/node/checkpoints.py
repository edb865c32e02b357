"""A pod checkpoint for the checkpoint and re-adoption tests."""

from __future__ import annotations

from knet.node import checkpoint


def sample_checkpoint(**over) -> checkpoint.PodCheckpoint:
    """Pod u1's checkpoint: sandbox s1 at 10.244.1.5 (pause 100), container c (cid, 2 restarts,
    shim 200); `over` replaces fields."""
    base = dict(uid="u1", sandbox_id="s1", ip="10.244.1.5", pause_pid=100, pause_start=5000, new_net=True,
                new_pid=False, start_time="2026-01-01T00:00:00Z", mounts=[("/a", "/etc/hosts", False)],
                containers={"c": checkpoint.ContainerCheckpoint("cid", restart_count=2, log_index=2, shim_pid=200,
                                                                shim_start=6000, exit_file="/x/exit")})
    base.update(over)
    return checkpoint.PodCheckpoint(**base)
