"""Cluster config resolution: defaults, flags over file values, address plan, errors.

Address plan used below: node network 172.30.0.0/24 (host .1, controlplane .2, node01 .3),
pods 10.244.0.0/16, services 10.96.0.0/12 (kubernetes 10.96.0.1, kube-dns 10.96.0.10).
"""

from __future__ import annotations

import ipaddress

import pytest

from knet.cluster.config import (
    ConfigError,
    UsedNetwork,
    choose_free_subnet,
    choose_node_network,
    default_node_names,
    from_dict,
    resolve,
)


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_defaults_are_the_reference_cluster():
    config, notes = resolve(None)
    assert notes == []
    assert config.name == "knet"
    assert [(n.name, n.role, n.ip) for n in config.nodes] == [
        ("controlplane", "control-plane", "172.30.0.2"),
        ("node01", "worker", "172.30.0.3"),
    ]
    assert config.node_network == "172.30.0.0/24"
    assert config.host_ip == "172.30.0.1"
    assert config.pod_subnet == "10.244.0.0/16"
    assert config.service_subnet == "10.96.0.0/12"
    assert config.kubernetes_service_ip == "10.96.0.1"
    assert config.dns_service_ip == "10.96.0.10"
    assert config.kubernetes_version == "v1.29.0"
    assert config.proxy_mode == ""
    assert config.dataplane == "real"
    assert config.context_name == "knet-knet"
    assert config.server_url == "https://172.30.0.2:6443"
    assert config.load_balancer_pool == "172.30.0.192-172.30.0.254"  # the node network's upper quarter


def test_flags_override_file_values():
    file_values = {"kind": "Cluster", "apiVersion": "knet.io/v1alpha1", "name": "demo", "nodes": 4,
                   "proxyMode": "iptables", "dataplane": "real", "serviceSubnet": "10.100.0.0/16"}
    config, _ = resolve(file_values, name="other", nodes=3, dataplane="sim", proxy_mode="nftables")
    assert config.name == "other"
    assert [n.name for n in config.nodes] == ["controlplane", "node01", "node02"]
    assert config.dataplane == "sim"
    assert config.proxy_mode == "nftables"
    assert config.dns_service_ip == "10.100.0.10"


def test_node_names_from_a_list_first_is_control_plane_unless_a_role_says_so():
    config, _ = resolve({"nodes": ["a", "b"]})
    assert [(n.name, n.role) for n in config.nodes] == [("a", "control-plane"), ("b", "worker")]
    config, _ = resolve({"nodes": [{"name": "w1"}, {"name": "cp", "role": "control-plane"}]})
    # the control plane always gets .2
    assert [(n.name, n.ip) for n in config.nodes] == [("cp", "172.30.0.2"), ("w1", "172.30.0.3")]


def test_default_node_names_follow_kubeadm_labs():
    assert default_node_names(3) == ["controlplane", "node01", "node02"]


@pytest.mark.parametrize(
    ("in_use", "expected"),
    [
        pytest.param([], "172.30.0.0/24", id="empty"),
        pytest.param([net("172.30.0.0/24"), net("172.30.1.0/24")], "172.30.2.0/24", id="other-clusters"),
        pytest.param([net("172.30.0.0/23")], "172.30.2.0/24", id="host-route-covers-two"),
        pytest.param([net("172.16.0.0/12")], None, id="whole-pool-taken"),
        pytest.param([net("0.0.0.0/0")], "172.30.0.0/24", id="default-route-ignored"),
    ],
)
def test_choose_node_network(in_use, expected):
    if expected is None:
        with pytest.raises(ConfigError):
            choose_node_network(in_use)
    else:
        assert str(choose_node_network(in_use)) == expected


def test_resolve_skips_networks_in_use():
    config, _ = resolve(None, networks_in_use=[net("172.30.0.0/24")])
    assert config.node_network == "172.30.1.0/24"
    assert config.control_plane.ip == "172.30.1.2"


