"""Router Advertisements and Solicitations for PPP subscribers (RFC 4861, RFC 5072 5, RFC 8106).

Packets the parsers must accept are built here by hand, octet by octet, and checksums are
recomputed with a separate sum, so the module under test is never its own oracle.
"""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpfast.ppp.constants import Protocol
from l2tpfast.ppp.frame import build_frame, parse_frame
from l2tpfast.ppp.ra import (
    ALL_NODES,
    ALL_ROUTERS,
    PrefixInformation,
    RouterAdvertisement,
    build_router_advertisement,
    icmpv6_checksum,
    link_local,
    parse_router_advertisement,
    parse_router_solicitation,
)

LNS_IDENTIFIER = bytes.fromhex("0200000000000001")
PEER_IDENTIFIER = bytes.fromhex("1c2d3e4f50617283")
LNS_LINK_LOCAL = IPv6Address("fe80::200:0:0:1")
PEER_LINK_LOCAL = IPv6Address("fe80::1c2d:3e4f:5061:7283")
PREFIX = IPv6Network("2001:db8:1234:5600::/64")
DNS = (IPv6Address("2001:db8::53"), IPv6Address("2001:db8::35"))


def reference_checksum(source: IPv6Address, destination: IPv6Address, message: bytes) -> int:
    """RFC 4443 2.3 checksum, summed differently from the module: octet by octet, modulo 0xffff."""
    data = source.packed + destination.packed + len(message).to_bytes(4, "big") + bytes(3) + bytes([58])
    data += message
    total = 0
    for index, octet in enumerate(data):
        total += octet << 8 if index % 2 == 0 else octet
    # Ones' complement addition is addition modulo 2**16 - 1 (with 0xffff standing for zero).
    total %= 0xFFFF
    return 0xFFFF - total if total else 0xFFFF


def ipv6_packet(
    source: IPv6Address,
    destination: IPv6Address,
    message: bytes,
    *,
    hop_limit: int = 255,
    next_header: int = 58,
    extension: bytes = b"",
    fix_checksum: bool = True,
) -> bytes:
    """An IPv6 packet around an ICMPv6 ``message`` whose checksum field is filled in (by hand)."""
    if fix_checksum:
        message = message[:2] + b"\x00\x00" + message[4:]
        checksum = reference_checksum(source, destination, message)
        message = message[:2] + checksum.to_bytes(2, "big") + message[4:]
    payload = extension + message
    return (
        bytes([0x60, 0, 0, 0])
        + len(payload).to_bytes(2, "big")
        + bytes([next_header, hop_limit])
        + source.packed
        + destination.packed
        + payload
    )


def router_solicitation(*, code: int = 0, options: bytes = b"") -> bytes:
    """ICMPv6 type 133 (RFC 4861 4.1): type, code, checksum, 4 reserved octets, options."""
    return bytes([133, code, 0, 0, 0, 0, 0, 0]) + options


def router_advertisement(*, code: int = 0, router_lifetime: int = 1800, options: bytes = b"") -> bytes:
    """ICMPv6 type 134 (RFC 4861 4.2) with hop limit 64, O set, reachable 1000, retrans 500."""
    return (
        bytes([134, code, 0, 0, 64, 0x40])
        + router_lifetime.to_bytes(2, "big")
        + (1000).to_bytes(4, "big")
        + (500).to_bytes(4, "big")
        + options
    )


def prefix_option(prefix: str, prefix_length: int = 64, flags: int = 0xC0, length: int = 4) -> bytes:
    body = bytes([prefix_length, flags]) + (7200).to_bytes(4, "big") + (3600).to_bytes(4, "big") + bytes(4)
    body += IPv6Address(prefix).packed
    return bytes([3, length]) + body[: length * 8 - 2].ljust(length * 8 - 2, b"\x00")


SLLA_OPTION = bytes([1, 1]) + bytes.fromhex("020000000001")


