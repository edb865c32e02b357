"""The guard of pending isolated pods: a pod bound to this node that a policy selects, whose address
the API does not know yet, may already be listening; while one exists, new connections to (ingress)
/ from (egress) addresses of the node's podCIDR that no known pod holds are dropped. Checked on the
compiled rules (verdict: what the sim dataplane answers) and on the rendered iptables and nftables
rules loaded into the fake kernel, with the guard's presence per case."""

from __future__ import annotations

import copy

from knet.netpol import render
from knet.netpol.compiler import EGRESS, INGRESS, compile_node
from knet.netpol.controller import PolicyController
from knet.netpol.verdict import allowed
from knet.proxy.netfilter import FakeNetfilter

from .fixtures import NAMESPACES, PODS, pod, policy

CIDR = "10.244.1.0/24"
DENY_X = policy("x", "deny", {"podSelector": {}})
DENY_X_EGRESS = policy("x", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
DENY_Y_A = policy("y", "deny-a", {"podSelector": {"matchLabels": {"pod": "a"}}})
NEW_IP = "10.244.1.20"  # the address the pending pod will get: no known pod's


def pending(ns: str, name: str, node: str = "node01", **labels: str) -> dict:
    p = pod(ns, name, "", node=node, **labels)
    p["status"] = {"phase": "Pending"}
    return p


def rules(policies, pods, cidr=CIDR):
    return compile_node("node01", policies, pods, NAMESPACES, cidr)


def test_guard_only_while_a_selected_pod_is_pending_on_this_node():
    new = pending("x", "new")
    with_new = rules([DENY_X], PODS + [new])
    (guard,) = with_new.guards
    assert (guard.direction, guard.pod_cidr, guard.pending) == (INGRESS, CIDR, ["x/new"])
    # every address of a pod on node01 is known (node02's and hostNetwork pods are not)
    assert guard.known_ips == ["10.244.1.2", "10.244.1.3", "10.244.1.5", "10.244.1.7", "10.244.1.9"]
    assert rules([DENY_X], PODS).guards == []                       # nothing pending
    assert rules([], PODS + [new]).guards == []                     # no policies: no guard, no cost
    assert rules([DENY_Y_A], PODS + [new]).guards == []             # pending pod no policy selects
    assert rules([DENY_Y_A], PODS + [pending("y", "b")]).guards == []  # same namespace, unselected
    assert rules([DENY_X], PODS + [pending("x", "new", node="node02")]).guards == []  # another node's
    unbound = pending("x", "new")
    unbound["spec"]["nodeName"] = ""
    assert rules([DENY_X], PODS + [unbound]).guards == []           # not scheduled: no sandbox yet
    hostnet = pending("x", "new")
    hostnet["spec"]["hostNetwork"] = True
    assert rules([DENY_X], PODS + [hostnet]).guards == []           # the node's address, never isolated
    assert rules([DENY_X], PODS + [new], cidr="").guards == []      # podCIDR unknown: nothing to guard
    # the address arrives: an ordinary isolated pod, the guard gone
    arrived = copy.deepcopy(new)
    arrived["status"] = {"phase": "Running", "podIP": NEW_IP}
    after = rules([DENY_X], PODS + [arrived])
    assert after.guards == [] and NEW_IP in [p.ip for p in after.ingress]


def test_guard_per_direction():
    new = pending("x", "new")
    (eg,) = rules([DENY_X_EGRESS], PODS + [new]).guards
    assert eg.direction == EGRESS
    assert [g.direction for g in rules([DENY_X, DENY_X_EGRESS], PODS + [new]).guards] == [INGRESS, EGRESS]


def test_verdict_new_address_closed_known_pods_unaffected():
    new = pending("x", "new")
    r = rules([DENY_X], PODS + [new])
    assert not allowed([r], "10.244.1.5", NEW_IP, "tcp", 80)       # y/a -> the new pod's address
    assert not allowed([r], "10.244.2.6", NEW_IP, "tcp", 80)       # from another node
    assert allowed([r], "10.244.1.5", "10.244.1.7", "tcp", 80)     # y/a -> y/c: unisolated, open
    assert not allowed([r], "10.244.1.5", "10.244.1.2", "tcp", 80)  # x/a: isolated as before
    assert allowed([r], NEW_IP, "10.244.1.7", "tcp", 80)           # ingress guard only: egress open
    assert allowed([r], "10.244.1.5", "10.244.2.4", "tcp", 80)     # outside the podCIDR: not guarded


def _walk_iptables(chains: dict[str, list[str]], dst: str, src: str) -> str:
    """Where a new packet src -> dst ends in KNET-NPC: "drop" at a guard, else "dispatch"."""
    import ipaddress

    def match(rule: str) -> bool:
        words = rule.split()
        for flag, addr in (("-d", dst), ("-s", src)):
            if flag in words:
                if ipaddress.ip_address(addr) not in ipaddress.ip_network(words[words.index(flag) + 1]):
                    return False
        return True

    for rule in chains[render.TOP][1:]:  # past ESTABLISHED
        target = rule.split()[-1]
        if target.startswith("KNET-NPC-GUARD") and match(rule):
            for g in chains[target]:
                if match(g):
                    if g.endswith("-j RETURN"):
                        break
                    return "drop"
    return "dispatch"


def test_iptables_guard_rendered_loaded_and_removed():
    nf = FakeNetfilter()
    new = pending("x", "new")
    r = rules([DENY_X, DENY_X_EGRESS], PODS + [new])
    chains = render.iptables_chains(r)
    nf.iptables_restore(render.restore_text(chains))
    filt = nf.ipt.tables["filter"]
    assert filt[render.TOP][1:3] == [f"-d {CIDR} -j KNET-NPC-GUARD-IN", f"-s {CIDR} -j KNET-NPC-GUARD-EG"]
    assert filt["KNET-NPC-GUARD-IN"][-1] == '-m comment --comment "ingress pending isolated: x/new" -j DROP'
    assert _walk_iptables(chains, NEW_IP, "10.244.1.5") == "drop"
    assert _walk_iptables(chains, "10.244.1.7", NEW_IP) == "drop"      # egress guard: from it
    assert _walk_iptables(chains, "10.244.1.7", "10.244.1.5") == "dispatch"
    assert _walk_iptables(chains, "10.244.2.4", "10.244.1.5") == "dispatch"
    # none pending: KNET-NPC as without the guard, the guard chains deleted in the same restore
    plain = render.iptables_chains(rules([DENY_X, DENY_X_EGRESS], PODS))
    assert plain[render.TOP][1] == "-A KNET-NPC -j KNET-NPC-EGRESS"
    stale = render.stale_chains(set(filt), plain)
    assert stale == ["KNET-NPC-GUARD-EG", "KNET-NPC-GUARD-IN"]
    nf.iptables_restore(render.restore_text(plain, None, stale))
    assert not [c for c in nf.ipt.tables["filter"] if "GUARD" in c]


def test_nftables_guard_and_incremental_update():
    new = pending("x", "new")
    plain = render.nft_table(rules([DENY_X], PODS))
    guarded = render.nft_table(rules([DENY_X], PODS + [new]))
    assert plain.guards == []
    (rule,) = guarded.guards
    assert rule == (f"add rule ip knet-netpol forward ip daddr {CIDR} ip daddr != {{ 10.244.1.2, 10.244.1.3, "
                    f"10.244.1.5, 10.244.1.7, 10.244.1.9 }} counter drop comment \"ingress pending isolated: x/new\"")
    script = render.nft_script(guarded)
    forward = [line for line in script.splitlines() if line.startswith("add rule ip knet-netpol forward")]
    assert forward[1] == rule and forward[2].endswith("vmap @egress-pods")  # after ESTABLISHED, before dispatch
    up = render.nft_update(plain, guarded)
    assert "flush chain ip knet-netpol forward" in up and rule in up
    down = render.nft_update(guarded, plain)
    assert "flush chain ip knet-netpol forward" in down and "drop comment" not in down
    assert render.nft_update(guarded, guarded) == ""


def test_controller_takes_the_podcidr_of_its_own_node_only():
    for mode in ("iptables", "nftables"):
        ctl = PolicyController(node="node01", mode=mode, nf=FakeNetfilter())
        ctl.on_change("networkpolicies", "x/deny", DENY_X)
        for p in PODS + [pending("x", "new")]:
            ctl.on_change("pods", f"{p['metadata']['namespace']}/{p['metadata']['name']}", p)
        ctl.on_change("nodes", "node02", {"metadata": {"name": "node02"}, "spec": {"podCIDR": "10.244.2.0/24"}})
        assert ctl.compile().guards == []
        ctl.on_change("nodes", "node01", {"metadata": {"name": "node01"}, "spec": {"podCIDR": CIDR}})
        assert ctl.sync() and [g.pod_cidr for g in ctl.last_rules.guards] == [CIDR]
