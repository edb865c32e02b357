import json

import pytest

from knet.net import cni
from knet.net.names import ClusterNetwork, hosts_file_text, link_prefix, netns_name


def test_addresses_follow_the_plan():
    net = ClusterNetwork("knet", "172.30.0.0/24")
    assert net.gateway == "172.30.0.1/24"
    assert [net.node_ip(i) for i in range(3)] == ["172.30.0.2", "172.30.0.3", "172.30.0.4"]


def test_node_network_full():
    net = ClusterNetwork("knet", "172.30.0.0/30")
    assert net.node_ip(0) == "172.30.0.2"
    with pytest.raises(ValueError):
        net.node_ip(1)


@pytest.mark.parametrize("cluster", ["knet", "a-very-long-cluster-name-indeed", "x"])
def test_link_names_fit_ifnamsiz_and_carry_the_prefix(cluster):
    net = ClusterNetwork(cluster)
    for name in (net.bridge, net.host_link("controlplane"), net.host_link("node-with-a-long-name-0001")):
        assert len(name) <= 15
        assert name.startswith(link_prefix(cluster))


def test_clusters_do_not_share_link_names():
    assert ClusterNetwork("a").bridge != ClusterNetwork("b").bridge
    assert netns_name("a", "node01") == "knet-a-node01"


def test_hosts_file_names_own_node_once():
    text = hosts_file_text("node01", "172.30.0.3", {"controlplane": "172.30.0.2", "node01": "172.30.0.3"})
    lines = text.splitlines()
    assert "172.30.0.3\tnode01" in lines and "172.30.0.2\tcontrolplane" in lines
    assert sum("node01" in line for line in lines) == 1


def test_conflist_is_bridge_hostlocal_portmap_without_masquerade(tmp_path):
    conf = cni.pod_network_conflist("10.244.1.0/24", "/x/ipam")
    bridge, portmap = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] and bridge["hairpinMode"] and not bridge["ipMasq"]
    assert bridge["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]],
                              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/x/ipam"}
    assert portmap["capabilities"] == {"portMappings": True}
    path = cni.write_conflist(tmp_path, conf)
    assert json.loads(path.read_text()) == conf == cni.load_conflist(tmp_path)


def test_netconf_gets_runtime_config_only_for_declared_capabilities():
    conf = cni.pod_network_conflist("10.244.1.0/24", "/x")
    runtime = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    bridge = cni._netconf(conf, conf["plugins"][0], None, runtime)
    portmap = cni._netconf(conf, conf["plugins"][1], {"ips": []}, runtime)
    assert "runtimeConfig" not in bridge and bridge["name"] == "knet" and bridge["cniVersion"] == "1.0.0"
    assert portmap["runtimeConfig"] == runtime and portmap["prevResult"] == {"ips": []}


def test_host_ports_become_port_mappings():
    spec = {"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53,
                                                                                "protocol": "UDP"}]}]}
    assert cni._port_mappings(spec) == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


def test_host_ip_and_protocol_go_to_portmap():
    # hostport.go's pods: one hostPort, different hostIP or protocol
    spec = {"containers": [{"ports": [{"containerPort": 8080, "hostPort": 54323, "hostIP": "127.0.0.1"}]},
                           {"ports": [{"containerPort": 8080, "hostPort": 54323, "hostIP": "172.30.0.3",
                                       "protocol": "UDP"}]}]}
    assert cni._port_mappings(spec) == [
        {"hostPort": 54323, "containerPort": 8080, "protocol": "tcp", "hostIP": "127.0.0.1"},
        {"hostPort": 54323, "containerPort": 8080, "protocol": "udp", "hostIP": "172.30.0.3"}]


def test_portmap_only_runs_when_the_pod_maps_ports():
    conf = cni.pod_network_conflist("10.244.1.0/24", "/x")
    assert [p["type"] for p in cni._plugins_needed(conf, {"portMappings": []})] == ["bridge"]
    assert [p["type"] for p in cni._plugins_needed(conf, {"portMappings": [{"hostPort": 1}]})] == ["bridge", "portmap"]