def built(**overrides: object) -> bytes:
    arguments: dict[str, object] = {"source_identifier": LNS_IDENTIFIER, "prefix": PREFIX}
    arguments.update(overrides)
    return build_router_advertisement(**arguments)  # type: ignore[arg-type]


# --- link_local and the checksum -----------------------------------------------------------------


def test_link_local_is_fe80_64_plus_the_identifier() -> None:
    assert link_local(LNS_IDENTIFIER) == LNS_LINK_LOCAL
    assert link_local(PEER_IDENTIFIER) == PEER_LINK_LOCAL
    assert link_local(PEER_IDENTIFIER).is_link_local


@pytest.mark.parametrize("identifier", [b"", bytes(7), bytes(9), bytes(16)])
def test_link_local_wants_eight_octets(identifier: bytes) -> None:
    with pytest.raises(ValueError, match="8 octets"):
        link_local(identifier)


@pytest.mark.parametrize("seed", range(20))
def test_checksum_matches_the_reference_sum(seed: int) -> None:
    rng = random.Random(seed)
    source = IPv6Address(rng.randbytes(16))
    destination = IPv6Address(rng.randbytes(16))
    message = rng.randbytes(rng.randrange(0, 300))  # odd lengths too: RFC 1071 pads with a zero
    assert icmpv6_checksum(source, destination, message) == reference_checksum(source, destination, message)


def test_checksum_over_a_message_with_its_checksum_is_zero() -> None:
    message = router_solicitation()
    checksum = icmpv6_checksum(PEER_LINK_LOCAL, ALL_ROUTERS, message)
    filled = message[:2] + checksum.to_bytes(2, "big") + message[4:]
    assert icmpv6_checksum(PEER_LINK_LOCAL, ALL_ROUTERS, filled) == 0


def test_checksum_of_a_known_router_solicitation() -> None:
    # Worked by hand: pseudo-header words fe80 + 1c2d + 3e4f + 5061 + 7283 (source), ff02 + 0002
    # (destination), 0008 (length), 003a (next header), message word 8500; folded and complemented.
    words = [0xFE80, 0x1C2D, 0x3E4F, 0x5061, 0x7283, 0xFF02, 0x0002, 0x0008, 0x003A, 0x8500]
    total = sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    assert icmpv6_checksum(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation()) == ~total & 0xFFFF


# --- build_router_advertisement: every field at its offset ---------------------------------------


def test_ipv6_header_fields() -> None:
    packet = built()
    assert packet[0] >> 4 == 6  # version
    assert packet[0:4] == b"\x60\x00\x00\x00"  # traffic class and flow label zero
    assert int.from_bytes(packet[4:6], "big") == len(packet) - 40  # payload length
    assert packet[6] == 58  # next header ICMPv6
    assert packet[7] == 255  # RFC 4861 6.1.2
    assert IPv6Address(packet[8:24]) == LNS_LINK_LOCAL
    assert IPv6Address(packet[24:40]) == ALL_NODES


def test_router_advertisement_header_fields() -> None:
    message = built(router_lifetime=600)[40:]
    assert message[0] == 134
    assert message[1] == 0
    assert message[4] == 64  # Cur Hop Limit
    assert message[5] == 0  # M=0 O=0, reserved zero
    assert int.from_bytes(message[6:8], "big") == 600
    assert message[8:12] == bytes(4)  # Reachable Time: unspecified
    assert message[12:16] == bytes(4)  # Retrans Timer: unspecified


@pytest.mark.parametrize(
    ("managed", "other", "flags"),
    [(False, False, 0x00), (True, False, 0x80), (False, True, 0x40), (True, True, 0xC0)],
)
def test_managed_and_other_flags(managed: bool, other: bool, flags: int) -> None:
    assert built(managed=managed, other=other)[40 + 5] == flags


