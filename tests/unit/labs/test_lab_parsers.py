"""knet.labs.facts parsers and knet.labs.model answer judges (pure)."""

from __future__ import annotations

import pytest

from knet.labs import facts
from knet.labs.access import undo_patch
from knet.labs.model import judge_choice, judge_count, judge_network, parse_network


def test_flag_value_both_spellings_and_last_wins():
    argv = ["kube-apiserver", "--service-cluster-ip-range=10.96.0.0/12", "--cluster-cidr", "10.244.0.0/16",
            "--service-cluster-ip-range=10.100.0.0/16"]
    assert facts.flag_value(argv, "service-cluster-ip-range") == "10.100.0.0/16"
    assert facts.flag_value(argv, "cluster-cidr") == "10.244.0.0/16"
    assert facts.flag_value(argv, "cluster") is None  # a prefix of another flag is not that flag


def test_parse_ip_addr_oneline_output():
    text = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
            "2: eth0@if7    inet 172.30.0.2/24 brd 172.30.0.255 scope global eth0\\       valid_lft forever\n")
    assert [(n, str(i)) for n, i in facts.parse_ip_addr(text)] == [("lo", "127.0.0.1/8"), ("eth0", "172.30.0.2/24")]


def test_parse_default_gateway_and_listeners():
    assert facts.parse_default_gateway("default via 172.30.0.1 dev eth0 \n10.0.0.0/8 dev x\n") == "172.30.0.1"
    assert facts.parse_default_gateway("10.0.0.0/8 dev x\n") is None
    ss = ("State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
          'LISTEN 0 4096 127.0.0.1:10259 0.0.0.0:* users:(("kube-scheduler",pid=9,fd=7))\n'
          'LISTEN 0 4096 [::1]:2379 [::]:* users:(("etcd",pid=8,fd=7))\n'
          'LISTEN 0 4096 *:10250 *:* users:(("kubelet",pid=7,fd=9))\n'
          "LISTEN 0 4096 0.0.0.0:22 0.0.0.0:*\n")
    assert facts.parse_listeners(ss) == [("127.0.0.1", 10259, "kube-scheduler"), ("::1", 2379, "etcd"),
                                         ("*", 10250, "kubelet")]


def test_corefile_zones_and_kube_proxy_mode():
    assert facts.corefile_zones(".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n    }\n}") == [
        "cluster.local", "in-addr.arpa", "ip6.arpa"]
    # kube-proxy: an empty mode is the platform default, iptables on Linux
    assert facts.kube_proxy_mode('mode: ""\n') == "iptables"
    assert facts.kube_proxy_mode("mode: nftables\n") == "nftables"
    assert facts.kube_proxy_configured_mode('mode: ""\n') == ""


def test_nslookup_addresses_skip_the_server_line():
    out = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\nName:\tweb.x.svc.cluster.local\nAddress: 10.96.5.4\n"
    assert facts.nslookup_addresses(out) == ["10.96.5.4"]
    assert facts.nslookup_addresses(";; connection timed out; no servers could be reached\n") == []


def test_selector_matches_and_empty_selector_selects_nothing():
    assert facts.selector_matches({"app": "web"}, {"app": "web", "tier": "x"})
    assert not facts.selector_matches({"app": "webapp"}, {"app": "web"})
    assert not facts.selector_matches({}, {"app": "web"})


@pytest.mark.parametrize(("answer", "ok", "says"), [
    ("10.244.0.0/16", True, "is 10.244.0.0/16"),
    (" 10.244.7.9/16 ", True, ""),                       # host bits allowed, as a user copies ip addr
    ("10.244.0.0/24", False, "only part of it"),
    ("10.0.0.0/8", False, "wider than it"),
    ("10.244.0.1", False, "one address"),
    ("ten", False, "not a CIDR"),
    ("10.96.0.0/12", False, "the Service range"),
    ("192.168.0.0/16", False, "is not the pod range"),
])
def test_judge_network(answer, ok, says):
    verdict = judge_network("10.244.0.0/16", answer, "the pod range", {"10.96.0.0/12": "the Service range"})
    assert verdict.ok is ok and says in verdict.message


def test_parse_network_refuses_garbage():
    assert parse_network("10.0.0.0/33") is None and parse_network("") is None


def test_judge_count_and_choice():
    assert judge_count(2, "2", "kube-proxy pods").ok
    assert "not 3" in judge_count(2, "3", "kube-proxy pods").message
    assert "not a number" in judge_count(2, "two", "kube-proxy pods").message
    assert judge_choice("DaemonSet", "a daemonset", "x").ok
    assert judge_choice("DaemonSet", "DaemonSet.", "x").ok
    miss = judge_choice("DaemonSet", "Deployment", "x", near_misses={"deployment": "a Deployment places replicas"})
    assert not miss.ok and "a Deployment places replicas" in miss.message
    assert not judge_choice("iptables", "", "x").ok


def test_undo_patch_restores_changed_and_removes_added_fields():
    old = {"spec": {"replicas": 2, "selector": {"app": "web"}}, "metadata": {"name": "x"}}
    assert undo_patch(old, {"spec": {"replicas": 0, "paused": True}}) == {"spec": {"replicas": 2, "paused": None}}


def test_with_kube_proxy_mode_changes_only_the_mode_line():
    conf = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ""\nclusterCIDR: 10.244.0.0/16\n'
    assert facts.with_kube_proxy_mode(conf, "iptable") == (
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: iptable\nclusterCIDR: 10.244.0.0/16\n")
    assert facts.with_kube_proxy_mode("kind: X\n", "nftables") == "kind: X\nmode: nftables\n"
