"""Packet flows through the rendered iptables rules (upstream's runPacketFlowTests cases for the
same inputs), walked by knet.proxy.iptables_walk. Address plan as in test_proxy_golden.py."""

from __future__ import annotations

import pytest

from knet.proxy import iptables
from knet.proxy.iptables_walk import Packet, trace
from knet.proxy.model import state_from_objects
from knet.proxy.options import RenderOptions

from .proxy_golden_helpers import load_objects
from .proxy_objects import endpoint_slice, ep, service

NODE_IP = "192.168.0.2"
OPTS = RenderOptions(node_name="test-node", node_ip=NODE_IP, cluster_cidr="10.0.0.0/8")
EXTERNAL_CLIENT = "203.0.113.2"


def rules(objects: list[dict]) -> str:
    return iptables.render(state_from_objects(objects, "test-node"), OPTS)


@pytest.mark.parametrize(("src", "dst", "port", "output", "masq"), [
    pytest.param("10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80, 10.180.2.1:80", False, id="pod-to-clusterip-both"),
    pytest.param(EXTERNAL_CLIENT, "192.168.99.11", 80, "10.180.2.1:80", False, id="external-to-externalip-local"),
    pytest.param(EXTERNAL_CLIENT, "1.2.3.4", 80, "10.180.2.1:80", False, id="external-to-lb-local"),
    pytest.param(EXTERNAL_CLIENT, NODE_IP, 3001, "10.180.2.1:80", False, id="external-to-nodeport-local"),
    pytest.param(NODE_IP, "1.2.3.4", 80, "10.180.0.1:80, 10.180.2.1:80", True, id="node-to-lb-short-circuit"),
])
def test_external_traffic_policy_local_flows(src: str, dst: str, port: int, output: str, masq: bool) -> None:
    t = trace(rules(load_objects("etp_local.yaml")), Packet(src, dst, port), [NODE_IP])
    assert (t.output, t.masquerade) == (output, masq)


@pytest.mark.parametrize(("src", "dst", "port", "output", "masq"), [
    pytest.param("10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80, 10.180.2.1:80", False, id="pod-to-clusterip"),
    pytest.param(EXTERNAL_CLIENT, "192.168.99.11", 80, "10.180.0.1:80, 10.180.2.1:80", True, id="external-ip-masq"),
])
def test_external_ip_cluster_policy_flows(src: str, dst: str, port: int, output: str, masq: bool) -> None:
    t = trace(rules(load_objects("nonlocal_external_ips.yaml")), Packet(src, dst, port), [NODE_IP])
    assert (t.output, t.masquerade) == (output, masq)


def test_overall_flows() -> None:
    text = rules(load_objects("overall.yaml"))
    assert trace(text, Packet("10.0.0.2", "172.30.0.46", 80), [NODE_IP]).output == "REJECT"  # no endpoints
    # LB with source ranges: allowed range reaches the endpoint, others are dropped by KUBE-PROXY-FIREWALL
    allowed = trace(text, Packet("203.0.113.2", "5.6.7.8", 80), [NODE_IP])
    assert (allowed.output, allowed.masquerade) == ("10.180.0.3:80", True)
    assert trace(text, Packet("203.0.113.130", "5.6.7.8", 80), [NODE_IP]).output == "DROP"
    # ETP Local with no local endpoint: external traffic dropped, pod traffic short-circuited
    assert trace(text, Packet(EXTERNAL_CLIENT, "1.2.3.4", 80), [NODE_IP]).output == "DROP"
    assert trace(text, Packet("10.0.0.2", "1.2.3.4", 80), [NODE_IP]).output == "10.180.0.2:80"
    # NodePort (Cluster policy) masquerades off-node clients; localhost NodePorts work
    np = trace(text, Packet(EXTERNAL_CLIENT, NODE_IP, 3003), [NODE_IP])
    assert (np.output, np.masquerade) == ("10.180.0.3:80", True)
    assert trace(text, Packet("127.0.0.1", "127.0.0.1", 3003), [NODE_IP]).output == "10.180.0.3:80"
    # a pod reaching itself through its service is masqueraded (hairpin)
    assert trace(text, Packet("10.180.0.1", "172.30.0.41", 80), [NODE_IP]).masquerade


def test_trace_follows_every_statistic_branch() -> None:
    objs = [service("svc1", "172.30.0.41"),
            endpoint_slice("svc1", [ep(f"10.180.0.{i}") for i in range(1, 5)])]
    t = trace(rules(objs), Packet("10.0.0.2", "172.30.0.41", 80), [NODE_IP])
    assert sorted(t.endpoints) == [f"10.180.0.{i}:80" for i in range(1, 5)]
    assert trace(rules(objs), Packet("10.0.0.2", "172.30.0.41", 81), [NODE_IP]).output == ""  # other port
