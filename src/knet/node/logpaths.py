"""/var/log/pods and /var/log/containers, laid out as the kubelet lays them out.

Upstream (pkg/kubelet/kuberuntime/kuberuntime_manager.go, helpers.go): a pod's container logs are
`/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` and every container has a symlink
`/var/log/containers/<pod>_<namespace>_<container>-<container id>.log` to its current log (what log
shippers tail). knet keeps a container's logs in the kubelet's pod dir (`ROOT/pods/<uid>/logs/
<container>/<n>.log`), and a node shows ROOT as /var/lib/kubelet (knet.cluster.nodefs): so a pod's
/var/log/pods entry is a symlink to its logs dir as the node sees it, and the containers' symlinks
point into /var/log/pods, as upstream's do. The kubelet keeps both dirs in step with its pods.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

NODE_ROOT_DIR = "/var/lib/kubelet"  # the kubelet's root dir as a node shows it
PODS_LOG_DIR = "/var/log/pods"
LOG_DIRS = ("log/pods", "log/containers")  # under the kubelet's root dir (knet.cluster.nodefs.log_dirs)


@dataclass(frozen=True)
class ContainerLog:
    namespace: str
    pod: str
    uid: str
    container: str
    container_id: str
    index: int  # the current log file: <index>.log


def pod_log_dir_name(namespace: str, pod: str, uid: str) -> str:
    """BuildPodLogsDirectory's last element: <namespace>_<pod>_<uid>."""
    return f"{namespace}_{pod}_{uid}"


def container_log_link_name(pod: str, namespace: str, container: str, container_id: str) -> str:
    """logSymlink: <pod>_<namespace>_<container>-<container id>.log."""
    return f"{pod}_{namespace}_{container}-{container_id}.log"


def desired_links(logs: Iterable[ContainerLog]) -> tuple[dict[str, str], dict[str, str]]:
    """(/var/log/pods entries, /var/log/containers entries): name -> symlink target. Pure."""
    pods: dict[str, str] = {}
    containers: dict[str, str] = {}
    for c in logs:
        pod_dir = pod_log_dir_name(c.namespace, c.pod, c.uid)
        pods[pod_dir] = f"{NODE_ROOT_DIR}/pods/{c.uid}/logs"
        name = container_log_link_name(c.pod, c.namespace, c.container, c.container_id)
        containers[name] = f"{PODS_LOG_DIR}/{pod_dir}/{c.container}/{c.index}.log"
    return pods, containers


def _sync_dir(directory: Path, wanted: dict[str, str], kept: Callable[[str], bool] = lambda _: False) -> None:
    for entry in os.listdir(directory):
        path = directory / entry
        if path.is_symlink() and entry not in wanted and not kept(entry):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    for name, target in wanted.items():
        path = directory / name
        with contextlib.suppress(OSError):
            if path.is_symlink() and os.readlink(path) == target:
                continue
        tmp = directory / f".{name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, path)


def sync(root_dir: str | os.PathLike, logs: Iterable[ContainerLog], keep_uids: Iterable[str] = (),
         keep_container_ids: Iterable[str] = ()) -> bool:
    """Make ROOT/log/pods and ROOT/log/containers hold exactly `logs`' symlinks, keeping those of
    the pods (keep_uids) and containers a restarted kubelet has yet to adopt (on a kubeadm node
    these are files of their own, which a kubelet restart leaves alone). False (nothing done)
    where the node shows no /var/log (ROOT/log/pods missing: `knet up` made no node view)."""
    pods_dir, containers_dir = (Path(root_dir) / d for d in LOG_DIRS)
    if not (pods_dir.is_dir() and containers_dir.is_dir()):
        return False
    pods, containers = desired_links(logs)
    uids, ids = tuple(f"_{u}" for u in keep_uids), tuple(f"-{c}.log" for c in keep_container_ids)
    _sync_dir(pods_dir, pods, lambda name: name.endswith(uids) if uids else False)
    _sync_dir(containers_dir, containers, lambda name: name.endswith(ids) if ids else False)
    return True
