# Included by _dataplane.pyx (before loop.pxi): what the benchmark harness counts where its
# packets arrive (``l2tpfast bench``, l2tpfast/bench/). Not part of any RFC: the harness's own
# payload, carried as UDP inside IPv4 inside PPP inside L2TP data messages (RFC 2661 3.1).
#
# Every packet the harness sends carries, at the start of its UDP payload, 24 octets:
#
#     magic "L2FB" (4) | session index (4) | sequence (4) | flags (1) | pad (3) | time, ns (8)
#
# all in network order: the index of the session it belongs to (the harness numbers its
# sessions 0..N-1), that session's sequence number in that direction (from 0, one more a
# packet), FLAG_PROBE on the packets the sink echoes back, and FLAG_ECHO on an echo, whose time
# is the sender's clock (CLOCK_MONOTONIC) when it left: the round trip is measured on one clock.
#
# A LoadCounter counts arrivals per session: packets, IP octets, and "late" ones (a sequence
# number below the highest seen: reordered or duplicated on the way), and puts round-trip
# times into a log-linear histogram (HIST_SUB sub-buckets per power of two of nanoseconds,
# about 3% wide). It is called from C only, in a receive loop with the GIL released: from the
# Forwarder (``Forwarder.sink``) in place of a TUN write, and from a UdpReceiver (loadgen.pxi).
#
# Ownership: the counts live in numpy arrays the LoadCounter allocates and Python reads in
# place (``sessions``, ``totals``, ``histogram``); the C pointers into them are valid as long
# as the LoadCounter lives, because the arrays are never resized.

from mmsg cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef enum:
    BENCH_MAGIC = 0x4C324642   # "L2FB"
    BENCH_HEADER = 24
    FLAG_PROBE = 1
    FLAG_ECHO = 2
    HIST_BITS = 5
    HIST_SUB = 32              # 1 << HIST_BITS
    HIST_BUCKETS = 1312        # (HIST_MAX_MSB - HIST_BITS + 2) * HIST_SUB: up to 2**45 ns (9.7 h)
    HIST_MAX_MSB = 44

# Names of LoadCounter.totals, in order.
LOAD_TOTALS = (
    "packets", "octets", "late", "echoes", "foreign", "bad_index",
)
cdef enum:
    TOT_PACKETS = 0
    TOT_OCTETS = 1
    TOT_LATE = 2
    TOT_ECHOES = 3
    TOT_FOREIGN = 4
    TOT_BAD_INDEX = 5
    N_TOTALS = 6

#: One row a session: what arrived for it.
LOAD_SESSION_DTYPE = np.dtype([
    ("packets", "<u8"), ("octets", "<u8"), ("late", "<u8"), ("next_seq", "<u4"), ("started", "<u4"),
])

ctypedef packed struct load_session_t:
    uint64_t packets
    uint64_t octets
    uint64_t late
    uint32_t next_seq      # the highest sequence number seen, plus one
    uint32_t started       # 1 once a packet arrived


cdef inline uint32_t get_be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void put_be32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline uint64_t get_be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>get_be32(p) << 32) | get_be32(p + 4)


cdef inline void put_be64(uint8_t* p, uint64_t v) noexcept nogil:
    put_be32(p, <uint32_t>(v >> 32))
    put_be32(p + 4, <uint32_t>(v & 0xFFFFFFFFULL))


cdef inline uint64_t monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


cdef inline int hist_index(uint64_t v) noexcept nogil:
    """The histogram bucket of ``v`` ns: exact below HIST_SUB, then HIST_SUB a power of two."""
    cdef int msb
    if v < HIST_SUB:
        return <int>v
    msb = 63 - __builtin_clzll(v)
    if msb > HIST_MAX_MSB:
        return HIST_BUCKETS - 1
    return (msb - HIST_BITS + 1) * HIST_SUB + <int>((v >> (msb - HIST_BITS)) & (HIST_SUB - 1))


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


