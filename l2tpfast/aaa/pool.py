"""IPv4 address pools for subscriber sessions (the address IPCP hands out, RFC 1332 3.3).

A pool is one or more ranges (``"10.100.0.0/16"`` or ``"10.100.0.10-10.100.0.200"``); network
and broadcast addresses of a prefix and any excluded address (the LNS's own) are never given
out. Addresses are handed out lazily, so a /8 costs nothing until it is used, and a released
address goes to the back of the queue: it is not reused while others are free, which keeps a
reconnecting subscriber's old packets from reaching a new one.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable
from ipaddress import IPv4Address

from l2tpfast.errors import ConfigError


def _range(spec: str, key: str) -> tuple[int, int]:
    try:
        if "-" in spec:
            first, last = (IPv4Address(part.strip()) for part in spec.split("-", 1))
            if int(last) < int(first):
                raise ValueError("the range ends before it starts")
            return int(first), int(last)
        net = ipaddress.IPv4Network(spec.strip(), strict=False)
    except ValueError as exc:
        raise ConfigError(
            key,
            f"{spec!r} is not an IPv4 prefix or range ({exc}); write 10.100.0.0/16 or 10.1.0.2-10.1.0.200",
        ) from exc
    if net.prefixlen >= 31:
        return int(net.network_address), int(net.broadcast_address)
    return int(net.network_address) + 1, int(net.broadcast_address) - 1


class AddressPool:
    """Lazy IPv4 allocator over ranges; ``owner`` keys are whatever the caller uses for sessions."""

    def __init__(
        self, ranges: Iterable[str], *, exclude: Iterable[IPv4Address] = (), key: str = "pool"
    ) -> None:
        self.ranges = [_range(spec, key) for spec in ranges]
        if not self.ranges:
            raise ConfigError(key, "the pool is empty; give at least one prefix such as 10.100.0.0/16")
        self._exclude = {int(a) for a in exclude}
        self.size = sum(last - first + 1 for first, last in self.ranges) - sum(
            1 for a in self._exclude if self.contains(IPv4Address(a))
        )
        self._cursor = 0  # index into the ranges
        self._next = self.ranges[0][0]
        self._released: deque[int] = deque()
        self._used: dict[int, object] = {}

    def contains(self, address: IPv4Address) -> bool:
        value = int(address)
        return any(first <= value <= last for first, last in self.ranges)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def owner_of(self, address: IPv4Address) -> object | None:
        return self._used.get(int(address))

    def allocate(self, owner: object) -> IPv4Address | None:
        """A free address, or None when the pool is exhausted."""
        while self._cursor < len(self.ranges):
            last = self.ranges[self._cursor][1]
            while self._next <= last:
                value = self._next
                self._next += 1
                if value not in self._exclude and value not in self._used:
                    self._used[value] = owner
                    return IPv4Address(value)
            self._cursor += 1
            if self._cursor < len(self.ranges):
                self._next = self.ranges[self._cursor][0]
        for _ in range(len(self._released)):
            value = self._released.popleft()
            if value not in self._used:
                self._used[value] = owner
                return IPv4Address(value)
        return None

    def reserve(self, address: IPv4Address, owner: object) -> bool:
        """Take a given address (a users-file or RADIUS Framed-IP-Address); False if taken."""
        value = int(address)
        if value in self._used or value in self._exclude:
            return False
        self._used[value] = owner
        return True

    def release(self, address: IPv4Address) -> None:
        value = int(address)
        if self._used.pop(value, None) is not None and self.contains(address):
            self._released.append(value)


class PrefixPool:
    """IPv6 /64s out of a shorter prefix, one per subscriber (RFC 4861 prefix, SLAAC RFC 4862).

    The first /64 (index 0) is kept for the operator's own use; released prefixes are reused
    only after the never-used ones, as for IPv4.
    """

    def __init__(self, network: ipaddress.IPv6Network) -> None:
        if network.prefixlen > 64:
            raise ConfigError(
                "lns.ipv6_pool", f"/{network.prefixlen} is longer than /64", "give a /64 or shorter"
            )
        self.network = network
        self.size = (1 << (64 - network.prefixlen)) - 1
        self._base = int(network.network_address) >> 64
        self._next = 1
        self._released: deque[int] = deque()
        self._used: dict[int, object] = {}

    @property
    def in_use(self) -> int:
        return len(self._used)

    def _prefix(self, index: int) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(((self._base + index) << 64, 64))

    def allocate(self, owner: object) -> ipaddress.IPv6Network | None:
        if self._next <= self.size:
            index = self._next
            self._next += 1
        elif self._released:
            index = self._released.popleft()
        else:
            return None
        self._used[index] = owner
        return self._prefix(index)

    def release(self, prefix: ipaddress.IPv6Network) -> None:
        index = (int(prefix.network_address) >> 64) - self._base
        if self._used.pop(index, None) is not None:
            self._released.append(index)
