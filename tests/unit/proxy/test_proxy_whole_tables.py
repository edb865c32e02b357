"""A full sync's streamed whole-table restore (iptables.WholeTables) writes exactly what
merge_with_foreign(saved, render(state)) writes: the same rules, in the same order within each chain,
for upstream's golden inputs and with other components' rules in the saved tables, only the order
of the lines across chains differs (each Service's chains are declared right before their rules)."""

from __future__ import annotations

import pytest

from knet.proxy import iptables
from knet.proxy.model import state_from_objects
from knet.proxy.netfilter import FakeIptables, FakeNetfilter
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import Proxier

from .proxy_golden_helpers import load_objects, normalize_iptables
from .test_proxy_golden import IPTABLES_CASES, NODE

# what a node's tables hold besides kube-proxy's: the kubelet's chains, a CNI's hostport rule above our
# jump, a policy in a chain of its own, and our own rules from the last full sync (left out by both)
SAVED = {
    "filter": """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:CNI-POLICY - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m comment --comment "cni policy" -j CNI-POLICY
-A CNI-POLICY -s 10.0.9.0/24 -j DROP
-A KUBE-SERVICES -d 172.30.9.9/32 -p tcp -j REJECT
COMMIT
""",
    "nat": """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-OLDOLDOLDOLDOLDO - [0:0]
:KUBE-SEP-OLDOLDOLDOLDOLDO - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A CNI-HOSTPORT-DNAT -p tcp --dport 8080 -j DNAT --to-destination 10.0.9.2:80
-A KUBE-SERVICES -d 172.30.9.9/32 -p tcp -j KUBE-SVC-OLDOLDOLDOLDOLDO
-A KUBE-SVC-OLDOLDOLDOLDOLDO -j KUBE-SEP-OLDOLDOLDOLDOLDO
-A KUBE-SEP-OLDOLDOLDOLDOLDO -p tcp -j DNAT --to-destination 10.0.9.3:80
COMMIT
""",
}


def _apply(text: str) -> dict[str, dict[str, list[str]]]:
    ipt = FakeIptables()
    ipt.restore(text, noflush=False)
    return ipt.tables


@pytest.mark.parametrize("saved", [{}, SAVED], ids=["fresh-node", "with-other-components"])
@pytest.mark.parametrize(("objects", "golden", "opts"), IPTABLES_CASES)
def test_streamed_whole_tables_equal_merge_with_foreign(objects: str, golden: str, opts: RenderOptions,
                                                        saved: dict[str, str]) -> None:
    state = state_from_objects(load_objects(objects), NODE)
    expected = iptables.merge_with_foreign(saved, iptables.Renderer(opts).render(state).text)
    renderer = iptables.Renderer(opts)
    whole = renderer.whole_tables(state, saved)
    lines = list(whole.lines())
    assert whole.result is not None and whole.result.written_services == len(state.services)
    got = "\n".join(lines) + "\n"
    assert sorted(got.splitlines()) == sorted(expected.splitlines())
    assert normalize_iptables(got) == normalize_iptables(expected)
    applied = _apply(got)
    assert applied == _apply(expected)
    assert not any(c.endswith("OLDOLDOLDOLDOLDO") for c in applied["nat"])
    # a partial sync right after builds on what the streamed one left (the renderer's cache and
    # top-level chains): no Service changed, so it has nothing to write
    again = renderer.render(state, changed=set())
    assert again.text == "*filter\nCOMMIT\n*nat\nCOMMIT\n"


def test_each_service_chain_is_declared_right_before_its_rules() -> None:
    state = state_from_objects(load_objects("overall.yaml"), NODE)
    lines = list(iptables.Renderer(IPTABLES_CASES[0].values[2]).whole_tables(state, {}).lines())
    declared_at = {ln[1:].split()[0]: i for i, ln in enumerate(lines) if ln.startswith(":KUBE-SEP-")}
    assert declared_at
    for chain, i in declared_at.items():
        first_rule = next(j for j, ln in enumerate(lines) if ln.startswith(f"-A {chain} "))
        # only the same Service's other chains come between (at most a handful)
        assert 0 < first_rule - i < 20, chain


def test_a_failing_full_sync_restore_changes_nothing_and_the_retry_is_full() -> None:
    nf = FakeNetfilter()
    p = Proxier("iptables", IPTABLES_CASES[1].values[2], nf, hostname=NODE)
    p.services_synced = p.endpoints_synced = True
    for obj in load_objects("etp_local.yaml"):
        (p.on_service if obj["kind"] == "Service" else p.on_endpoint_slice)(None, obj)
    nf.fail_next = 1
    out = p.sync()
    assert not out.ok and out.full and "KUBE-SERVICES" not in nf.ipt.tables["nat"]
    retry = p.sync()
    assert retry.ok and retry.full and nf.ipt.tables["nat"]["KUBE-SERVICES"]