def test_prefix_information_option() -> None:
    message = built(valid_lifetime=7200, preferred_lifetime=3600)[40:]
    option = message[16:48]
    assert len(message) == 16 + 32  # no MTU, no RDNSS unless asked
    assert option[0] == 3  # type
    assert option[1] == 4  # length in units of 8 octets
    assert option[2] == 64  # prefix length
    assert option[3] & 0x80  # L: on-link
    assert option[3] & 0x40  # A: autonomous address configuration
    assert option[3] & 0x3F == 0  # Reserved1
    assert int.from_bytes(option[4:8], "big") == 7200
    assert int.from_bytes(option[8:12], "big") == 3600
    assert option[12:16] == bytes(4)  # Reserved2
    assert IPv6Address(option[16:32]) == PREFIX.network_address


def test_prefix_default_lifetimes() -> None:
    option = built()[40 + 16 : 40 + 48]
    assert int.from_bytes(option[4:8], "big") == 86400
    assert int.from_bytes(option[8:12], "big") == 14400
    assert int.from_bytes(built()[40 + 6 : 40 + 8], "big") == 1800


def test_mtu_option() -> None:
    message = built(mtu=1460)[40:]
    option = message[48:56]
    assert len(message) == 56
    assert option[0] == 5
    assert option[1] == 1
    assert option[2:4] == b"\x00\x00"  # reserved
    assert int.from_bytes(option[4:8], "big") == 1460


def test_rdnss_option() -> None:
    message = built(dns=DNS, dns_lifetime=1200)[40:]
    option = message[48:]
    assert len(option) == 8 + 16 * len(DNS)
    assert option[0] == 25  # RFC 8106 5.1
    assert option[1] == 1 + 2 * len(DNS)
    assert option[2:4] == b"\x00\x00"
    assert int.from_bytes(option[4:8], "big") == 1200
    assert IPv6Address(option[8:24]) == DNS[0]
    assert IPv6Address(option[24:40]) == DNS[1]


def test_options_in_order_prefix_mtu_rdnss() -> None:
    message = built(mtu=1492, dns=DNS[:1])[40:]
    kinds = []
    offset = 16
    while offset < len(message):
        kinds.append(message[offset])
        offset += 8 * message[offset + 1]
    assert offset == len(message)
    assert kinds == [3, 5, 25]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"mtu": 1280, "dns": DNS},
        {"destination": PEER_LINK_LOCAL, "managed": True, "other": True},
        {"router_lifetime": 0, "valid_lifetime": 0, "preferred_lifetime": 0},
        {"valid_lifetime": 0xFFFFFFFF, "preferred_lifetime": 0xFFFFFFFF, "router_lifetime": 0xFFFF},
    ],
)
def test_checksum_is_right(overrides: dict[str, object]) -> None:
    packet = built(**overrides)
    source, destination, message = IPv6Address(packet[8:24]), IPv6Address(packet[24:40]), packet[40:]
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    assert int.from_bytes(message[2:4], "big") == reference_checksum(source, destination, zeroed)


def test_unicast_answer_goes_to_the_solicitor() -> None:
    packet = built(destination=PEER_LINK_LOCAL)
    assert IPv6Address(packet[24:40]) == PEER_LINK_LOCAL


