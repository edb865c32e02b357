"""The shape of the nftables transactions a sync sends, as far as nft's cache is concerned
(knet.proxy.libnft keeps one libnftables context whose cache must stay complete): every
transaction that ends a sync starts with `add table`, as upstream's knftables transactions do,
so nft reads its cache for every kind of object; the kernel state is the same either way.
"""

from __future__ import annotations

import pytest

from knet.proxy import nftables
from knet.proxy.netfilter import FakeNetfilter
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import Proxier

from .proxy_objects import endpoint_slice, ep, service

OPTS = RenderOptions(node_name="node01", node_ip="192.168.0.2", cluster_cidr="10.244.0.0/16")


def test_every_sync_ends_with_a_transaction_that_starts_with_the_table() -> None:
    nf = FakeNetfilter()
    p = Proxier("nftables", OPTS, nf, hostname="node01")
    p.services_synced = p.endpoints_synced = True
    for i in range(3):
        p.on_service(None, service(f"s{i}", f"10.96.0.{10 + i}"))
        p.on_endpoint_slice(None, endpoint_slice(f"s{i}", [ep(f"10.244.1.{10 + i}")]))
    assert p.sync().ok
    full = nf.nf.scripts[-1]
    assert full.splitlines()[0] == nftables.TABLE_LINE
    # a partial sync of each kind: only rules (an endpoint moves), only elements (no endpoints left),
    # both (a new Service), and a deletion
    changes = [
        lambda: p.on_endpoint_slice(endpoint_slice("s0", [ep("10.244.1.10")]), endpoint_slice("s0", [ep("10.244.2.10")])),
        lambda: p.on_endpoint_slice(endpoint_slice("s1", [ep("10.244.1.11")]), endpoint_slice("s1", [])),
        lambda: p.on_service(None, service("s9", "10.96.0.99")),
        lambda: p.on_service(service("s2", "10.96.0.12"), None),
    ]
    for change in changes:
        before = len(nf.nf.scripts)
        change()
        out = p.sync()
        assert out.ok and not out.full, out.error
        assert len(nf.nf.scripts) == before + 1
        assert nf.nf.scripts[-1].splitlines()[0] == nftables.TABLE_LINE
    table = nf.nf.tables["ip kube-proxy"]
    assert any("10.244.2.10" in c for c in table.chains)
    assert "10.96.0.11 . tcp . 80" in "".join(table.sets["no-endpoint-services"])


def _kernel(nf: FakeNetfilter) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    t = nf.nf.tables["ip kube-proxy"]
    # flushed stale chains wait (empty) for their deletion a second later
    return {c: r for c, r in t.chains.items() if r or not nftables.is_service_chain_name(c)}, t.sets


