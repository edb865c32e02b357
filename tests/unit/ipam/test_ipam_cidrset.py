import pytest

from knet.ipam.cidrset import CIDRRangeNoCIDRsRemainingError, CidrSet


def test_sequential_allocation_like_the_range_allocator():
    s = CidrSet("10.244.0.0/16", 24)
    assert [str(s.allocate_next()) for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert s.max_cidrs == 256 and s.allocated == 3


def test_occupy_after_restart_skips_used_subnets():
    s = CidrSet("10.244.0.0/16", 24)
    s.occupy("10.244.0.0/24")
    s.occupy("10.244.1.0/24")
    assert str(s.allocate_next()) == "10.244.2.0/24"


def test_release_then_wraps_around_to_the_freed_subnet():
    s = CidrSet("10.0.0.0/30", 31)  # two subnets
    a, b = s.allocate_next(), s.allocate_next()
    with pytest.raises(CIDRRangeNoCIDRsRemainingError):
        s.allocate_next()
    s.release(a)
    assert s.allocate_next() == a and b != a


@pytest.mark.parametrize(("cidr", "ok"), [
    pytest.param("10.244.3.0/24", True, id="inside"),
    pytest.param("10.245.0.0/24", False, id="outside"),
    pytest.param("10.244.0.0/25", False, id="wrong-size"),
    pytest.param("fd00::/64", False, id="other-family"),
])
def test_contains(cidr, ok):
    assert CidrSet("10.244.0.0/16", 24).contains(cidr) is ok


def test_ipv6_and_bad_masks():
    s = CidrSet("fd00:10:244::/56", 64)
    assert str(s.allocate_next()) == "fd00:10:244::/64"
    with pytest.raises(ValueError):
        CidrSet("10.244.0.0/16", 8)
    with pytest.raises(ValueError):
        CidrSet("10.0.0.0/8", 32)
