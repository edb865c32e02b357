"""Golden tests: both renderers against upstream kube-proxy's expected output for the same inputs
(pkg/proxy/iptables/proxier_test.go and pkg/proxy/nftables/proxier_test.go), compared after
upstream's own normalisation. Address plan: pods 10.0.0.0/8, ClusterIPs 172.30.0.0/16, node
test-node at 192.168.0.2, externalIPs 192.168.99.0/24, LB IPs 1.2.3.4 / 5.6.7.8, clients 203.0.113.0/24.
"""

from __future__ import annotations

import difflib

import pytest

from knet.proxy import iptables, nftables
from knet.proxy.model import state_from_objects
from knet.proxy.options import RenderOptions

from .proxy_golden_helpers import GOLDEN, load_objects, normalize_iptables, normalize_nftables

NODE = "test-node"
# upstream NewFakeProxier (iptables): detect-local by CIDR, NodePorts on all addresses, fake iptables
# without --random-fully; the newest upstream also counts with nfacct.
IPT_OPTS = RenderOptions(node_name=NODE, node_ip="192.168.0.2", cluster_cidr="10.0.0.0/8", random_fully=False)
# upstream NewFakeProxier (nftables): nodePortAddresses = the node IP, service CIDR 172.30.0.0/16.
NFT_OPTS = RenderOptions(node_name=NODE, node_ip="192.168.0.2", cluster_cidr="10.0.0.0/8",
                         node_port_addresses=("192.168.0.2/32",),
                         node_ips=("127.0.0.1", "192.168.0.2", "192.168.1.2", "192.168.99.11"),
                         service_cidrs=("172.30.0.0/16",))


def _diff(expected: list[str], got: list[str]) -> str:
    return "\n".join(difflib.unified_diff(expected, got, "expected", "rendered", lineterm=""))


IPTABLES_CASES = [
    pytest.param("overall.yaml", "iptables_overall.golden", RenderOptions(**{**IPT_OPTS.__dict__, "nfacct": True}),
                 id="overall-clusterip-nodeport-externalip-lb-sourceranges-affinity-etplocal-noendpoints"),
    pytest.param("etp_local.yaml", "iptables_etp_local.golden", IPT_OPTS, id="etp-local-with-local-endpoint"),
    pytest.param("nonlocal_external_ips.yaml", "iptables_nonlocal_external_ips.golden", IPT_OPTS,
                 id="external-ip-cluster-policy"),
    pytest.param("localhost_nodeports_no_detector.yaml", "iptables_localhost_nodeports_no_detector.golden",
                 RenderOptions(node_name=NODE, node_ip="192.168.0.2", random_fully=False),
                 id="nodeport-etp-local-no-local-detector"),
]


@pytest.mark.parametrize(("objects", "golden", "opts"), IPTABLES_CASES)
def test_iptables_matches_upstream(objects: str, golden: str, opts: RenderOptions) -> None:
    state = state_from_objects(load_objects(objects), NODE)
    expected = normalize_iptables((GOLDEN / golden).read_text())
    got = normalize_iptables(iptables.render(state, opts))
    assert got == expected, _diff(expected, got)


NFTABLES_CASES = [
    pytest.param("overall.yaml", "nftables_overall.golden", NFT_OPTS, id="overall-upstream"),
    pytest.param("etp_local.yaml", "nftables_etp_local.golden", NFT_OPTS, id="etp-local-with-local-endpoint"),
    pytest.param("nonlocal_external_ips.yaml", "nftables_nonlocal_external_ips.golden", NFT_OPTS,
                 id="external-ip-cluster-policy"),
    pytest.param("localhost_nodeports_no_detector.yaml", "nftables_nodeports_all_addresses.golden",
                 RenderOptions(node_name=NODE, node_ip="192.168.0.2"), id="nodeports-on-all-addresses"),
    # the newest upstream shape, for kubernetesVersion v1.37 (knet.proxy.nftables.Shape)
    pytest.param("overall.yaml", "nftables_overall_v1.37.golden",
                 RenderOptions(**{**NFT_OPTS.__dict__, "kubernetes_version": "v1.37.0"}), id="overall-v1.37"),
]


@pytest.mark.parametrize(("objects", "golden", "opts"), NFTABLES_CASES)
def test_nftables_matches_golden(objects: str, golden: str, opts: RenderOptions) -> None:
    state = state_from_objects(load_objects(objects), NODE)
    expected = normalize_nftables((GOLDEN / golden).read_text())
    got = normalize_nftables(nftables.render(state, opts))
    assert got == expected, _diff(expected, got)


