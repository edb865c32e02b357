"""The host directories `knet up` makes when the host lacks them, and their removal by the last
`knet down`: /run/containerd (the mount point of every node's own /run/containerd) and /run/sshd
(sshd's compiled-in privilege separation directory).

Every real cluster on the host, under any state dir, needs them while it is up, so they are
host-wide: `knet up` notes each one it made in MARKER (one path a line, on /run like them, gone
at reboot with them); `knet down` removes the noted ones once no knet cluster is up any more (no
`knet-*` network namespace is left in /run/netns: a real cluster's nodes are named there), each
only while it is empty and no mount point, then the marker. A directory the host had before knet
(containerd or openssh-server installed) is never noted, so never removed. `remove_decision` is the
pure rule; `note_created` and `remove_unused` do the file work under a lock on the marker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

MARKER = Path("/run/knet-created-dirs")
NETNS_DIR = Path("/run/netns")


@contextlib.contextmanager
def _locked(marker: Path) -> Iterator[None]:
    """One `knet up`/`knet down` at a time reads and writes the marker (a lock file beside it)."""
    fd = os.open(f"{marker}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(marker: Path) -> list[str]:
    try:
        return [line for line in marker.read_text().splitlines() if line.startswith("/")]
    except FileNotFoundError:
        return []


def ensure(path: str, mode: int, marker: Path = MARKER) -> bool:
    """Make `path` (mode) if the host lacks it, noting that knet made it; True if it did."""
    if os.path.isdir(path):
        return False
    with _locked(marker):
        if os.path.isdir(path):
            return False
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)  # makedirs' mode is masked by the umask
        noted = _read(marker)
        if path not in noted:
            marker.write_text("".join(f"{p}\n" for p in [*noted, path]))
        return True


def clusters_up(netns_dir: Path = NETNS_DIR) -> list[str]:
    """The knet network namespaces on the host (any cluster's, under any state dir)."""
    try:
        return sorted(n for n in os.listdir(netns_dir) if n.startswith("knet-"))
    except FileNotFoundError:
        return []


def remove_decision(noted: list[str], others_up: bool, is_removable: Callable[[str], bool]) -> list[str]:
    """Which noted directories the last `knet down` removes: none while any knet cluster is up
    (its nodes mount over /run/containerd, its sshd needs /run/sshd); otherwise those still
    empty and not a mount point (something else may have come to use them)."""
    if others_up:
        return []
    return [p for p in noted if is_removable(p)]


def _empty_unmounted(path: str) -> bool:
    try:
        return os.path.isdir(path) and not os.path.islink(path) and not os.path.ismount(path) \
            and not os.listdir(path)
    except OSError:
        return False


def remove_unused(marker: Path = MARKER, netns_dir: Path = NETNS_DIR) -> list[str]:
    """On `knet down` (after its own namespaces went): remove the directories knet made once no
    knet cluster is up; returns those removed. The marker goes with them (a directory that is
    not empty any more is left, and forgotten: it is someone's now)."""
    if not marker.exists():
        return []
    with _locked(marker):
        noted = _read(marker)
        if not noted or clusters_up(netns_dir):
            return []
        removed = []
        for path in remove_decision(noted, False, _empty_unmounted):
            with contextlib.suppress(OSError):
                os.rmdir(path)
                removed.append(path)
        marker.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        os.unlink(f"{marker}.lock")
    return removed
