"""Which node answers ARP for a LoadBalancer address (knet.cniagent.l2announce), and the ARP
frames it reads and writes (knet.net.arp)."""

from __future__ import annotations

import hashlib

import pytest

from knet.cniagent.l2announce import EXCLUDE_LABEL, announced_by, announcer
from knet.ipam.lbpool import parse_pool
from knet.net import arp

POOL = parse_pool("172.30.5.192-172.30.5.254")
NODES = ("controlplane", "node01", "node02")
MAC = bytes.fromhex("02aabbccdd01")
HOST_MAC = bytes.fromhex("02aabbccdd99")


def node(name: str, ready: bool = True, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(name: str, ip: str | None, *, etp: str = "Cluster", cls: str | None = None) -> dict:
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": etp}
    if cls:
        spec["loadBalancerClass"] = cls
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}] if ip else []}}}


def slices(*endpoints: tuple[str, bool]) -> list[dict]:
    return [{"endpoints": [{"addresses": ["10.244.1.5"], "nodeName": n, "conditions": {"ready": r}}
                           for n, r in endpoints]}]


def who(svc: dict, eps: list[dict], nodes: list[dict]) -> list[str]:
    """Every node that announces the Service's address (the answer must be one node or none)."""
    return [n for n in NODES if announced_by(n, [svc], {"default/web": eps}, nodes, POOL)]


def test_announcer_is_metallbs_hash_order():
    ip = "172.30.5.192"
    expected = min(NODES, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
    assert announcer(ip, NODES) == expected
    assert announcer(ip, []) is None


@pytest.mark.parametrize(("svc", "eps", "nodes", "expected"), [
    pytest.param(service("web", "172.30.5.192"), slices(("node02", True)), [node(n) for n in NODES],
                 [announcer("172.30.5.192", NODES)], id="cluster-any-node"),
    pytest.param(service("web", "172.30.5.192", etp="Local"), slices(("node02", True), ("node01", False)),
                 [node(n) for n in NODES], ["node02"], id="local-only-the-node-with-a-ready-endpoint"),
    pytest.param(service("web", "172.30.5.192", etp="Local"), slices(("node01", False)),
                 [node(n) for n in NODES], [], id="local-no-ready-endpoint-nobody"),
    pytest.param(service("web", "172.30.5.192"), [], [node(n) for n in NODES], [], id="no-endpoints-nobody"),
    pytest.param(service("web", "172.30.5.192", etp="Local"), slices(("node02", True)),
                 [node("controlplane"), node("node01"), node("node02", ready=False)], [], id="local-node-not-ready"),
    pytest.param(service("web", "172.30.5.192"), slices(("node02", True)),
                 [node(n, labels={EXCLUDE_LABEL: ""}) if n != "node01" else node(n) for n in NODES], ["node01"],
                 id="excluded-nodes-never"),
    pytest.param(service("web", "172.30.5.2"), slices(("node02", True)), [node(n) for n in NODES], [],
                 id="a-node-address-written-into-status-is-not-announced"),
    pytest.param(service("web", "172.30.5.192", cls="example.com/other"), slices(("node02", True)),
                 [node(n) for n in NODES], [], id="other-class-not-ours"),
    pytest.param(service("web", None), slices(("node02", True)), [node(n) for n in NODES], [], id="pending"),
])
def test_exactly_one_node_or_none_announces(svc, eps, nodes, expected):
    assert who(svc, eps, nodes) == expected


def test_arp_reply_to_a_request_for_an_announced_address():
    request = arp.parse(arp._frame(arp.BROADCAST, HOST_MAC, arp.ARP_REQUEST, HOST_MAC, "172.30.5.1",
                                   b"\x00" * 6, "172.30.5.192"))
    assert request == arp.ArpPacket(arp.ARP_REQUEST, HOST_MAC, "172.30.5.1", b"\x00" * 6, "172.30.5.192")
    assert arp.should_answer(request, MAC, lambda ip: ip == "172.30.5.192")
    assert not arp.should_answer(request, MAC, lambda ip: False)
    assert not arp.should_answer(request, HOST_MAC, lambda ip: True)  # our own request
    frame = arp.reply(request, MAC)
    assert frame[:6] == HOST_MAC and frame[6:12] == MAC  # to the asker, from us
    assert arp.parse(frame) == arp.ArpPacket(arp.ARP_REPLY, MAC, "172.30.5.192", HOST_MAC, "172.30.5.1")


def test_gratuitous_arp_and_non_arp_frames():
    frame = arp.gratuitous("172.30.5.192", MAC)
    assert frame[:6] == arp.BROADCAST
    packet = arp.parse(frame)
    assert packet == arp.ArpPacket(arp.ARP_REQUEST, MAC, "172.30.5.192", b"\x00" * 6, "172.30.5.192")
    assert not arp.should_answer(packet, bytes(6), lambda ip: True)  # someone's announcement: no answer
    assert arp.parse(b"\x00" * 12 + b"\x08\x00" + b"\x00" * 28) is None  # IPv4, not ARP
    assert arp.parse(frame[:20]) is None
