"""Router Advertisements for PPP subscribers: ICMPv6 Neighbor Discovery, sans-IO.

Once IPV6CP has agreed the interface identifiers (RFC 5072 4.1), each end of the link owns the
link-local address fe80::/64 + its identifier (RFC 5072 5). The LNS then hands the subscriber one
/64 for stateless autoconfiguration (RFC 4862 5.5.3) by sending it Router Advertisements inside
the PPP session, as IPv6 packets (PPP protocol 0x0057, RFC 5072 3), and answers its Router
Solicitations. Implemented here, as pure functions of bytes:

- RFC 4861 4.1 Router Solicitation and 6.1.1 its validity checks (``parse_router_solicitation``);
- RFC 4861 4.2 Router Advertisement with the 4.6.2 Prefix Information and 4.6.4 MTU options, and
  the RFC 8106 5.1 Recursive DNS Server option (``build_router_advertisement``);
- RFC 4861 6.1.2 validity checks and the 6.3.4 / RFC 4862 5.5.3 option rules for a client
  (``parse_router_advertisement``);
- the ICMPv6 checksum over the IPv6 pseudo-header (RFC 4443 2.3, RFC 8200 8.1).

What lives outside: timing. RFC 4861 6.2.4 (the first MAX_INITIAL_RTR_ADVERTISEMENTS
advertisements at most MAX_INITIAL_RTR_ADVERT_INTERVAL apart) and 6.2.6 (answer a solicitation
after a random delay of up to MAX_RA_DELAY_TIME, and multicast advertisements no closer than
MIN_DELAY_BETWEEN_RAS) are the caller's, which owns the clock; the constants are here. A PPP link
has no link-layer addresses, so no Source Link-Layer Address option is sent (RFC 4861 4.2: it
"MAY be omitted").

The builder raises ValueError for arguments that cannot form a valid advertisement (local
misuse); the parsers never raise on any bytes and return None for what is not valid.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import NamedTuple

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "MAX_INITIAL_RTR_ADVERTISEMENTS",
    "MAX_INITIAL_RTR_ADVERT_INTERVAL",
    "MAX_RA_DELAY_TIME",
    "MIN_DELAY_BETWEEN_RAS",
    "PrefixInformation",
    "RouterAdvertisement",
    "build_router_advertisement",
    "icmpv6_checksum",
    "link_local",
    "parse_router_advertisement",
    "parse_router_solicitation",
]

#: RFC 4291 2.7.1: all-nodes, the destination of unsolicited advertisements (RFC 4861 6.2.4).
ALL_NODES = IPv6Address("ff02::1")
#: RFC 4291 2.7.1: all-routers, where hosts send their solicitations (RFC 4861 6.3.7).
ALL_ROUTERS = IPv6Address("ff02::2")

# RFC 4861 10, router constants (seconds and counts) for the caller's timers.
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MIN_DELAY_BETWEEN_RAS = 3.0
MAX_RA_DELAY_TIME = 0.5

_LINK_LOCAL = IPv6Network("fe80::/64")
_UNSPECIFIED = IPv6Address("::")

_IPV6_HEADER = struct.Struct("!IHBB16s16s")  # version/class/flow, payload length, next header, hop limit
_IPPROTO_HOPOPTS = 0
_IPPROTO_ICMPV6 = 58
_IPPROTO_DSTOPTS = 60

#: RFC 4861 6.1.1, 6.1.2: a hop limit of 255 proves the packet was not forwarded by a router.
_ND_HOP_LIMIT = 255

_ICMPV6_ROUTER_SOLICITATION = 133
_ICMPV6_ROUTER_ADVERTISEMENT = 134

# RFC 4861 4.6, RFC 8106 5.1: option types.
_OPTION_SOURCE_LINK_LAYER_ADDRESS = 1
_OPTION_PREFIX_INFORMATION = 3
_OPTION_MTU = 5
_OPTION_RDNSS = 25

# RFC 4861 4.2: the M and O bits of the advertisement's flags octet.
_FLAG_MANAGED = 0x80
_FLAG_OTHER = 0x40
# RFC 4861 4.6.2: the L and A bits of the Prefix Information flags octet.
_FLAG_ON_LINK = 0x80
_FLAG_AUTONOMOUS = 0x40

#: RFC 4861 6.2.1 AdvCurHopLimit: "SHOULD be set to the value specified in IANA
#: Assigned Numbers", which is 64.
_CUR_HOP_LIMIT = 64
#: RFC 8200 5: every IPv6 link carries at least 1280 octets.
_MINIMUM_MTU = 1280
#: RFC 8106 5.1: the option Length is one octet in units of 8: 1 + 2 per address.
_MAX_RDNSS_ADDRESSES = (255 - 1) // 2
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF


class PrefixInformation(NamedTuple):
    """One Prefix Information option (RFC 4861 4.6.2); lifetimes in seconds, 0xffffffff infinite."""

    prefix: IPv6Network
    valid_lifetime: int
    preferred_lifetime: int
    on_link: bool
    autonomous: bool


@dataclass(frozen=True)
class RouterAdvertisement:
    """A valid Router Advertisement (RFC 4861 4.2) as a client sees it."""

    source: IPv6Address
    router_lifetime: int
    prefixes: tuple[PrefixInformation, ...] = ()
    #: RFC 4861 4.6.4; None when absent or below the IPv6 minimum of 1280.
    mtu: int | None = None
    #: RFC 8106 5.1 recursive DNS servers, in option order, from options with a non-zero lifetime.
    dns: tuple[IPv6Address, ...] = ()
    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    reachable_time: int = 0
    retrans_timer: int = 0


def link_local(identifier: bytes) -> IPv6Address:
    """The link-local address of a PPP end: fe80::/64 + its 8-octet identifier (RFC 5072 5)."""
    if len(identifier) != 8:
        raise ValueError(f"an IPV6CP interface identifier is 8 octets, not {len(identifier)}")
    return IPv6Address(_LINK_LOCAL.network_address.packed[:8] + bytes(identifier))


def icmpv6_checksum(source: IPv6Address, destination: IPv6Address, payload: bytes) -> int:
    """The ICMPv6 checksum of ``payload`` between two addresses (RFC 4443 2.3, RFC 8200 8.1).

    With the checksum field of ``payload`` zero this is the value to put there; over a received
    message, checksum field included, it is 0 exactly when the checksum is right.
    """
    # RFC 8200 8.1: the pseudo-header is source, destination, 32-bit upper-layer length, three
    # zero octets and the Next Header value of the upper layer (58 for ICMPv6, RFC 4443 2.3).
    pseudo_header = source.packed + destination.packed + struct.pack("!I3xB", len(payload), _IPPROTO_ICMPV6)
    data = pseudo_header + bytes(payload)
    if len(data) % 2:
        data += b"\x00"  # RFC 1071: an odd octet is summed as if padded with a zero octet
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & _U16) + (total >> 16)  # ones' complement: fold the carries back in
    return ~total & _U16


def build_router_advertisement(
    *,
    source_identifier: bytes,
    prefix: IPv6Network,
    destination: IPv6Address = ALL_NODES,
    router_lifetime: int = 1800,
    valid_lifetime: int = 86400,
    preferred_lifetime: int = 14400,
    mtu: int | None = None,
    dns: Sequence[IPv6Address] = (),
    dns_lifetime: int = 1800,
    managed: bool = False,
    other: bool = False,
) -> bytes:
    """A whole IPv6 packet carrying a Router Advertisement (RFC 4861 4.2) for one /64.

    ``source_identifier`` is our IPV6CP interface identifier; the packet comes from its link-local
    address, as RFC 4861 6.1.2 requires of every advertisement. ``destination`` is all-nodes for
    unsolicited advertisements, or the soliciting host's address (RFC 4861 6.2.6).
    """
    source = link_local(source_identifier)
    if not isinstance(prefix, IPv6Network) or prefix.prefixlen != 64:
        # RFC 4862 5.5.3 d: autoconfiguration needs prefix length + identifier length = 128, and
        # the PPP identifier is 64 bits (RFC 5072 4.1).
        raise ValueError(f"the advertised prefix must be an IPv6 /64, not {prefix}")
    if prefix.network_address.is_link_local:
        # RFC 4861 6.3.4, RFC 4862 5.5.3 b: hosts ignore a link-local prefix.
        raise ValueError(f"cannot advertise the link-local prefix {prefix}")
    if not isinstance(destination, IPv6Address):
        raise ValueError(f"destination must be an IPv6Address, not {destination!r}")
    # RFC 4861 4.2: Router Lifetime is 16 bits; RFC 8319 lifts the 9000 s cap to the field's range.
    _check_range("router_lifetime", router_lifetime, _U16)
    _check_range("valid_lifetime", valid_lifetime, _U32)
    _check_range("preferred_lifetime", preferred_lifetime, _U32)
    if preferred_lifetime > valid_lifetime:
        # RFC 4862 5.5.3 c: "If the preferred lifetime is greater than the valid lifetime,
        # silently ignore the Prefix Information option."
        raise ValueError(f"preferred_lifetime {preferred_lifetime} exceeds valid_lifetime {valid_lifetime}")

    flags = (_FLAG_MANAGED if managed else 0) | (_FLAG_OTHER if other else 0)
    # RFC 4861 4.2: Reachable Time and Retrans Timer 0 mean "unspecified by this router".
    message = struct.pack(
        "!BBHBBHII", _ICMPV6_ROUTER_ADVERTISEMENT, 0, 0, _CUR_HOP_LIMIT, flags, router_lifetime, 0, 0
    )
    # RFC 4861 4.6.2: L=1, the prefix is on-link; A=1, hosts autoconfigure from it (RFC 4862 5.5.3).
    message += struct.pack(
        "!BBBBIII16s",
        _OPTION_PREFIX_INFORMATION,
        4,
        prefix.prefixlen,
        _FLAG_ON_LINK | _FLAG_AUTONOMOUS,
        valid_lifetime,
        preferred_lifetime,
        0,  # Reserved2
        prefix.network_address.packed,
    )
    if mtu is not None:
        _check_range("mtu", mtu, _U32)
        if mtu < _MINIMUM_MTU:
            # RFC 4861 6.3.4: hosts ignore an MTU below the IPv6 minimum (RFC 8200 5).
            raise ValueError(f"mtu {mtu} is below the IPv6 minimum of {_MINIMUM_MTU}")
        message += struct.pack("!BBHI", _OPTION_MTU, 1, 0, mtu)
    if dns:
        if len(dns) > _MAX_RDNSS_ADDRESSES:
            raise ValueError(
                f"one RDNSS option holds at most {_MAX_RDNSS_ADDRESSES} addresses, not {len(dns)}"
            )
        for server in dns:
            if not isinstance(server, IPv6Address):
                raise ValueError(f"a DNS server must be an IPv6Address, not {server!r}")
        _check_range("dns_lifetime", dns_lifetime, _U32)
        message += struct.pack("!BBHI", _OPTION_RDNSS, 1 + 2 * len(dns), 0, dns_lifetime)
        message += b"".join(server.packed for server in dns)

    checksum = icmpv6_checksum(source, destination, message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    # RFC 4861 6.1.2: a receiver discards an advertisement whose hop limit is not 255.
    header = _IPV6_HEADER.pack(
        6 << 28, len(message), _IPPROTO_ICMPV6, _ND_HOP_LIMIT, source.packed, destination.packed
    )
    return header + message


def parse_router_solicitation(packet: bytes) -> IPv6Address | None:
    """The source of a valid Router Solicitation (RFC 4861 4.1, 6.1.1) in ``packet``, else None.

    The source may be the unspecified address ::, from a host without an address yet; RFC 4861
    6.2.6 then has the router answer to all-nodes.
    """
    parsed = _parse_icmpv6(packet)
    if parsed is None:
        return None
    source, _destination, message = parsed
    # RFC 4861 6.1.1: ICMP Code 0, ICMP length 8 or more octets (type, code, checksum, reserved).
    if len(message) < 8 or message[0] != _ICMPV6_ROUTER_SOLICITATION or message[1] != 0:
        return None
    options = _parse_options(message[8:])
    if options is None:
        return None
    if source == _UNSPECIFIED and any(kind == _OPTION_SOURCE_LINK_LAYER_ADDRESS for kind, _ in options):
        # RFC 4861 6.1.1: "If the IP source address is the unspecified address, there is no
        # source link-layer address option in the message."
        return None
    return source


def parse_router_advertisement(packet: bytes) -> RouterAdvertisement | None:
    """A valid Router Advertisement (RFC 4861 4.2, 6.1.2) in ``packet``, else None.

    Malformed or meaningless options are skipped as RFC 4861 6.3.4, RFC 4862 5.5.3 and RFC 8106
    5.3.1 say; the advertisement around them stays valid.
    """
    parsed = _parse_icmpv6(packet)
    if parsed is None:
        return None
    source, _destination, message = parsed
    # RFC 4861 6.1.2: "IP Source Address is a link-local address. Routers must use their
    # link-local address as the source for Router Advertisement messages so that hosts can
    # uniquely identify routers."
    if not source.is_link_local:
        return None
    # RFC 4861 6.1.2: ICMP Code 0, ICMP length 16 or more octets.
    if len(message) < 16 or message[0] != _ICMPV6_ROUTER_ADVERTISEMENT or message[1] != 0:
        return None
    cur_hop_limit, flags, router_lifetime, reachable_time, retrans_timer = struct.unpack_from(
        "!BBHII", message, 4
    )
    options = _parse_options(message[16:])
    if options is None:
        return None

    prefixes: list[PrefixInformation] = []
    mtu: int | None = None
    dns: list[IPv6Address] = []
    for kind, body in options:
        if kind == _OPTION_PREFIX_INFORMATION:
            information = _parse_prefix_information(body)
            if information is not None:
                prefixes.append(information)
        elif kind == _OPTION_MTU:
            # RFC 4861 4.6.4: Length 1; 6.3.4: use it only when >= the IPv6 minimum. The first
            # usable one wins: a router sends at most one.
            if len(body) == 6 and mtu is None:
                (value,) = struct.unpack_from("!I", body, 2)
                if value >= _MINIMUM_MTU:
                    mtu = value
        elif kind == _OPTION_RDNSS:
            # RFC 8106 5.3.1: valid when Length >= 3 and (Length - 1) % 2 == 0; body is 8 * Length - 2.
            length = (len(body) + 2) // 8
            if length < 3 or (length - 1) % 2:
                continue
            (lifetime,) = struct.unpack_from("!I", body, 2)
            if lifetime == 0:
                continue  # RFC 8106 5.1: zero means the addresses "MUST no longer be used"
            dns.extend(IPv6Address(body[offset : offset + 16]) for offset in range(6, len(body), 16))
        # RFC 4861 4.6: "Receivers MUST silently ignore any options they do not recognize".
    return RouterAdvertisement(
        source=source,
        router_lifetime=router_lifetime,
        prefixes=tuple(prefixes),
        mtu=mtu,
        dns=tuple(dns),
        cur_hop_limit=cur_hop_limit,
        managed=bool(flags & _FLAG_MANAGED),
        other=bool(flags & _FLAG_OTHER),
        reachable_time=reachable_time,
        retrans_timer=retrans_timer,
    )


def _parse_prefix_information(body: bytes) -> PrefixInformation | None:
    """One Prefix Information option without its type and length octets, or None to skip it."""
    if len(body) != 30:  # RFC 4861 4.6.2: Length 4, 32 octets in all
        return None
    prefix_length, flags, valid_lifetime, preferred_lifetime = struct.unpack_from("!BBII", body, 0)
    if prefix_length > 128:
        return None
    # RFC 4861 4.6.2: bits after the prefix length "MUST be ... ignored by the receiver".
    prefix = IPv6Network((int.from_bytes(body[14:30], "big"), prefix_length), strict=False)
    if prefix.network_address.is_link_local:
        # RFC 4861 6.3.4, RFC 4862 5.5.3 b: "If the prefix is the link-local prefix, silently
        # ignore the Prefix Information option."
        return None
    return PrefixInformation(
        prefix=prefix,
        valid_lifetime=valid_lifetime,
        preferred_lifetime=preferred_lifetime,
        on_link=bool(flags & _FLAG_ON_LINK),
        autonomous=bool(flags & _FLAG_AUTONOMOUS),
    )


def _parse_icmpv6(packet: bytes) -> tuple[IPv6Address, IPv6Address, bytes] | None:
    """(source, destination, ICMPv6 message) of an IPv6 packet fit for Neighbor Discovery, or None.

    Checks what RFC 4861 6.1.1 and 6.1.2 share: hop limit 255 and a right ICMPv6 checksum.
    """
    packet = bytes(packet)
    if len(packet) < _IPV6_HEADER.size or packet[0] >> 4 != 6:
        return None
    _first_word, payload_length, next_header, hop_limit, source_octets, destination_octets = (
        _IPV6_HEADER.unpack_from(packet, 0)
    )
    if hop_limit != _ND_HOP_LIMIT:
        return None
    end = _IPV6_HEADER.size + payload_length
    if end > len(packet):
        return None  # truncated; octets beyond the payload length are link padding and ignored
    payload = packet[_IPV6_HEADER.size : end]
    # RFC 8200 4.1: Hop-by-Hop Options may only come first; Destination Options carry nothing
    # Neighbor Discovery needs. Anything else is refused: RFC 6980 5 forbids fragmenting its
    # messages, and a Routing header would change the pseudo-header's destination (RFC 8200 8.1).
    first = True
    while next_header == _IPPROTO_DSTOPTS or (next_header == _IPPROTO_HOPOPTS and first):
        if len(payload) < 8:
            return None
        extension_length = (payload[1] + 1) * 8  # RFC 8200 4.3: in 8-octet units, not counting the first 8
        if extension_length > len(payload):
            return None
        next_header = payload[0]
        payload = payload[extension_length:]
        first = False
    if next_header != _IPPROTO_ICMPV6:
        return None
    source = IPv6Address(source_octets)
    destination = IPv6Address(destination_octets)
    if len(payload) < 4 or icmpv6_checksum(source, destination, payload) != 0:
        return None
    return source, destination, payload


def _parse_options(data: bytes) -> list[tuple[int, bytes]] | None:
    """(type, body) of each Neighbor Discovery option (RFC 4861 4.6); None: drop the message."""
    options: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            return None
        kind, length = data[offset], data[offset + 1]
        # RFC 4861 4.6: a packet with an option of length zero MUST be silently discarded; one
        # whose option runs past the message is as malformed.
        if length == 0 or offset + 8 * length > len(data):
            return None
        options.append((kind, data[offset + 2 : offset + 8 * length]))
        offset += 8 * length
    return options


def _check_range(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{name} must be an integer from 0 to {maximum}, not {value!r}")