@pytest.mark.parametrize("version", ["", "v1.37.0"])
def test_partial_syncs_leave_what_a_full_sync_writes(version: str) -> None:
    """Partial syncs (written from the renderer's kept aggregate, not a walk over every Service)
    leave the kernel table exactly as one full sync of the same objects does: chains, rules, map
    and set elements, including elements two Services share (the hairpin element of a pod behind
    both, the ClusterIP of a Service's two ports) and ones that move between maps."""
    opts = RenderOptions(**{**OPTS.__dict__, "kubernetes_version": version})
    nf = FakeNetfilter()
    p = Proxier("nftables", opts, nf, hostname="node01")
    p.services_synced = p.endpoints_synced = True
    two_ports = [{"name": "p80", "port": 80, "protocol": "TCP"}, {"name": "p81", "port": 81, "protocol": "TCP"}]
    objs = {("Service", "a"): service("a", "10.96.0.10", ports=two_ports),
            ("EndpointSlice", "a"): endpoint_slice("a", [ep("10.244.1.1", "node01"), ep("10.244.2.1", "node02")],
                                                   ports=two_ports),
            ("Service", "b"): service("b", "10.96.0.11"),
            ("EndpointSlice", "b"): endpoint_slice("b", [ep("10.244.1.1", "node01")])}
    for (kind, _), o in objs.items():
        (p.on_service if kind == "Service" else p.on_endpoint_slice)(None, o)
    assert p.sync().ok

    def change(kind: str, name: str, new: dict | None) -> None:
        old = objs.pop((kind, name), None)
        (p.on_service if kind == "Service" else p.on_endpoint_slice)(old, new)
        if new is not None:
            objs[(kind, name)] = new

    steps = [
        ("EndpointSlice", "b", endpoint_slice("b", [ep("10.244.1.1", "node01"), ep("10.244.1.2", "node01")])),
        ("EndpointSlice", "a", endpoint_slice("a", [ep("10.244.2.1", "node02")], ports=two_ports)),
        ("Service", "b", service("b", "10.96.0.11", sessionAffinity="ClientIP", type="NodePort",
                                 ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 30080}])),
        ("EndpointSlice", "b", endpoint_slice("b", [])),
        ("Service", "c", service("c", "10.96.0.12", externalIPs=["192.168.99.1"])),
        ("EndpointSlice", "c", endpoint_slice("c", [ep("10.244.1.1", "node01")])),
        ("Service", "a", None),
        ("EndpointSlice", "b", endpoint_slice("b", [ep("10.244.1.3", "node01")])),
        ("Service", "b", service("b", "10.96.0.11")),
    ]
    for kind, name, new in steps:
        change(kind, name, new)
        out = p.sync()
        assert out.ok and not out.full, out.error
        fresh = FakeNetfilter()
        q = Proxier("nftables", opts, fresh, hostname="node01")
        q.services_synced = q.endpoints_synced = True
        for (k, _), o in objs.items():
            (q.on_service if k == "Service" else q.on_endpoint_slice)(None, o)
        assert q.sync().ok
        assert _kernel(nf) == _kernel(fresh), f"after {kind} {name}"


def test_a_kube_proxy_of_another_version_takes_over_the_table() -> None:
    """kubernetesVersion changes (an upgrade or a rollback replaces kube-proxy): the new one's
    full sync takes over the old one's table, and what only the old shape had goes: v1.29's
    endpoint chains and mark-for-masquerade chain (a second later, with the stale chains), v1.37's
    hairpin-connections set."""
    now = [0.0]
    nf = FakeNetfilter()
    objs = [service("a", "10.96.0.10"), endpoint_slice("a", [ep("10.244.1.1", "node01"), ep("10.244.2.1")]),
            service("b", "10.96.0.11"), endpoint_slice("b", [ep("10.244.1.2", "node01")])]

    def kube_proxy(version: str) -> Proxier:
        p = Proxier("nftables", RenderOptions(**{**OPTS.__dict__, "kubernetes_version": version}), nf,
                    hostname="node01", clock=lambda: now[0])
        p.services_synced = p.endpoints_synced = True
        for o in objs:
            (p.on_service if o["kind"] == "Service" else p.on_endpoint_slice)(None, o)
        assert p.sync().ok
        return p

    def table() -> tuple[set[str], set[str]]:
        t = nf.nf.tables["ip kube-proxy"]
        return set(t.chains), set(t.sets)

    kube_proxy("")
    assert "mark-for-masquerade" in table()[0] and any(c.startswith("endpoint-") for c in table()[0])
    new = kube_proxy("v1.37.0")
    now[0] += 1.5
    new.on_service(None, service("c", "10.96.0.12"))
    assert new.sync().ok  # a partial sync deletes the chains stale for a second
    chains, sets = table()
    assert "mark-for-masquerade" not in chains and not any(c.startswith("endpoint-") for c in chains)
    assert "hairpin-connections" in sets
    kube_proxy("v1.29.0")
    chains, sets = table()
    assert "hairpin-connections" not in sets and "mark-for-masquerade" in chains
