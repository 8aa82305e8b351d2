"""16-bit sequence number arithmetic (RFC 2661 5.8, 5.4).

Ns and Nr wrap modulo 2**16.  "Less than" is taken over half the number
space, as in serial number arithmetic: ``a`` precedes ``b`` when ``b - a``
(mod 2**16) is in 1..32767.  This is the only place that compares sequence
numbers; the compiled data path matches it and is tested against it.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
SEQ_HALF = 1 << 15


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**16."""
    return (a + n) % SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a``, in -32768..32767 (``a - b``)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_HALF else d


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b``."""
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_in_window(ns: int, expected: int, window: int) -> bool:
    """``ns`` is ``expected`` or up to ``window - 1`` after it (RFC 2661 5.8 receive window)."""
    return 0 <= seq_diff(ns, expected) < window
