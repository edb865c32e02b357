"""The node view's mountinfo reading (knet.net.nodeview): what goes on top of an overlay again."""

from __future__ import annotations

import os

from knet.net import nodeview

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /proc rw - proc proc rw
30 22 0:40 /docker/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
31 22 0:41 / /var/lib/docker rw - ext4 /dev/vdb rw
32 31 0:42 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw
33 22 0:43 / /etc/my\\040dir rw - tmpfs tmpfs rw
34 22 0:44 / /etcetera rw - tmpfs tmpfs rw
"""


def test_mount_points_unescape_octal():
    points = nodeview.mount_points(MOUNTINFO)
    assert "/etc/my dir" in points and points[0] == "/"


def test_remounts_are_the_outermost_mounts_and_kept_paths_below_the_overlay():
    points = nodeview.mount_points(MOUNTINFO)
    assert nodeview.remounts(points, "/etc", []) == ["/etc/my dir", "/etc/resolv.conf"]  # not /etcetera
    assert nodeview.remounts(points, "/var/lib", ["/var/lib/knet", "/tmp/state"]) == [
        "/var/lib/docker", "/var/lib/knet"]  # docker's own submount comes with the recursive bind
    assert nodeview.remounts(points, "/opt", ["/var/lib/knet"]) == []


def test_a_nodes_own_netns_name_is_the_entry_that_is_its_namespace(tmp_path):
    from knet.net import node_init

    netns = tmp_path / "netns"
    netns.mkdir()
    for name in ("knet-other-node01", "knet-demo-node01", "cni-1234"):
        (netns / name).write_text(name)
    assert node_init.netns_name_of(str(netns), os.stat(netns / "knet-demo-node01")) == "knet-demo-node01"
    assert node_init.netns_name_of(str(netns), os.stat(tmp_path)) is None
    assert node_init.netns_name_of(str(tmp_path / "missing"), os.stat(tmp_path)) is None
