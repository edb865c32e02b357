"""NetworkPolicy semantics, as truth tables over upstream's e2e model (test/e2e/network/netpol:
namespaces x, y, z with pods a, b, c serving 80 and 81): the compiled rules of every node,
evaluated by knet.netpol.verdict as the kernel evaluates the rendered ones."""

from __future__ import annotations

from knet.netpol.compiler import compile_node, policy_types
from knet.netpol.verdict import allowed

from .fixtures import NAMESPACES, PODS, namespace, pod, policy

IP = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["status"]["podIP"] for p in PODS}
NODES = ("node01", "node02")


def table(policies, pods=PODS, namespaces=NAMESPACES, protocol="tcp", port=80) -> dict[tuple[str, str], bool]:
    rules = [compile_node(n, policies, pods, namespaces) for n in NODES]
    return {(s, d): allowed(rules, IP[s], IP[d], protocol, port) for s in IP for d in IP if s != d}


def expect(policies, reachable, **kw) -> None:
    """`reachable(src, dst)` is upstream's expected truth table; print ours on a mismatch."""
    got = table(policies, **kw)
    wrong = {k: v for k, v in got.items() if v != reachable(*k)}
    assert not wrong, "wrong cells (src, dst) -> got:\n" + "\n".join(f"  {s} -> {d}: {v}" for (s, d), v in wrong.items())


def test_no_policy_everything_reachable():
    expect([], lambda s, d: True)


def test_default_deny_ingress():
    # upstream "should support a 'default-deny-ingress' policy"
    expect([policy("x", "deny", {"podSelector": {}})], lambda s, d: not d.startswith("x/"))


def test_policy_types_defaulting():
    assert policy_types(policy("x", "p", {"podSelector": {}})) == ["ingress"]
    assert policy_types(policy("x", "p", {"podSelector": {}, "egress": [{}]})) == ["ingress", "egress"]
    assert policy_types(policy("x", "p", {"podSelector": {}, "policyTypes": ["Egress"]})) == ["egress"]


def test_allow_all_ingress_is_open():
    expect([policy("x", "all", {"podSelector": {}, "ingress": [{}]})], lambda s, d: True)


def test_allow_from_namespace():
    # upstream "should enforce policy to allow traffic from pods within server namespace based on PodSelector"
    # and "... allow ingress traffic from a namespace": x/a accepts from namespace y only
    p = policy("x", "from-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})
    expect([p], lambda s, d: d != "x/a" or s.startswith("y/"))


def test_namespace_and_pod_selector_together():
    # upstream "should enforce policy based on PodSelector and NamespaceSelector": only y/b and z/b... together
    p = policy("x", "nsandpod", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
         "podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    expect([p], lambda s, d: d != "x/a" or s in ("y/b", "z/b"))


def test_namespace_or_pod_selector_apart():
    # upstream "should enforce policy based on PodSelector or NamespaceSelector"
    p = policy("x", "nsorpod", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]}},
        {"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    expect([p], lambda s, d: d != "x/a" or not s.startswith("x/") or s == "x/b")


def test_named_port_resolved_on_destination():
    p = policy("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]})
    expect([p], lambda s, d: not d.startswith("x/"), port=80)
    expect([p], lambda s, d: True, port=81)
    expect([p], lambda s, d: not d.startswith("x/"), port=81, protocol="udp")


def test_named_port_per_pod_number():
    # the same name on different numbers: each destination pod its own
    pods = [pod("x", "a", "10.244.1.2"), pod("x", "b", "10.244.1.3")]
    pods[1]["spec"]["containers"][0]["ports"] = [{"name": "serve-80-tcp", "containerPort": 8080}]
    p = policy("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]})
    rules = [compile_node("node01", [p], pods, NAMESPACES)]
    assert allowed(rules, "10.244.1.3", "10.244.1.2", "tcp", 80)
    assert not allowed(rules, "10.244.1.2", "10.244.1.3", "tcp", 80)
    assert allowed(rules, "10.244.1.2", "10.244.1.3", "tcp", 8080)


def test_end_port():
    p = policy("x", "range", {"podSelector": {}, "ingress": [{"ports": [{"port": 81, "endPort": 90}]}]})
    expect([p], lambda s, d: not d.startswith("x/"), port=80)
    expect([p], lambda s, d: True, port=81)
    expect([p], lambda s, d: True, port=90)
    expect([p], lambda s, d: not d.startswith("x/"), port=91)


def test_udp_and_sctp_are_their_own_protocols():
    p = policy("x", "udp81", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP", "port": 81}]}]})
    expect([p], lambda s, d: not d.startswith("x/"), port=81, protocol="tcp")
    expect([p], lambda s, d: True, port=81, protocol="udp")
    expect([p], lambda s, d: not d.startswith("x/"), port=81, protocol="sctp")


def test_ip_block_with_except():
    # upstream "should allow ingress access from namespace on one named port ... ipBlock with except"
    p = policy("x", "block", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}]}]})
    expect([p], lambda s, d: d != "x/a" or IP[s].startswith("10.244.1."))