def test_normalize_iptables_orders_like_upstream() -> None:
    text = "\n".join([
        "*nat", ":KUBE-SVC-B - [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-A - [0:0]",
        f'-A KUBE-SERVICES -m comment --comment "{NODEPORTS_TAIL_TEXT}" -j KUBE-NODEPORTS',
        '-A KUBE-SERVICES -m comment --comment "ns2/b cluster IP" -j KUBE-SVC-B',
        '-A KUBE-SERVICES -m comment --comment "ns1/a cluster IP" -j KUBE-A',
        "-A KUBE-SVC-B -j KUBE-A", "-A KUBE-SVC-B -j DROP", "COMMIT",
        "*filter", ":KUBE-FORWARD - [0:0]", "COMMIT",
    ])
    assert normalize_iptables(text) == [
        "*filter", ":KUBE-FORWARD - [0:0]", "COMMIT",
        "*nat", ":KUBE-NODEPORTS - [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-A - [0:0]", ":KUBE-SVC-B - [0:0]",
        '-A KUBE-SERVICES -m comment --comment "ns1/a cluster IP" -j KUBE-A',
        '-A KUBE-SERVICES -m comment --comment "ns2/b cluster IP" -j KUBE-SVC-B',
        f'-A KUBE-SERVICES -m comment --comment "{NODEPORTS_TAIL_TEXT}" -j KUBE-NODEPORTS',
        "-A KUBE-SVC-B -j KUBE-A", "-A KUBE-SVC-B -j DROP", "COMMIT",
    ]


NODEPORTS_TAIL_TEXT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"


def test_normalize_nftables_ignores_order_blanks_and_comments() -> None:
    assert normalize_nftables("# x\nadd b\n\nadd a\n") == normalize_nftables("add a\nadd b\n")
    assert normalize_nftables("add a\n") != normalize_nftables("add b\n")


def test_large_cluster_mode_drops_per_endpoint_comments() -> None:
    """Above 1000 endpoints upstream leaves out the per-endpoint --comment (rules are 40% smaller)."""
    from .proxy_objects import endpoint_slice, ep, service

    def objs(n_endpoints: int) -> list[dict]:
        return [service("svc1", "172.30.0.41"),
                endpoint_slice("svc1", [ep(f"10.180.{i // 250}.{i % 250 + 1}") for i in range(n_endpoints)])]
    small = iptables.render(state_from_objects(objs(1000), NODE), IPT_OPTS)
    large = iptables.render(state_from_objects(objs(1001), NODE), IPT_OPTS)
    assert '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80"' in small
    assert "-m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ" in small
    assert "-> 10.180.0.1:80" not in large and "--comment ns1/svc1:p80 -s" not in large
    assert '--comment "ns1/svc1:p80 cluster IP"' in large  # service-level comments stay
    assert "--probability 0.0009990010" in large  # 1/1001, 10 decimals


def test_udp_and_sctp_ports() -> None:
    from .proxy_objects import endpoint_slice, ep, service
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "s", "port": 9, "protocol": "SCTP"}]
    objs = [service("dns", "172.30.0.10", ports=ports), endpoint_slice("dns", [ep("10.180.0.9")], ports=ports)]
    state = state_from_objects(objs, NODE)
    text = iptables.render(state, IPT_OPTS)
    assert '-m comment --comment "ns1/dns:dns cluster IP" -m udp -p udp -d 172.30.0.10 --dport 53' in text
    assert "-m sctp -p sctp -j DNAT --to-destination 10.180.0.9:9" in text
    nft = nftables.render(state, NFT_OPTS)
    assert "172.30.0.10 . udp . 53 : goto service-" in nft and "meta l4proto sctp dnat to 10.180.0.9:9" in nft


def test_v136_single_endpoint_service_still_uses_a_map() -> None:
    """Between the squashed endpoint chains (v1.36) and #140723 (v1.37) a one-endpoint Service
    DNATs through a one-element map: upstream TestOverallNFTablesRules' svc1 lines of that time
    (the removed side of kubernetes #140362's proxier_test.go diff), verbatim."""
    state = state_from_objects(load_objects("overall.yaml"), NODE)
    got = normalize_nftables(nftables.render(state, RenderOptions(**{**NFT_OPTS.__dict__,
                                                                   "kubernetes_version": "v1.36.2"})))
    assert "add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80" in got
    assert ("add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 meta l4proto tcp dnat ip addr . port to "
            "numgen random mod 1 map { 0 : 10.180.0.1 . 80 }") in got
    assert not [line for line in got if "endpoint-5OJB2KTY" in line]
