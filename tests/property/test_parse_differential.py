"""The compiled batch header parser against the pure-Python reference (RFC 2661 3.1).

Random bytes and mutated valid datagrams, packed many to a buffer at random places:
``l2tpfast._parse`` and ``l2tpfast.reference.parse`` must write byte-identical rows.
Datagrams are also laid flush against an unmapped page, so that a read past a
datagram's end would crash the test instead of passing unnoticed.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import l2tpfast._parse as compiled
import l2tpfast.reference.parse as reference
from l2tpfast.wire.constants import FLAG_L, FLAG_O, FLAG_P, FLAG_S, FLAG_T, RESERVED_MASK, ParseStatus
from l2tpfast.wire.dtypes import HEADER_DTYPE, empty_header_array

U32_MAX = 0xFFFFFFFF


@st.composite
def valid_datagrams(draw: st.DrawFn) -> bytes:
    """A well-formed data or control datagram with any combination of options."""
    is_control = draw(st.booleans())
    if is_control:
        has_l, has_s, has_o = True, True, False
    else:
        has_l, has_s, has_o = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    flags = 2 | (draw(st.integers(0, 0xFFFF)) & RESERVED_MASK if draw(st.booleans()) else 0)
    flags |= FLAG_T * is_control | FLAG_L * has_l | FLAG_S * has_s | FLAG_O * has_o
    flags |= FLAG_P * draw(st.booleans())
    u16 = st.integers(0, 0xFFFF)
    body = draw(u16).to_bytes(2, "big") + draw(u16).to_bytes(2, "big")
    if has_s:
        body += draw(u16).to_bytes(2, "big") + draw(u16).to_bytes(2, "big")
    if has_o:
        offset_size = draw(st.integers(0, 8))
        body += offset_size.to_bytes(2, "big") + draw(st.binary(min_size=offset_size, max_size=offset_size))
    body += draw(st.binary(max_size=32))
    size = 2 + 2 * has_l + len(body)
    return flags.to_bytes(2, "big") + (size.to_bytes(2, "big") if has_l else b"") + body


@st.composite
def mutated_datagrams(draw: st.DrawFn) -> bytes:
    """A valid datagram after a few bit flips, truncations, other Ver, bad Length or Offset Size fields."""
    dg = bytearray(draw(valid_datagrams()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip-flags", "flip", "truncate", "word", "extend", "ver", "offset"]))
        if kind == "flip-flags" and dg:
            bit = draw(st.integers(0, min(16, 8 * len(dg)) - 1))
            dg[bit // 8] ^= 0x80 >> (bit % 8)
        elif kind == "flip" and dg:
            bit = draw(st.integers(0, 8 * len(dg) - 1))
            dg[bit // 8] ^= 0x80 >> (bit % 8)
        elif kind == "truncate":
            del dg[draw(st.integers(0, len(dg))) :]
        elif kind == "word" and len(dg) >= 4:
            # Length, Offset Size or any other 16-bit field gets a random value.
            pos = 2 * draw(st.integers(1, len(dg) // 2 - 1))
            dg[pos : pos + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif kind == "ver" and len(dg) >= 2:
            dg[1] = (dg[1] & 0xF0) | draw(st.integers(0, 15))
        elif kind == "offset" and len(dg) >= 2 and dg[0] & (FLAG_O >> 8):
            # Offset Size just around what the datagram holds: the off-by-one cases.
            pos = 6 + 2 * bool(dg[0] & (FLAG_L >> 8)) + 4 * bool(dg[0] & (FLAG_S >> 8))
            if len(dg) >= pos + 2:
                size = len(dg) - pos - 2 + draw(st.integers(-2, 2))
                dg[pos : pos + 2] = (size & 0xFFFF).to_bytes(2, "big")
        elif kind == "extend":
            dg += draw(st.binary(min_size=1, max_size=8))
    return bytes(dg)


datagrams = st.one_of(st.binary(max_size=40), valid_datagrams(), mutated_datagrams())


def u32(values: list[int]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    return np.array(values, dtype=np.uint32)


def sentinel_rows(n: int) -> np.ndarray[Any, np.dtype[np.void]]:
    out = empty_header_array(n)
    out.view(np.uint8)[:] = 0xAB
    return out


def run_both(buf: Any, offsets: list[int], lengths: list[int], count: int = -1) -> np.ndarray[Any, Any]:
    """Parse with both implementations; assert identical rows; return them."""
    n = len(offsets)
    out_c, out_r = sentinel_rows(n), sentinel_rows(n)
    got_c = compiled.parse_batch(buf, u32(offsets), u32(lengths), out_c, count)
    got_r = reference.parse_batch(buf, u32(offsets), u32(lengths), out_r, count)
    assert got_c == got_r == (n if count == -1 else count)
    for i, (row_c, row_r) in enumerate(zip(out_c, out_r, strict=True)):
        assert row_c.tobytes() == row_r.tobytes(), (i, offsets[i], lengths[i], row_c, row_r)
    return out_c


def check_rows(buf: bytes, offsets: list[int], lengths: list[int], rows: np.ndarray[Any, Any]) -> None:
    """Each row agrees with parse_header on the same datagram, in both implementations."""
    for i, (start, size) in enumerate(zip(offsets, lengths, strict=True)):
        r = rows[i]
        if start + size > len(buf):
            assert r["status"] == ParseStatus.TRUNCATED
            continue
        dg = buf[start : start + size]
        single = compiled.parse_header(dg)
        assert single == reference.parse_header(dg)
        assert single[0] == r["status"]
        if r["status"] == ParseStatus.OK:
            assert r["payload_offset"] == start + single[8]
            assert r["payload_offset"] + r["payload_length"] == start + size
            assert r["ver"] == 2
            assert r["is_control"] == single[1] >> 15


@settings(max_examples=300, deadline=None)
@given(dgs=st.lists(datagrams, max_size=48), data=st.data())
def test_packed_batch_matches_reference(dgs: list[bytes], data: st.DataObject) -> None:
    buf = b""
    offsets: list[int] = []
    for dg in dgs:
        buf += data.draw(st.binary(max_size=7), label="gap")
        offsets.append(len(buf))
        buf += dg
    buf += data.draw(st.binary(max_size=7), label="tail")
    lengths = [len(dg) for dg in dgs]
    order = data.draw(st.permutations(range(len(dgs))), label="order")
    offsets = [offsets[i] for i in order]
    lengths = [lengths[i] for i in order]
    count = data.draw(st.integers(-1, len(dgs)), label="count")
    rows = run_both(buf, offsets, lengths, count)
    done = len(dgs) if count == -1 else count
    check_rows(buf, offsets[:done], lengths[:done], rows)
    assert rows[done:].tobytes() == b"\xab" * HEADER_DTYPE.itemsize * (len(dgs) - done)


@settings(max_examples=200, deadline=None)
@given(
    noise=st.binary(max_size=300),
    spliced=st.lists(st.tuples(valid_datagrams(), st.integers(0, 300)), max_size=6),
    data=st.data(),
)
def test_random_placement_in_a_larger_buffer(
    noise: bytes, spliced: list[tuple[bytes, int]], data: st.DataObject
) -> None:
    buf = bytearray(noise)
    extents: list[tuple[int, int]] = []
    for dg, where in spliced:
        at = min(where, len(buf))
        buf[at : at + len(dg)] = dg
        extents.append((at, len(dg)))
    whole = bytes(buf)
    anywhere = st.tuples(st.integers(0, len(whole) + 16), st.integers(0, 80))
    extents += data.draw(st.lists(anywhere, max_size=24), label="extents")
    extents += data.draw(
        st.lists(st.tuples(st.integers(0, U32_MAX), st.integers(0, U32_MAX)), max_size=3), label="wild"
    )
    offsets = [start for start, _ in extents]
    lengths = [size for _, size in extents]
    rows = run_both(whole, offsets, lengths)
    check_rows(whole, offsets, lengths, rows)


@settings(max_examples=100, deadline=None)
@given(
    n_offsets=st.integers(0, 6),
    n_lengths=st.integers(0, 6),
    n_out=st.integers(0, 6),
    count=st.integers(-1, 10),
)
def test_count_beyond_an_array_raises(n_offsets: int, n_lengths: int, n_out: int, count: int) -> None:
    need = n_offsets if count == -1 else count
    buf = b"\x00\x02\x00\x01\x00\x01"
    for parser in (compiled, reference):
        out = sentinel_rows(n_out)
        args = (buf, u32([0] * n_offsets), u32([6] * n_lengths), out, count)
        if need > min(n_offsets, n_lengths, n_out):
            with pytest.raises(ValueError, match="count"):
                parser.parse_batch(*args)
            assert out.tobytes() == b"\xab" * HEADER_DTYPE.itemsize * n_out
        else:
            assert parser.parse_batch(*args) == need


# --- reads stay inside each datagram ------------------------------------------------------

PAGE = mmap.PAGESIZE
PROT_NONE = 0  # <sys/mman.h>; the mmap module does not export it


@pytest.fixture(scope="module")
def guarded_page() -> Iterator[np.ndarray[Any, np.dtype[np.uint8]]]:
    """A writable page followed by an inaccessible one: reading past its end faults."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    area = mmap.mmap(-1, 2 * PAGE)
    anchor = ctypes.c_char.from_buffer(area)
    address = ctypes.addressof(anchor)
    assert libc.mprotect(address + PAGE, PAGE, PROT_NONE) == 0, ctypes.get_errno()
    try:
        yield np.frombuffer(area, dtype=np.uint8, count=PAGE)
    finally:
        libc.mprotect(address + PAGE, PAGE, mmap.PROT_READ | mmap.PROT_WRITE)
        del anchor


@settings(max_examples=300, deadline=None)
@given(dg=datagrams, beyond=st.integers(1, 70000))
def test_datagram_flush_with_unmapped_memory(
    guarded_page: np.ndarray[Any, np.dtype[np.uint8]], dg: bytes, beyond: int
) -> None:
    page = guarded_page
    start = PAGE - len(dg)
    page[start:] = np.frombuffer(dg, dtype=np.uint8)
    # Exactly up to the unmapped page: parsed, and not one octet further is touched.
    rows = run_both(page, [start, start], [len(dg), len(dg) + beyond])
    assert compiled.parse_header(page[start:]) == reference.parse_header(dg)
    assert rows[1]["status"] == ParseStatus.TRUNCATED
    # An extent past the buffer is reported and never dereferenced.
    rows = run_both(page[:start], [start, U32_MAX], [len(dg), U32_MAX])
    assert rows[0]["status"] == rows[1]["status"] == ParseStatus.TRUNCATED
