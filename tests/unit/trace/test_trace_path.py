"""`knet trace`'s walk across a two-node cluster (tests/unit/trace/cluster.py), on the rules knet's
kube-proxy and policy controller render for each node, in both proxy modes: Services, NodePorts,
NetworkPolicies (upstream's e2e model: which policy's rule allowed a connection, or which pod's
isolation dropped it), DNS names resolved as the source pod would, and the verdicts users read."""

from __future__ import annotations

import json
import random

import pytest
from tests.unit.trace.cluster import CLUSTER_CIDR, EXTERNAL_CLIENT, SERVICE_CIDR, objects, policy, web_service

from knet.trace import path, report
from knet.trace.dataplane import RenderedDataplane
from knet.trace.view import ClusterView, TraceError, resolve

MODES = ["iptables", "nftables"]

DENY_INGRESS_B = {**policy("x", "deny-b", {"podSelector": {"matchLabels": {"pod": "b"}},
                                           "policyTypes": ["Ingress"]}), "kind": "NetworkPolicy"}
ALLOW_A_TO_B = {**policy("x", "allow-a", {
    "podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}], "ports": [{"port": 80}]}]}),
    "kind": "NetworkPolicy"}
DENY_EGRESS_A = {**policy("x", "deny-egress-a", {"podSelector": {"matchLabels": {"pod": "a"}},
                                                 "policyTypes": ["Egress"]}), "kind": "NetworkPolicy"}
DENY_INGRESS_C = {**policy("x", "deny-c", {"podSelector": {"matchLabels": {"pod": "c"}},
                                           "policyTypes": ["Ingress"]}), "kind": "NetworkPolicy"}


def run(mode: str, frm: str, to: str, *extra: dict, port: int = 0, proto: str = "tcp", via: str = ""):
    view = ClusterView.of(objects(*extra))
    dp = RenderedDataplane(view, mode, CLUSTER_CIDR, (SERVICE_CIDR,))
    src = resolve(view, frm)
    dst = resolve(view, to, source=src)
    return view, path.trace(view, dp, src, dst, port or dst.port, proto, entry_node=via, rng=random.Random(0))


def outcomes(result) -> dict[str, tuple[str, float]]:
    return {p.endpoint: (p.verdict, round(p.probability, 6)) for p in result.paths}


@pytest.mark.parametrize("mode", MODES)
def test_pod_to_service_reaches_each_endpoint_on_its_node(mode: str) -> None:
    view, r = run(mode, "x/a", "svc/x/web", *web_service())
    assert outcomes(r) == {"10.244.1.3:80": ("delivered", 0.5), "10.244.2.4:80": ("delivered", 0.5)}
    by_pod = {p.endpoint_pod: p for p in r.paths}
    assert by_pod["x/b"].node == "node01" and by_pod["x/c"].node == "node02"
    assert by_pod["x/c"].reason == "delivered to pod x/c (10.244.2.4:80) on node node02"
    # the remote endpoint is reached through node01's route to node02's podCIDR, unmasqueraded
    remote = by_pod["x/c"]
    assert [h.note for h in remote.hops if h.hook == "route"][0] == "10.244.2.0/24 via 192.168.0.3 dev eth0 -> node node02"
    assert not remote.masquerade and remote.dnat == "10.244.2.4:80"
    dnat_rules = [s.rule for h in remote.hops for s in h.steps if "DNAT to" in s.note]
    assert len(dnat_rules) == 1 and "10.244.2.4:80" in dnat_rules[0]


@pytest.mark.parametrize("mode", MODES)
def test_service_without_endpoints_is_rejected(mode: str) -> None:
    _, r = run(mode, "x/a", "svc/x/web", *web_service(endpoints=()))
    assert [p.verdict for p in r.paths] == ["rejected"]
    assert "Service x/web:p80 has no endpoints" in r.path.reason


@pytest.mark.parametrize("mode", MODES)
def test_default_deny_ingress_drops_and_names_the_isolated_pod(mode: str) -> None:
    _, r = run(mode, "x/a", "x/b", DENY_INGRESS_B, port=80)
    assert [p.verdict for p in r.paths] == ["dropped"]
    assert r.path.reason.startswith("dropped by NetworkPolicy: pod x/b is selected by policies for ingress")
    assert path.selecting_policies(ClusterView.of(objects(DENY_INGRESS_B)), r.target, "ingress") == ["x/deny-b"]


@pytest.mark.parametrize("mode", MODES)
def test_allowing_policy_rule_is_named(mode: str) -> None:
    _, r = run(mode, "x/a", "x/b", DENY_INGRESS_B, ALLOW_A_TO_B, port=80)
    assert [p.verdict for p in r.paths] == ["delivered"]
    assert r.path.policy and r.path.policy[0].startswith("allowed by NetworkPolicy x/allow-a ingress rule 1")
    # the same policy does not allow port 81, nor another pod
    _, r81 = run(mode, "x/a", "x/b", DENY_INGRESS_B, ALLOW_A_TO_B, port=81)
    assert r81.path.verdict == "dropped"
    _, rc = run(mode, "x/c", "x/b", DENY_INGRESS_B, ALLOW_A_TO_B, port=80)
    assert rc.path.verdict == "dropped" and rc.path.node == "node01"  # checked on the destination's node


@pytest.mark.parametrize("mode", MODES)
def test_egress_isolation_drops_on_the_source_node(mode: str) -> None:
    _, r = run(mode, "x/a", "x/c", DENY_EGRESS_A, port=80)
    assert r.path.verdict == "dropped" and r.path.node == "node01"
    assert "pod x/a is selected by policies for egress" in r.path.reason


@pytest.mark.parametrize("mode", MODES)
def test_service_with_one_endpoint_isolated(mode: str) -> None:
    """Through a Service, the policy applies after DNAT: the path to x/c (node02) is dropped there,
    the one to x/b delivered; --all shows both."""
    view, r = run(mode, "x/a", "svc/x/web", DENY_INGRESS_C, *web_service())
    assert outcomes(r) == {"10.244.1.3:80": ("delivered", 0.5), "10.244.2.4:80": ("dropped", 0.5)}
    text = report.text(view, r, all_paths=True)
    assert "ingress policies selecting x/c: x/deny-c" in text
    assert "ingress policies selecting x/b: none (not isolated)" in text
    assert "verdict: delivered to pod x/b" in text and "verdict: dropped by NetworkPolicy: pod x/c" in text


@pytest.mark.parametrize("mode", MODES)
def test_nodeport_from_outside_is_masqueraded_to_a_remote_endpoint(mode: str) -> None:
    svc = web_service(type="NodePort", ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    _, r = run(mode, EXTERNAL_CLIENT, "node02", *svc, port=30080)
    assert outcomes(r) == {"10.244.1.3:80": ("delivered", 0.5), "10.244.2.4:80": ("delivered", 0.5)}
    remote = next(p for p in r.paths if p.endpoint_pod == "x/b")
    assert remote.masquerade and "mark" in remote.masquerade_why.lower() or "MARK-MASQ" in remote.masquerade_why
    assert [h.node for h in remote.hops if h.hook == "route"] == ["node02", "node01"]


@pytest.mark.parametrize("mode", MODES)
def test_pod_to_a_nodeport_at_another_nodes_address(mode: str) -> None:
    """x/a on node01 to node02's InternalIP:nodePort: node01 only forwards it (its nodeport rules
    match its own addresses); node02 DNATs to an endpoint and masquerades (the source is not local)."""
    svc = web_service(type="NodePort", ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    _, r = run(mode, "x/a", "192.168.0.3", *svc, port=30080)
    assert r.target.kind == "node" and r.target.name == "node02"
    assert outcomes(r) == {"10.244.1.3:80": ("delivered", 0.5), "10.244.2.4:80": ("delivered", 0.5)}
    for p in r.paths:
        assert p.masquerade and p.dnat == p.endpoint
        routes = [(h.node, h.note) for h in p.hops if h.hook == "route"]
        assert routes[0] == ("node01", "192.168.0.3/32 dev eth0 -> node node02")
        dnats = [(h.node, s.note) for h in p.hops for s in h.steps if "DNAT to" in s.note]
        assert [n for n, _ in dnats] == ["node02"] and p.endpoint in dnats[0][1]
    back = next(p for p in r.paths if p.endpoint_pod == "x/b")  # masqueraded, so back through node02
    assert [h.node for h in back.hops if h.hook == "route"] == ["node01", "node02", "node01"]


@pytest.mark.parametrize("mode", MODES)
def test_external_traffic_policy_local_without_a_local_endpoint(mode: str) -> None:
    svc = web_service(type="NodePort", externalTrafficPolicy="Local", endpoints=(("10.244.1.3", "node01"),),
                      ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    _, r = run(mode, EXTERNAL_CLIENT, "node02", *svc, port=30080)
    assert [p.verdict for p in r.paths] == ["dropped"]
    _, local = run(mode, EXTERNAL_CLIENT, "node01", *svc, port=30080)
    assert outcomes(local) == {"10.244.1.3:80": ("delivered", 1.0)} and not local.path.masquerade


@pytest.mark.parametrize("mode", MODES)
def test_dns_names_resolve_as_the_source_pod_would(mode: str) -> None:
    _, r = run(mode, "x/a", "web", *web_service())
    assert r.target.kind == "service" and r.target.name == "x/web"
    assert r.target.dns[0] == "web.x.svc.cluster.local: 10.96.0.10"
    _, r2 = run(mode, "y/a", "web.x", *web_service())  # another namespace: the second search domain
    assert r2.target.name == "x/web" and r2.target.dns[-1] == "web.x.svc.cluster.local: 10.96.0.10"
    with pytest.raises(TraceError, match="does not resolve"):
        run(mode, "y/a", "web", *web_service())  # y has no Service web
    _, fq = run(mode, "y/a", "web.x.svc.cluster.local.", *web_service())
    assert fq.target.ip == "10.96.0.10"


def test_json_output_is_the_same_walk() -> None:
    view, r = run("iptables", "x/a", "svc/x/web", DENY_INGRESS_C, *web_service())
    d = json.loads(json.dumps(report.data(r, all_paths=True)))
    assert {(p["endpoint"], p["verdict"]) for p in d["paths"]} == {("10.244.1.3:80", "delivered"),
                                                                   ("10.244.2.4:80", "dropped")}
    assert d["source"]["name"] == "x/a" and d["target"]["name"] == "x/web"
    one = report.data(r)
    assert len(one["paths"]) == 1 and one["verdict"] in ("delivered", "dropped")


def test_unknown_names_are_refused() -> None:
    for frm, to, msg in (("x/nope", "x/b", "no pod x/nope"), ("x/a", "svc/x/nope", "no Service x/nope"),
                         ("x/a", "node/nope", "no node nope")):
        with pytest.raises(TraceError, match=msg):
            run("iptables", frm, to, port=80)