def test_carried_as_ppp_protocol_0x0057() -> None:
    frame = build_frame(Protocol.IPV6, built())
    assert frame[:4] == b"\xff\x03\x00\x57"
    protocol, information = parse_frame(frame)
    assert protocol == 0x0057
    assert parse_router_advertisement(information) is not None


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"source_identifier": bytes(7)}, "8 octets"),
        ({"prefix": IPv6Network("2001:db8::/48")}, "/64"),
        ({"prefix": IPv6Network("2001:db8::/128")}, "/64"),
        ({"prefix": "2001:db8::/64"}, "/64"),
        ({"prefix": IPv6Network("fe80::/64")}, "link-local"),
        ({"preferred_lifetime": 90000}, "exceeds"),
        ({"router_lifetime": 0x10000}, "router_lifetime"),
        ({"router_lifetime": -1}, "router_lifetime"),
        ({"valid_lifetime": 1 << 32}, "valid_lifetime"),
        ({"mtu": 1279}, "minimum"),
        ({"mtu": 1 << 32}, "mtu"),
        ({"dns": [IPv6Address("2001:db8::1")] * 128}, "at most 127"),
        ({"dns": ["2001:db8::1"]}, "IPv6Address"),
        ({"dns": DNS, "dns_lifetime": -1}, "dns_lifetime"),
        ({"destination": "ff02::1"}, "IPv6Address"),
        ({"router_lifetime": True}, "router_lifetime"),
    ],
)
def test_builder_refuses_bad_arguments(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        built(**overrides)


def test_the_most_rdnss_addresses_fit() -> None:
    many = [IPv6Address(f"2001:db8::{n:x}") for n in range(1, 128)]
    advertisement = parse_router_advertisement(built(dns=many))
    assert advertisement is not None
    assert advertisement.dns == tuple(many)


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_defaults() -> None:
    assert parse_router_advertisement(built()) == RouterAdvertisement(
        source=LNS_LINK_LOCAL,
        router_lifetime=1800,
        prefixes=(PrefixInformation(PREFIX, 86400, 14400, True, True),),
        mtu=None,
        dns=(),
        cur_hop_limit=64,
        managed=False,
        other=False,
        reachable_time=0,
        retrans_timer=0,
    )


def test_round_trip_everything() -> None:
    packet = built(
        destination=PEER_LINK_LOCAL,
        router_lifetime=9000,
        valid_lifetime=0xFFFFFFFF,
        preferred_lifetime=604800,
        mtu=1452,
        dns=DNS,
        dns_lifetime=3600,
        managed=True,
        other=True,
    )
    advertisement = parse_router_advertisement(packet)
    assert advertisement is not None
    assert advertisement.source == LNS_LINK_LOCAL
    assert advertisement.router_lifetime == 9000
    assert advertisement.prefixes == ((PREFIX, 0xFFFFFFFF, 604800, True, True),)
    assert advertisement.mtu == 1452
    assert advertisement.dns == DNS
    assert advertisement.managed and advertisement.other


@settings(max_examples=200, deadline=None)
@given(
    identifier=st.binary(min_size=8, max_size=8),
    prefix_high=st.integers(min_value=0, max_value=(1 << 64) - 1),
    router_lifetime=st.integers(min_value=0, max_value=0xFFFF),
    lifetimes=st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    mtu=st.none() | st.integers(min_value=1280, max_value=0xFFFFFFFF),
    dns=st.lists(st.integers(0, (1 << 128) - 1).map(IPv6Address), max_size=5),
    flags=st.tuples(st.booleans(), st.booleans()),
)
def test_round_trip_property(
    identifier: bytes,
    prefix_high: int,
    router_lifetime: int,
    lifetimes: tuple[int, int],
    mtu: int | None,
    dns: list[IPv6Address],
    flags: tuple[bool, bool],
) -> None:
    prefix = IPv6Network((prefix_high << 64, 64))
    if prefix.network_address.is_link_local:
        return
    valid, preferred = max(lifetimes), min(lifetimes)
    packet = build_router_advertisement(
        source_identifier=identifier,
        prefix=prefix,
        router_lifetime=router_lifetime,
        valid_lifetime=valid,
        preferred_lifetime=preferred,
        mtu=mtu,
        dns=dns,
        dns_lifetime=60,
        managed=flags[0],
        other=flags[1],
    )
    zeroed = packet[40:42] + b"\x00\x00" + packet[44:]
    assert int.from_bytes(packet[42:44], "big") == reference_checksum(
        link_local(identifier), ALL_NODES, zeroed
    )
    advertisement = parse_router_advertisement(packet)
    assert advertisement is not None
    assert advertisement.source == link_local(identifier)
    assert advertisement.router_lifetime == router_lifetime
    assert advertisement.prefixes == (PrefixInformation(prefix, valid, preferred, True, True),)
    assert advertisement.mtu == mtu
    assert advertisement.dns == tuple(dns)
    assert (advertisement.managed, advertisement.other) == flags


# --- parse_router_solicitation -------------------------------------------------------------------


def test_valid_solicitation_gives_its_source() -> None:
    packet = ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation())
    assert parse_router_solicitation(packet) == PEER_LINK_LOCAL


