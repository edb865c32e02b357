"""kube-proxy e2e on a namespace topology (no cluster needed): the proxier programs real iptables or
nftables rules in a "node" namespace and real TCP traffic goes through them. Topology and address
plan: proxy_netns_topology.py. Runs as root only.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import pytest

from knet.proxy import iptables, nftables
from knet.proxy.conntrack import ConntrackCli
from knet.proxy.netfilter import RealNetfilter
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import Proxier

from .proxy_netns_topology import (
    BRIDGE_IP,
    CLIENT_IP,
    CLIENT_NS,
    ECHO_PORT,
    NODE_IP,
    NODE_NS,
    POD_IPS,
    PREFIX,
    Topology,
    in_ns,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables-restore") is None,
    reason="needs root, nft and iptables-restore")]

NODE = "node01"
OPTS = RenderOptions(node_name=NODE, node_ip=NODE_IP, cluster_cidr="10.244.0.0/16",
                     node_ips=(NODE_IP, BRIDGE_IP, "127.0.0.1"))
POD1_NS = PREFIX + "pod1"


def svc(name: str, ip: str, **spec):  # noqa: ANN003, ANN201
    ports = spec.pop("ports", [{"name": "http", "port": 80, "targetPort": ECHO_PORT, "protocol": "TCP"}])
    return {"kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "ports": ports, **spec}}


def slice_(name: str, pods: list[str], node: str = NODE):  # noqa: ANN201
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "default", "name": f"{name}-abc",
                         "labels": {"kubernetes.io/service-name": name}},
            "endpoints": [{"addresses": [POD_IPS[p]], "conditions": {"ready": True}, "nodeName": node}
                          for p in pods],
            "ports": [{"name": "http", "port": ECHO_PORT, "protocol": "TCP"}]}


@pytest.fixture(scope="module")
def topo():  # noqa: ANN201
    t = Topology()
    try:
        t.build()
        yield t
    finally:
        t.teardown()


# nftables-v1.37: upstream's newest rule shape (no endpoint chains, no map for one endpoint,
# hairpin by set; knet.proxy.nftables.Shape), which kubernetesVersion v1.37 selects
@pytest.fixture(params=["iptables", "nftables", "nftables-v1.37"])
def proxier(request, topo):  # noqa: ANN001, ANN201
    nf = RealNetfilter(netns=NODE_NS)
    mode, _, version = request.param.partition("-")
    opts = replace(OPTS, kubernetes_version=version)
    p = Proxier(mode, opts, nf, hostname=NODE, conntrack=ConntrackCli(netns=NODE_NS))
    p.cleanup_other_mode()
    p.services_synced = p.endpoints_synced = True
    yield p
    # leave the node clean for the next mode
    for obj in list(p.services):
        del p.services[obj]
    in_ns(NODE_NS, "conntrack", "-F", check=False)


def apply(p: Proxier, *objs) -> None:  # noqa: ANN002
    for o in objs:
        if o["kind"] == "Service":
            p.on_service(None, o)
        else:
            p.on_endpoint_slice(None, o)
    out = p.sync()
    assert out.ok, out.error


def backends(lines: list[str]) -> set[str]:
    return {line.split()[0] for line in lines}


def test_clusterip_nodeport_affinity_scale_hairpin(topo: Topology, proxier: Proxier) -> None:
    web = svc("web", "10.96.0.50", type="NodePort",
              ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    eps = slice_("web", ["pod1", "pod2", "pod3"])
    apply(proxier, web, eps)

    # ClusterIP from a pod and from another machine: every backend answers
    assert backends(topo.wait_for("3 backends via ClusterIP", lambda: (
        r := topo.connect(PREFIX + "pod2", "10.96.0.50", 80, 40)) and len(backends(r)) == 3 and r)) == set(POD_IPS)
    remote = topo.connect(CLIENT_NS, "10.96.0.50", 80, 40)
    assert backends(remote) == set(POD_IPS)
    # externalTrafficPolicy Cluster: off-node clients are masqueraded
    assert {line.split()[1] for line in remote} <= {BRIDGE_IP}

    # NodePort on the node's address
    assert backends(topo.connect(CLIENT_NS, NODE_IP, 30080, 40)) == set(POD_IPS)

    # scale to 0: connection refused (REJECT), then back
    empty = {**eps, "endpoints": []}
    proxier.on_endpoint_slice(eps, empty)
    assert proxier.sync().ok
    assert topo.connect(CLIENT_NS, "10.96.0.50", 80, 3) == ["REFUSED"] * 3
    assert topo.connect(CLIENT_NS, NODE_IP, 30080, 1) == ["REFUSED"]
    proxier.on_endpoint_slice(empty, eps)
    assert proxier.sync().ok
    assert backends(topo.connect(CLIENT_NS, "10.96.0.50", 80, 30)) == set(POD_IPS)

    # hairpin: a pod reaching itself through its Service
    solo = svc("solo", "10.96.0.51")
    apply(proxier, solo, slice_("solo", ["pod1"]))
    assert topo.connect(POD1_NS, "10.96.0.51", 80, 3) == [f"pod1 {BRIDGE_IP}"] * 3


def test_client_ip_affinity_and_local_policy(topo: Topology, proxier: Proxier) -> None:
    sticky = svc("sticky", "10.96.0.60", sessionAffinity="ClientIP",
                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}})
    apply(proxier, sticky, slice_("sticky", ["pod1", "pod2", "pod3"]))
    assert len(backends(topo.connect(CLIENT_NS, "10.96.0.60", 80, 20))) == 1

    local = svc("local", "10.96.0.61", type="NodePort", externalTrafficPolicy="Local",
                ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30081}])
    apply(proxier, local, slice_("local", ["pod2", "pod3"]))
    lines = topo.connect(CLIENT_NS, NODE_IP, 30081, 20)
    assert backends(lines) <= {"pod2", "pod3"} and lines
    assert {line.split()[1] for line in lines} == {CLIENT_IP}  # the client's address is kept

    # the endpoints live on another node: this node drops external traffic to the NodePort
    elsewhere = slice_("local", ["pod2", "pod3"], node="node02")
    proxier.on_endpoint_slice(slice_("local", ["pod2", "pod3"]), elsewhere)
    assert proxier.sync().ok
    assert topo.connect(CLIENT_NS, NODE_IP, 30081, 1) == ["TIMEOUT"]


def test_udp_flows_to_removed_endpoints_are_cleared(topo: Topology, proxier: Proxier) -> None:
    udp = [{"name": "dns", "port": 53, "protocol": "UDP"}]
    dns = svc("dns", "10.96.0.70", ports=udp)

    def udp_slice(pods: list[str]) -> dict:
        s = slice_("dns", pods)
        s["ports"] = [{"name": "dns", "port": ECHO_PORT, "protocol": "UDP"}]
        return s
    first = udp_slice(["pod1"])
    apply(proxier, dns, first)
    assert topo.udp(CLIENT_NS, "10.96.0.70", 53, 2, 40053) == [f"pod1 {BRIDGE_IP}"] * 2
    # pod1 goes away, pod2 takes over: the client's flow (same source port) must not stay on pod1
    proxier.on_endpoint_slice(first, udp_slice(["pod2"]))
    assert proxier.sync().ok
    assert topo.udp(CLIENT_NS, "10.96.0.70", 53, 2, 40053) == [f"pod2 {BRIDGE_IP}"] * 2


def test_kernel_accepts_rendered_rules(topo: Topology) -> None:
    from knet.proxy.model import state_from_objects
    objs = [svc("web", "10.96.0.50", type="LoadBalancer", externalTrafficPolicy="Local",
                loadBalancerSourceRanges=["203.0.113.0/25"], sessionAffinity="ClientIP",
                externalIPs=["192.168.99.9"], healthCheckNodePort=32000,
                ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30090},
                       {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                       {"name": "sctp", "port": 9, "protocol": "SCTP"}]),
            slice_("web", ["pod1", "pod2"])]
    objs[0]["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.99.10"}]}}
    state = state_from_objects(objs, NODE)
    in_ns(NODE_NS, "iptables-restore", "--test", input=iptables.render(state, OPTS))
    in_ns(NODE_NS, "nft", "-c", "-f", "-", input=nftables.render(state, OPTS))
    in_ns(NODE_NS, "nft", "-c", "-f", "-", input=nftables.render(state, replace(OPTS, kubernetes_version="v1.37.0")))
