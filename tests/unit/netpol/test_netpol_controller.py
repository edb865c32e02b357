"""PolicyController against FakeNetfilter (which refuses what the kernel refuses and applies a
restore or nft script atomically): what reaches the kernel, when, and what does not."""

from __future__ import annotations

import pytest

from knet.netpol import render
from knet.netpol.controller import PolicyController, cleanup
from knet.node.workloads import container_argv
from knet.proxy.netfilter import FakeNetfilter

from .fixtures import NAMESPACES, PODS, policy

DENY = policy("x", "deny", {"podSelector": {}})
KUBE_FORWARD = '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'


def _controller(mode: str = "iptables") -> tuple[PolicyController, FakeNetfilter]:
    nf = FakeNetfilter()
    nf.iptables_restore(f"*filter\n:KUBE-FORWARD - [0:0]\n-A FORWARD {KUBE_FORWARD}\nCOMMIT\n")
    ctl = PolicyController(node="node01", mode=mode, nf=nf)
    for ns in NAMESPACES:
        ctl.on_change("namespaces", ns["metadata"]["name"], ns)
    for pod in PODS:
        ctl.on_change("pods", f"{pod['metadata']['namespace']}/{pod['metadata']['name']}", pod)
    return ctl, nf


def test_sync_programs_jump_first_and_skips_unchanged():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    assert ctl.sync()
    forward = nf.ipt.tables["filter"]["FORWARD"]
    assert forward == [render.jump_rule(), KUBE_FORWARD]  # before kube-proxy's accepts
    assert len(nf.ipt.restores) == 2
    assert ctl.sync()
    assert len(nf.ipt.restores) == 2  # nothing changed: nothing applied
    assert "knet_netpol_isolated_pods 2" in ctl.metrics.text()


def test_jump_moved_back_to_first_in_one_transaction():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    nf.iptables_restore("*filter\n-I FORWARD 1 -j KUBE-FORWARD\nCOMMIT\n")  # someone inserted ahead of us
    ctl.sync()
    assert nf.ipt.tables["filter"]["FORWARD"][0] == render.jump_rule()
    assert nf.ipt.tables["filter"]["FORWARD"].count(render.jump_rule()) == 1


def test_policy_deleted_removes_its_chain():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    ctl.on_change("networkpolicies", "x/deny", None)
    ctl.sync()
    assert render.policy_chain("x/deny", "ingress") not in nf.ipt.tables["filter"]
    assert nf.ipt.tables["filter"][render.INGRESS_CHAIN] == []


def test_failed_apply_keeps_previous_rules_and_counts_error():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    before = {c: list(r) for c, r in nf.ipt.tables["filter"].items()}
    ctl.on_change("networkpolicies", "x/deny", None)
    nf.fail_next = 1
    assert not ctl.sync()
    assert nf.ipt.tables["filter"] == before  # the isolated pods stay isolated
    assert "knet_netpol_sync_errors_total 1" in ctl.metrics.text()
    assert ctl.sync()  # and the retry goes through
    assert render.policy_chain("x/deny", "ingress") not in nf.ipt.tables["filter"]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_cleanup_removes_every_rule(mode):
    ctl, nf = _controller(mode)
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    cleanup(nf, mode)
    assert not [c for c in nf.ipt.tables["filter"] if c.startswith("KNET")]
    assert nf.ipt.tables["filter"]["FORWARD"] == [KUBE_FORWARD]
    assert "ip knet-netpol" not in nf.nf.tables


def test_render_only_touches_nothing():
    ctl = PolicyController(node="node01", mode="iptables", nf=None)
    ctl.on_change("networkpolicies", "x/deny", DENY)
    assert ctl.sync() and ctl.last_rules is not None


def test_addon_image_runs_the_controller():
    argv = container_argv({"image": "ghcr.io/knet/knet-net:v1.29.0"},
                          ["/usr/local/bin/knet-netpol", "--hostname-override=node01"], [], knet=["knet"])
    assert argv == ["knet", "as-binary", "/usr/local/bin/knet-netpol", "--hostname-override=node01"]


def test_unchanged_rendering_without_verify_runs_nothing():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    nf.ipt.tables["filter"]["FORWARD"].remove(render.jump_rule())  # someone removed our jump
    restores = len(nf.ipt.restores)
    assert ctl.sync(verify=False) and len(nf.ipt.restores) == restores  # a pod update: no process
    assert ctl.sync(verify=True) and nf.ipt.tables["filter"]["FORWARD"][0] == render.jump_rule()


def _knet_chains(nf: FakeNetfilter) -> dict[str, list[str]]:
    return {c: [f"-A {c} {r}" for r in rules] for c, rules in nf.ipt.tables["filter"].items() if c.startswith("KNET")}


ONLY_A = policy("x", "only-a", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
    {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})


def test_a_change_restores_only_the_chains_that_changed():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    ctl.on_change("networkpolicies", "x/only-a", ONLY_A)
    assert ctl.sync(verify=False)
    restore = nf.ipt.restores[-1]
    declared = {line[1:].split()[0] for line in restore.splitlines() if line.startswith(":")}
    only_a = render.policy_chain("x/only-a", "ingress")
    assert only_a in declared and "KNET-IN-10.244.1.2" in declared  # x/a's chain gains a policy
    assert "KNET-IN-10.244.1.3" not in declared and render.policy_chain("x/deny", "ingress") not in declared
    assert _knet_chains(nf) == render.iptables_chains(ctl.last_rules)  # the kernel has every rule
    ctl.on_change("networkpolicies", "x/only-a", None)
    assert ctl.sync(verify=False)
    assert f"-X {only_a}" in nf.ipt.restores[-1] and only_a not in _knet_chains(nf)
    assert _knet_chains(nf) == render.iptables_chains(ctl.last_rules)


