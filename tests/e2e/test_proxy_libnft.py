"""The long-lived libnftables context (knet.proxy.libnft) against the kernel, in a scratch network
namespace: transactions apply atomically as `nft -f` does, each builds on the previous one from
the cache the context kept, a change another writer commits in between is seen, a failing
transaction changes nothing and reports nft's error, and the kube-proxy proxier's partial syncs
reach the kernel through it. Needs root and libnftables (the nftables package); fails otherwise.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from knet.proxy.libnft import LibNftError, NftContext
from knet.proxy.netfilter import RealNetfilter
from knet.proxy.options import RenderOptions
from knet.proxy.proxier import Proxier

from .proxy_netns_topology import PREFIX

pytestmark = [pytest.mark.e2e]
NS = PREFIX + "libnft"


def nft(*args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", NS, "nft", *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)


def test_transactions_build_on_the_kept_cache_and_see_other_writers(netns: str) -> None:
    ctx = NftContext(netns)
    ctx.run("add table ip t\nadd chain ip t base { type filter hook input priority 0 ; }\n")
    for i in range(6):
        # each rule goes into the chain the previous transaction created: nft checks that chain
        # against its cache, so a cache that missed our own commit would fail here
        ctx.run(f"add chain ip t c{i}\nadd rule ip t c{i} tcp dport {1000 + i} accept\n"
                f"add rule ip t base jump c{i}\n")
    assert ctx.carried >= 3, "the context re-read the kernel after every one of its own commits"
    listing = nft("list", "table", "ip", "t")
    for i in range(6):
        assert f"chain c{i} {{" in listing and f"tcp dport {1000 + i} accept" in listing
    # another writer adds a chain and deletes one of ours: the next transaction must see both
    nft("add", "chain", "ip", "t", "foreign")
    nft("delete", "rule", "ip", "t", "base", "handle", _handle("jump c5"))
    nft("delete", "chain", "ip", "t", "c5")
    ctx.run("add rule ip t foreign udp dport 53 accept\n")
    with pytest.raises(LibNftError, match="No such file or directory"):
        ctx.run("add rule ip t c5 udp dport 54 accept\n")
    # a failed transaction is all-or-nothing, and the context goes on working after it
    with pytest.raises(LibNftError, match="No such file or directory"):
        ctx.run("add chain ip t half\nadd rule ip t base jump c99\n")
    listing = nft("list", "table", "ip", "t")
    assert "udp dport 53 accept" in listing and "chain half" not in listing and "chain c5" not in listing
    ctx.run("add chain ip t after\nadd rule ip t after accept\n")
    assert "chain after {" in nft("list", "table", "ip", "t")
    ctx.close()


def _handle(rule: str) -> str:
    nft_out = nft("-a", "list", "chain", "ip", "t", "base")
    for line in nft_out.splitlines():
        if rule in line and "# handle" in line:
            return line.rsplit("# handle", 1)[1].strip()
    raise AssertionError(f"no {rule!r} in {nft_out}")


def _svc(i: int) -> dict:
    return {"kind": "Service", "metadata": {"namespace": "default", "name": f"s{i}"},
            "spec": {"clusterIP": f"10.96.0.{10 + i}", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def _slice(i: int, ips: list[str]) -> dict:
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "default", "name": f"s{i}-x", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "endpoints": [{"addresses": [ip], "nodeName": "node01"} for ip in ips],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def test_proxier_partial_syncs_through_the_context(netns: str) -> None:
    nf = RealNetfilter(netns=netns, libnftables=True)  # as kube-proxy's server makes it
    opts = RenderOptions(node_name="node01", node_ip="192.168.50.1", cluster_cidr="10.244.0.0/16")
    p = Proxier("nftables", opts, nf, hostname="node01")
    p.services_synced = p.endpoints_synced = True
    for i in range(20):
        p.on_service(None, _svc(i))
        p.on_endpoint_slice(None, _slice(i, [f"10.244.1.{i + 1}", f"10.244.2.{i + 1}"]))
    assert p.sync().ok
    assert nf._nft_ctx is not None, "RealNetfilter did not use libnftables"
    old = _slice(3, ["10.244.1.4", "10.244.2.4"])
    for k in range(3):  # an endpoint moves, three times: three partial syncs
        new = _slice(3, ["10.244.1.4", f"10.244.3.{k + 1}"])
        p.on_endpoint_slice(old, new)
        out = p.sync()
        assert out.ok and not out.full, out.error
        old = new
    rules = nft("list", "table", "ip", "kube-proxy")
    assert "dnat to 10.244.3.3:8080" in rules
    # the service chain balances over exactly the two current endpoints
    svc_chain = next(c for c in rules.split("\tchain ") if c.startswith("service-") and "default/s3/" in c)
    assert "numgen random mod 2" in svc_chain and "10.244.3.3/8080" in svc_chain and "10.244.3.2/" not in svc_chain
    assert nf._nft_ctx.carried >= 2