def test_solicitation_with_source_link_layer_option() -> None:
    packet = ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(options=SLLA_OPTION))
    assert parse_router_solicitation(packet) == PEER_LINK_LOCAL


def test_solicitation_from_the_unspecified_address() -> None:
    packet = ipv6_packet(IPv6Address("::"), ALL_ROUTERS, router_solicitation())
    assert parse_router_solicitation(packet) == IPv6Address("::")


def test_solicitation_from_unspecified_with_link_layer_option_is_invalid() -> None:
    # RFC 4861 6.1.1: no source link-layer address option when the source is unspecified.
    packet = ipv6_packet(IPv6Address("::"), ALL_ROUTERS, router_solicitation(options=SLLA_OPTION))
    assert parse_router_solicitation(packet) is None


def test_solicitation_with_unknown_option_is_valid() -> None:
    packet = ipv6_packet(
        PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(options=bytes([200, 1]) + bytes(6))
    )
    assert parse_router_solicitation(packet) == PEER_LINK_LOCAL


def test_solicitation_with_link_padding_after_the_payload() -> None:
    packet = ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation()) + bytes(6)
    assert parse_router_solicitation(packet) == PEER_LINK_LOCAL


def test_solicitation_after_hop_by_hop_options() -> None:
    hop_by_hop = bytes([58, 0, 1, 4, 0, 0, 0, 0])  # next header 58, PadN over 6 octets
    packet = ipv6_packet(
        PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(), next_header=0, extension=hop_by_hop
    )
    assert parse_router_solicitation(packet) == PEER_LINK_LOCAL


def test_solicitation_in_a_fragment_is_refused() -> None:
    # RFC 6980 5: Neighbor Discovery messages are never fragmented, even as an atomic fragment.
    fragment = bytes([58, 0, 0, 0, 0, 0, 0, 1])
    packet = ipv6_packet(
        PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(), next_header=44, extension=fragment
    )
    assert parse_router_solicitation(packet) is None


def invalid_solicitations() -> list[tuple[str, bytes]]:
    good = ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation())
    flipped = bytearray(good)
    flipped[42] ^= 0x01
    short_icmp = ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation()[:6])
    return [
        ("hop limit 64", ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(), hop_limit=64)),
        ("hop limit 254", ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(), hop_limit=254)),
        ("bad checksum", bytes(flipped)),
        ("zero checksum", good[:42] + b"\x00\x00" + good[44:]),
        ("checksum for another destination", good[:24] + ALL_NODES.packed + good[40:]),
        ("code 1", ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(code=1))),
        ("ICMP length 6", short_icmp),
        ("truncated packet", good[:-1]),
        ("truncated IPv6 header", good[:39]),
        ("empty", b""),
        ("payload length too long", good[:4] + (len(good) - 39).to_bytes(2, "big") + good[6:]),
        ("IPv4 version", bytes([0x45]) + good[1:]),
        (
            "UDP, not ICMPv6",
            ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(), next_header=17),
        ),
        ("an advertisement", ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement())),
        (
            "an echo request",
            ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, bytes([128, 0, 0, 0, 0, 1, 0, 1])),
        ),
        (
            "option of length zero",
            ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(options=bytes([1, 0]) + bytes(6))),
        ),
        (
            "option past the end",
            ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(options=bytes([1, 2]) + bytes(6))),
        ),
        (
            "option header cut short",
            ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation(options=bytes([1]))),
        ),
    ]


@pytest.mark.parametrize(
    ("why", "packet"), invalid_solicitations(), ids=[w for w, _ in invalid_solicitations()]
)
def test_invalid_solicitations_are_refused(why: str, packet: bytes) -> None:
    assert parse_router_solicitation(packet) is None


