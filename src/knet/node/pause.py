"""A pod sandbox's holder process (the "pause" container). Stdlib only, starts in milliseconds.

It unshares the pod's namespaces (mount and IPC always; network and UTS unless the pod uses the host's
network), sets the hostname, brings `lo` up, bind-mounts the pod's files (resolv.conf, hosts,
volumes) in its private mount namespace, prints `ok` and then only reaps orphans. Containers
join its namespaces with nsenter; CNI configures `/proc/PID/ns/net`.
argv: pause.py HOSTNAME NEWNET(0|1)[p] SCRATCH [SOURCE TARGET READONLY(0|1)]...   (as pause.c;
this fallback creates a missing TARGET on the host instead of in a private overlay)
"""

from __future__ import annotations

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "net"))
import linux  # noqa: E402


def _ensure_target(source: str, target: str) -> None:
    if os.path.exists(target):
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()


def main() -> None:
    hostname, new_net, rest = sys.argv[1], sys.argv[2].startswith("1"), sys.argv[4:]  # argv[3]: SCRATCH, unused
    new_pid = "p" in sys.argv[2]  # a PID namespace the pod's containers share
    mounts = [(rest[i], rest[i + 1], rest[i + 2] == "1") for i in range(0, len(rest) - 2, 3)]
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWIPC  # IPC: shared by the pod's containers
    if new_net:
        flags |= linux.CLONE_NEWNET | linux.CLONE_NEWUTS
    linux.unshare(flags | (linux.CLONE_NEWPID if new_pid else 0))
    if new_pid and os.fork() == 0:  # the namespace's PID 1: reaps until its parent dies
        linux.set_pdeathsig(signal.SIGKILL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(devnull, fd)
        while True:
            try:
                os.wait()
            except ChildProcessError:
                signal.pause()
    linux.make_mounts_private()
    if new_net:
        linux.set_hostname(hostname)
        linux.set_link_up("lo")
    # Sources first, as pause.c: a mount may cover the path of a later one's source (the
    # cluster's state directory is hidden from pods, their volumes' files live in it).
    sources = [os.open(source, os.O_PATH | os.O_CLOEXEC) for source, _, _ in mounts]
    for source, target, _ in mounts:
        _ensure_target(source, target)
    for fd, (_, target, read_only) in zip(sources, mounts, strict=True):
        linux.bind_mount(f"/proc/self/fd/{fd}", target, read_only=bool(read_only))
        os.close(fd)
    sys.stdout.write("ok\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wake pause() to reap
    while True:
        try:
            os.wait()
        except ChildProcessError:
            signal.pause()


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # tell the kubelet why, on the line it reads
        sys.stdout.write(f"error: {exc}\n")
        sys.exit(1)
