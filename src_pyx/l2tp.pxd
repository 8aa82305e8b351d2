# cython: language_level=3
"""Shared C view of the L2TP header (RFC 2661 3.1) for every compiled module.

Only structs, enums and ``cdef inline`` helpers live here (STYLE.md 2): each
extension that cimports this file gets its own copy, so nothing here may hold
state.  The structs mirror the numpy dtypes of ``l2tpfast/wire/dtypes.py``
field for field; ``tests/fastpath/test_layout.py`` checks size and offsets.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t


# One parsed header: the C twin of ``l2tpfast.wire.dtypes.HEADER_DTYPE`` (28 octets,
# little-endian host order).  Packed so that its layout is the dtype's whatever the ABI;
# every field is naturally aligned anyway, so the packing costs nothing on x86-64.
ctypedef packed struct header_row_t:
    uint32_t payload_offset   # absolute offset of the payload in the receive buffer
    uint32_t payload_length
    uint16_t flags            # raw first word: T, L, S, O, P, reserved bits and Ver
    uint16_t length           # Length field; 0 when L=0
    uint16_t tunnel_id
    uint16_t session_id
    uint16_t ns               # 0 when S=0
    uint16_t nr               # 0 when S=0; reserved in data messages (RFC 2661 3.1)
    uint16_t offset_size      # 0 when O=0
    uint16_t header_length    # payload start relative to the datagram (low 16 bits)
    uint8_t status            # parse_status_t
    uint8_t ver
    uint8_t is_control        # the T bit
    uint8_t pad          # padding, always 0


# Mirrors ``l2tpfast.wire.constants.ParseStatus``; one code per reason to drop.
cdef enum parse_status_t:
    STATUS_OK = 0
    STATUS_TRUNCATED = 1
    STATUS_BAD_VERSION = 2
    STATUS_L2F = 3
    STATUS_BAD_LENGTH = 4
    STATUS_BAD_CONTROL_FLAGS = 5
    STATUS_BAD_OFFSET = 6


# RFC 2661 3.1: bits of the first header word; mirrors ``l2tpfast.wire.constants``.
cdef enum:
    HDR_FLAG_T = 0x8000       # control message
    HDR_FLAG_L = 0x4000       # Length present
    HDR_FLAG_S = 0x0800       # Ns, Nr present
    HDR_FLAG_O = 0x0200       # Offset Size present
    HDR_FLAG_P = 0x0100       # priority (data only)
    HDR_VER_MASK = 0x000F
    HDR_L2TP_VERSION = 2
    HDR_L2F_VERSION = 1
    HDR_MIN_LEN = 6           # flags, tunnel ID, session ID


# Big-endian loads from wire bytes.  The caller guarantees that [p, p + size) is readable;
# these helpers check nothing.  Byte-wise so that they work at any alignment; gcc and clang
# fold them into one load plus a byte swap.
cdef inline uint16_t load_be16(const unsigned char* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | <uint16_t>p[1])


cdef inline uint32_t load_be32(const unsigned char* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | <uint32_t>p[3])
