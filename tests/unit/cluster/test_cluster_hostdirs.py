"""The host directories knet up makes if missing (/run/containerd, /run/sshd): noted host-wide,
removed by the last knet down (no knet cluster's namespace left) while empty; a directory the host
had before is never touched."""

from __future__ import annotations

import os
import stat

from knet.cluster import hostdirs


def test_the_last_down_removes_what_up_made_and_nothing_else(tmp_path):
    run, netns = tmp_path / "run", tmp_path / "run" / "netns"
    netns.mkdir(parents=True)
    marker = run / "knet-created-dirs"
    containerd, sshd, had = str(run / "containerd"), str(run / "sshd"), str(run / "had")
    os.mkdir(had)  # the host's own (containerd installed)
    assert hostdirs.ensure(containerd, 0o711, marker) is True
    assert hostdirs.ensure(sshd, 0o755, marker) is True
    assert hostdirs.ensure(had, 0o755, marker) is False
    assert hostdirs.ensure(containerd, 0o711, marker) is False  # a second cluster's up
    assert stat.S_IMODE(os.stat(containerd).st_mode) == 0o711
    assert marker.read_text() == f"{containerd}\n{sshd}\n"
    # Another cluster (any state dir) is still up: its nodes need them.
    (netns / "knet-other-node01").touch()
    assert hostdirs.remove_unused(marker, netns) == []
    assert os.path.isdir(containerd) and os.path.isdir(sshd) and marker.exists()
    # It went down too: the one left empty goes, one that gained a file stays, the host's stays.
    (netns / "knet-other-node01").unlink()
    (run / "sshd" / "someone's").touch()
    assert hostdirs.remove_unused(marker, netns) == [containerd]
    assert not os.path.exists(containerd) and os.path.isdir(sshd) and os.path.isdir(had)
    assert not marker.exists() and not os.path.exists(f"{marker}.lock")
    assert hostdirs.remove_unused(marker, netns) == []  # nothing noted: nothing to do


def test_remove_decision():
    def empty(path: str) -> bool:
        return path != "/run/sshd"

    assert hostdirs.remove_decision(["/run/containerd", "/run/sshd"], True, empty) == []
    assert hostdirs.remove_decision(["/run/containerd", "/run/sshd"], False, empty) == ["/run/containerd"]
    assert hostdirs.remove_decision([], False, empty) == []


def test_clusters_up_are_knet_namespaces(tmp_path):
    (tmp_path / "knet-a-controlplane").touch()
    (tmp_path / "other").touch()
    assert hostdirs.clusters_up(tmp_path) == ["knet-a-controlplane"]
    assert hostdirs.clusters_up(tmp_path / "missing") == []