def histogram_bounds():
    """The lower bound, in ns, of each histogram bucket (the next one's is its upper bound)."""
    cdef int i, m, sub
    out = np.zeros(HIST_BUCKETS + 1, dtype=np.float64)
    for i in range(HIST_BUCKETS + 1):
        if i < HIST_SUB:
            out[i] = i
        else:
            m = i // HIST_SUB + HIST_BITS - 1
            sub = i % HIST_SUB
            out[i] = (HIST_SUB + sub) * 2.0 ** (m - HIST_BITS)
    return out


cdef class LoadCounter:
    """Arrivals of the harness's packets, per session, with a round-trip histogram."""

    cdef readonly int n_sessions
    cdef readonly object sessions     # LOAD_SESSION_DTYPE, one row a session index
    cdef readonly object totals       # uint64, LOAD_TOTALS
    cdef readonly object histogram    # uint64, HIST_BUCKETS: echoes by round-trip time
    cdef load_session_t* rows
    cdef uint64_t* tot
    cdef uint64_t* hist

    def __cinit__(self, int n_sessions):
        if not 1 <= n_sessions <= 16_777_216:
            raise ValueError("n_sessions is 1..16777216")
        self.n_sessions = n_sessions
        self.sessions = np.zeros(n_sessions, dtype=LOAD_SESSION_DTYPE)
        self.totals = np.zeros(N_TOTALS, dtype=np.uint64)
        self.histogram = np.zeros(HIST_BUCKETS, dtype=np.uint64)
        self.rows = <load_session_t*><size_t>self.sessions.ctypes.data
        self.tot = <uint64_t*><size_t>self.totals.ctypes.data
        self.hist = <uint64_t*><size_t>self.histogram.ctypes.data

    def reset(self):
        """Zero every count (between the steps of a run)."""
        self.sessions[:] = 0
        self.totals[:] = 0
        self.histogram[:] = 0

    def count(self, data, bint ip=True):
        """Count one packet (tests; the loops call the C methods): an IPv4 packet, else a payload."""
        cdef const uint8_t[:] view = data
        if view.shape[0] == 0:
            return self.count_payload(NULL, 0, 0, monotonic_ns())
        if ip:
            return self.count_ip(&view[0], <uint32_t>view.shape[0], monotonic_ns())
        return self.count_payload(&view[0], <uint32_t>view.shape[0], <uint32_t>view.shape[0] + 28,
                                  monotonic_ns())

    cdef int count_ip(self, const uint8_t* p, uint32_t n, uint64_t now) noexcept nogil:
        """An IPv4 packet from a session: count it if it is UDP with our payload."""
        cdef uint32_t ihl
        if n < 20 or p[0] >> 4 != 4 or p[9] != 17:
            self.tot[TOT_FOREIGN] += 1
            return 0
        ihl = (p[0] & 0x0F) * 4
        if ihl < 20 or n < ihl + 8:
            self.tot[TOT_FOREIGN] += 1
            return 0
        return self.count_payload(p + ihl + 8, n - ihl - 8, n, now)

    cdef int count_payload(self, const uint8_t* p, uint32_t n, uint32_t ip_len,
                           uint64_t now) noexcept nogil:
        """A UDP payload of ``ip_len`` octets as IP; returns FLAG_PROBE when it asks for an echo."""
        cdef uint32_t index, seq
        cdef uint8_t flags
        cdef uint64_t sent
        cdef load_session_t* s
        if n < BENCH_HEADER or get_be32(p) != BENCH_MAGIC:
            self.tot[TOT_FOREIGN] += 1
            return 0
        index = get_be32(p + 4)
        flags = p[12]
        if flags & FLAG_ECHO:
            # An echo of one of ours: its time is our clock when the probe left.
            sent = get_be64(p + 16)
            self.tot[TOT_ECHOES] += 1
            self.hist[hist_index(now - sent if now > sent else 0)] += 1
            return 0
        if index >= <uint32_t>self.n_sessions:
            self.tot[TOT_BAD_INDEX] += 1
            return 0
        seq = get_be32(p + 8)
        s = &self.rows[index]
        s.packets += 1
        s.octets += ip_len
        self.tot[TOT_PACKETS] += 1
        self.tot[TOT_OCTETS] += ip_len
        if s.started and seq < s.next_seq:
            s.late += 1
            self.tot[TOT_LATE] += 1
        else:
            s.next_seq = seq + 1
            s.started = 1
        return flags & FLAG_PROBE
