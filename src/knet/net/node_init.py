"""PID 1 of a node machine: holds the node's UTS, PID and mount namespaces.

Run inside the node's network namespace (`ip netns exec knet-C-N python3 node_init.py ...`).
It unshares UTS, PID and mount namespaces, forks the node's PID 1 (which sets the hostname,
mounts /proc for the new PID namespace and bind-mounts the node's /etc/hosts), writes that
child's host PID to --pidfile and exits. PID 1 then only reaps orphans; killing it kills every
process of the node, which is how a node is torn down.
Stdlib only: it must start fast and must not depend on the rest of knet being importable.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linux  # noqa: E402  (sibling module, imported by path on purpose)

NODE_BIN_DIR = "/usr/local/sbin"


def _pid1(hostname: str, hosts_file: str | None, bin_dir: str | None, ready_fd: int,
          cgroups: list[tuple[str, str, str]]) -> None:
    linux.make_mounts_private()
    linux.mount_proc()
    # `ip netns exec` gave us a sysfs of the node's network namespace, without the cgroup
    # hierarchies under it: mount them again, as a machine has them (runc needs them).
    linux.mount_cgroups(cgroups)
    linux.set_hostname(hostname)
    if hosts_file:
        linux.bind_mount(hosts_file, "/etc/hosts")
    # The node's own tools (crictl) on PATH: only over an empty /usr/local/sbin, hiding nothing.
    if bin_dir and os.path.isdir(NODE_BIN_DIR) and not os.listdir(NODE_BIN_DIR):
        linux.bind_mount(bin_dir, NODE_BIN_DIR, read_only=True)
    os.write(ready_fd, b"ok")
    os.close(ready_fd)
    # Signals sent from inside the node (`kill 1`) must not take the node down; teardown sends
    # SIGKILL from the host, which PID 1 of a child namespace cannot ignore.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wake pause() to reap
    while True:  # reap every orphan of the node
        try:
            os.wait()
        except ChildProcessError:
            signal.pause()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--hosts-file")
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--bin-dir")
    args = parser.parse_args()
    try:  # the host's hierarchies, from its PID 1 (ours are gone under `ip netns exec`)
        with open("/proc/1/mountinfo") as f:
            cgroups = linux.cgroup_mounts(f.read())
    except OSError:
        cgroups = []
    linux.unshare(linux.CLONE_NEWUTS | linux.CLONE_NEWPID | linux.CLONE_NEWNS)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        # Let go of the caller's pipes: whoever started us waits for their EOF.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            _pid1(args.hostname, args.hosts_file, args.bin_dir, write_fd, cgroups)
        except Exception as exc:  # report, never fall back into the parent's code
            os.write(write_fd, f"error: {exc}".encode())
            os._exit(1)
    os.close(write_fd)
    answer = os.read(read_fd, 4096).decode()
    if answer != "ok":
        print(answer or "node init died", file=sys.stderr)
        sys.exit(1)
    with open(args.pidfile + ".tmp", "w") as f:
        f.write(str(pid))
    os.replace(args.pidfile + ".tmp", args.pidfile)


if __name__ == "__main__":
    main()