def test_default_deny_egress_with_dns_allowed():
    p = policy("x", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"],
                                    "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})
    expect([p], lambda s, d: not s.startswith("x/"))
    expect([p], lambda s, d: True, port=53, protocol="udp")


def test_egress_to_named_port_of_peer_pods():
    p = policy("x", "to-y", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": "serve-80-tcp"}]}]})
    expect([p], lambda s, d: not s.startswith("x/") or d.startswith("y/"))
    expect([p], lambda s, d: not s.startswith("x/"), port=81)


def test_ingress_and_egress_together_and_additive():
    deny = policy("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    from_y = policy("x", "from-y", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})
    expect([deny], lambda s, d: not s.startswith("x/") and not d.startswith("x/"))
    expect([deny, from_y], lambda s, d: not s.startswith("x/") and (not d.startswith("x/") or s.startswith("y/")))


def test_namespace_relabel_changes_peers():
    p = policy("x", "from-team", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]})
    expect([p], lambda s, d: not d.startswith("x/"))
    relabelled = [namespace("x"), namespace("y", team="blue"), namespace("z")]
    expect([p], lambda s, d: not d.startswith("x/") or s.startswith("y/"), namespaces=relabelled)


def test_host_network_pods_are_not_selected_nor_pod_peers():
    pods = PODS + [pod("x", "host", "172.30.1.3", host_network=True)]
    p = policy("x", "deny", {"podSelector": {}})
    rules = compile_node("node01", [p], pods, NAMESPACES)
    assert "x/host" not in {i.pod for i in rules.ingress}
    allow_a = policy("x", "from-pods", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    rules = [compile_node(n, [allow_a], pods, NAMESPACES) for n in NODES]
    assert not allowed(rules, "172.30.1.3", IP["x/a"], "tcp", 80)
    assert allowed(rules, IP["x/b"], IP["x/a"], "tcp", 80)


def test_rules_only_for_local_pods():
    p = policy("x", "deny", {"podSelector": {}})
    assert [i.pod for i in compile_node("node01", [p], PODS, NAMESPACES).ingress] == ["x/a", "x/b"]
    assert [i.pod for i in compile_node("node02", [p], PODS, NAMESPACES).ingress] == ["x/c"]
    assert compile_node("node02", [policy("y", "deny", {"podSelector": {"matchLabels": {"pod": "a"}}})],
                        PODS, NAMESPACES).policies == []


def test_pods_without_a_usable_ipv4_address_are_ignored():
    # a status written by hand (or IPv6) must not break the node's rules for everyone
    odd = [pod("x", "v6", "fd00::5"), pod("x", "junk", "10.244.1.300"), pod("x", "text", "not-an-ip; -j ACCEPT")]
    rules = compile_node("node01", [policy("x", "deny", {"podSelector": {}})], PODS + odd, NAMESPACES)
    assert [i.pod for i in rules.ingress] == ["x/a", "x/b"]
