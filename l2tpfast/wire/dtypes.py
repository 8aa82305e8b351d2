"""Numpy dtypes shared by the compiled fast path and Python.

Each dtype is declared here once and mirrored by a packed struct in
``src_pyx/l2tp.pxd``; ``tests/fastpath/test_layout.py`` checks that size and
offsets agree.
"""

from __future__ import annotations

import numpy as np

#: One parsed header per row, filled by ``parse_batch`` (RFC 2661 3.1).
#: ``payload_offset`` is absolute in the receive buffer; ``flags`` is the raw
#: first 16-bit word (T, L, S, O, P, reserved bits and Ver); fields the header
#: does not carry are 0.  Rows whose ``status`` is not ParseStatus.OK are to be
#: dropped; every field but ``status`` is 0 in them.  ``header_length`` keeps the
#: low 16 bits (only an L=0 datagram over 64 KiB with a huge Offset Size needs
#: more; ``payload_offset`` is always exact).  ``pad`` is alignment, always 0.
HEADER_DTYPE = np.dtype(
    [
        ("payload_offset", "<u4"),
        ("payload_length", "<u4"),
        ("flags", "<u2"),
        ("length", "<u2"),
        ("tunnel_id", "<u2"),
        ("session_id", "<u2"),
        ("ns", "<u2"),
        ("nr", "<u2"),
        ("offset_size", "<u2"),
        ("header_length", "<u2"),
        ("status", "u1"),
        ("ver", "u1"),
        ("is_control", "u1"),
        ("pad", "u1"),
    ]
)
assert HEADER_DTYPE.itemsize == 28


def empty_header_array(count: int) -> np.ndarray:
    """A zeroed output array for ``parse_batch`` with room for ``count`` rows."""
    return np.zeros(count, dtype=HEADER_DTYPE)


#: One row per payload that ``DataPath.process`` delivers (``l2tpfast._dataplane`` and
#: ``l2tpfast.reference.dataplane``). ``action`` is a :class:`DeliveryAction`; ``source`` says
#: where ``offset``/``length`` point: 0 the receive buffer, 1 the reorder pool (row-major, so
#: ``offset`` is absolute in the flattened pool). ``slot`` is the session's slot (for CONTROL,
#: 0); ``datagram`` the index of the datagram in its batch (for pool rows, the batch that
#: released it); ``protocol`` the PPP protocol (0 for CONTROL).
DELIVERY_DTYPE = np.dtype(
    [
        ("offset", "<u4"),
        ("length", "<u4"),
        ("slot", "<u4"),
        ("datagram", "<u4"),
        ("protocol", "<u2"),
        ("action", "u1"),
        ("source", "u1"),
    ]
)
assert DELIVERY_DTYPE.itemsize == 20

#: A datagram's peer: IPv4 in the first 4 octets of ``addr`` (the rest 0) or IPv6 in all 16;
#: ``family`` 4 or 6; ``port`` in host order (0 for IP protocol 115).
ADDRESS_DTYPE = np.dtype([("addr", "u1", (16,)), ("port", "<u2"), ("family", "u1"), ("pad", "u1")])
assert ADDRESS_DTYPE.itemsize == 20

#: Per-session counters, one row per slot, read in place (``l2tpfast status``).
SESSION_COUNTERS_DTYPE = np.dtype(
    [
        ("rx_packets", "<u8"),
        ("rx_bytes", "<u8"),
        ("tx_packets", "<u8"),
        ("tx_bytes", "<u8"),
        ("out_of_order", "<u4"),
        ("duplicates", "<u4"),
        ("reorder_timeouts", "<u4"),
        ("dropped", "<u4"),
    ]
)
assert SESSION_COUNTERS_DTYPE.itemsize == 48
