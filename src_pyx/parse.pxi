# Included by _parse.pyx and _dataplane.pyx (STYLE.md 2: code shared by two loops is included,
# not called across extensions). The header rules of RFC 2661 3.1, in the order of
# ``l2tpfast.wire.header.parse_header``; see _parse.pyx for the list.
# It cimports what it needs from l2tp.pxd (the includer may use the same names); memset too.

from libc.string cimport memset

from l2tp cimport (
    HDR_FLAG_L,
    HDR_FLAG_O,
    HDR_FLAG_S,
    HDR_FLAG_T,
    HDR_L2F_VERSION,
    HDR_L2TP_VERSION,
    HDR_MIN_LEN,
    HDR_VER_MASK,
    STATUS_BAD_CONTROL_FLAGS,
    STATUS_BAD_LENGTH,
    STATUS_BAD_OFFSET,
    STATUS_BAD_VERSION,
    STATUS_L2F,
    STATUS_OK,
    STATUS_TRUNCATED,
    header_row_t,
    load_be16,
)

# Octets of header announced by the high byte of the first word, 6 + 2L + 4S + 2O, or 0
# for a control message without L=1, S=1, O=0 (RFC 2661 3.1).  One load in place of
# the flag arithmetic: about 10% of the time per datagram.
cdef unsigned char HEADER_NEED[256]


cdef void fill_header_need() noexcept nogil:
    cdef unsigned int high, word
    for high in range(256):
        word = high << 8
        if word & HDR_FLAG_T and word & (HDR_FLAG_L | HDR_FLAG_S | HDR_FLAG_O) != HDR_FLAG_L | HDR_FLAG_S:
            HEADER_NEED[high] = 0
        else:
            HEADER_NEED[high] = HDR_MIN_LEN + ((word >> 13) & 2) + ((word >> 9) & 4) + ((word >> 8) & 2)


fill_header_need()


cdef inline int drop(header_row_t* row, int status) noexcept nogil:
    """Zero the row and record why the datagram is dropped."""
    memset(row, 0, sizeof(header_row_t))
    row.status = <unsigned char>status
    return status


cdef inline int parse_one(const unsigned char* p, Py_ssize_t n, header_row_t* row) noexcept nogil:
    """Parse the datagram [p, p + n) into ``row``; return its status.

    Reads only inside [p, p + n): every load below is preceded by a length check
    (boundscheck is off, so nothing else protects us).  ``p`` may be NULL when n == 0.
    On success every field is written and ``payload_offset`` is relative to ``p``
    (the caller makes it absolute); on failure the row is zero except ``status``.
    """
    cdef uint16_t word, length = 0, ns = 0, nr = 0, offset_size = 0
    cdef Py_ssize_t pos, need

    if n < HDR_MIN_LEN:
        return drop(row, STATUS_TRUNCATED)
    word = load_be16(p)
    if (word & HDR_VER_MASK) != HDR_L2TP_VERSION:
        # RFC 2661 3.1: "Packets received with an unknown Ver field MUST be discarded."
        if (word & HDR_VER_MASK) == HDR_L2F_VERSION:
            return drop(row, STATUS_L2F)
        return drop(row, STATUS_BAD_VERSION)
    # RFC 2661 3.1: control messages MUST have L=1, S=1 and O=0; P is ignored on receipt.
    # L is bit 14, S bit 11, O bit 9: all in the high byte, which HEADER_NEED maps.
    need = HEADER_NEED[word >> 8]
    if need == 0:
        return drop(row, STATUS_BAD_CONTROL_FLAGS)
    if n < need:
        return drop(row, STATUS_TRUNCATED)

    # From here on [p, p + need) is readable.
    pos = 2
    if word & HDR_FLAG_L:
        length = load_be16(p + 2)
        if length != n:
            return drop(row, STATUS_BAD_LENGTH)
        pos = 4
    row.tunnel_id = load_be16(p + pos)
    row.session_id = load_be16(p + pos + 2)
    pos += 4
    if word & HDR_FLAG_S:
        ns = load_be16(p + pos)
        nr = load_be16(p + pos + 2)
        pos += 4
    if word & HDR_FLAG_O:
        offset_size = load_be16(p + pos)
        pos += 2
        # RFC 2661 3.1: "the L2TP header ends after the last octet of the offset padding".
        if pos + offset_size > n:
            return drop(row, STATUS_BAD_OFFSET)
        pos += offset_size

    row.payload_offset = <uint32_t>pos
    row.payload_length = <uint32_t>(n - pos)
    row.flags = word
    row.length = length
    row.ns = ns
    row.nr = nr
    row.offset_size = offset_size
    # The column is 16 bits: only a datagram over 64 KiB with L=0 and a huge Offset Size
    # can exceed it; payload_offset and payload_length stay exact.
    row.header_length = <uint16_t>pos
    row.status = STATUS_OK
    row.ver = HDR_L2TP_VERSION
    row.is_control = (word & HDR_FLAG_T) != 0
    row.pad = 0
    return STATUS_OK
