"""A pod's /dev/shm, as containerd gives every sandbox one.

The containers of a pod share its IPC namespace, and POSIX shared memory (shm_open, what
multi-process programs and sidecars share through) lives in /dev/shm: containerd mounts one tmpfs
per sandbox (`nodev,noexec,nosuid,mode=1777,size=65536k`, its defaultShmSize of 64 MiB) and binds
it at /dev/shm into each container of the pod (cri's container mounts: `sandboxDevShm`, the
host's /dev/shm for a hostIPC pod). knet mounts it at PODDIR/shm in the node's mount namespace
when the sandbox is made and unmounts it when the sandbox goes.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

from knet.net import linux

SIZE = "65536k"  # containerd's defaultShmSize
OPTIONS = f"mode=1777,size={SIZE}"
HOST_DEV_SHM = "/dev/shm"
MNT_DETACH = 2


def path(pod_dir: str | Path) -> str:
    return str(Path(pod_dir) / "shm")


def source(pod: dict[str, Any], pod_dir: str | Path) -> str:
    """What a container of `pod` gets at /dev/shm: the sandbox's tmpfs, the node's with hostIPC."""
    return HOST_DEV_SHM if (pod.get("spec") or {}).get("hostIPC") else path(pod_dir)


def mount(pod_dir: str | Path) -> str:
    """The sandbox's tmpfs at PODDIR/shm (already there, as after a kubelet restart: kept)."""
    target = path(pod_dir)
    os.makedirs(target, exist_ok=True)
    if not os.path.ismount(target):
        linux.mount("shm", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, OPTIONS)
    return target


def unmount(pod_dir: str | Path) -> None:
    """The sandbox's tmpfs goes (lazily: a container still holding it keeps it until it ends)."""
    target = path(pod_dir)
    while os.path.ismount(target):
        try:
            linux.umount(target, MNT_DETACH)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                break
            raise
    with contextlib.suppress(OSError):
        os.rmdir(target)
