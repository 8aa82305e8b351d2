"""The IPv4 address pool (``l2tpfast.aaa.pool``): ranges, exclusions, reuse order, errors."""

from __future__ import annotations

from ipaddress import IPv4Address as A

import pytest

from l2tpfast.aaa.pool import AddressPool
from l2tpfast.errors import ConfigError


def test_prefix_skips_network_broadcast_and_excluded() -> None:
    pool = AddressPool(["10.0.0.0/29"], exclude=[A("10.0.0.1")])
    assert pool.size == 5
    got = [pool.allocate(i) for i in range(6)]
    assert got == [A("10.0.0.2"), A("10.0.0.3"), A("10.0.0.4"), A("10.0.0.5"), A("10.0.0.6"), None]
    assert pool.in_use == 5 and pool.owner_of(A("10.0.0.4")) == 2


def test_ranges_in_order_and_released_addresses_come_last() -> None:
    pool = AddressPool(["10.1.0.10-10.1.0.11", "10.2.0.0/30"])
    first = pool.allocate("a")
    pool.release(first)  # type: ignore[arg-type]
    order = [pool.allocate(i) for i in range(4)]
    # A released address is reused only after the never-used ones (a reconnect gets a new one).
    assert order == [A("10.1.0.11"), A("10.2.0.1"), A("10.2.0.2"), A("10.1.0.10")]


def test_reserve_and_double_release() -> None:
    pool = AddressPool(["10.0.0.0/24"])
    assert pool.reserve(A("10.0.0.50"), "x") and not pool.reserve(A("10.0.0.50"), "y")
    pool.release(A("10.0.0.50"))
    pool.release(A("10.0.0.50"))
    assert pool.in_use == 0 and pool.reserve(A("10.0.0.50"), "y")


def test_a_slash_8_costs_nothing_until_used() -> None:
    pool = AddressPool(["10.0.0.0/8"])
    assert pool.size == (1 << 24) - 2
    assert pool.allocate(1) == A("10.0.0.1")


@pytest.mark.parametrize("spec", ["10.0.0.0/33", "10.0.0.9-10.0.0.1", "nope", "10.0.0.1-x"])
def test_bad_ranges_name_the_key(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        AddressPool([spec], key="lns.pool")
    assert err.value.key == "lns.pool" and "10.100.0.0/16" in str(err.value)


def test_empty_pool_is_an_error() -> None:
    with pytest.raises(ConfigError):
        AddressPool([])


def test_ipv6_prefix_pool_hands_out_64s() -> None:
    from ipaddress import IPv6Network as N

    from l2tpfast.aaa.pool import PrefixPool

    pool = PrefixPool(N("2001:db8:100::/62"))
    assert pool.size == 3  # the first /64 stays the operator's
    got = [pool.allocate(i) for i in range(4)]
    assert got == [N("2001:db8:100:1::/64"), N("2001:db8:100:2::/64"), N("2001:db8:100:3::/64"), None]
    pool.release(N("2001:db8:100:2::/64"))
    assert pool.in_use == 2 and pool.allocate("x") == N("2001:db8:100:2::/64")
    with pytest.raises(ConfigError):
        PrefixPool(N("2001:db8::/80"))
