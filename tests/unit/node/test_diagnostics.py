"""The kubelet's /metrics, /configz and /logs/ builders (knet.node.diagnostics)."""

from __future__ import annotations

import pytest

from knet.node.config import KubeletConfig
from knet.node.diagnostics import clean, configz, dir_listing, go_duration, log_target, metrics_text


def test_metrics_count_running_sandboxes_and_containers_by_state():
    pods = [(True, [("running", "c1"), ("terminated", "c2")]), (True, [("waiting", "c3"), ("waiting", "")]),
            (False, [("terminated", "c4")])]
    text = metrics_text("node01", "v1.32.0", pods, 1700000000.5)
    lines = text.splitlines()
    assert 'kubelet_node_name{node="node01"} 1' in lines
    assert "kubelet_running_pods 2" in lines
    assert 'kubelet_running_containers{container_state="exited"} 3' in lines
    assert 'kubelet_running_containers{container_state="running"} 1' in lines
    assert "process_start_time_seconds 1700000000.5" in lines
    assert any(line.startswith("kubernetes_build_info{") and 'git_version="v1.32.0"' in line
               and 'major="1"' in line and 'minor="32"' in line for line in lines)
    assert "# TYPE kubelet_running_pods gauge" in lines


@pytest.mark.parametrize("seconds,text", [(10, "10s"), (60, "1m0s"), (300, "5m0s"), (3600, "1h0m0s"), (0.5, "500ms"),
                                          (90, "1m30s"), (1.5, "1.5s"), (0, "0s")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_configz_is_the_kubelet_configuration():
    cfg = KubeletConfig(hostname_override="node01", pod_manifest_path="/etc/kubernetes/manifests",
                        cluster_dns=["10.96.0.10"], client_ca_file="/etc/kubernetes/pki/ca.crt", pod_cidr="10.244.1.0/24",
                        node_status_update_frequency=10.0)
    got = configz(cfg)["kubeletconfig"]
    assert got["staticPodPath"] == "/etc/kubernetes/manifests"
    assert got["clusterDNS"] == ["10.96.0.10"] and got["clusterDomain"] == "cluster.local"
    assert got["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert got["authentication"]["anonymous"] == {"enabled": False}
    assert got["authorization"]["mode"] == "Webhook"
    assert got["nodeStatusUpdateFrequency"] == "10s" and got["podCIDR"] == "10.244.1.0/24"
    assert "kind" not in got and "apiVersion" not in got
    assert configz(KubeletConfig())["kubeletconfig"]["authorization"]["mode"] == "AlwaysAllow"


@pytest.mark.parametrize("subpath,target", [
    ("", "/var/log/"), ("syslog", "/var/log/syslog"), ("pods/", "/var/log/pods"),
    ("../../etc/passwd", "/var/log/etc/passwd"), ("a/../../..//etc/shadow", "/var/log/etc/shadow"),
    ("./containers/../pods", "/var/log/pods"),
])
def test_log_targets_stay_under_the_log_dir(subpath, target):
    assert str(log_target("/var/log", subpath)) == target.rstrip("/")


def test_clean_is_rooted():
    assert clean("/../..") == "/" and clean("/a/./b/../c") == "/a/c"


def test_dir_listing_is_go_file_servers():
    """net/http's dirList: sorted, directories with a slash, names escaped for HTML and URL."""
    assert dir_listing([("syslog", False), ("apt", True), ("a&b<c>.log", False), ("x y#1?.log", False),
                        ("c:d", False)]) == (
        "<!doctype html>\n"
        '<meta name="viewport" content="width=device-width">\n'
        "<pre>\n"
        '<a href="a&b%3Cc%3E.log">a&amp;b&lt;c&gt;.log</a>\n'
        '<a href="apt/">apt/</a>\n'
        '<a href="./c:d">c:d</a>\n'
        '<a href="syslog">syslog</a>\n'
        '<a href="x%20y%231%3F.log">x y#1?.log</a>\n'
        "</pre>\n")
