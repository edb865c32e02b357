"""The node view's mountinfo reading (knet.net.nodeview): what goes on top of an overlay again."""

from __future__ import annotations

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
