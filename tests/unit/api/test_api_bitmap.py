"""IP and port bitmap allocators: bands (KEP-3070/3668), bounds, release."""

from __future__ import annotations

import ipaddress
import random

import pytest

from knet.ipam.bitmap import (
    AlreadyAllocated,
    IPRangeAllocator,
    NotInRange,
    PortRangeAllocator,
    RangeFull,
    ip_static_band_size,
    port_static_band_size,
)


@pytest.mark.parametrize(("size", "band"), [
    pytest.param(14, 16, id="tiny-range-min-16"), pytest.param(254, 16, id="slash24"),
    pytest.param(4094, 255, id="slash20"), pytest.param(1048574, 256, id="slash12-capped"),
])
def test_ip_static_band_size(size, band):
    assert ip_static_band_size(size) == band


@pytest.mark.parametrize(("size", "band"), [
    pytest.param(2768, 86, id="default-nodeport-range"), pytest.param(100, 16, id="min-16"),
    pytest.param(10000, 128, id="capped-128"),
])
def test_port_static_band_size(size, band):
    assert port_static_band_size(size) == band


def test_ip_allocator_skips_network_and_broadcast_and_prefers_dynamic_band():
    alloc = IPRangeAllocator("10.0.0.0/28", rng=random.Random(1))  # 14 usable, band 16 > size
    assert alloc.free == 14
    got = {alloc.allocate_next() for _ in range(14)}
    assert got == {f"10.0.0.{i}" for i in range(1, 15)}
    with pytest.raises(RangeFull):
        alloc.allocate_next()
    alloc.release("10.0.0.7")
    assert alloc.allocate_next() == "10.0.0.7"


def test_ip_allocator_dynamic_first_then_static():
    alloc = IPRangeAllocator("10.96.0.0/24", rng=random.Random(2))  # 254 usable, static band 16
    dynamic = [alloc.allocate_next() for _ in range(254 - 16)]
    assert all(int(ipaddress.ip_address(ip).packed[-1]) > 16 for ip in dynamic)
    static = [alloc.allocate_next() for _ in range(16)]
    assert sorted(int(ipaddress.ip_address(ip).packed[-1]) for ip in static) == list(range(1, 17))


def test_ip_allocator_requested_addresses():
    alloc = IPRangeAllocator("10.96.0.0/12")
    alloc.allocate("10.96.0.1")
    with pytest.raises(AlreadyAllocated):
        alloc.allocate("10.96.0.1")
    for bad in ("10.0.0.1", "10.96.0.0", "10.111.255.255", "fd00::1", "junk"):
        with pytest.raises(NotInRange):
            alloc.allocate(bad)
    assert alloc.has("10.96.0.1") and not alloc.has("10.96.0.2")


def test_port_allocator_parse_and_bands():
    ports = PortRangeAllocator.parse("30000-32767", rng=random.Random(3))
    assert str(ports) == "30000-32767" and ports.free == 2768
    assert PortRangeAllocator.parse("30000+10").last == 30010
    first = ports.allocate_next()
    assert 30086 <= first <= 32767
    ports.allocate(30000)
    with pytest.raises(AlreadyAllocated):
        ports.allocate(30000)
    with pytest.raises(NotInRange):
        ports.allocate(80)
    ports.release(30000)
    ports.allocate(30000)
