"""The LoadBalancer pool and its allocator (knet.ipam.lbpool)."""

from __future__ import annotations

import pytest

from knet.ipam.lbpool import Allocator, PoolError, check_pool, default_pool, parse_pool

NODE_NET = "172.30.5.0/24"
NODES = ["172.30.5.1", "172.30.5.2", "172.30.5.3", "172.30.5.4"]  # host, controlplane, node01, node02


@pytest.mark.parametrize(("text", "first", "last", "size"), [
    pytest.param("172.30.5.200-172.30.5.250", "172.30.5.200", "172.30.5.250", 51, id="range"),
    pytest.param("172.30.5.224/27", "172.30.5.224", "172.30.5.255", 32, id="cidr"),
    pytest.param("172.30.5.9", "172.30.5.9", "172.30.5.9", 1, id="one-address"),
    pytest.param("172.30.5.20-172.30.5.21, 172.30.5.10", "172.30.5.10", "172.30.5.21", 3, id="list-sorted"),
])
def test_parse_pool(text, first, last, size):
    pool = parse_pool(text)
    assert (str(pool.ranges[0][0]), str(pool.ranges[-1][1]), len(pool)) == (first, last, size)
    assert parse_pool(str(pool)) == pool  # its text reads back


@pytest.mark.parametrize("text", ["", "a-b", "172.30.5.9-172.30.5.1", "10.0.0.0/33",
                                  "172.30.5.1-172.30.5.9,172.30.5.5", "fd00::1"])
def test_parse_pool_refuses(text):
    with pytest.raises(PoolError):
        parse_pool(text)


def test_default_pool_is_the_upper_quarter_past_the_nodes():
    assert str(default_pool(NODE_NET, NODES)) == "172.30.5.192-172.30.5.254"
    # 200 nodes reach into the upper quarter: the pool starts after the last one
    many = [f"172.30.5.{i}" for i in range(1, 202)]
    assert str(default_pool(NODE_NET, many)) == "172.30.5.202-172.30.5.254"
    assert default_pool("172.30.5.0/30", ["172.30.5.1", "172.30.5.2"]) is None


@pytest.mark.parametrize(("text", "why"), [
    pytest.param("172.30.6.10-172.30.6.20", "inside the node network", id="outside"),
    pytest.param("172.30.5.250-172.30.5.255", "broadcast", id="broadcast"),
    pytest.param("172.30.5.0-172.30.5.5", "network or broadcast", id="network-address"),
    pytest.param("172.30.5.3-172.30.5.9", "172.30.5.3", id="a-node"),
    pytest.param("172.30.5.1", "172.30.5.1", id="the-host"),
])
def test_check_pool_refuses(text, why):
    with pytest.raises(PoolError, match=why):
        check_pool(parse_pool(text), NODE_NET, NODES)


def test_allocator_lowest_free_then_release_and_reuse():
    alloc = Allocator(parse_pool("172.30.5.200-172.30.5.201"))
    assert alloc.assign("default/a").ip == "172.30.5.200"
    assert alloc.assign("default/a").ip == "172.30.5.200"  # stable
    assert alloc.assign("default/b").ip == "172.30.5.201"
    full = alloc.assign("default/c")
    assert full.ip is None and "no available IPs" in full.error
    assert alloc.release("default/a") == "172.30.5.200"
    assert alloc.assign("default/c").ip == "172.30.5.200"  # the released address is reused


@pytest.mark.parametrize(("requested", "ip", "error"), [
    pytest.param("172.30.5.205", "172.30.5.205", "", id="in-pool"),
    pytest.param("172.30.5.3", None, "not allowed in config", id="a-node-address"),
    pytest.param("8.8.8.8", None, "not allowed in config", id="outside"),
    pytest.param("172.30.5.200", None, "already in use by default/first", id="taken"),
    pytest.param("not-an-ip", None, "not a valid IPv4 address", id="garbage"),
])
def test_allocator_requested_address(requested, ip, error):
    alloc = Allocator(parse_pool("172.30.5.200-172.30.5.210"))
    alloc.assign("default/first")  # .200
    got = alloc.assign("default/svc", requested)
    assert got.ip == ip and error in got.error
    if ip is None:
        assert alloc.held_by("default/svc") is None


def test_allocator_moves_to_a_newly_requested_address():
    alloc = Allocator(parse_pool("172.30.5.200-172.30.5.210"))
    assert alloc.assign("default/svc").ip == "172.30.5.200"
    assert alloc.assign("default/svc", "172.30.5.207").ip == "172.30.5.207"
    assert alloc.holder("172.30.5.200") is None  # the old one is free again


def test_claim_rebuilds_and_refuses_conflicts():
    alloc = Allocator(parse_pool("172.30.5.200-172.30.5.210"))
    assert alloc.claim("default/old", "172.30.5.204")
    assert not alloc.claim("default/new", "172.30.5.204")  # another Service holds it
    assert not alloc.claim("default/x", "172.30.5.3")       # not the pool's
    assert alloc.assign("default/y").ip == "172.30.5.200"
    assert alloc.assign("default/z").ip == "172.30.5.201"
