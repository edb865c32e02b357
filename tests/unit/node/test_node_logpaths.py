"""/var/log/pods and /var/log/containers names, as upstream's kubelet lays them out
(kuberuntime BuildPodLogsDirectory and logSymlink), and their sync."""

from __future__ import annotations

import os

from knet.node import logpaths

CID = "a" * 64
LOG = logpaths.ContainerLog("default", "web-1", "1234-uid", "nginx", CID, 2)


def test_names_follow_upstream():
    assert logpaths.pod_log_dir_name("default", "web-1", "1234-uid") == "default_web-1_1234-uid"
    assert logpaths.container_log_link_name("web-1", "default", "nginx", CID) == f"web-1_default_nginx-{CID}.log"
    pods, containers = logpaths.desired_links([LOG])
    assert pods == {"default_web-1_1234-uid": "/var/lib/kubelet/pods/1234-uid/logs"}
    assert containers == {f"web-1_default_nginx-{CID}.log": "/var/log/pods/default_web-1_1234-uid/nginx/2.log"}


def test_sync_adds_replaces_and_removes_links_only(tmp_path):
    assert logpaths.sync(tmp_path, [LOG]) is False  # no node view: nothing written
    assert not (tmp_path / "log").exists()
    for d in logpaths.LOG_DIRS:
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "log/containers/not-a-link.txt").write_text("kept")
    os.symlink("/old", tmp_path / "log/containers/gone.log")
    assert logpaths.sync(tmp_path, [LOG]) is True
    link = tmp_path / "log/containers" / f"web-1_default_nginx-{CID}.log"
    assert os.readlink(link) == "/var/log/pods/default_web-1_1234-uid/nginx/2.log"
    assert not os.path.lexists(tmp_path / "log/containers/gone.log")
    assert (tmp_path / "log/containers/not-a-link.txt").read_text() == "kept"
    restarted = logpaths.ContainerLog("default", "web-1", "1234-uid", "nginx", CID, 3)
    logpaths.sync(tmp_path, [restarted])
    assert os.readlink(link).endswith("/nginx/3.log")
    logpaths.sync(tmp_path, [])
    assert os.listdir(tmp_path / "log/pods") == [] and os.listdir(tmp_path / "log/containers") == ["not-a-link.txt"]


def test_a_restarted_kubelet_keeps_the_links_of_pods_it_has_yet_to_adopt(tmp_path):
    """On a kubeadm node /var/log/pods is the runtime's own directory: a kubelet restart does not
    make a running pod's logs vanish from it while the new kubelet re-adopts the pod."""
    for d in logpaths.LOG_DIRS:
        (tmp_path / d).mkdir(parents=True)
    other = logpaths.ContainerLog("default", "db-0", "5678-uid", "pg", "b" * 64, 0)
    logpaths.sync(tmp_path, [LOG, other])
    logpaths.sync(tmp_path, [], keep_uids=["1234-uid"], keep_container_ids=[CID])  # web-1 not adopted yet
    assert os.listdir(tmp_path / "log/pods") == ["default_web-1_1234-uid"]
    assert os.listdir(tmp_path / "log/containers") == [f"web-1_default_nginx-{CID}.log"]
    logpaths.sync(tmp_path, [])  # adopted by nobody: gone
    assert os.listdir(tmp_path / "log/pods") == [] and os.listdir(tmp_path / "log/containers") == []
