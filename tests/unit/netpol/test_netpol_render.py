"""The rendered rules: what the kernel (FakeNetfilter enforces its checks: no jump to a missing
chain, atomic restores) accepts, what users read (comments), replacing stale chains atomically."""

from __future__ import annotations

from knet.netpol import render
from knet.netpol.compiler import compile_node
from knet.proxy.netfilter import FakeNetfilter

from .fixtures import NAMESPACES, PODS, policy

DENY = policy("x", "deny", {"podSelector": {}})
BLOCK = policy("x", "block", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
    "from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}],
    "ports": [{"port": 80, "endPort": 81}, {"port": "serve-80-udp", "protocol": "UDP"}]}]})
EGRESS = policy("x", "dns", {"podSelector": {}, "policyTypes": ["Egress"],
                             "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]})


def _chains(nf: FakeNetfilter) -> set[str]:
    return set(nf.ipt.tables["filter"])


def test_iptables_render_loads_and_reads():
    nf = FakeNetfilter()
    rules = compile_node("node01", [DENY, BLOCK, EGRESS], PODS, NAMESPACES)
    text = render.render_iptables(rules)
    nf.iptables_restore(text)
    filt = nf.ipt.tables["filter"]
    assert render.policy_chain("x/deny", "ingress") in filt
    assert render.policy_chain("x/block", "ingress") in filt
    assert render.policy_chain("x/dns", "egress") in filt
    ingress = "\n".join(filt[render.INGRESS_CHAIN])
    assert '"x/a ingress x/block"' in ingress and '"x/a ingress isolated"' in ingress and "-j DROP" in ingress
    block = "\n".join(filt[render.policy_chain("x/block", "ingress")])
    assert '"x/block ingress rule 1"' in block
    (peers,) = [c for c in filt if c.startswith("KNET-S-")]  # one address set, used by both port rules
    assert filt[peers] == ["-s 10.244.2.0/24 -j RETURN", "-s 10.244.0.0/16 -j MARK --set-xmark 0x10000/0x10000"]
    assert f"-p tcp -m tcp --dport 80:81 -j {peers}" in block
    assert f"-d 10.244.1.2/32 -p udp -m udp --dport 80 -j {peers}" in block  # named port resolved on x/a
    assert "--ctstate RELATED,ESTABLISHED -j RETURN" in filt[render.TOP][0]


def test_iptables_stale_policy_chains_removed_in_the_same_restore():
    nf = FakeNetfilter()
    nf.iptables_restore(render.render_iptables(compile_node("node01", [DENY, BLOCK], PODS, NAMESPACES)))
    before = _chains(nf)
    text = render.render_iptables(compile_node("node01", [DENY], PODS, NAMESPACES), before)
    nf.iptables_restore(text)
    assert render.policy_chain("x/block", "ingress") not in _chains(nf)
    assert not any(c.startswith("KNET-S-") for c in _chains(nf))
    assert len(nf.ipt.restores) == 2  # one transaction each: never a state between


def test_iptables_cleanup_removes_everything():
    nf = FakeNetfilter()
    nf.iptables_restore(render.render_iptables(compile_node("node01", [DENY, BLOCK], PODS, NAMESPACES)))
    nf.iptables_restore(f"*filter\n-I FORWARD 1 {render.jump_rule()}\nCOMMIT\n")
    nf.iptables_restore(render.cleanup_iptables(_chains(nf), jump_present=True))
    assert not [c for c in _chains(nf) if c.startswith("KNET")]
    assert nf.ipt.tables["filter"]["FORWARD"] == []


def test_nftables_render_applies_atomically_and_replaces():
    nf = FakeNetfilter()
    nf.nft(render.render_nftables(compile_node("node01", [DENY, BLOCK, EGRESS], PODS, NAMESPACES)))
    table = nf.nf.tables["ip knet-netpol"]
    assert {e.split(" -> ")[0] for e in table.sets["ingress-pods"]} == {"10.244.1.2", "10.244.1.3"}  # x/a, x/b
    assert {e.split(" -> ")[0] for e in table.sets["egress-pods"]} == {"10.244.1.2", "10.244.1.3"}
    nf.nft(render.render_nftables(compile_node("node01", [], PODS, NAMESPACES)))
    table = nf.nf.tables["ip knet-netpol"]
    assert table.sets["ingress-pods"] == set() and set(table.chains) == {"forward"}
    nf.nft(render.cleanup_nftables())
    assert "ip knet-netpol" not in nf.nf.tables
