"""knet.node.podshm: a pod's /dev/shm as containerd's sandbox has it -- a 64 MiB tmpfs, mode
1777, nosuid/nodev/noexec, mounted once (a restarted kubelet keeps it) and unmounted with the
sandbox. Mounts a real tmpfs (the unit tests run as root, as the real dataplane needs)."""

from __future__ import annotations

import os

from knet.node import podshm


def _mount_entry(target: str) -> tuple[str, set[str], str] | None:
    """(fstype, mount options, super options) of the mount at target, from mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if fields[4] == target:
                return tail[0], set(fields[5].split(",")), tail[2]
    return None


def test_source_is_the_pods_tmpfs_or_the_nodes_with_host_ipc(tmp_path):
    assert podshm.source({"spec": {}}, tmp_path) == str(tmp_path / "shm")
    assert podshm.source({"spec": {"hostIPC": True}}, tmp_path) == "/dev/shm"


def test_mount_is_containerds_sandbox_shm_and_unmount_removes_it(tmp_path):
    target = podshm.mount(tmp_path)
    try:
        assert target == str(tmp_path / "shm") and os.path.ismount(target)
        fstype, flags, options = _mount_entry(target)
        assert fstype == "tmpfs"
        assert {"nosuid", "nodev", "noexec"} <= flags
        assert "size=65536k" in options.split(",")  # (mode=1777 is tmpfs's default: not listed)
        assert os.stat(target).st_mode & 0o7777 == 0o1777
        (tmp_path / "shm" / "segment").write_text("shared")
        assert podshm.mount(tmp_path) == target  # again (a restarted kubelet): the same tmpfs, kept
        assert (tmp_path / "shm" / "segment").read_text() == "shared"
        assert _mount_entry(target) is not None
    finally:
        podshm.unmount(tmp_path)
    assert not os.path.exists(target) and _mount_entry(target) is None
    podshm.unmount(tmp_path)  # nothing left: no error
