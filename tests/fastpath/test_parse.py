"""Hand-made datagrams through ``parse_batch`` and ``parse_header`` (RFC 2661 3.1).

Each vector is spelled out in bytes and its row in full, and both implementations
(the ``parser`` fixture) must produce exactly that row.
"""

from __future__ import annotations

import array
import itertools
import struct
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from l2tpfast.wire.constants import ParseStatus
from l2tpfast.wire.dtypes import HEADER_DTYPE, empty_header_array

FIELDS: tuple[str, ...] = tuple(HEADER_DTYPE.names or ())
PREFIX = b"\xee" * 5  # the datagram never starts at offset 0 in these tests
SUFFIX = b"\xdd" * 3  # nor ends at the buffer's end, unless the test says so
TID, SID = 0x1234, 0xABCD
PPP = b"\xff\x03\xc0\x21\x01\x01\x00\x04"  # an LCP Configure-Request


def words(*values: int) -> bytes:
    """Big-endian 16-bit words."""
    return struct.pack(f"!{len(values)}H", *values)


def u32(*values: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    return np.array(values, dtype=np.uint32)


def row(**fields: int) -> tuple[int, ...]:
    """A full row in HEADER_DTYPE order; unnamed fields are 0."""
    unknown = set(fields) - set(FIELDS)
    assert not unknown, unknown
    return tuple(fields.get(name, 0) for name in FIELDS)


def ok_row(base: int, size: int, flags: int, header_length: int, **fields: int) -> tuple[int, ...]:
    """The row of a datagram of ``size`` octets at ``base`` that parses OK."""
    return row(
        payload_offset=base + header_length,
        payload_length=size - header_length,
        flags=flags,
        header_length=header_length & 0xFFFF,
        ver=2,
        is_control=flags >> 15,
        **fields,
    )


def dropped(status: ParseStatus) -> tuple[int, ...]:
    return row(status=status)


def parse_one(parser: ModuleType, datagram: bytes) -> tuple[int, ...]:
    """Parse ``datagram`` inside a larger buffer; check parse_header agrees; return the row."""
    buf = PREFIX + datagram + SUFFIX
    out = empty_header_array(1)
    assert parser.parse_batch(buf, u32(len(PREFIX)), u32(len(datagram)), out) == 1
    got: tuple[int, ...] = tuple(out[0].item())
    single = parser.parse_header(datagram)
    assert all(type(value) is int for value in single)
    by_name = dict(zip(FIELDS, got, strict=True))
    if by_name["status"] == ParseStatus.OK:
        assert single == (
            by_name["status"],
            by_name["flags"],
            by_name["length"],
            by_name["tunnel_id"],
            by_name["session_id"],
            by_name["ns"],
            by_name["nr"],
            by_name["offset_size"],
            by_name["payload_offset"] - len(PREFIX),
            by_name["payload_length"],
        )
    else:
        assert single == (by_name["status"], 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return got


# --- data messages -----------------------------------------------------------------------


def test_data_no_options(parser: ModuleType) -> None:
    dg = words(0x0002, TID, SID) + PPP
    assert parse_one(parser, dg) == ok_row(5, 14, 0x0002, 6, tunnel_id=TID, session_id=SID)


def test_data_with_length(parser: ModuleType) -> None:
    dg = words(0x4002, 16, TID, SID) + PPP
    assert parse_one(parser, dg) == ok_row(5, 16, 0x4002, 8, length=16, tunnel_id=TID, session_id=SID)


def test_data_with_sequence(parser: ModuleType) -> None:
    # Nr is reserved in data messages but reported as received; the data path ignores it.
    dg = words(0x0802, TID, SID, 0xFFFE, 0x0007) + PPP
    assert parse_one(parser, dg) == ok_row(5, 18, 0x0802, 10, tunnel_id=TID, session_id=SID, ns=0xFFFE, nr=7)


def test_data_with_offset_padding(parser: ModuleType) -> None:
    dg = words(0x0202, TID, SID, 3) + b"\xaa\xbb\xcc" + PPP
    assert parse_one(parser, dg) == ok_row(5, 19, 0x0202, 11, tunnel_id=TID, session_id=SID, offset_size=3)


def test_data_with_zero_offset_size(parser: ModuleType) -> None:
    dg = words(0x0202, TID, SID, 0) + PPP
    assert parse_one(parser, dg) == ok_row(5, 16, 0x0202, 8, tunnel_id=TID, session_id=SID)


def test_data_offset_padding_up_to_the_end(parser: ModuleType) -> None:
    dg = words(0x0202, TID, SID, 4) + b"\x00" * 4
    assert parse_one(parser, dg) == ok_row(5, 12, 0x0202, 12, tunnel_id=TID, session_id=SID, offset_size=4)


def test_data_with_priority(parser: ModuleType) -> None:
    dg = words(0x0102, TID, SID) + PPP
    assert parse_one(parser, dg) == ok_row(5, 14, 0x0102, 6, tunnel_id=TID, session_id=SID)


def test_data_every_option(parser: ModuleType) -> None:
    dg = words(0x4B02, 24, TID, SID, 1, 2, 2) + b"\x00\x00" + PPP
    assert parse_one(parser, dg) == ok_row(
        5, 24, 0x4B02, 16, length=24, tunnel_id=TID, session_id=SID, ns=1, nr=2, offset_size=2
    )


def test_reserved_bits_are_ignored_and_kept(parser: ModuleType) -> None:
    flags = 0x34F0 | 0x0002  # every x bit of RFC 2661 3.1 set
    dg = words(flags, TID, SID) + PPP
    assert parse_one(parser, dg) == ok_row(5, 14, flags, 6, tunnel_id=TID, session_id=SID)


@pytest.mark.parametrize(
    ("has_l", "has_s", "has_o", "has_p"), list(itertools.product((False, True), repeat=4))
)
def test_data_flag_combinations(
    parser: ModuleType, has_l: bool, has_s: bool, has_o: bool, has_p: bool
) -> None:
    flags = 0x0002 | has_l * 0x4000 | has_s * 0x0800 | has_o * 0x0200 | has_p * 0x0100
    header_length = 6 + 2 * has_l + 4 * has_s + (2 + 5) * has_o
    size = header_length + len(PPP)
    dg = words(flags)
    if has_l:
        dg += words(size)
    dg += words(TID, SID)
    if has_s:
        dg += words(100, 200)
    if has_o:
        dg += words(5) + b"\x55" * 5
    dg += PPP
    assert len(dg) == size
    assert parse_one(parser, dg) == ok_row(
        5,
        size,
        flags,
        header_length,
        length=size if has_l else 0,
        tunnel_id=TID,
        session_id=SID,
        ns=100 if has_s else 0,
        nr=200 if has_s else 0,
        offset_size=5 if has_o else 0,
    )


# --- control messages --------------------------------------------------------------------

SCCRQ_AVP = words(0x8008, 0, 0, 1)  # Message Type AVP, SCCRQ


def test_control_message(parser: ModuleType) -> None:
    dg = words(0xC802, 20, 0, 0, 0, 0) + SCCRQ_AVP
    assert parse_one(parser, dg) == ok_row(5, 20, 0xC802, 12, length=20)


def test_control_zlb(parser: ModuleType) -> None:
    dg = words(0xC802, 12, TID, 0, 3, 4)
    assert parse_one(parser, dg) == ok_row(5, 12, 0xC802, 12, length=12, tunnel_id=TID, ns=3, nr=4)


def test_control_priority_bit_is_ignored(parser: ModuleType) -> None:
    # RFC 2661 3.1: P MUST be 0 on control messages; we are liberal on receipt.
    dg = words(0xC902, 12, TID, SID, 0, 1)
    assert parse_one(parser, dg) == ok_row(5, 12, 0xC902, 12, length=12, tunnel_id=TID, session_id=SID, nr=1)


@pytest.mark.parametrize(
    "flags",
    [0x8002, 0x8802, 0xC002, 0xCA02, 0x8A02, 0xC202],
    ids=["T", "T-S", "T-L", "T-L-S-O", "T-S-O", "T-L-O"],
)
def test_control_flags_must_be_l_s_not_o(parser: ModuleType, flags: int) -> None:
    dg = words(flags, 20, TID, SID, 0, 0, 0) + SCCRQ_AVP
    assert parse_one(parser, dg[:20]) == dropped(ParseStatus.BAD_CONTROL_FLAGS)


def test_control_flags_checked_before_truncation(parser: ModuleType) -> None:
    assert parse_one(parser, words(0x8002, TID, SID)) == dropped(ParseStatus.BAD_CONTROL_FLAGS)


# --- malformed ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(6))
def test_shorter_than_six_octets(parser: ModuleType, size: int) -> None:
    dg = words(0xC802, 12, TID, SID, 0, 0)[:size]
    assert parse_one(parser, dg) == dropped(ParseStatus.TRUNCATED)


def test_short_l2f_is_truncated_first(parser: ModuleType) -> None:
    assert parse_one(parser, words(0x0001, 0, 0)[:5]) == dropped(ParseStatus.TRUNCATED)


@pytest.mark.parametrize(
    ("ver", "status"),
    [
        (0, ParseStatus.BAD_VERSION),
        (1, ParseStatus.L2F),
        (3, ParseStatus.BAD_VERSION),
        (15, ParseStatus.BAD_VERSION),
    ],
)
def test_version(parser: ModuleType, ver: int, status: ParseStatus) -> None:
    assert parse_one(parser, words(0x0000 | ver, TID, SID) + PPP) == dropped(status)
    # Ver is checked before the control flags.
    assert parse_one(parser, words(0x8000 | ver, TID, SID) + PPP) == dropped(status)


@pytest.mark.parametrize(
    ("flags", "size"),
    [
        (0x4002, 7),  # L: needs 8
        (0x0802, 9),  # S: needs 10
        (0x0202, 7),  # O: needs 8
        (0x4A02, 13),  # L, S, O: needs 14
        (0xC802, 11),  # control: needs 12
    ],
)
def test_header_longer_than_datagram(parser: ModuleType, flags: int, size: int) -> None:
    dg = words(flags, size, TID, SID, 0, 0, 0)[:size]
    assert parse_one(parser, dg) == dropped(ParseStatus.TRUNCATED)


@pytest.mark.parametrize("delta", [1, -1], ids=["too-big", "too-small"])
def test_length_field_disagrees(parser: ModuleType, delta: int) -> None:
    dg = words(0x4002, 16 + delta, TID, SID) + PPP
    assert parse_one(parser, dg) == dropped(ParseStatus.BAD_LENGTH)
    ctl = words(0xC802, 20 + delta, TID, SID, 0, 0) + SCCRQ_AVP
    assert parse_one(parser, ctl) == dropped(ParseStatus.BAD_LENGTH)


@pytest.mark.parametrize("length", [0, 0xFFFF])
def test_length_field_extremes(parser: ModuleType, length: int) -> None:
    assert parse_one(parser, words(0x4002, length, TID, SID) + PPP) == dropped(ParseStatus.BAD_LENGTH)


def test_length_checked_before_offset(parser: ModuleType) -> None:
    dg = words(0x4202, 99, TID, SID, 100) + PPP
    assert parse_one(parser, dg) == dropped(ParseStatus.BAD_LENGTH)


def test_truncation_checked_before_length(parser: ModuleType) -> None:
    dg = words(0x4802, 10, TID, SID, 0)
    assert parse_one(parser, dg) == dropped(ParseStatus.TRUNCATED)


@pytest.mark.parametrize("offset_size", [5, 9, 0xFFFF])
def test_offset_past_the_end(parser: ModuleType, offset_size: int) -> None:
    dg = words(0x0202, TID, SID, offset_size) + b"\x00" * 4
    assert parse_one(parser, dg) == dropped(ParseStatus.BAD_OFFSET)


def test_header_length_keeps_16_bits_over_64k(parser: ModuleType) -> None:
    # Only a datagram over 64 KiB with L=0 can carry a header longer than 65535 octets;
    # header_length is a 16-bit column, payload_offset and parse_header stay exact.
    dg = words(0x0202, TID, SID, 0xFFFF) + b"\x00" * 0xFFFF + PPP
    got = parse_one(parser, dg)
    assert got == ok_row(5, len(dg), 0x0202, 8 + 0xFFFF, tunnel_id=TID, session_id=SID, offset_size=0xFFFF)
    assert parser.parse_header(dg)[8] == 8 + 0xFFFF


# --- batches, buffers and extents --------------------------------------------------------

DATA = words(0x0002, TID, SID) + PPP  # 14 octets
CTL = words(0xC802, 12, TID, 0, 3, 4)  # 12 octets


def test_batch_of_mixed_datagrams(parser: ModuleType) -> None:
    bad = words(0x0003, TID, SID)
    buf = DATA + b"\x00" + CTL + bad + DATA
    offsets = u32(0, 15, 27, 33, 0)
    lengths = u32(14, 12, 6, 14, 14)
    out = empty_header_array(5)
    assert parser.parse_batch(buf, offsets, lengths, out) == 5
    assert [tuple(r.item()) for r in out] == [
        ok_row(0, 14, 0x0002, 6, tunnel_id=TID, session_id=SID),
        ok_row(15, 12, 0xC802, 12, length=12, tunnel_id=TID, ns=3, nr=4),
        dropped(ParseStatus.BAD_VERSION),
        ok_row(33, 14, 0x0002, 6, tunnel_id=TID, session_id=SID),
        ok_row(0, 14, 0x0002, 6, tunnel_id=TID, session_id=SID),  # the same datagram twice
    ]


def test_datagrams_at_the_end_of_the_buffer(parser: ModuleType) -> None:
    buf = b"\x00" * 10 + CTL
    end = len(buf)
    offsets = u32(end - 12, end - 12, end - 11, end, end + 1, 0xFFFFFFFF, 0)
    lengths = u32(12, 13, 12, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF)
    out = empty_header_array(7)
    assert parser.parse_batch(buf, offsets, lengths, out) == 7
    assert [tuple(r.item()) for r in out] == [
        ok_row(10, 12, 0xC802, 12, length=12, tunnel_id=TID, ns=3, nr=4),
        *[dropped(ParseStatus.TRUNCATED)] * 6,
    ]


def test_extent_past_the_buffer_is_not_read(parser: ModuleType) -> None:
    # The bytes after the view form a valid header: reading them would give OK.
    backing = np.frombuffer(b"\x00" * 4 + DATA, dtype=np.uint8)
    buf = backing[:10]
    out = empty_header_array(2)
    assert parser.parse_batch(buf, u32(4, 4), u32(14, 6), out) == 2
    assert tuple(out[0].item()) == dropped(ParseStatus.TRUNCATED)
    assert tuple(out[1].item()) == ok_row(4, 6, 0x0002, 6, tunnel_id=TID, session_id=SID)


def test_empty_buffer(parser: ModuleType) -> None:
    out = empty_header_array(2)
    assert parser.parse_batch(b"", u32(0, 1), u32(0, 0), out) == 2
    assert [tuple(r.item()) for r in out] == [dropped(ParseStatus.TRUNCATED)] * 2
    assert parser.parse_header(b"") == (ParseStatus.TRUNCATED, 0, 0, 0, 0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "make_buf",
    [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8), lambda b: array.array("B", b)],
    ids=["bytes", "bytearray", "memoryview", "numpy", "array"],
)
def test_buffer_kinds(parser: ModuleType, make_buf: Any) -> None:
    out = empty_header_array(1)
    assert parser.parse_batch(make_buf(DATA), u32(0), u32(14), out) == 1
    assert tuple(out[0].item()) == ok_row(0, 14, 0x0002, 6, tunnel_id=TID, session_id=SID)
    assert parser.parse_header(make_buf(DATA))[0] == ParseStatus.OK


def test_offsets_and_lengths_may_be_array_module_buffers(parser: ModuleType) -> None:
    out = empty_header_array(1)
    assert parser.parse_batch(DATA, array.array("I", [0]), array.array("I", [14]), out) == 1
    assert out[0]["status"] == ParseStatus.OK


def test_rows_are_written_in_place(parser: ModuleType) -> None:
    backing = empty_header_array(3)
    view = backing[1:]
    assert parser.parse_batch(DATA, u32(0), u32(14), view, 1) == 1
    assert backing[1]["payload_offset"] == 6
    assert backing[0]["payload_offset"] == 0


# --- count and argument checks -----------------------------------------------------------


def sentinel_rows(n: int) -> np.ndarray[Any, np.dtype[np.void]]:
    out = empty_header_array(n)
    out.view(np.uint8)[:] = 0xAB
    return out


def test_count_smaller_than_the_arrays(parser: ModuleType) -> None:
    out = sentinel_rows(4)
    untouched = out[2:].copy()
    assert parser.parse_batch(DATA, u32(0, 0, 0, 0), u32(14, 14, 14, 14), out, 2) == 2
    assert [tuple(r.item()) for r in out[:2]] == [ok_row(0, 14, 0x0002, 6, tunnel_id=TID, session_id=SID)] * 2
    assert out[2:].tobytes() == untouched.tobytes()


def test_count_zero_writes_nothing(parser: ModuleType) -> None:
    out = sentinel_rows(2)
    before = out.tobytes()
    assert parser.parse_batch(DATA, u32(0, 0), u32(14, 14), out, 0) == 0
    assert out.tobytes() == before


def test_default_count_is_len_offsets(parser: ModuleType) -> None:
    out = sentinel_rows(3)
    assert parser.parse_batch(DATA, u32(0, 0), u32(14, 14, 14), out) == 2
    assert out[2].tobytes() == b"\xab" * HEADER_DTYPE.itemsize


def test_malformed_rows_are_fully_overwritten(parser: ModuleType) -> None:
    out = sentinel_rows(1)
    assert parser.parse_batch(DATA, u32(0), u32(5), out) == 1
    assert tuple(out[0].item()) == dropped(ParseStatus.TRUNCATED)


@pytest.mark.parametrize(
    ("n_offsets", "n_lengths", "n_out", "count"),
    [
        (2, 2, 2, 3),  # count > every array
        (1, 2, 2, 2),  # count > offsets
        (2, 1, 2, 2),  # count > lengths
        (2, 2, 1, 2),  # count > out
        (2, 1, 2, -1),  # default count > lengths
        (2, 2, 1, -1),  # default count > out
        (2, 2, 2, -2),  # negative
    ],
)
def test_count_out_of_range_raises(
    parser: ModuleType, n_offsets: int, n_lengths: int, n_out: int, count: int
) -> None:
    out = sentinel_rows(n_out)
    before = out.tobytes()
    with pytest.raises(ValueError, match="count"):
        parser.parse_batch(DATA, u32(*[0] * n_offsets), u32(*[14] * n_lengths), out, count)
    assert out.tobytes() == before


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((DATA, np.zeros(1, np.int64), u32(14), empty_header_array(1)), id="offsets-int64"),
        pytest.param((DATA, u32(0), np.zeros(1, np.uint16), empty_header_array(1)), id="lengths-uint16"),
        pytest.param((DATA, u32(0), u32(14), np.zeros(28, np.uint8)), id="out-uint8"),
        pytest.param((DATA, u32(0, 0), u32(14, 14), empty_header_array(4)[::2]), id="out-strided"),
        pytest.param((DATA, u32(0, 0, 0, 0)[::2], u32(14, 14), empty_header_array(2)), id="offsets-strided"),
        pytest.param(
            (DATA, u32(0), u32(14), np.frombuffer(bytes(28), dtype=HEADER_DTYPE)), id="out-read-only"
        ),
        pytest.param((np.zeros(14, np.int8), u32(0), u32(14), empty_header_array(1)), id="buf-int8"),
        pytest.param((np.zeros((2, 7), np.uint8), u32(0), u32(14), empty_header_array(1)), id="buf-2d"),
    ],
)
def test_wrong_argument_types_raise_value_error(parser: ModuleType, args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        parser.parse_batch(*args)


def test_non_buffers_raise_type_error(parser: ModuleType) -> None:
    with pytest.raises(TypeError):
        parser.parse_batch(DATA, [0], u32(14), empty_header_array(1))
    with pytest.raises(TypeError):
        parser.parse_header("not bytes")
