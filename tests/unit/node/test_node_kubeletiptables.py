"""The kubelet's iptables chains (knet.node.kubeletiptables): upstream v1.29's syncIPTablesRules and
its canary monitor, on a fake iptables that keeps tables as iptables does (a chain made twice is
an error, -C finds a rule only if it is there, -I 1 puts it first), and kube-proxy's whole-table
restore keeping them."""

from __future__ import annotations

import asyncio

from knet.node import kubeletiptables as kt
from knet.proxy import iptables as proxy_iptables

BUILTIN = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
           "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}


class FakeIptables:
    """`iptables ARGS` -> exit code, on tables of chains of rules (each rule its argument tuple)."""

    def __init__(self) -> None:
        self.tables = {t: {c: [] for c in chains} for t, chains in BUILTIN.items()}
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str]) -> int:
        self.calls.append(args)
        assert args[0] == "-t"
        table, op, chain, rest = self.tables[args[1]], args[2], args[3], tuple(args[4:])
        if op == "-N":
            if chain in table:
                return 1
            table[chain] = []
            return 0
        if chain not in table:
            return 1
        rules = table[chain]
        if op == "-L":
            return 0
        if op == "-C":
            return 0 if rest in rules else 1
        if op == "-A":
            rules.append(rest)
            return 0
        if op == "-I":
            assert rest[0] == "1"
            rules.insert(0, rest[1:])
            return 0
        raise AssertionError(f"unexpected {args}")

    def flush_all(self) -> None:
        """`iptables -F; iptables -X` in every table, as a user might."""
        self.tables = {t: {c: [] for c in chains} for t, chains in BUILTIN.items()}


def test_ipv4_rules_are_upstreams():
    ipt = FakeIptables()
    assert kt.sync(ipt)
    f = ipt.tables["filter"]
    assert f["INPUT"] == [("-j", "KUBE-FIREWALL")] and f["OUTPUT"] == [("-j", "KUBE-FIREWALL")]
    assert f["KUBE-FIREWALL"] == [(
        "-m", "comment", "--comment", "block incoming localnet connections", "--dst", "127.0.0.0/8",
        "!", "--src", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")]
    assert "KUBE-IPTABLES-HINT" in ipt.tables["mangle"]
    # gone since v1.28 (IPTablesOwnershipCleanup): no mark chains, no 0x8000 drop
    assert not {"KUBE-MARK-DROP", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"} & set(ipt.tables["nat"])
    # idempotent: a second sync adds nothing
    assert kt.sync(ipt)
    assert len(f["INPUT"]) == 1 and len(f["KUBE-FIREWALL"]) == 1


def test_ipv6_gets_only_the_hint():
    ipt = FakeIptables()
    assert kt.sync(ipt, ipv6=True)
    assert "KUBE-IPTABLES-HINT" in ipt.tables["mangle"] and "KUBE-FIREWALL" not in ipt.tables["filter"]


def test_the_jump_goes_first_even_when_other_rules_are_there():
    ipt = FakeIptables()
    ipt.tables["filter"]["INPUT"].append(("-j", "ACCEPT"))
    kt.sync(ipt)
    assert ipt.tables["filter"]["INPUT"][0] == ("-j", "KUBE-FIREWALL")


def test_a_failing_iptables_stops_the_sync():
    calls = []

    def broken(args):
        calls.append(args)
        return 4

    assert not kt.sync(broken)
    assert len(calls) == 2  # -N of the hint chain failed, and it is not there: nothing else tried


async def test_the_canary_brings_the_rules_back_after_a_flush():
    ipt = FakeIptables()
    kt.sync(ipt)
    reloads = []

    def reload():
        reloads.append(1)
        kt.sync(ipt)

    task = asyncio.create_task(kt.monitor(ipt, reload, interval=0.01, flush_wait=0.005, flush_timeout=0.2))
    try:
        for _ in range(200):
            if all(kt.CANARY_CHAIN in ipt.tables[t] for t in kt.CANARY_TABLES):
                break
            await asyncio.sleep(0.01)
        assert all(kt.CANARY_CHAIN in ipt.tables[t] for t in ("mangle", "nat", "filter"))
        await asyncio.sleep(0.05)
        assert reloads == []  # nothing flushed: nothing reloaded
        ipt.flush_all()
        for _ in range(200):
            if reloads and kt.CANARY_CHAIN in ipt.tables["filter"]:
                break
            await asyncio.sleep(0.01)
        assert reloads == [1]
        assert ipt.tables["filter"]["INPUT"] == [("-j", "KUBE-FIREWALL")]
        assert len(ipt.tables["filter"]["KUBE-FIREWALL"]) == 1
        assert all(kt.CANARY_CHAIN in ipt.tables[t] for t in kt.CANARY_TABLES)
    finally:
        task.cancel()


def test_kube_proxys_whole_table_restore_keeps_the_kubelets_chains():
    """kube-proxy's full sync (merge_with_foreign) writes the kubelet's chains and rules back, and
    its own copy of the KUBE-FIREWALL jumps does not double them."""
    saved = {
        "filter": "\n".join([
            "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":KUBE-FIREWALL - [0:0]", ":KUBE-KUBELET-CANARY - [0:0]",
            "-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL",
            '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet '
            'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP', "COMMIT"]),
        "nat": "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n",
    }
    rendered = "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
    merged = proxy_iptables.merge_with_foreign(saved, rendered)
    filter_part = merged.split("*nat")[0]
    assert ":KUBE-KUBELET-CANARY - [0:0]" in filter_part and ":KUBE-FIREWALL - [0:0]" in filter_part
    assert filter_part.count("-A INPUT -j KUBE-FIREWALL") == 1
    assert filter_part.count("-A OUTPUT -j KUBE-FIREWALL") == 1
    assert "block incoming localnet connections" in filter_part
    assert ":KUBE-KUBELET-CANARY - [0:0]" in merged.split("*nat")[1]


def test_only_a_knet_nodes_namespace_counts(tmp_path):
    # this test process runs in no `knet-*` namespace of tmp_path's (an empty netns dir)
    assert not kt.in_knet_node(str(tmp_path))
    assert not kt.in_knet_node(str(tmp_path / "missing"))