def test_parsers_take_any_buffer() -> None:
    packet = ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, router_solicitation())
    assert parse_router_solicitation(bytearray(packet)) == PEER_LINK_LOCAL  # type: ignore[arg-type]
    assert parse_router_solicitation(memoryview(packet)) == PEER_LINK_LOCAL  # type: ignore[arg-type]
    assert parse_router_advertisement(memoryview(built())) is not None  # type: ignore[arg-type]


# --- parse_router_advertisement: validity and options ---------------------------------------------


def test_hand_built_advertisement() -> None:
    options = prefix_option("2001:db8:aa::") + bytes([5, 1, 0, 0]) + (1500).to_bytes(4, "big")
    packet = ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement(options=options))
    assert parse_router_advertisement(packet) == RouterAdvertisement(
        source=LNS_LINK_LOCAL,
        router_lifetime=1800,
        prefixes=(PrefixInformation(IPv6Network("2001:db8:aa::/64"), 7200, 3600, True, True),),
        mtu=1500,
        cur_hop_limit=64,
        other=True,
        reachable_time=1000,
        retrans_timer=500,
    )


def invalid_advertisements() -> list[tuple[str, bytes]]:
    good = ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement())
    flipped = bytearray(good)
    flipped[-1] ^= 0x80
    return [
        ("hop limit 64", ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement(), hop_limit=64)),
        ("global source", ipv6_packet(IPv6Address("2001:db8::1"), ALL_NODES, router_advertisement())),
        ("unspecified source", ipv6_packet(IPv6Address("::"), ALL_NODES, router_advertisement())),
        ("bad checksum", bytes(flipped)),
        ("code 1", ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement(code=1))),
        ("ICMP length 12", ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement()[:12])),
        ("truncated", good[:-4]),
        ("a solicitation", ipv6_packet(LNS_LINK_LOCAL, ALL_ROUTERS, router_solicitation() + bytes(8))),
        ("not ICMPv6", ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement(), next_header=59)),
        (
            "option of length zero",
            ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement(options=bytes([3, 0]) + bytes(30))),
        ),
        (
            "option past the end",
            ipv6_packet(
                LNS_LINK_LOCAL, ALL_NODES, router_advertisement(options=prefix_option("2001:db8::")[:24])
            ),
        ),
    ]


@pytest.mark.parametrize(
    ("why", "packet"), invalid_advertisements(), ids=[w for w, _ in invalid_advertisements()]
)
def test_invalid_advertisements_are_refused(why: str, packet: bytes) -> None:
    assert parse_router_advertisement(packet) is None


def parse_options(options: bytes) -> RouterAdvertisement:
    advertisement = parse_router_advertisement(
        ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, router_advertisement(options=options))
    )
    assert advertisement is not None
    return advertisement


def test_prefix_bits_after_the_length_are_ignored() -> None:
    # RFC 4861 4.6.2: the receiver ignores the bits after the prefix length.
    (information,) = parse_options(prefix_option("2001:db8:1:2:ffff::1")).prefixes
    assert information.prefix == IPv6Network("2001:db8:1:2::/64")


def test_prefix_flags_are_read() -> None:
    (information,) = parse_options(prefix_option("2001:db8::", flags=0x80)).prefixes
    assert (information.on_link, information.autonomous) == (True, False)
    (information,) = parse_options(prefix_option("2001:db8::", flags=0x40)).prefixes
    assert (information.on_link, information.autonomous) == (False, True)


@pytest.mark.parametrize(
    "option",
    [
        prefix_option("fe80::"),  # RFC 4861 6.3.4: the link-local prefix is ignored
        prefix_option("2001:db8::", prefix_length=129),
        prefix_option("2001:db8::", length=5),
        prefix_option("2001:db8::", length=3),
    ],
)
def test_unusable_prefix_options_are_skipped(option: bytes) -> None:
    advertisement = parse_options(option + prefix_option("2001:db8:9::"))
    assert [p.prefix for p in advertisement.prefixes] == [IPv6Network("2001:db8:9::/64")]


