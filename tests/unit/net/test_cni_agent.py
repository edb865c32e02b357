"""The network add-on's CNI agent (knet.cniagent): which conflist and which host-gw routes it
wants from the Nodes (pure), what `ip -j route` output it reads back, and the agent itself
watching a fake API server: it writes the conflist once its Node has a podCIDR, follows node
changes with routes, keeps within the add-on's ClusterRole, and takes over what a predecessor left.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from knet.client.fake import FakeApi
from knet.cluster import addons
from knet.cniagent import plan
from knet.cniagent.agent import CniAgent, Options, serve
from knet.net import cni
from knet.net.routes import FakeRouteTable, parse_gateway_routes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from async_polling import until  # noqa: E402
from upstream_roles import rule_allows  # noqa: E402

CLUSTER = "10.244.0.0/16"


def node(name: str, cidr: str | None, ip: str | None) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": ([{"type": "InternalIP", "address": ip}] if ip else [])
                       + [{"type": "Hostname", "address": name}]}}


# -- pure decisions ---------------------------------------------------------------------------

def test_routes_go_to_every_other_node_with_a_range_and_an_address():
    nodes = [node("controlplane", "10.244.0.0/24", "172.30.0.2"), node("node01", "10.244.1.0/24", "172.30.0.3"),
             node("node02", "10.244.2.0/24", "172.30.0.4"),
             node("fresh", None, "172.30.0.5"),              # no podCIDR yet: nothing to route
             node("noaddr", "10.244.4.0/24", None),          # no InternalIP yet: no gateway
             node("outside", "192.168.7.0/24", "172.30.0.6")]  # not the cluster's range: not ours
    wanted = plan.wanted_routes(nodes, "node01", CLUSTER)
    assert {d: (r.via, r.node) for d, r in wanted.items()} == {
        "10.244.0.0/24": ("172.30.0.2", "controlplane"), "10.244.2.0/24": ("172.30.0.4", "node02")}


def test_a_range_claimed_twice_goes_to_the_first_node_by_name_and_never_over_the_own_bridge():
    nodes = [node("b", "10.244.5.0/24", "172.30.0.9"), node("a", "10.244.5.0/24", "172.30.0.8"),
             node("me", "10.244.6.0/24", "172.30.0.7"), node("twin", "10.244.6.0/24", "172.30.0.6")]
    wanted = plan.wanted_routes(nodes, "me", CLUSTER)
    assert {d: r.via for d, r in wanted.items()} == {"10.244.5.0/24": "172.30.0.8"}


def test_route_changes_add_move_and_remove():
    wanted = plan.wanted_routes([node("n1", "10.244.1.0/24", "172.30.0.3"), node("n2", "10.244.2.0/24", "172.30.0.9")],
                                "n0", CLUSTER)
    current = {"10.244.2.0/24": "172.30.0.4",   # node02 changed its address
               "10.244.1.0/24": "172.30.0.3",   # as wanted: untouched
               "10.244.9.0/24": "172.30.0.11"}  # a deleted node's
    changes = plan.route_changes(current, wanted)
    assert [(r.dst, r.via) for r in changes.replace] == [("10.244.2.0/24", "172.30.0.9")]
    assert changes.delete == ("10.244.9.0/24",)
    assert plan.route_changes({"10.244.1.0/24": "172.30.0.3", "10.244.2.0/24": "172.30.0.9"}, wanted) \
        == plan.RouteChanges((), ())


def test_conflist_only_once_the_node_has_a_pod_cidr():
    assert plan.node_conflist(None, "/ipam") is None
    assert plan.node_conflist(node("n", None, "172.30.0.3"), "/ipam") is None
    conf = plan.node_conflist(node("n", "10.244.1.0/24", "172.30.0.3"), "/ipam")
    assert conf == cni.pod_network_conflist("10.244.1.0/24", "/ipam")
    assert conf["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]


def test_parse_gateway_routes_keeps_gateway_routes_inside_the_range():
    # `ip -j -4 route show` in a node: the bridge's link route and the node network are no
    # gateway routes; a default route and a gateway route outside the pod range are not ours.
    out = json.dumps([
        {"dst": "default", "gateway": "172.30.0.1", "dev": "eth0"},
        {"dst": "10.96.0.0/12", "dev": "eth0", "scope": "link"},
        {"dst": "10.244.0.0/24", "gateway": "172.30.0.2", "dev": "eth0"},
        {"dst": "10.244.1.0/24", "dev": "cni0", "protocol": "kernel", "scope": "link", "prefsrc": "10.244.1.1"},
        {"dst": "10.244.3.7", "gateway": "172.30.0.4", "dev": "eth0"},
        {"dst": "192.168.0.0/16", "gateway": "172.30.0.9", "dev": "eth0"},
        {"dst": "172.30.0.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "172.30.0.3"},
    ])
    assert parse_gateway_routes(out, CLUSTER) == {"10.244.0.0/24": "172.30.0.2", "10.244.3.7/32": "172.30.0.4"}
    assert parse_gateway_routes("", CLUSTER) == {}


# -- the agent ----------------------------------------------------------------------------------

def _agent(tmp_path: Path, own: str = "node01", routes: FakeRouteTable | None = None) -> CniAgent:
    opts = Options(node=own, cluster_cidr=CLUSTER, cni_conf_dir=str(tmp_path / "net.d"),
                   ipam_data_dir=str(tmp_path / "ipam"))
    return CniAgent(opts, routes if routes is not None else FakeRouteTable())


def test_sync_writes_the_conflist_atomically_and_only_when_it_changed(tmp_path):
    agent = _agent(tmp_path)
    agent.on_node(node("node01", None, "172.30.0.3"))
    assert agent.sync() and not (tmp_path / "net.d").exists()  # no podCIDR: the node stays NotReady
    agent.on_node(node("node01", "10.244.1.0/24", "172.30.0.3"))
    assert agent.sync()
    path = tmp_path / "net.d" / cni.CONFLIST_NAME
    assert json.loads(path.read_text()) == cni.pod_network_conflist("10.244.1.0/24", str(tmp_path / "ipam"))
    assert [p.name for p in (tmp_path / "net.d").iterdir()] == [cni.CONFLIST_NAME]  # no temp file left
    inode = path.stat().st_ino
    assert agent.sync() and path.stat().st_ino == inode  # unchanged: not rewritten
    agent.on_node(node("node01", "10.244.7.0/24", "172.30.0.3"))
    assert agent.sync() and cni.load_conflist(tmp_path / "net.d")["plugins"][0]["ipam"]["ranges"] == \
        [[{"subnet": "10.244.7.0/24"}]]


def test_sync_takes_over_a_predecessors_routes_and_config(tmp_path):
    # What a deleted add-on pod left: its config and routes stay; the new agent changes only what differs.
    cni.write_conflist(tmp_path / "net.d", cni.pod_network_conflist("10.244.1.0/24", str(tmp_path / "ipam")))
    before = (tmp_path / "net.d" / cni.CONFLIST_NAME).stat().st_ino
    routes = FakeRouteTable({"10.244.0.0/24": "172.30.0.2", "10.244.2.0/24": "172.30.0.4",
                             "192.168.0.0/16": "172.30.0.1"})  # not in the pod range: someone else's
    agent = _agent(tmp_path, routes=routes)
    for n in (node("controlplane", "10.244.0.0/24", "172.30.0.2"), node("node01", "10.244.1.0/24", "172.30.0.3")):
        agent.on_node(n)
    assert agent.sync()
    assert routes.routes == {"10.244.0.0/24": "172.30.0.2", "192.168.0.0/16": "172.30.0.1"}  # node02 is gone
    assert (tmp_path / "net.d" / cni.CONFLIST_NAME).stat().st_ino == before


def test_sync_reports_a_failure_and_retries(tmp_path):
    (tmp_path / "net.d").write_text("a file where the directory should be")
    agent = _agent(tmp_path)
    agent.on_node(node("node01", "10.244.1.0/24", "172.30.0.3"))
    assert not agent.sync() and "net.d" in agent.last_error
    (tmp_path / "net.d").unlink()
    assert agent.sync() and agent.last_error == ""


def _addon_role_rules() -> list[tuple]:
    """The add-on's ClusterRole in upstream_roles' rule form."""
    role = next(o for _, resource, o in addons.network_addon_rbac_objects() if resource == "clusterroles")
    return [(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"]),
             *((tuple(r["resourceNames"]),) if r.get("resourceNames") else ())) for r in role["rules"]]


async def test_agent_follows_the_nodes_within_the_addon_role(tmp_path):
    fake = FakeApi()
    fake.seed("v1", "nodes", node("controlplane", "10.244.0.0/24", "172.30.0.2"))
    fake.seed("v1", "nodes", node("node01", None, "172.30.0.3"))
    user = "system:serviceaccount:kube-system:knet-net"  # the token of the add-on's pods
    routes = FakeRouteTable()
    agent = _agent(tmp_path, routes=routes)
    task = asyncio.create_task(serve(fake.client(user), agent))
    try:
        await until(lambda: routes.routes == {"10.244.0.0/24": "172.30.0.2"})
        assert cni.load_conflist(tmp_path / "net.d") is None
        # the node-IPAM controller gives node01 its range: the config follows
        await fake.patch("v1", "nodes", "node01", {"spec": {"podCIDR": "10.244.1.0/24"}})
        await until(lambda: cni.load_conflist(tmp_path / "net.d") is not None)
        # a node joins, then leaves
        await fake.create("v1", "nodes", node("node02", "10.244.2.0/24", "172.30.0.4"))
        await until(lambda: routes.routes.get("10.244.2.0/24") == "172.30.0.4")
        await fake.delete("v1", "nodes", "node02")
        await until(lambda: "10.244.2.0/24" not in routes.routes)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    made = [r for r in fake.requests if r.user == user]
    assert {(r.verb, r.resource) for r in made} == {("list", "nodes"), ("watch", "nodes")}
    assert [r for r in made if not any(rule_allows(rule, r) for rule in _addon_role_rules())] == []


def test_addon_image_runs_the_cni_agent():
    from knet.node.workloads import container_argv

    ds = addons.network_addon_daemonset(addons_config(), "/s/nodes")
    cni_container = ds["spec"]["template"]["spec"]["containers"][0]
    argv = container_argv(cni_container, cni_container["command"], [], knet=["knet"])
    assert argv[:4] == ["knet", "as-binary", "/usr/local/bin/knet-cni-agent", "--ipalloc-range=10.244.0.0/16"]


def addons_config():
    from knet.cluster.config import resolve

    config, _ = resolve(None, nodes=2, dataplane="real")
    return config


@pytest.mark.parametrize("flag", ["--ipalloc-range=10.244.0.0/33", "--ipalloc-range=bogus"])
def test_cli_refuses_a_bad_range(flag):
    from click.testing import CliRunner

    from knet.cli.cniagent import cni_agent

    result = CliRunner().invoke(cni_agent, [flag])
    assert result.exit_code == 2 and "--ipalloc-range" in result.output