def test_falls_back_to_sim_with_a_note_when_real_is_unavailable():
    config, notes = resolve(None, real_dataplane_available=False)
    assert config.dataplane == "sim"
    assert any("--dataplane sim" in n for n in notes)


@pytest.mark.parametrize(
    ("dataplane", "etcd_available", "file_values", "storage"),
    [
        pytest.param("real", True, None, "etcd", id="real-with-etcd-runs-etcd-like-kubeadm"),
        pytest.param("real", False, None, "sqlite", id="real-without-etcd-binary"),
        pytest.param("sim", True, None, "sqlite", id="sim-keeps-sqlite"),
        pytest.param("real", True, {"storage": "sqlite"}, "sqlite", id="config-file-wins"),
        pytest.param("sim", True, {"storage": "etcd"}, "etcd", id="sim-with-etcd-on-request"),
    ],
)
def test_storage_default(dataplane, etcd_available, file_values, storage):
    config, _ = resolve(file_values, dataplane=dataplane, etcd_available=etcd_available)
    assert config.storage == storage


def test_explicit_real_without_root_says_what_to_do():
    with pytest.raises(ConfigError, match="--dataplane sim"):
        resolve(None, dataplane="real", real_dataplane_available=False)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"kind": "Pod"}, "kind: Cluster", id="wrong-kind"),
        pytest.param({"nodez": 3}, "unknown field", id="unknown-field"),
        pytest.param({"name": "Bad_Name"}, "cluster name", id="bad-name"),
        pytest.param({"nodes": ["a", "a"]}, "twice", id="duplicate-node"),
        pytest.param({"nodes": 0}, "at least 1", id="no-nodes"),
        pytest.param({"proxyMode": "ipvs"}, "proxyMode", id="ipvs"),
        pytest.param({"podSubnet": "10.96.0.0/16", "serviceSubnet": "10.96.0.0/12"}, "overlap", id="pods-overlap-services"),
        pytest.param({"nodeNetwork": "10.244.1.0/24"}, "overlap", id="nodes-overlap-pods"),
        pytest.param({"nodeCIDRMaskSize": 8}, "nodeCIDRMaskSize", id="mask-too-small"),
        pytest.param({"podSubnet": "10.244.0.0/24", "nodes": 3}, "fewer than 3", id="pod-subnet-too-small"),
        pytest.param({"nodes": [{"name": "a", "role": "control-plane"}, {"name": "b", "role": "control-plane"}]},
                     "exactly one", id="two-control-planes"),
        pytest.param({"loadBalancerPool": "10.0.0.1-10.0.0.9"}, "loadBalancerPool.*inside the node network",
                     id="lb-pool-outside-the-node-network"),
        pytest.param({"nodeNetwork": "172.30.9.0/24", "loadBalancerPool": "172.30.9.2-172.30.9.20"},
                     "loadBalancerPool.*172.30.9.2, a node's", id="lb-pool-holds-a-node"),
        pytest.param({"loadBalancerPool": "nope"}, "loadBalancerPool", id="lb-pool-garbage"),
    ],
)
def test_invalid_configs_are_refused_with_a_reason(values, message):
    with pytest.raises(ConfigError, match=message):
        resolve(values)


def test_round_trip_through_the_state_file_form():
    config, _ = resolve({"name": "rt", "nodes": 3, "proxyMode": "nftables"}, dataplane="sim")
    assert from_dict(config.to_dict()) == config


def test_load_balancer_pool_from_the_config():
    config, _ = resolve({"nodeNetwork": "172.30.9.0/24", "loadBalancerPool": "172.30.9.240/29, 172.30.9.100"},
                        dataplane="sim")
    assert config.load_balancer_pool == "172.30.9.100,172.30.9.240-172.30.9.247"
    assert from_dict(config.to_dict()) == config


# ---- pod and Service ranges a real cluster's host routes into it (issue #15 item 4) -----------

