"""The rendered rules: what the kernel (FakeNetfilter enforces its checks: no jump to a missing
chain, atomic restores) accepts, what users read (comments), replacing stale chains atomically."""

from __future__ import annotations

import ipaddress
import random

from knet.netpol import render
from knet.netpol.compiler import EGRESS as EGRESS_DIRECTION
from knet.netpol.compiler import INGRESS, IsolatedPod, NodeRules, compile_node
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
    # few isolated pods: the dispatch chain lists them, each goes to its pod's chain
    assert filt[render.INGRESS_CHAIN] == ['-d 10.244.1.2/32 -m comment --comment "x/a" -g KNET-IN-10.244.1.2',
                                          '-d 10.244.1.3/32 -m comment --comment "x/b" -g KNET-IN-10.244.1.3']
    ingress = "\n".join(filt["KNET-IN-10.244.1.2"])
    assert '"x/a ingress x/block"' in ingress and '"x/a ingress isolated"' in ingress and "-j DROP" in ingress
    assert filt["KNET-IN-10.244.1.2"][-1] == '-m comment --comment "x/a ingress isolated" -m mark ! --mark 0x10000/0x10000 -j DROP'
    assert filt[render.TOP][1:] == ["-j KNET-NPC-EGRESS", "-j MARK --set-xmark 0x0/0x10000",
                                    "-j KNET-NPC-INGRESS", "-j MARK --set-xmark 0x0/0x10000"]
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


def _walk(chains: dict[str, list[str]], root: str, ip: str) -> tuple[str | None, int]:
    """Follow the dispatch as the kernel does for a packet to (ingress) or from (egress) `ip`:
    the first rule whose address matches, gotos all the way; (the chain reached below the
    dispatch or None when the packet left it, address rules checked on the way)."""
    addr, chain, checks = ipaddress.IPv4Address(ip), root, 0
    while chain in chains and ("/" in chain or chain == root):
        for rule in chains[chain]:
            checks += 1
            parts = rule.split()  # -A CHAIN -d|-s CIDR [-m comment --comment "..."] -g TARGET
            cidr, target = parts[3], parts[parts.index("-g") + 1]
            assert parts[2] in ("-d", "-s") and "-j" not in parts, rule  # dispatch rules only match and goto
            if addr in ipaddress.IPv4Network(cidr):
                chain = target
                break
        else:
            return None, checks
    return chain, checks


def _isolated(ips: list[str]) -> list[IsolatedPod]:
    return [IsolatedPod(f"ns/pod-{ip}", ip, ["ns/deny"]) for ip in ips]


def test_dispatch_reaches_each_isolated_pod_and_only_it():
    """Random pod sets, from 1 pod to 3,000 over a few /24s: every isolated address reaches its own
    chain, a free one in the same blocks reaches none, and no packet checks more than 16 rules a
    level (a node's /24: at most 3 levels)."""
    rng = random.Random(14)
    for size in (1, 2, 16, 17, 100, 257, 1000, 3000):
        pool = [f"10.244.{b}.{h}" for b in range(0, 12) for h in range(2, 255)]
        ips = rng.sample(pool, size)
        free = [ip for ip in pool if ip not in set(ips)][:300] + ["10.245.0.2", "192.168.1.1"]
        for direction in (INGRESS, EGRESS_DIRECTION):
            iso = _isolated(ips)
            rules = NodeRules("node01", ingress=iso if direction == INGRESS else [],
                              egress=iso if direction == EGRESS_DIRECTION else [])
            chains = render.iptables_chains(rules)
            root = render.INGRESS_CHAIN if direction == INGRESS else render.EGRESS_CHAIN
            worst = 0
            for ip in ips:
                reached, checks = _walk(chains, root, ip)
                assert reached == render.dispatch_chain(direction, ip), (size, ip, reached)
                worst = max(worst, checks)
            for ip in free:
                reached, checks = _walk(chains, root, ip)
                assert reached is None, (size, ip, reached)
                worst = max(worst, checks)
            levels = 1 + (size > 16) + (size > 256)  # 3,000 over 12 /24s: /20, /24, /28 levels
            assert worst <= 16 * (levels + (size > 256)), (size, worst)
            assert all(len(r) <= render.FANOUT for c, r in chains.items() if "/" in c or c == root)


def test_dispatch_readable_trie_and_pod_chain_order():
    ips = [f"10.244.1.{h}" for h in range(2, 40)]  # 38 pods: /28 blocks under the root
    chains = render.iptables_chains(NodeRules("node01", ingress=_isolated(ips)))
    assert chains[render.INGRESS_CHAIN] == [
        "-A KNET-NPC-INGRESS -d 10.244.1.0/28 -g KNET-IN-10.244.1.0/28",
        "-A KNET-NPC-INGRESS -d 10.244.1.16/28 -g KNET-IN-10.244.1.16/28",
        "-A KNET-NPC-INGRESS -d 10.244.1.32/28 -g KNET-IN-10.244.1.32/28"]
    assert chains["KNET-IN-10.244.1.32/28"][0] == (
        '-A KNET-IN-10.244.1.32/28 -d 10.244.1.32/32 -m comment --comment "ns/pod-10.244.1.32" -g KNET-IN-10.244.1.32')
    assert max(len(c) for c in chains) <= 28  # iptables' limit on chain names
    assert render.render_iptables(NodeRules("node01", ingress=_isolated(list(reversed(ips))))) == \
        render.render_iptables(NodeRules("node01", ingress=_isolated(ips)))  # deterministic


def test_pods_sharing_an_address_share_a_chain():
    a, b = IsolatedPod("x/old", "10.244.1.2", ["x/p1"]), IsolatedPod("x/new", "10.244.1.2", ["x/p2"])
    chains = render.iptables_chains(NodeRules("node01", ingress=[a, b]))
    assert chains[render.INGRESS_CHAIN] == ['-A KNET-NPC-INGRESS -d 10.244.1.2/32 -m comment --comment '
                                            '"x/old, x/new" -g KNET-IN-10.244.1.2']
    assert len(chains["KNET-IN-10.244.1.2"]) == 4  # x/old's policy and DROP, then x/new's
