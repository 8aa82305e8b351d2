"""16-bit sequence arithmetic (RFC 2661 5.8)."""

from __future__ import annotations

from l2tpfast.wire.seqnum import seq_add, seq_diff, seq_in_window, seq_le, seq_lt


def test_wraparound() -> None:
    assert seq_add(0xFFFF, 1) == 0
    assert seq_diff(0, 0xFFFF) == 1
    assert seq_diff(0xFFFF, 0) == -1
    assert seq_lt(0xFFFF, 0)
    assert not seq_lt(0, 0xFFFF)
    assert seq_le(5, 5)
    assert seq_diff(0x8000, 0) == -0x8000  # half the space away counts as "before"


def test_window() -> None:
    assert seq_in_window(0xFFFE, 0xFFFE, 4)
    assert seq_in_window(1, 0xFFFE, 4)
    assert not seq_in_window(2, 0xFFFE, 4)
    assert not seq_in_window(0xFFFD, 0xFFFE, 4)
