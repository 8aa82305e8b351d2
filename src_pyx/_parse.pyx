# cython: language_level=3
"""Batch L2TP header parser (RFC 2661 3.1), the first stage of the data path.

The rules are those of ``l2tpfast.wire.header.parse_header``, checked in the same
order so that a malformed datagram gets the same ``ParseStatus`` here as there:

1. fewer than 6 octets: TRUNCATED;
2. Ver != 2: L2F for Ver 1, BAD_VERSION otherwise;
3. T=1 without L=1 and S=1, or with O=1: BAD_CONTROL_FLAGS (P is ignored on receipt);
4. fewer octets than 6 + 2L + 4S + 2O: TRUNCATED;
5. L=1 and Length != datagram length: BAD_LENGTH;
6. O=1 and the offset padding runs past the end: BAD_OFFSET.

Malformed datagrams are reported in the row's ``status`` and never raise; exceptions
come only from argument checks at the ``def`` boundary (STYLE.md 4).
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint16_t, uint32_t


# payload_offset is a uint32 column, so a receive buffer must stay below 4 GiB.
cdef Py_ssize_t MAX_BUFFER_LEN = 0xFFFFFFFF
include "parse.pxi"


# numpy builds the PEP 3118 format string of a structured dtype afresh on every buffer
# request: about 1 us for HEADER_DTYPE, the time it takes to parse 150 datagrams, and a
# receive batch is often smaller than that.  So ``out`` is acquired without a format,
# and its dtype is checked against header_row_t (by a typed memoryview) only the first
# time that dtype object is seen, then recognised by identity.  Memory safety never
# depends on the dtype check: ndim, itemsize, length, contiguity and writability come
# from the buffer itself.
cdef object checked_row_dtype = None


cdef int check_row_dtype(object out) except -1:
    """Raise ValueError unless ``out``'s elements have header_row_t's layout."""
    global checked_row_dtype
    cdef header_row_t[::1] _probe
    dtype = getattr(out, "dtype", None)
    if dtype is None or dtype is not checked_row_dtype:
        _probe = out  # Cython compares the buffer's format with the struct, field by field
        if dtype is not None:
            checked_row_dtype = dtype
    return 0


def parse_batch(
    const unsigned char[::1] buf not None,
    const uint32_t[::1] offsets not None,
    const uint32_t[::1] lengths not None,
    object out not None,
    Py_ssize_t count=-1,
):
    """Parse datagrams ``buf[offsets[i]:offsets[i] + lengths[i]]`` into ``out[i]``; return the row count.

    ``buf`` is any C-contiguous byte buffer (bytes, bytearray, numpy uint8, mmap...);
    ``offsets`` and ``lengths`` are C-contiguous uint32 buffers; ``out`` is a writable
    C-contiguous HEADER_DTYPE array.  Nothing is copied: rows are written straight into
    ``out``.  ``count`` = -1 parses ``len(offsets)`` datagrams; rows from ``count`` on
    are left alone.  A datagram whose extent leaves ``buf`` is reported TRUNCATED and
    not read.  Raises ValueError only for arguments that do not fit together (count
    larger than an array, buffer of 4 GiB or more, wrong dtype or shape).
    """
    cdef Py_buffer out_view
    cdef Py_ssize_t buf_len = buf.shape[0]
    cdef Py_ssize_t i, off, n
    cdef const unsigned char* base
    cdef const uint32_t* off_p
    cdef const uint32_t* len_p
    cdef header_row_t* row

    if count == -1:
        count = offsets.shape[0]
    if count < 0:
        raise ValueError(f"count must be -1 or >= 0, not {count}")
    if buf_len > MAX_BUFFER_LEN:
        raise ValueError(f"buffer of {buf_len} octets: payload_offset is 32 bits, keep it under 4 GiB")
    check_row_dtype(out)
    PyObject_GetBuffer(out, &out_view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
    try:
        if out_view.ndim != 1 or out_view.itemsize != sizeof(header_row_t):
            raise ValueError(
                f"out must be a 1-D HEADER_DTYPE array, not {out_view.ndim}-D "
                f"of {out_view.itemsize}-octet items"
            )
        if count > offsets.shape[0] or count > lengths.shape[0] or count > out_view.shape[0]:
            raise ValueError(
                f"count {count} exceeds an array: offsets {offsets.shape[0]}, "
                f"lengths {lengths.shape[0]}, out {out_view.shape[0]}"
            )
        if count == 0:
            return 0
        # Raw pointers into the caller's buffers, valid while we hold the buffers, i.e.
        # until this function returns; nothing keeps them after that.
        base = &buf[0] if buf_len > 0 else NULL
        off_p = &offsets[0]
        len_p = &lengths[0]
        row = <header_row_t*>out_view.buf
        with nogil:
            for i in range(count):
                off = off_p[i]
                n = len_p[i]
                # 64-bit sum of two 32-bit values: cannot overflow.
                if off + n > buf_len:
                    drop(row, STATUS_TRUNCATED)
                elif parse_one(base + off, n, row) == STATUS_OK:
                    # buf_len < 4 GiB, so the absolute offset fits the 32-bit column.
                    row.payload_offset += <uint32_t>off
                row += 1
        return count
    finally:
        PyBuffer_Release(&out_view)


def parse_header(const unsigned char[::1] data not None):
    """Parse one whole datagram (any buffer, bytes included) for the control path.

    Returns ``(status, flags, length, tunnel_id, session_id, ns, nr, offset_size,
    header_length, payload_length)``; everything but ``status`` is 0 when the
    status is not OK.  Same rules as ``parse_batch``.
    """
    cdef header_row_t row
    cdef Py_ssize_t n = data.shape[0]
    cdef int status
    if n > MAX_BUFFER_LEN:
        raise ValueError(f"datagram of {n} octets: payload_length is 32 bits, keep it under 4 GiB")
    # The pointer is into the caller's buffer, held by ``data`` for this call only.
    status = parse_one(&data[0] if n > 0 else NULL, n, &row)
    # row.payload_offset is the exact header length (row.header_length keeps 16 bits).
    return (
        status, row.flags, row.length, row.tunnel_id, row.session_id, row.ns, row.nr,
        row.offset_size, row.payload_offset, row.payload_length,
    )


def _row_layout():
    """``{"itemsize": n, field: offset, ...}`` of header_row_t as the C compiler lays it out.

    Offsets are pointer differences inside a real struct instance: the same value as
    ``offsetof`` without naming Cython's mangled C type, and without the
    undefined behaviour of the ``&((T*)0)->field`` idiom.
    """
    cdef header_row_t r
    cdef char* b = <char*>&r
    return {
        "itemsize": sizeof(header_row_t),
        "payload_offset": <char*>&r.payload_offset - b,
        "payload_length": <char*>&r.payload_length - b,
        "flags": <char*>&r.flags - b,
        "length": <char*>&r.length - b,
        "tunnel_id": <char*>&r.tunnel_id - b,
        "session_id": <char*>&r.session_id - b,
        "ns": <char*>&r.ns - b,
        "nr": <char*>&r.nr - b,
        "offset_size": <char*>&r.offset_size - b,
        "header_length": <char*>&r.header_length - b,
        "status": <char*>&r.status - b,
        "ver": <char*>&r.ver - b,
        "is_control": <char*>&r.is_control - b,
        "pad": <char*>&r.pad - b,
    }
