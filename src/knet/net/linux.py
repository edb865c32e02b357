"""Thin ctypes wrappers over the few Linux calls the init and pause processes need.

Stdlib only, so that `node_init.py` and `pause.py` start in a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def make_mounts_private() -> None:
    """Stop our mounts from propagating back to the parent mount namespace."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)


def bind_mount(source: str, target: str, read_only: bool = False) -> None:
    mount(source, target, None, MS_BIND)
    if read_only:
        # A bind mount only becomes read-only on a remount.
        mount("none", target, None, MS_BIND | 32 | MS_RDONLY)  # 32 = MS_REMOUNT


def mount_proc() -> None:
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    """(fstype, mount point, options) of the cgroup hierarchies in a /proc/PID/mountinfo text,
    parents first: what mount_cgroups needs to show the same hierarchies again."""
    out = []
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts, extra = fields.split(), rest.split()
        if len(parts) < 5 or len(extra) < 3 or extra[0] not in ("cgroup", "cgroup2"):
            continue
        options = ",".join(o for o in extra[2].split(",") if o not in ("rw", "ro"))
        out.append((extra[0], parts[4].replace("\\040", " "), options))
    return sorted(out, key=lambda m: m[1].count("/"))


def mount_cgroups(hierarchies: list[tuple[str, str, str]], root: str = "/sys/fs/cgroup") -> None:
    """Mount the host's cgroup hierarchies again in this mount namespace (under a sysfs of our
    own, e.g. `ip netns exec`'s, /sys/fs/cgroup is empty): the same hierarchies, so a container
    runtime here creates its cgroups in the host's tree."""
    if not hierarchies:
        return
    if not any(target == root for _, target, _ in hierarchies):  # v1: a tmpfs holds the hierarchies
        mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for fstype, target, options in hierarchies:
        os.makedirs(target, exist_ok=True)
        mount(fstype, target, fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC, options or None)


def set_pdeathsig(sig: int) -> None:
    _check(_libc.prctl(1, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")  # 1 = PR_SET_PDEATHSIG


def set_hostname(name: str) -> None:
    socket.sethostname(name)


def set_link_up(name: str) -> None:
    """`ip link set NAME up` without an exec: SIOCGIFFLAGS/SIOCSIFFLAGS."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, ifreq))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", name.encode(), flags | iff_up))
