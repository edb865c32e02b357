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
MNT_DETACH = 2

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


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


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


def cgroup_mounts(proc_self_cgroup: str) -> list[tuple[str, str, str | None]]:
    """(directory under /sys/fs/cgroup, filesystem type, mount options) for every hierarchy in
    /proc/self/cgroup, laid out as systemd mounts them: `cpu,cpuacct`-style v1 directories (and
    `systemd` for name=systemd), the v2 tree at `unified` on a hybrid host or as the whole
    /sys/fs/cgroup ("") on a unified one. Pure."""
    v1, unified = [], False
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            unified = True
        elif parts[1]:
            v1.append(parts[1])
    out: list[tuple[str, str, str | None]] = []
    for controllers in v1:
        if controllers.startswith("name="):
            out.append((controllers[5:], "cgroup", f"none,{controllers}"))
        else:
            out.append((controllers, "cgroup", controllers))
    if unified:
        out.append(("unified" if v1 else "", "cgroup2", None))
    return out


def mount_cgroups(root: str = "/sys/fs/cgroup") -> None:
    """The host's cgroup hierarchies at /sys/fs/cgroup, as a booted machine has them (`ip netns
    exec` mounted a fresh sysfs over /sys, which hides them); each controller of a co-mounted
    hierarchy gets a symlink (cpu -> cpu,cpuacct)."""
    with open("/proc/self/cgroup") as f:
        mounts = cgroup_mounts(f.read())
    if not mounts:
        return
    if len(mounts) > 1 or mounts[0][0]:
        mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for name, fstype, options in mounts:
        target = os.path.join(root, name) if name else root
        os.makedirs(target, exist_ok=True)
        mount("cgroup" if fstype == "cgroup" else "cgroup2", target, fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC, options)
        if "," in name:
            for controller in name.split(","):
                link = os.path.join(root, controller)
                if not os.path.lexists(link):
                    os.symlink(name, link)


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