def test_several_prefixes_in_order() -> None:
    advertisement = parse_options(
        prefix_option("2001:db8:1::") + prefix_option("2001:db8:2::", prefix_length=56)
    )
    assert [p.prefix for p in advertisement.prefixes] == [
        IPv6Network("2001:db8:1::/64"),
        IPv6Network("2001:db8:2::/56"),
    ]


def test_mtu_below_1280_or_of_wrong_length_is_ignored() -> None:
    assert parse_options(bytes([5, 1, 0, 0]) + (1279).to_bytes(4, "big")).mtu is None
    assert parse_options(bytes([5, 2, 0, 0]) + (1500).to_bytes(4, "big") + bytes(8)).mtu is None
    assert parse_options(bytes([5, 1, 0, 0]) + (1280).to_bytes(4, "big")).mtu == 1280


def rdnss_option(addresses: list[str], *, lifetime: int = 600, length: int | None = None) -> bytes:
    body = bytes(2) + lifetime.to_bytes(4, "big") + b"".join(IPv6Address(a).packed for a in addresses)
    length = (2 + len(body)) // 8 if length is None else length
    return bytes([25, length]) + body.ljust(length * 8 - 2, b"\x00")[: length * 8 - 2]


def test_rdnss_options() -> None:
    advertisement = parse_options(
        rdnss_option(["2001:db8::1", "2001:db8::2"])
        + rdnss_option(["2001:db8::3"], lifetime=0)  # RFC 8106 5.1: no longer to be used
        + rdnss_option(["2001:db8::4"], length=4)  # RFC 8106 5.3.1: (Length - 1) % 2 != 0
        + rdnss_option([], length=1)  # below the minimum of 3
        + rdnss_option(["2001:db8::5"])
    )
    assert advertisement.dns == (
        IPv6Address("2001:db8::1"),
        IPv6Address("2001:db8::2"),
        IPv6Address("2001:db8::5"),
    )


def test_unknown_and_link_layer_options_are_ignored() -> None:
    advertisement = parse_options(SLLA_OPTION + bytes([254, 2]) + bytes(14) + prefix_option("2001:db8::"))
    assert [p.prefix for p in advertisement.prefixes] == [IPv6Network("2001:db8::/64")]


def test_router_lifetime_zero_is_still_an_advertisement() -> None:
    # RFC 4861 4.2: 0 says "not a default router"; the prefixes still count.
    packet = ipv6_packet(
        LNS_LINK_LOCAL,
        ALL_NODES,
        router_advertisement(router_lifetime=0, options=prefix_option("2001:db8::")),
    )
    advertisement = parse_router_advertisement(packet)
    assert advertisement is not None
    assert advertisement.router_lifetime == 0
    assert len(advertisement.prefixes) == 1


# --- never raise ---------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    source = parse_router_solicitation(data)
    assert source is None or source == IPv6Address(data[8:24])
    advertisement = parse_router_advertisement(data)
    assert advertisement is None or isinstance(advertisement, RouterAdvertisement)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=160))
def test_random_ipv6_icmpv6_bodies_never_raise(body: bytes) -> None:
    # Random ICMPv6 messages with a right checksum and hop limit, to get past the first checks.
    for kind in (133, 134):
        message = bytes([kind, 0]) + body
        parse_router_solicitation(ipv6_packet(PEER_LINK_LOCAL, ALL_ROUTERS, message))
        parse_router_advertisement(ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, message))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_advertisements_never_raise(data: st.DataObject) -> None:
    packet = bytearray(built(mtu=1500, dns=DNS))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(packet) - 1))
        packet[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(packet)))
    parse_router_advertisement(bytes(packet[:cut]))
    parse_router_solicitation(bytes(packet[:cut]))
    # With the checksum recomputed, mutations of the options reach the option parser.
    fixed = ipv6_packet(LNS_LINK_LOCAL, ALL_NODES, bytes(packet[40:]))
    parse_router_advertisement(fixed)
