"""The shape of the nftables transactions a sync sends, as far as nft's cache is concerned
(knet.proxy.libnft keeps one libnftables context whose cache must stay complete): every
transaction that ends a sync starts with `add table`, as upstream's knftables transactions do,
so nft reads its cache for every kind of object; the kernel state is the same either way.
"""

from __future__ import annotations

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
