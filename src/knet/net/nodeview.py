"""The filesystem a node shows (a kubeadm node's /etc/kubernetes, /var/lib/kubelet, ...), built by
the node's PID 1 in the node's own mount namespace. Stdlib only (node_init.py imports it by path).

The view plan (JSON, written by knet.cluster.nodefs) says:
- `overlays`: host directories (/etc, /var/lib, ...) shown as an overlay: the host's files below,
  an upper layer on a tmpfs that no path names (fsopen/fsmount) above, so the node sees the host's
  files, and whatever the node creates there (mount points, a shell's scratch files) lives and dies
  with the node: nothing is ever written to the host's directory;
- `keep`: paths under an overlay that must stay the host's own (the state dir when it is under
  /var/lib: the kubelet writes there and the host reads it);
- `binds`: [source, target, read_only]: a state-dir file or directory shown at target (created in
  the overlay when missing);
- `hide`: host paths under an overlay the node does not show (a worker has no /var/lib/etcd, even
  where the host's etcd package made one).
A mount under an overlaid directory (a bind over /etc/resolv.conf, a filesystem on /var/lib/docker)
is not part of an overlay's lower layer, so it is mounted again on top, as are the `keep` paths.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linux  # noqa: E402  (sibling module, imported by path on purpose)

# The new mount API's syscalls have one number on every architecture (include/uapi/asm-generic).
SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432
FSOPEN_CLOEXEC, FSCONFIG_CMD_CREATE, FSMOUNT_CLOEXEC = 1, 6, 1


def unescape_mountinfo(field: str) -> str:
    """/proc/self/mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str) -> list[str]:
    """Every mount point in a /proc/PID/mountinfo text, in its order (parents before children)."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            out.append(unescape_mountinfo(fields[4]))
    return out


def _under(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip("/") + "/")


def remounts(points: list[str], parent: str, keep: list[str]) -> list[str]:
    """What must be mounted again on top of an overlay of `parent`: the outermost mounts below it
    and the `keep` paths below it (each with what is mounted below it: a recursive bind)."""
    wanted = sorted({p for p in points if _under(p, parent)} | {k for k in keep if _under(k, parent)})
    out: list[str] = []
    for p in wanted:
        if not any(p == o or _under(p, o) for o in out):
            out.append(p)
    return out


def _syscall(*args) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(*args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syscall {args[0]}: {os.strerror(err)}")
    return result


def anonymous_tmpfs() -> int:
    """A tmpfs mounted nowhere (fsopen + fsmount): the fd of its root."""
    fs = _syscall(SYS_FSOPEN, b"tmpfs", FSOPEN_CLOEXEC)
    try:
        _syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0)
        return _syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, 0)
    finally:
        os.close(fs)


def _make_mount_point(target: str, is_dir: bool, overlays: list[str]) -> None:
    if os.path.lexists(target):
        return
    if not any(_under(target, o) for o in overlays):
        # Creating it would write to the host's own filesystem.
        raise RuntimeError(f"node view: {target} is missing and not under an overlaid directory")
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass


def apply(plan: dict) -> list[str]:
    """Build the view in the calling process's (private) mount namespace; returns the overlaid
    directories (those the node may write to without touching the host's)."""
    overlays = [d for d in plan.get("overlays", []) if os.path.isdir(d) and not os.path.islink(d)]
    keep = [os.path.realpath(k) for k in plan.get("keep", []) if os.path.isdir(k)]
    with open("/proc/self/mountinfo") as f:
        points = mount_points(f.read())
    # Hold what must be mounted again before the overlays hide it.
    held = {d: [(p, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p in remounts(points, d, keep)] for d in overlays}
    upper = anonymous_tmpfs()
    try:
        for i, d in enumerate(overlays):
            layer = f"/proc/self/fd/{upper}/{i}"
            os.makedirs(f"{layer}/upper")
            os.makedirs(f"{layer}/work")
            for hidden in plan.get("hide", []):
                if _under(hidden, d):  # an overlay whiteout: a 0/0 character device in the upper layer
                    whiteout = f"{layer}/upper/{os.path.relpath(hidden, d)}"
                    os.makedirs(os.path.dirname(whiteout), exist_ok=True)
                    os.mknod(whiteout, stat.S_IFCHR, os.makedev(0, 0))
            linux.mount("overlay", d, "overlay", 0, f"lowerdir={d},upperdir={layer}/upper,workdir={layer}/work")
            for path, fd in held[d]:
                linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
                os.close(fd)
    finally:
        os.close(upper)  # the overlays hold the tmpfs
    for source, target, read_only in plan.get("binds", []):
        _make_mount_point(target, os.path.isdir(source), overlays)
        linux.bind_mount(source, target, read_only=read_only)
    return overlays


def apply_file(path: str) -> list[str]:
    with open(path) as f:
        return apply(json.load(f))
