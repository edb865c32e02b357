"""PID 1 of a node machine: holds the node's UTS, PID and mount namespaces.

Run inside the node's network namespace (`ip netns exec knet-C-N python3 node_init.py ...`).
It unshares UTS, PID and mount namespaces, forks the node's PID 1 (which sets the hostname,
mounts /proc for the new PID namespace, builds the node's filesystem view (nodeview.py) and
bind-mounts the node's /etc/hosts, and starts the node's sshd), writes that
child's host PID to --pidfile and exits. PID 1 then only reaps orphans; killing it kills every
process of the node, which is how a node is torn down.
Stdlib only: it must start fast and must not depend on the rest of knet being importable.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linux  # noqa: E402  (sibling module, imported by path on purpose)
import nodeview  # noqa: E402

SSHD = "/usr/sbin/sshd"
SSHD_RESTART_SECONDS = 1.0

NODE_BIN_DIR = "/usr/local/sbin"


def _start_sshd(config: str, log: str) -> int:
    """The node's OpenSSH server (ssh.service of a kubeadm node), a child of PID 1."""
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.execv(SSHD, [SSHD, "-D", "-e", "-f", config])
        finally:
            os._exit(127)
    return pid


def netns_name_of(netns_dir: str, target: os.stat_result) -> str | None:
    """The name `ip netns` gives the namespace `target` is (an entry of netns_dir that is it)."""
    try:
        names = sorted(os.listdir(netns_dir))
    except OSError:
        return None
    for name in names:
        try:
            st = os.stat(os.path.join(netns_dir, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return name
    return None


def show_own_netns_only(netns_dir: str = "/run/netns") -> None:
    """The node's /run/netns names its own namespace only (the kubelet recognises its node by it).
    The host's copy lists every namespace of the machine as it was when the node started: other
    clusters' (pinned alive by this node's mounts after their `ip netns del`), and those made
    later show as empty files that `ip addr` reports as `Error: Peer netns reference is
    invalid.` on every link with a peer namespace."""
    if not os.path.isdir(netns_dir):
        return
    own = netns_name_of(netns_dir, os.stat("/proc/self/ns/net"))
    try:  # /run/netns is a bind mount of its own (ip netns add makes it one), with one per entry
        linux.umount(netns_dir, linux.MNT_DETACH)
    except OSError:
        for name in os.listdir(netns_dir):
            try:
                linux.umount(os.path.join(netns_dir, name), linux.MNT_DETACH)
            except OSError:
                pass
    linux.mount("tmpfs", netns_dir, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=755")
    if own:
        path = os.path.join(netns_dir, own)
        open(path, "w").close()
        linux.bind_mount("/proc/self/ns/net", path)


def _pid1(hostname: str, hosts_file: str | None, bin_dir: str | None, ready_fd: int,
          view: str | None = None, sshd_config: str | None = None, sshd_log: str = "/dev/null") -> None:
    linux.make_mounts_private()
    linux.mount_proc()
    try:
        show_own_netns_only()
    except OSError as exc:
        print(f"node init: /run/netns left as the host's: {exc}", file=sys.stderr)
    linux.set_hostname(hostname)
    try:
        linux.mount_cgroups()  # the kubelet's pod cgroups (limits, stats) live there
    except OSError as exc:
        print(f"node init: no cgroups in the node: {exc}", file=sys.stderr)
    overlaid: list[str] = []
    if view:  # the kubeadm node's files (/etc/kubernetes, /var/lib/kubelet, ...): nodeview.py
        overlaid = nodeview.apply_file(view)
    if "/etc" in overlaid:  # the machine's name, as a kubeadm node's /etc/hostname has it
        with open("/etc/hostname", "w") as f:
            f.write(hostname + "\n")
    if hosts_file and "/etc" in overlaid:
        # Into the node's /etc overlay: a container's /etc is the node's without what is mounted
        # below it, and hostNetwork pods read the node's names there.
        with open(hosts_file) as src, open("/etc/hosts", "w") as dst:
            dst.write(src.read())
    elif hosts_file:
        linux.bind_mount(hosts_file, "/etc/hosts")
    # The node's own tools (crictl) on PATH: only over an empty /usr/local/sbin, hiding nothing.
    if bin_dir and os.path.isdir(NODE_BIN_DIR) and not os.listdir(NODE_BIN_DIR):
        linux.bind_mount(bin_dir, NODE_BIN_DIR, read_only=True)
    sshd = _start_sshd(sshd_config, sshd_log) if sshd_config else None
    os.write(ready_fd, b"ok")
    os.close(ready_fd)
    # Signals sent from inside the node (`kill 1`) must not take the node down; teardown sends
    # SIGKILL from the host, which PID 1 of a child namespace cannot ignore.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wake pause() to reap
    sshd_started = time.monotonic()
    while True:  # reap every orphan of the node; sshd comes back (systemd's Restart=on-failure)
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            signal.pause()
            continue
        if sshd_config and pid == sshd:
            time.sleep(max(0.0, SSHD_RESTART_SECONDS - (time.monotonic() - sshd_started)))
            sshd, sshd_started = _start_sshd(sshd_config, sshd_log), time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--hosts-file")
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--bin-dir")
    parser.add_argument("--view", help="the node's filesystem plan (nodeview.py)")
    parser.add_argument("--sshd-config", help="run the node's sshd with this config")
    parser.add_argument("--sshd-log", default="/dev/null")
    args = parser.parse_args()
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
            _pid1(args.hostname, args.hosts_file, args.bin_dir, write_fd, args.view, args.sshd_config, args.sshd_log)
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