def used(cidr: str, owner: str = "a route on this host") -> UsedNetwork:
    return UsedNetwork(net(cidr), owner)


@pytest.mark.parametrize(
    ("in_use", "pods", "services"),
    [
        pytest.param([], "10.244.0.0/16", "10.96.0.0/12", id="defaults-when-free"),
        pytest.param([used("10.244.0.0/16"), used("10.96.0.0/12")], "10.245.0.0/16", "10.112.0.0/12",
                     id="another-cluster-holds-the-defaults"),
        pytest.param([used("10.244.0.0/16"), used("10.245.0.0/16"), used("10.96.0.0/12"), used("10.112.0.0/12")],
                     "10.246.0.0/16", "10.64.0.0/12", id="third-cluster-wraps-the-service-pool"),
        pytest.param([used("10.240.0.0/12")], "10.224.0.0/16", "10.96.0.0/12", id="pod-pool-wraps-around"),
        pytest.param([used("10.244.3.7/32")], "10.245.0.0/16", "10.96.0.0/12", id="a-host-route-inside"),
        pytest.param([used("0.0.0.0/0")], "10.244.0.0/16", "10.96.0.0/12", id="default-route-ignored"),
    ],
)
def test_real_cluster_takes_the_next_free_pod_and_service_range(in_use, pods, services):
    config, notes = resolve(None, dataplane="real", networks_in_use=in_use)
    assert (config.pod_subnet, config.service_subnet) == (pods, services)
    # the user is told about every move
    assert sum("using" in n for n in notes) == (pods != "10.244.0.0/16") + (services != "10.96.0.0/12")
    nets = [net(config.pod_subnet), net(config.service_subnet), net(config.node_network)]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_the_note_names_what_the_default_overlaps():
    _, notes = resolve(None, dataplane="real", networks_in_use=[used("10.244.0.0/16", 'cluster "a" (podSubnet)')])
    assert notes == ['podSubnet 10.244.0.0/16 overlaps 10.244.0.0/16, cluster "a" (podSubnet): using 10.245.0.0/16']


def test_sim_cluster_keeps_the_defaults_it_does_not_route():
    config, notes = resolve(None, dataplane="sim", networks_in_use=[used("10.244.0.0/16"), used("10.96.0.0/12")])
    assert (config.pod_subnet, config.service_subnet, notes) == ("10.244.0.0/16", "10.96.0.0/12", [])


@pytest.mark.parametrize(
    ("values", "in_use", "message"),
    [
        pytest.param({"podSubnet": "10.244.0.0/16"}, [used("10.244.128.0/17", 'cluster "a" (podSubnet)')],
                     r'podSubnet 10.244.0.0/16 overlaps 10.244.128.0/17, cluster "a" \(podSubnet\)', id="pods"),
        pytest.param({"serviceSubnet": "10.96.0.0/12"}, [used("10.96.0.0/11", "a route on this host (10.96.0.0/11 dev eth0)")],
                     r"serviceSubnet 10.96.0.0/12 overlaps 10.96.0.0/11, a route on this host", id="services"),
        pytest.param({"nodeNetwork": "172.30.0.0/24"}, [used("172.30.0.0/24")], "nodeNetwork 172.30.0.0/24 overlaps",
                     id="nodes"),
    ],
)
def test_a_range_the_user_set_that_overlaps_is_refused(values, in_use, message):
    with pytest.raises(ConfigError, match=message):
        resolve(values, dataplane="real", networks_in_use=in_use)


def test_a_full_pool_says_to_set_the_range():
    with pytest.raises(ConfigError, match="set serviceSubnet"):
        resolve(None, dataplane="real", networks_in_use=[used("10.64.0.0/10")])


def test_choose_free_subnet_returns_none_when_all_taken():
    assert choose_free_subnet(net("10.244.0.0/16"), net("10.244.0.0/15"), [used("10.244.0.0/15")]) is None