def test_verify_rewrites_a_chain_someone_flushed():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    nf.iptables_restore("*filter\n-F KNET-IN-10.244.1.2\nCOMMIT\n")  # `iptables -F`: x/a would be open
    restores = len(nf.ipt.restores)
    assert ctl.sync(verify=False) and len(nf.ipt.restores) == restores  # not looked at without verify
    assert ctl.sync(verify=True)
    declared = [line for line in nf.ipt.restores[-1].splitlines() if line.startswith(":")]
    assert declared == [":KNET-IN-10.244.1.2 - [0:0]"]  # that chain only
    assert _knet_chains(nf) == render.iptables_chains(ctl.last_rules)


def test_after_a_failed_apply_every_chain_is_checked_again():
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    ctl.on_change("networkpolicies", "x/only-a", ONLY_A)
    nf.fail_next = 2  # the restore of the changed chains, and the one after reading the kernel back
    assert not ctl.sync(verify=False)
    assert "knet_netpol_sync_errors_total 1" in ctl.metrics.text()
    del nf.ipt.tables["filter"]["FORWARD"][0]  # meanwhile our jump went away
    assert ctl.sync(verify=False)  # a sync after a failure reads the kernel back
    assert nf.ipt.tables["filter"]["FORWARD"][0] == render.jump_rule()
    assert _knet_chains(nf) == render.iptables_chains(ctl.last_rules)


def _nft_state(nf: FakeNetfilter) -> tuple[dict, dict]:
    table = nf.nf.tables["ip knet-netpol"]
    return dict(table.chains), {k: set(v) for k, v in table.sets.items()}


def test_nftables_change_updates_the_table_in_place():
    """After the first sync a change is one script touching what changed; the table ends as a
    full rendering would leave it, also when policies, pods and peer sets go away."""
    ctl, nf = _controller("nftables")
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    assert nf.nf.scripts[-1].startswith("add table ip knet-netpol\ndelete table")
    steps = [("x/only-a", ONLY_A), ("x/deny", None), ("x/deny", DENY), ("x/only-a", None), ("x/deny", None)]
    for key, obj in steps:
        ctl.on_change("networkpolicies", key, obj)
        assert ctl.sync(verify=False)
        script = nf.nf.scripts[-1]
        assert "delete table" not in script
        full = FakeNetfilter()
        full.nft(render.render_nftables(ctl.last_rules))
        assert _nft_state(nf) == _nft_state(full), (key, script)
    ctl.on_change("pods", "x/a", None)  # x/a goes: its chain and map element with it
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync(verify=False)
    assert "x/a" not in str(_nft_state(nf)) and "10.244.1.3" in str(_nft_state(nf)[1]["ingress-pods"])


def test_every_change_puts_the_jump_back_in_front():
    """kube-proxy prepends its FORWARD jumps when it starts (KUBE-FORWARD accepts masqueraded
    packets): a change, even synced without reading the kernel back, moves ours in front again;
    if our jump went away meanwhile the sync reads the kernel back and still succeeds."""
    ctl, nf = _controller()
    ctl.on_change("networkpolicies", "x/deny", DENY)
    ctl.sync()
    nf.iptables_restore("*filter\n:KUBE-PROXY-FIREWALL - [0:0]\n-I FORWARD 1 -j KUBE-PROXY-FIREWALL\nCOMMIT\n")
    ctl.on_change("networkpolicies", "x/only-a", ONLY_A)
    assert ctl.sync(verify=False)
    assert nf.ipt.tables["filter"]["FORWARD"] == [render.jump_rule(), "-j KUBE-PROXY-FIREWALL", KUBE_FORWARD]
    nf.iptables_restore(f"*filter\n-D FORWARD {render.jump_rule()}\nCOMMIT\n")  # someone removed it
    ctl.on_change("networkpolicies", "x/only-a", None)
    assert ctl.sync(verify=False) and ctl.last_error == ""
    assert nf.ipt.tables["filter"]["FORWARD"][0] == render.jump_rule()
    assert nf.ipt.tables["filter"]["FORWARD"].count(render.jump_rule()) == 1
    assert _knet_chains(nf) == render.iptables_chains(ctl.last_rules)
    assert "knet_netpol_sync_errors_total 0" in ctl.metrics.text()


def test_the_forward_jump_is_checked_every_second_while_the_node_starts():
    """kube-proxy, starting beside the add-on, prepends its FORWARD jumps; until ours is back in
    front its KUBE-FORWARD accepts masquerade-marked packets unchecked: the window must stay a
    second during start-up, then the periodic check relaxes."""
    from knet.netpol.server import RESYNC_SECONDS, STARTUP_SECONDS, resync_interval
    assert resync_interval(0.0) == resync_interval(STARTUP_SECONDS - 1) == 1.0
    assert resync_interval(STARTUP_SECONDS) == RESYNC_SECONDS
