"""`knet down`: remove everything a cluster made, also of a half-made or crashed cluster.

Discovery does not trust the config alone: processes are found by pid file and by any command
line that names the cluster's state dir, namespaces and links by the cluster's name prefix
(knet.net.machines.teardown_cluster_network), mounts by path.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from knet.cluster import kubeconfig, processes
from knet.cluster.paths import ClusterPaths


def processes_of(paths: ClusterPaths) -> list[processes.ProcessRecord]:
    """Recorded processes plus every process whose command line mentions the state dir
    (static pods the node agents started in their own sessions, crashed agents' children)."""
    records = {r.pid: r for r in processes.read_records(paths.pids)}
    marker = str(paths.root) + "/"
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me or int(entry) in records:
            continue
        argv = processes.proc_cmdline(int(entry))
        if any(marker in a or a == str(paths.root) for a in argv):
            start = processes.proc_start_time(int(entry))
            if start is not None:
                records[int(entry)] = processes.ProcessRecord(f"pid-{entry}", int(entry), start)
    return list(records.values())


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below root in this mount namespace, deepest first."""
    prefix = str(root)
    found = []
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1].encode().decode("unicode_escape")
            if target == prefix or target.startswith(prefix + "/"):
                found.append(target)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)


def unmount_all(root: Path) -> None:
    for target in mounts_under(root):
        subprocess.run(["umount", "-l", target], capture_output=True)


def remove_tree(root: Path) -> None:
    """rm -rf that never crosses into another filesystem (a leaked bind mount of a host
    directory must not be emptied)."""
    if not root.exists():
        return
    root_dev = root.lstat().st_dev

    def walk(path: Path) -> None:
        for entry in os.scandir(path):
            p = Path(entry.path)
            st = p.lstat()
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != root_dev:
                    continue  # a mount point that would not unmount: leave it alone
                walk(p)
                try:
                    p.rmdir()
                except OSError:
                    pass
            else:
                p.unlink(missing_ok=True)

    walk(root)
    try:
        root.rmdir()
    except OSError:
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def removed_objects_line(namespaces: list[str], links: list[str]) -> str:
    """What `knet down` says of the nodes' namespaces and the host's links it removed."""
    parts = []
    if namespaces:
        parts.append(f"network namespaces {', '.join(namespaces)}")
    if links:
        parts.append(f"links {', '.join(links)}")
    return f"removed {' and '.join(parts)}" if parts else ""


def tear_down(paths: ClusterPaths, *, remove_kubeconfig: bool = True) -> list[str]:
    """Remove cluster paths.name entirely. Returns what it did (for the user)."""
    done: list[str] = []
    records = [r for r in processes_of(paths) if r.alive]
    processes.stop(records, grace_seconds=1.0)
    if records:
        done.append(f"stopped {len(records)} process(es)")
    if os.geteuid() == 0 and shutil.which("ip"):
        try:
            from knet.net.machines import cluster_host_objects, teardown_cluster_network

            spaces, links = cluster_host_objects(paths.name)
            removed = teardown_cluster_network(paths.name)
            spaces_left, links_left = cluster_host_objects(paths.name)
            gone = removed_objects_line([s for s in spaces if s not in spaces_left],
                                        [link for link in links if link not in links_left])
            if gone:
                done.append(gone)
            if removed:
                done.append(f"removed host routes and rules: {', '.join(removed)}")
        except ImportError:
            pass
        # Anything that survived (e.g. started after the first sweep by a dying agent).
        late = [r for r in processes_of(paths) if r.alive]
        processes.stop(late, grace_seconds=1.0)
        # The nodes' pod cgroups (/knet/<cluster>/... in every hierarchy), emptied by the nodes' end.
        from knet.node import cgroups

        try:
            if cgroups.remove_cluster(paths.name):
                done.append(f"removed cgroups /knet/{paths.name}")
        except OSError:
            pass
        # /run/containerd and /run/sshd, if `knet up` made them and this was the last cluster up.
        from knet.cluster import hostdirs

        removed_dirs = hostdirs.remove_unused()
        if removed_dirs:
            done.append(f"removed {', '.join(removed_dirs)} (made by knet up; no knet cluster is up)")
    unmount_all(paths.root)
    if paths.root.exists():
        remove_tree(paths.root)
        done.append(f"removed {paths.root}")
    if remove_kubeconfig:
        path = kubeconfig.user_kubeconfig_path()
        if kubeconfig.uninstall(path, f"knet-{paths.name}"):
            done.append(f"removed context knet-{paths.name} from {path}")
    return done
