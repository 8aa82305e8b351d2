"""RFC 2661 3.1 header rules, in the pure-Python codec."""

from __future__ import annotations

import struct

import pytest

from l2tpfast.errors import HeaderError, LocalProtocolError
from l2tpfast.wire.constants import FLAG_L, FLAG_O, FLAG_P, FLAG_S, FLAG_T, ParseStatus
from l2tpfast.wire.header import Header, build_control_header, build_data_header, build_header, parse_header


def test_control_header_fields() -> None:
    data = build_control_header(0x1234, 0x5678, 9, 10, 8) + b"\x80\x08\x00\x00\x00\x00\x00\x06"
    header, offset = parse_header(data)
    assert offset == 12
    assert header == Header(True, 0x1234, 0x5678, length=20, ns=9, nr=10)
    assert header.flags == FLAG_T | FLAG_L | FLAG_S | 2


@pytest.mark.parametrize("length", [False, True])
@pytest.mark.parametrize("ns", [None, 0xFFFF])
@pytest.mark.parametrize("offset_size", [None, 0, 3])
@pytest.mark.parametrize("priority", [False, True])
def test_data_header_every_flag_combination(
    length: bool, ns: int | None, offset_size: int | None, priority: bool
) -> None:
    payload = b"\xff\x03\x00\x21" + bytes(20)
    head = build_data_header(
        7, 8, ns=ns, length=length, offset_size=offset_size, priority=priority, payload_length=len(payload)
    )
    data = head + payload
    header, offset = parse_header(data)
    assert data[offset:] == payload
    assert header.is_control is False
    assert (header.tunnel_id, header.session_id) == (7, 8)
    assert header.length == (len(data) if length else None)
    assert header.ns == ns
    assert header.nr == (0 if ns is not None else None)  # Nr is reserved in data: sent as 0
    assert header.offset_size == offset_size
    assert header.priority is priority
    assert build_header(header, len(payload)) + payload == data


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", ParseStatus.TRUNCATED),
        (b"\x00\x02\x00\x01\x00", ParseStatus.TRUNCATED),
        (struct.pack("!HHH", 0x0001, 1, 1), ParseStatus.L2F),
        (struct.pack("!HHH", 0x0003, 1, 1), ParseStatus.BAD_VERSION),
        (struct.pack("!HHH", 0x000F, 1, 1), ParseStatus.BAD_VERSION),
        # control without L, without S, with O
        (struct.pack("!HHHHH", FLAG_T | FLAG_S | 2, 1, 1, 0, 0), ParseStatus.BAD_CONTROL_FLAGS),
        (struct.pack("!HHHH", FLAG_T | FLAG_L | 2, 8, 1, 1), ParseStatus.BAD_CONTROL_FLAGS),
        (
            struct.pack("!HHHHHHH", FLAG_T | FLAG_L | FLAG_S | FLAG_O | 2, 14, 1, 1, 0, 0, 0),
            ParseStatus.BAD_CONTROL_FLAGS,
        ),
        # S=1 but the datagram ends before Nr
        (struct.pack("!HHHH", FLAG_S | 2, 1, 1, 0), ParseStatus.TRUNCATED),
        # Length says 13, datagram has 12 (and the reverse)
        (struct.pack("!HHHHHH", FLAG_T | FLAG_L | FLAG_S | 2, 13, 1, 1, 0, 0), ParseStatus.BAD_LENGTH),
        (struct.pack("!HHHHHH", FLAG_T | FLAG_L | FLAG_S | 2, 11, 1, 1, 0, 0), ParseStatus.BAD_LENGTH),
        # Offset Size 5 with 4 octets after it
        (struct.pack("!HHHH", FLAG_O | 2, 1, 1, 5) + b"abcd", ParseStatus.BAD_OFFSET),
    ],
)
def test_malformed_headers_are_typed(data: bytes, status: ParseStatus) -> None:
    with pytest.raises(HeaderError) as info:
        parse_header(data)
    assert info.value.status == status


def test_reserved_bits_ignored_on_receipt_and_kept_for_reencoding() -> None:
    data = bytearray(build_control_header(1, 0, 0, 0, 0))
    data[0] |= 0x30  # two reserved bits of the first octet
    data[1] |= 0xF0  # four reserved bits before Ver
    header, _ = parse_header(bytes(data))
    assert header.is_control and header.ver == 2
    assert header.reserved == 0x30F0
    assert build_header(header, 0) == bytes(data)


def test_priority_on_control_ignored_on_receipt_but_never_sent() -> None:
    data = bytearray(build_control_header(1, 0, 0, 0, 0))
    data[0] |= FLAG_P >> 8
    header, _ = parse_header(bytes(data))
    assert header.priority
    with pytest.raises(LocalProtocolError):
        build_header(header, 0)


def test_offset_padding_is_skipped() -> None:
    data = struct.pack("!HHHH", FLAG_O | 2, 3, 4, 2) + b"\xaa\xbb" + b"payload"
    header, offset = parse_header(data)
    assert header.offset_pad == b"\xaa\xbb"
    assert data[offset:] == b"payload"


def test_build_refuses_bad_control_header() -> None:
    with pytest.raises(LocalProtocolError):
        build_header(Header(True, 1, 0, length=None, ns=0, nr=0), 0)
    with pytest.raises(LocalProtocolError):
        build_header(Header(False, 1, 0, ns=1, nr=None), 0)
