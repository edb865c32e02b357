"""What `knet up` counts as taken on this host (knet.cluster.host): nameservers, and the ranges
of the other clusters in the state root."""

from __future__ import annotations

import ipaddress

import yaml

from knet.cluster.config import resolve
from knet.cluster.host import nameservers_in, other_cluster_ranges


def test_nameservers_are_taken_addresses():
    text = "# generated\nsearch example.org\nnameserver 10.255.255.53\nnameserver fd00::53\nnameserver bogus\noptions ndots:1\n"
    used = nameservers_in(text)
    assert [str(u.network) for u in used] == ["10.255.255.53/32"]
    assert used[0].owner == "the host's nameserver (/etc/resolv.conf)"


def test_a_pod_range_never_holds_the_hosts_nameserver():
    taken = [ipaddress.IPv4Network(f"10.{i}.0.0/16") for i in range(244, 255)]  # 10.244 .. 10.254
    config, _ = resolve(None, dataplane="real",
                        networks_in_use=[*taken, *nameservers_in("nameserver 10.255.255.53\n")])
    assert config.pod_subnet == "10.224.0.0/16"  # 10.255.0.0/16 would route the host's DNS into the cluster


def _cluster(root, name, **values):
    (root / name).mkdir()
    (root / name / "cluster.yaml").write_text(yaml.safe_dump(values))


def test_other_clusters_ranges_real_ones_all_three_sim_ones_their_node_network(tmp_path):
    _cluster(tmp_path, "a", dataplane="real", nodeNetwork="172.30.0.0/24", podSubnet="10.244.0.0/16",
             serviceSubnet="10.96.0.0/12")
    _cluster(tmp_path, "s", dataplane="sim", nodeNetwork="172.30.1.0/24", podSubnet="10.244.0.0/16",
             serviceSubnet="10.96.0.0/12")
    _cluster(tmp_path, "me", dataplane="real", nodeNetwork="172.30.2.0/24", podSubnet="10.245.0.0/16",
             serviceSubnet="10.112.0.0/12")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cluster.yaml").write_text("[not a mapping")
    used = other_cluster_ranges("me", root=tmp_path)
    assert sorted((str(u.network), u.owner) for u in used) == [
        ("10.244.0.0/16", 'cluster "a" (podSubnet)'),
        ("10.96.0.0/12", 'cluster "a" (serviceSubnet)'),
        ("172.30.0.0/24", 'cluster "a" (nodeNetwork)'),
        ("172.30.1.0/24", 'cluster "s" (nodeNetwork)'),
    ]
