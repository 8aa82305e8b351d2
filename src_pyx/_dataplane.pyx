# cython: language_level=3
"""The compiled data path: session table, receive classification with reordering, send headers.

The rules are those of ``l2tpfast.reference.dataplane``, the pure-Python statement that the
differential tests hold this module to; read that module's docstring first. Here they run on a
whole batch per call with the GIL released, on C arrays:

* the session table: open addressing with linear probing on the key tunnel << 16 | session,
  twice as many buckets as sessions, deletion by backward shift (no tombstones);
* sessions: an array of ``session_t``; per-session counters in a numpy array the caller reads
  in place; drops by reason in another;
* the reorder pool: fixed slots of ``slot_size`` octets shared by all sessions, with their
  metadata in C arrays; a session's held packets form a singly linked list in Ns order, so an
  idle session costs nothing there;
* routes (an address to its session) for the TUN direction: a second open-addressing table
  whose key is the IPv4 address (4 octets) or the IPv6 /64 prefix (the first 8 octets), held in
  one 64-bit word with its length, so a probe is one compare; room for two routes a session
  (IPv4 and IPv6); the packet's destination or its source is looked up, as ``route_by`` says
  (two offsets set once);
* a session's own TUN device (``set_tun``): its descriptor in the session, -1 for the
  forwarder's device; the Forwarder reads it only for the rows it writes to a TUN device;
* the source check (``set_source``): one IPv4 address in the session, 0 when unset, so that a
  session without it pays one compare a packet.

Buffers: the receive buffer, offsets, lengths and sources are the caller's, read during the
call only. Rows that point into the pool stay valid until the next ``process`` or
``release_expired``: the pool slots they use are freed at the start of the next call.
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

import numpy as np


from l2tpfast.wire.constants import DropReason
from l2tpfast.wire.dtypes import ADDRESS_DTYPE, DELIVERY_DTYPE, SESSION_COUNTERS_DTYPE

include "parse.pxi"

# Mirrors l2tpfast.wire.constants.DeliveryAction, DropReason and SessionTarget.
cdef enum:
    ACT_CONTROL = 1
    ACT_TUN = 2
    ACT_SWITCH = 3
    ACT_PPP = 4
    DROP_UNKNOWN_SESSION = 7
    DROP_WRONG_PEER = 8
    DROP_DUPLICATE = 9
    DROP_POOL_FULL = 10
    DROP_SHORT_PPP = 11
    DROP_SPOOFED_SOURCE = 12
    N_DROPS = 13
    TARGET_PPP = 0
    TARGET_TUN = 1
    TARGET_SWITCH = 2
    TARGET_FREE = 0xFF      # not a SessionTarget: marks a free slot of the session array
    # l2tpfast.wire.constants.SessionFlag, and MAX_DATA_HEADER as MAX_HEADER.
    SEQ_TX = 0x01
    SEQ_TX_FOLLOW = 0x02
    ACFC = 0x04
    PFC = 0x08
    MAX_HEADER = 14
    ADDRESS_COMPARED = 19  # addr[16], port, family: the pad octet is not part of an address

cdef uint32_t NO_SLOT = 0xFFFFFFFF


# C twins of the numpy dtypes of l2tpfast/wire/dtypes.py (tests/fastpath check the layouts).
ctypedef packed struct delivery_t:
    uint32_t offset
    uint32_t length
    uint32_t slot
    uint32_t datagram
    uint16_t protocol
    uint8_t action
    uint8_t source

ctypedef packed struct address_t:
    uint8_t addr[16]
    uint16_t port
    uint8_t family
    uint8_t pad

ctypedef packed struct counters_t:
    uint64_t rx_packets
    uint64_t rx_bytes
    uint64_t tx_packets
    uint64_t tx_bytes
    uint32_t out_of_order
    uint32_t duplicates
    uint32_t reorder_timeouts
    uint32_t dropped

# One session: 48 octets. With its counters (48) and two to four buckets (16 to 32) it costs
# 112 to 128 octets. Field order keeps it at 48: peer (20), four 32-bit, four 16-bit, four 8-bit.
# A slot is in use when its target is not TARGET_FREE (the bucket holds the key; the session
# does not need it, and that room holds the TUN descriptor).
ctypedef struct session_t:
    address_t peer
    int32_t tun_fd          # set_tun: the session's own TUN device; -1: the forwarder's
    uint32_t target_index
    int32_t held_head       # first held packet in the pool, -1 when none
    uint32_t source4        # set_source: IPv4 source in network order, as read; 0: no check
    uint16_t peer_tunnel_id
    uint16_t peer_session_id
    uint16_t tx_ns
    uint16_t rx_expected
    uint8_t target          # TARGET_*; TARGET_FREE when the slot is free
    uint8_t flags
    uint8_t rx_started
    uint8_t local_index     # into DataPath.locals: the address our data leaves from; 0: any


cdef inline int seq_diff(uint16_t a, uint16_t b) noexcept nogil:
    """``a - b`` in -32768..32767, as l2tpfast.wire.seqnum.seq_diff."""
    cdef int d = (<int>a - <int>b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


cdef inline uint32_t hash32(uint32_t key) noexcept nogil:
    # A multiplicative mix: IDs are random already, but a table must not rely on it.
    key ^= key >> 16
    key *= 0x45D9F3B
    key ^= key >> 16
    return key


cdef inline bint spoofed(const uint8_t* p, uint32_t n, uint16_t protocol, uint32_t source) noexcept nogil:
    """Whether a TUN-bound packet fails the session's IPv4 source check (``source`` != 0).

    A TUN device without packet information takes the family from the version nibble, not from
    the PPP protocol: what either calls IPv4 must be a whole IPv4 header with ``source`` as its
    source. What neither calls IPv4 (IPv6) passes unchecked."""
    cdef uint32_t found
    if protocol != 0x0021 and (n == 0 or p[0] >> 4 != 4):
        return False
    if n < 20 or p[0] >> 4 != 4:
        return True
    memcpy(&found, p + 12, 4)
    return found != source


cdef inline uint64_t route_key(const uint8_t* p, int n) noexcept nogil:
    """The route key of an IPv4 address (``n`` 4) or an IPv6 /64 prefix (``n`` 8): its octets
    in one word, as memory holds them (opaque: only compared and hashed)."""
    cdef uint64_t k = 0
    memcpy(&k, p, n)
    return k


cdef inline uint64_t route_hash(uint64_t key, int n) noexcept nogil:
    # MurmurHash3's fmix64: prefixes from one pool differ in a few octets only, and every bit of
    # the key must reach the low bits the table uses. The length keeps IPv4 and IPv6 apart.
    key ^= <uint64_t>n << 56
    key ^= key >> 33
    key *= 0xFF51AFD7ED558CCDULL
    key ^= key >> 33
    key *= 0xC4CEB9FE1A85EC53ULL
    key ^= key >> 33
    return key


cdef class DataPath:
    """Session table, receive classification with reordering, and send encapsulation."""

    cdef readonly Py_ssize_t max_sessions
    cdef readonly int reorder_window
    cdef readonly double reorder_timeout
    cdef readonly Py_ssize_t slot_size
    cdef readonly object pool
    cdef readonly object counters
    cdef readonly object drops
    cdef readonly str route_by
    cdef int route_offset4, route_offset6    # of the routed address in an IPv4, IPv6 header
    cdef session_t* sessions
    cdef uint32_t* bucket_keys
    cdef uint32_t* bucket_slots
    cdef uint32_t bucket_mask
    cdef uint32_t* free_slots
    cdef Py_ssize_t n_free_slots
    cdef Py_ssize_t n_sessions
    # Pool metadata, one entry per pool slot.
    cdef Py_ssize_t pool_slots
    cdef uint8_t* pool_data
    cdef int32_t* pool_next
    cdef uint16_t* pool_ns
    cdef uint32_t* pool_len
    cdef uint32_t* pool_payload_len
    cdef uint16_t* pool_protocol
    cdef uint8_t* pool_action
    cdef double* pool_since
    cdef int32_t* free_pool
    cdef Py_ssize_t n_free_pool
    cdef int32_t* release_later
    cdef Py_ssize_t n_release_later
    cdef counters_t* counter_rows
    cdef uint64_t* drop_counts
    # Routes: an IPv4 address or an IPv6 /64 (of the destination or the source, ``route_by``) -> slot.
    cdef uint64_t* route_keys     # route_key() of the bucket's address or prefix
    cdef uint8_t* route_lens      # 0: the bucket is free; 4: IPv4; 8: an IPv6 /64
    cdef uint32_t* route_slot
    cdef uint32_t route_mask
    cdef Py_ssize_t n_routes
    # Local addresses our data leaves from (index 0: let the kernel choose).
    cdef address_t locals[256]
    cdef int n_locals
    # Held by a forwarding loop for a whole batch, and by every method that changes the tables,
    # so that the control plane can add and remove sessions while a loop runs in another thread.
    cdef PyThread_type_lock lock

    def __cinit__(
        self,
        Py_ssize_t max_sessions=65536,
        *,
        Py_ssize_t pool_slots=4096,
        Py_ssize_t slot_size=2048,
        int reorder_window=16,
        double reorder_timeout=0.1,
        str route_by="destination",
    ):
        cdef Py_ssize_t buckets = 16, route_buckets = 16, i
        if route_by == "destination":
            self.route_offset4, self.route_offset6 = 16, 24
        elif route_by == "source":
            self.route_offset4, self.route_offset6 = 12, 8
        else:
            raise ValueError(f"route_by must be 'destination' or 'source', not {route_by!r}")
        self.route_by = route_by
        if max_sessions < 1 or pool_slots < 1 or slot_size < 64 or not 0 <= reorder_window <= 32767:
            raise ValueError("max_sessions, pool_slots >= 1, slot_size >= 64, reorder_window in 0..32767")
        if max_sessions > 0x7FFFFFFF or pool_slots > 0x7FFFFFFF or pool_slots * slot_size > 0xFFFFFFFF:
            raise ValueError("the pool and the table are indexed with 32 bits")
        self.max_sessions = max_sessions
        self.reorder_window = reorder_window
        self.reorder_timeout = reorder_timeout
        self.slot_size = slot_size
        self.pool_slots = pool_slots
        while buckets < 2 * max_sessions:
            buckets *= 2
        self.bucket_mask = <uint32_t>(buckets - 1)
        # Room for two routes a session (an IPv4 address and an IPv6 /64) at half load: 13
        # octets a bucket, 52 to 104 a session.
        while route_buckets < 4 * max_sessions:
            route_buckets *= 2
        self.route_mask = <uint32_t>(route_buckets - 1)
        self.sessions = <session_t*>PyMem_Malloc(max_sessions * sizeof(session_t))
        self.bucket_keys = <uint32_t*>PyMem_Malloc(buckets * sizeof(uint32_t))
        self.bucket_slots = <uint32_t*>PyMem_Malloc(buckets * sizeof(uint32_t))
        self.free_slots = <uint32_t*>PyMem_Malloc(max_sessions * sizeof(uint32_t))
        self.pool_next = <int32_t*>PyMem_Malloc(pool_slots * sizeof(int32_t))
        self.pool_ns = <uint16_t*>PyMem_Malloc(pool_slots * sizeof(uint16_t))
        self.pool_len = <uint32_t*>PyMem_Malloc(pool_slots * sizeof(uint32_t))
        self.pool_payload_len = <uint32_t*>PyMem_Malloc(pool_slots * sizeof(uint32_t))
        self.pool_protocol = <uint16_t*>PyMem_Malloc(pool_slots * sizeof(uint16_t))
        self.pool_action = <uint8_t*>PyMem_Malloc(pool_slots * sizeof(uint8_t))
        self.pool_since = <double*>PyMem_Malloc(pool_slots * sizeof(double))
        self.free_pool = <int32_t*>PyMem_Malloc(pool_slots * sizeof(int32_t))
        self.release_later = <int32_t*>PyMem_Malloc(pool_slots * sizeof(int32_t))
        self.route_keys = <uint64_t*>PyMem_Malloc(route_buckets * sizeof(uint64_t))
        self.route_lens = <uint8_t*>PyMem_Malloc(route_buckets * sizeof(uint8_t))
        self.route_slot = <uint32_t*>PyMem_Malloc(route_buckets * sizeof(uint32_t))
        if (not self.sessions or not self.bucket_keys or not self.bucket_slots or not self.free_slots
                or not self.pool_next or not self.pool_ns or not self.pool_len or not self.pool_payload_len
                or not self.pool_protocol or not self.pool_action or not self.pool_since
                or not self.free_pool or not self.release_later or not self.route_keys
                or not self.route_lens or not self.route_slot):
            raise MemoryError()
        memset(self.sessions, 0, max_sessions * sizeof(session_t))
        for i in range(max_sessions):
            self.sessions[i].held_head = -1  # free slots hold nothing either
            self.sessions[i].target = TARGET_FREE
        memset(self.bucket_keys, 0, buckets * sizeof(uint32_t))
        memset(self.route_lens, 0, route_buckets * sizeof(uint8_t))
        # Slots are handed out lowest first, as the reference does.
        for i in range(max_sessions):
            self.free_slots[i] = <uint32_t>(max_sessions - 1 - i)
        self.n_free_slots = max_sessions
        for i in range(pool_slots):
            self.free_pool[i] = <int32_t>(pool_slots - 1 - i)
        self.n_free_pool = pool_slots
        self.n_release_later = 0
        self.n_sessions = 0
        self.n_routes = 0
        self.n_locals = 1
        memset(&self.locals[0], 0, sizeof(address_t))
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()
        # The numpy arrays own the memory Python reads; we keep raw pointers into them, valid
        # as long as self holds the arrays (readonly attributes: never rebound).
        self.pool = np.zeros((pool_slots, slot_size), dtype=np.uint8)
        self.counters = np.zeros(max_sessions, dtype=SESSION_COUNTERS_DTYPE)
        self.drops = np.zeros(max(DropReason) + 1, dtype=np.uint64)
        assert self.counters.dtype.itemsize == sizeof(counters_t)
        assert len(self.drops) == N_DROPS
        self.pool_data = <uint8_t*><size_t>self.pool.ctypes.data
        self.counter_rows = <counters_t*><size_t>self.counters.ctypes.data
        self.drop_counts = <uint64_t*><size_t>self.drops.ctypes.data

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)
        PyMem_Free(self.sessions)
        PyMem_Free(self.bucket_keys)
        PyMem_Free(self.bucket_slots)
        PyMem_Free(self.free_slots)
        PyMem_Free(self.pool_next)
        PyMem_Free(self.pool_ns)
        PyMem_Free(self.pool_len)
        PyMem_Free(self.pool_payload_len)
        PyMem_Free(self.pool_protocol)
        PyMem_Free(self.pool_action)
        PyMem_Free(self.pool_since)
        PyMem_Free(self.free_pool)
        PyMem_Free(self.release_later)
        PyMem_Free(self.route_keys)
        PyMem_Free(self.route_lens)
        PyMem_Free(self.route_slot)

    # --- the session table ------------------------------------------------------------------

    cdef inline uint32_t find(self, uint32_t key) noexcept nogil:
        cdef uint32_t b = hash32(key) & self.bucket_mask
        while self.bucket_keys[b] != 0:
            if self.bucket_keys[b] == key:
                return self.bucket_slots[b]
            b = (b + 1) & self.bucket_mask
        return NO_SLOT

    cdef inline void lock_tables(self) noexcept:
        with nogil:
            PyThread_acquire_lock(self.lock, WAIT_LOCK)

    cdef inline void unlock_tables(self) noexcept:
        PyThread_release_lock(self.lock)

    def add_session(
        self,
        int local_tunnel_id,
        int local_session_id,
        int peer_tunnel_id,
        int peer_session_id,
        object peer,
        *,
        int target=TARGET_PPP,
        Py_ssize_t target_index=0,
        int flags=0,
        object local=None,
    ):
        """Install a session; ``peer`` (and ``local``, the address our data leaves from) are
        ADDRESS_DTYPE scalars. Returns its slot."""
        self.lock_tables()
        try:
            return self._add_session(local_tunnel_id, local_session_id, peer_tunnel_id, peer_session_id,
                                     peer, target, target_index, flags, local)
        finally:
            self.unlock_tables()

    cdef int local_index(self, object local) except -1:
        cdef bytes raw
        cdef int i
        if local is None:
            return 0
        raw = np.asarray(local, dtype=ADDRESS_DTYPE).tobytes()
        for i in range(1, self.n_locals):
            if memcmp(&self.locals[i], <const char*>raw, ADDRESS_COMPARED) == 0:
                return i
        if self.n_locals == 256:  # session_t.local_index is 8 bits
            raise ValueError("more than 255 local addresses")
        memcpy(&self.locals[self.n_locals], <const char*>raw, sizeof(address_t))
        self.n_locals += 1
        return self.n_locals - 1

    cdef object _add_session(
        self, int local_tunnel_id, int local_session_id, int peer_tunnel_id, int peer_session_id,
        object peer, int target, Py_ssize_t target_index, int flags, object local,
    ):
        cdef uint32_t key, slot, b
        cdef session_t* s
        cdef bytes raw
        cdef int local_index
        if not 1 <= local_tunnel_id <= 0xFFFF or not 1 <= local_session_id <= 0xFFFF:
            raise ValueError("tunnel and session IDs are 1..65535")
        if target != TARGET_PPP and target != TARGET_TUN and target != TARGET_SWITCH:
            raise ValueError(f"target is a SessionTarget (0, 1 or 2), not {target}")
        key = (<uint32_t>local_tunnel_id << 16) | <uint32_t>local_session_id
        if self.find(key) != NO_SLOT:
            raise ValueError(f"session {local_tunnel_id}:{local_session_id} is already in the table")
        if self.n_free_slots == 0:
            raise ValueError(f"the session table is full ({self.max_sessions} sessions)")
        raw = np.asarray(peer, dtype=ADDRESS_DTYPE).tobytes()
        local_index = self.local_index(local)
        self.n_free_slots -= 1
        slot = self.free_slots[self.n_free_slots]
        s = &self.sessions[slot]
        memset(s, 0, sizeof(session_t))
        memcpy(&s.peer, <const char*>raw, sizeof(address_t))
        s.tun_fd = -1
        s.peer_tunnel_id = <uint16_t>peer_tunnel_id
        s.peer_session_id = <uint16_t>peer_session_id
        s.target = <uint8_t>target
        s.target_index = <uint32_t>target_index
        s.flags = <uint8_t>flags
        s.held_head = -1
        s.local_index = <uint8_t>local_index
        memset(&self.counter_rows[slot], 0, sizeof(counters_t))
        b = hash32(key) & self.bucket_mask
        while self.bucket_keys[b] != 0:
            b = (b + 1) & self.bucket_mask
        self.bucket_keys[b] = key
        self.bucket_slots[b] = slot
        self.n_sessions += 1
        return slot

    def remove_session(self, int local_tunnel_id, int local_session_id):
        """Take a session out; its held packets are dropped. False if it was not there."""
        self.lock_tables()
        try:
            return self._remove_session(local_tunnel_id, local_session_id)
        finally:
            self.unlock_tables()

    cdef bint _remove_session(self, int local_tunnel_id, int local_session_id):
        cdef uint32_t key = (
            (<uint32_t>(local_tunnel_id & 0xFFFF) << 16) | <uint32_t>(local_session_id & 0xFFFF)
        )
        cdef uint32_t b = hash32(key) & self.bucket_mask, j, home
        cdef uint32_t slot
        cdef int32_t p, nxt
        cdef session_t* s
        while self.bucket_keys[b] != key:
            if self.bucket_keys[b] == 0:
                return False
            b = (b + 1) & self.bucket_mask
        slot = self.bucket_slots[b]
        # Backward-shift deletion keeps every probe chain unbroken without tombstones.
        self.bucket_keys[b] = 0
        j = b
        while True:
            j = (j + 1) & self.bucket_mask
            if self.bucket_keys[j] == 0:
                break
            home = hash32(self.bucket_keys[j]) & self.bucket_mask
            # Move j back to b unless its home lies cyclically in (b, j].
            if (j > b and (home <= b or home > j)) or (j < b and (home <= b and home > j)):
                self.bucket_keys[b] = self.bucket_keys[j]
                self.bucket_slots[b] = self.bucket_slots[j]
                self.bucket_keys[j] = 0
                b = j
        s = &self.sessions[slot]
        p = s.held_head
        while p >= 0:
            nxt = self.pool_next[p]
            self.free_pool[self.n_free_pool] = p
            self.n_free_pool += 1
            p = nxt
        memset(s, 0, sizeof(session_t))
        s.held_head = -1
        s.target = TARGET_FREE
        self.free_slots[self.n_free_slots] = slot
        self.n_free_slots += 1
        self.n_sessions -= 1
        self.drop_routes_to(slot)
        return True

    def lookup(self, int local_tunnel_id, int local_session_id):
        """The slot of a session, or -1."""
        cdef uint32_t slot = self.find(
            (<uint32_t>(local_tunnel_id & 0xFFFF) << 16) | <uint32_t>(local_session_id & 0xFFFF)
        )
        return -1 if slot == NO_SLOT else <Py_ssize_t>slot

    cdef session_t* used(self, Py_ssize_t slot) except NULL:
        if not 0 <= slot < self.max_sessions or self.sessions[slot].target == TARGET_FREE:
            raise ValueError(f"slot {slot} is empty")
        return &self.sessions[slot]

    def set_flags(self, Py_ssize_t slot, int flags):
        self.lock_tables()
        try:
            self.used(slot).flags = <uint8_t>flags
        finally:
            self.unlock_tables()

    def get_flags(self, Py_ssize_t slot):
        return self.used(slot).flags

    def set_source(self, Py_ssize_t slot, object address):
        """Drop IPv4 packets for the TUN device whose source is not ``address`` (4 octets);
        None ends the check. IPv6 sources are not checked."""
        cdef uint32_t raw = 0
        if address is not None:
            address = bytes(address)
            if len(address) != 4:
                raise ValueError("the source check takes an IPv4 address: 4 octets (IPv6 is not checked)")
            if address == bytes(4):
                raise ValueError("0.0.0.0 is no subscriber's address; None ends the check")
            memcpy(&raw, <const char*>address, 4)
        self.lock_tables()
        try:
            self.used(slot).source4 = raw
        finally:
            self.unlock_tables()

    def get_source(self, Py_ssize_t slot):
        """The IPv4 address ``set_source`` checks for, or None."""
        cdef uint32_t raw = self.used(slot).source4
        return None if raw == 0 else (<const char*>&raw)[:4]

    def set_tun(self, Py_ssize_t slot, Py_ssize_t fd):
        """Write this session's packets for a TUN device to ``fd``, its own TUN device, rather than
        to the Forwarder's; -1 goes back to the Forwarder's. The caller keeps ``fd`` open until it
        sets -1 or removes the session."""
        if not -1 <= fd <= 0x7FFFFFFF:
            raise ValueError(f"fd is a file descriptor (0 or more) or -1, not {fd}")
        self.lock_tables()
        try:
            self.used(slot).tun_fd = <int32_t>fd
        finally:
            self.unlock_tables()

    def get_tun(self, Py_ssize_t slot):
        """The session's own TUN descriptor (``set_tun``), or -1 when it uses the Forwarder's."""
        return self.used(slot).tun_fd

    def session_count(self):
        return self.n_sessions

    def held_count(self):
        """Packets held for reordering in all sessions."""
        return self.pool_slots - self.n_free_pool - self.n_release_later

    def memory_per_session(self):
        """Octets of table state per session slot: session, counters and hash buckets."""
        return (
            sizeof(session_t) + sizeof(counters_t)
            + (<double>(self.bucket_mask + 1) * 2 * sizeof(uint32_t)) / self.max_sessions
        )

    # --- receive ----------------------------------------------------------------------------

    cdef inline void recycle(self) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.n_release_later):
            self.free_pool[self.n_free_pool] = self.release_later[i]
            self.n_free_pool += 1
        self.n_release_later = 0

    cdef inline Py_ssize_t deliver(
        self, delivery_t* out, Py_ssize_t n_out, Py_ssize_t cap, uint32_t offset, uint32_t length,
        uint32_t slot, uint32_t index, uint16_t protocol, uint8_t action, uint8_t source,
        uint32_t payload_length,
    ) noexcept nogil:
        cdef delivery_t* row
        cdef counters_t* c = &self.counter_rows[slot]
        if n_out >= cap:
            return -1
        row = &out[n_out]
        row.offset = offset
        row.length = length
        row.slot = slot
        row.datagram = index
        row.protocol = protocol
        row.action = action
        row.source = source
        c.rx_packets += 1
        c.rx_bytes += payload_length
        return n_out + 1

    cdef inline Py_ssize_t emit_held(
        self, int32_t p, delivery_t* out, Py_ssize_t n_out, Py_ssize_t cap, uint32_t slot, uint32_t index
    ) noexcept nogil:
        n_out = self.deliver(
            out, n_out, cap, <uint32_t>(p * self.slot_size), self.pool_len[p], slot, index,
            self.pool_protocol[p], self.pool_action[p], 1, self.pool_payload_len[p],
        )
        self.release_later[self.n_release_later] = p
        self.n_release_later += 1
        return n_out

    cdef inline Py_ssize_t drain(
        self, session_t* s, delivery_t* out, Py_ssize_t n_out, Py_ssize_t cap, uint32_t slot, uint32_t index,
        bint all_of_them,
    ) noexcept nogil:
        """Deliver held packets that now follow in order (or all of them, giving up gaps)."""
        cdef int32_t p
        while s.held_head >= 0 and n_out >= 0:
            p = s.held_head
            if not all_of_them and self.pool_ns[p] != s.rx_expected:
                break
            s.held_head = self.pool_next[p]
            n_out = self.emit_held(p, out, n_out, cap, slot, index)
            s.rx_expected = <uint16_t>(self.pool_ns[p] + 1)
        return n_out

    cdef Py_ssize_t receive_one(
        self, const uint8_t* base, uint32_t start, uint32_t length, const address_t* source,
        uint32_t index, double now, delivery_t* out, Py_ssize_t n_out, Py_ssize_t cap,
    ) noexcept nogil:
        cdef header_row_t h
        cdef int status = parse_one(base + start, length, &h)
        cdef uint32_t slot, pos, end, key
        cdef uint16_t protocol
        cdef uint8_t action
        cdef session_t* s
        cdef counters_t* c
        cdef int distance
        cdef int32_t p, q, prev
        if status != STATUS_OK:
            self.drop_counts[status] += 1
            return n_out
        if h.is_control:
            if n_out >= cap:
                return -1
            out[n_out].offset = start
            out[n_out].length = length
            out[n_out].slot = 0
            out[n_out].datagram = index
            out[n_out].protocol = 0
            out[n_out].action = ACT_CONTROL
            out[n_out].source = 0
            return n_out + 1
        key = (<uint32_t>h.tunnel_id << 16) | h.session_id
        slot = self.find(key) if key & 0xFFFF and key >> 16 else NO_SLOT
        if slot == NO_SLOT:
            self.drop_counts[DROP_UNKNOWN_SESSION] += 1
            return n_out
        s = &self.sessions[slot]
        c = &self.counter_rows[slot]
        if memcmp(&s.peer, source, ADDRESS_COMPARED) != 0:
            self.drop_counts[DROP_WRONG_PEER] += 1
            c.dropped += 1
            return n_out
        pos = start + h.payload_offset
        end = pos + h.payload_length
        # PPP framing (RFC 1662 3.2, RFC 1661 6.5, 6.6): FF 03 optional per packet; PFC.
        if end - pos >= 2 and base[pos] == 0xFF and base[pos + 1] == 0x03:
            pos += 2
        if end - pos < 1 or (not (base[pos] & 1) and end - pos < 2):
            self.drop_counts[DROP_SHORT_PPP] += 1
            c.dropped += 1
            return n_out
        if base[pos] & 1:
            protocol = base[pos]
            pos += 1
        else:
            protocol = load_be16(base + pos)
            pos += 2
        if s.target == TARGET_SWITCH:
            action = ACT_SWITCH
        elif s.target == TARGET_TUN and (protocol == 0x0021 or protocol == 0x0057):
            action = ACT_TUN
        else:
            action = ACT_PPP
        # Anti-spoofing (BCP 38): one compare when the session has no source check.
        if s.source4 != 0 and action == ACT_TUN and spoofed(base + pos, end - pos, protocol, s.source4):
            self.drop_counts[DROP_SPOOFED_SOURCE] += 1
            c.dropped += 1
            return n_out
        if (h.flags & HDR_FLAG_S) and (s.flags & SEQ_TX_FOLLOW):
            s.flags |= SEQ_TX  # RFC 2661 5.4: the LAC follows the LNS's S bit
        if not (h.flags & HDR_FLAG_S) or (h.flags & 0x0100):
            return self.deliver(out, n_out, cap, pos, end - pos, slot, index, protocol, action, 0,
                                h.payload_length)
        # RFC 2661 5.4: sequenced data.
        if not s.rx_started:
            s.rx_started = 1
            s.rx_expected = h.ns
        distance = seq_diff(h.ns, s.rx_expected)
        if distance < 0:
            self.drop_counts[DROP_DUPLICATE] += 1
            c.duplicates += 1
            return n_out
        if distance == 0:
            # Held packets are always ahead of rx_expected, so this one cannot be among them.
            n_out = self.deliver(out, n_out, cap, pos, end - pos, slot, index, protocol, action, 0,
                                 h.payload_length)
            s.rx_expected = <uint16_t>(h.ns + 1)
            if n_out < 0 or s.held_head < 0:
                return n_out
            return self.drain(s, out, n_out, cap, slot, index, False)
        p = s.held_head
        while p >= 0:
            if self.pool_ns[p] == h.ns:
                self.drop_counts[DROP_DUPLICATE] += 1
                c.duplicates += 1
                return n_out
            p = self.pool_next[p]
        c.out_of_order += 1
        if distance >= self.reorder_window:
            n_out = self.drain(s, out, n_out, cap, slot, index, True)
            if n_out < 0:
                return n_out
            n_out = self.deliver(out, n_out, cap, pos, end - pos, slot, index, protocol, action, 0,
                                 h.payload_length)
            s.rx_expected = <uint16_t>(h.ns + 1)
            return n_out
        if self.n_free_pool == 0 or end - pos > <uint32_t>self.slot_size:
            self.drop_counts[DROP_POOL_FULL] += 1
            c.dropped += 1
            return n_out
        self.n_free_pool -= 1
        p = self.free_pool[self.n_free_pool]
        memcpy(self.pool_data + p * self.slot_size, base + pos, end - pos)
        self.pool_ns[p] = h.ns
        self.pool_len[p] = end - pos
        self.pool_payload_len[p] = h.payload_length
        self.pool_protocol[p] = protocol
        self.pool_action[p] = action
        self.pool_since[p] = now
        # Insert in Ns order relative to the next expected.
        prev = -1
        q = s.held_head
        while q >= 0 and seq_diff(self.pool_ns[q], s.rx_expected) < distance:
            prev = q
            q = self.pool_next[q]
        self.pool_next[p] = q
        if prev < 0:
            s.held_head = p
        else:
            self.pool_next[prev] = p
        return n_out

    cdef Py_ssize_t process_c(
        self, const uint8_t* base, const uint32_t* offsets, const uint32_t* lengths,
        const address_t* sources, Py_ssize_t count, double now, delivery_t* rows, Py_ssize_t cap,
    ) noexcept nogil:
        """The batch loop of ``process``; -1 when ``rows`` is too small. The caller holds the lock."""
        cdef Py_ssize_t i, n_out = 0
        self.recycle()
        for i in range(count):
            n_out = self.receive_one(base, offsets[i], lengths[i], &sources[i], <uint32_t>i, now,
                                     rows, n_out, cap)
            if n_out < 0:
                break
        return n_out

    def process(
        self,
        const unsigned char[::1] buf not None,
        const uint32_t[::1] offsets not None,
        const uint32_t[::1] lengths not None,
        object sources not None,
        object out not None,
        double now,
        Py_ssize_t count=-1,
    ):
        """Classify ``count`` datagrams; write deliveries into ``out`` (DELIVERY_DTYPE); return how many."""
        cdef Py_buffer src_view, out_view
        cdef Py_ssize_t i, n_out = 0, cap, buf_len = buf.shape[0]
        cdef const uint8_t* base
        if getattr(sources, "dtype", None) != ADDRESS_DTYPE or getattr(out, "dtype", None) != DELIVERY_DTYPE:
            raise ValueError("sources must be ADDRESS_DTYPE and out DELIVERY_DTYPE")
        if count == -1:
            count = min(offsets.shape[0], lengths.shape[0], len(sources))
        if count < 0 or count > offsets.shape[0] or count > lengths.shape[0] or count > len(sources):
            raise ValueError("count exceeds offsets, lengths or sources")
        if buf_len > 0xFFFFFFFF:
            raise ValueError("keep the receive buffer under 4 GiB (32-bit offsets)")
        for i in range(count):
            if <Py_ssize_t>offsets[i] + lengths[i] > buf_len:
                raise ValueError(f"datagram {i} runs past the end of buf")
        if count == 0:
            with nogil:
                PyThread_acquire_lock(self.lock, WAIT_LOCK)
                self.recycle()
                PyThread_release_lock(self.lock)
            return 0
        PyObject_GetBuffer(sources, &src_view, PyBUF_C_CONTIGUOUS)
        try:
            PyObject_GetBuffer(out, &out_view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
            try:
                cap = out_view.shape[0] if out_view.ndim == 1 else 0
                base = &buf[0] if buf_len > 0 else NULL
                with nogil:
                    PyThread_acquire_lock(self.lock, WAIT_LOCK)
                    n_out = self.process_c(base, &offsets[0], &lengths[0], <const address_t*>src_view.buf,
                                           count, now, <delivery_t*>out_view.buf, cap)
                    PyThread_release_lock(self.lock)
                if n_out < 0:
                    raise ValueError(f"out has room for {cap} rows, more needed")
                return n_out
            finally:
                PyBuffer_Release(&out_view)
        finally:
            PyBuffer_Release(&src_view)

    cdef Py_ssize_t release_c(self, double now, delivery_t* rows, Py_ssize_t cap) noexcept nogil:
        """The loop of ``release_expired``; -1 when ``rows`` is too small. The caller holds the lock."""
        cdef Py_ssize_t slot, n_out = 0
        cdef session_t* s
        cdef int32_t p
        cdef double oldest
        self.recycle()
        if self.n_free_pool + self.n_release_later == self.pool_slots:
            return 0  # nothing held anywhere: no need to visit the sessions
        for slot in range(self.max_sessions):
            s = &self.sessions[slot]
            if s.held_head < 0:
                continue
            oldest = self.pool_since[s.held_head]
            p = self.pool_next[s.held_head]
            while p >= 0:
                if self.pool_since[p] < oldest:
                    oldest = self.pool_since[p]
                p = self.pool_next[p]
            if now - oldest < self.reorder_timeout:
                continue
            self.counter_rows[slot].reorder_timeouts += 1
            s.rx_expected = self.pool_ns[s.held_head]
            n_out = self.drain(s, rows, n_out, cap, <uint32_t>slot, 0, False)
            if n_out < 0:
                break
        return n_out

    def release_expired(self, object out not None, double now):
        """Release held packets older than ``reorder_timeout``: the gap before them is lost."""
        cdef Py_buffer out_view
        cdef Py_ssize_t n_out = 0, cap
        if getattr(out, "dtype", None) != DELIVERY_DTYPE:
            raise ValueError("out must be DELIVERY_DTYPE")
        PyObject_GetBuffer(out, &out_view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
        try:
            cap = out_view.shape[0] if out_view.ndim == 1 else 0
            with nogil:
                PyThread_acquire_lock(self.lock, WAIT_LOCK)
                n_out = self.release_c(now, <delivery_t*>out_view.buf, cap)
                PyThread_release_lock(self.lock)
            if n_out < 0:
                raise ValueError(f"out has room for {cap} rows, more needed")
            return n_out
        finally:
            PyBuffer_Release(&out_view)

    def next_expiry(self):
        """When the oldest held packet times out, or None."""
        cdef Py_ssize_t slot
        cdef int32_t p
        cdef double oldest = -1.0
        for slot in range(self.max_sessions):
            p = self.sessions[slot].held_head
            while p >= 0:
                if oldest < 0 or self.pool_since[p] < oldest:
                    oldest = self.pool_since[p]
                p = self.pool_next[p]
        return None if oldest < 0 else oldest + self.reorder_timeout

    # --- send -------------------------------------------------------------------------------

    def encapsulate(
        self,
        const uint32_t[::1] slots not None,
        const uint32_t[::1] protocols not None,
        const uint32_t[::1] lengths not None,
        uint8_t[:, ::1] headers not None,
        uint8_t[::1] header_lengths not None,
        Py_ssize_t count=-1,
    ):
        """Write the L2TP data header and PPP framing for each payload; return how many were done."""
        cdef Py_ssize_t i, done = 0
        cdef int n
        if count == -1:
            count = min(slots.shape[0], protocols.shape[0], lengths.shape[0])
        if headers.shape[1] < MAX_HEADER:
            raise ValueError(f"headers must be uint8 of shape (n, >= {MAX_HEADER})")
        if (count < 0 or count > slots.shape[0] or count > protocols.shape[0] or count > lengths.shape[0]
                or count > headers.shape[0] or count > header_lengths.shape[0]):
            raise ValueError("count exceeds an input or output")
        with nogil:
            PyThread_acquire_lock(self.lock, WAIT_LOCK)
            for i in range(count):
                n = self.encap_one(slots[i], protocols[i], lengths[i], &headers[i, 0])
                header_lengths[i] = <uint8_t>n
                if n:
                    done += 1
            PyThread_release_lock(self.lock)
        return done

    cdef inline int encap_one(
        self, uint32_t slot, uint32_t protocol, uint32_t length, uint8_t* h
    ) noexcept nogil:
        """Write one payload's header into ``h`` (MAX_HEADER octets); its length, 0 if no session."""
        cdef session_t* s
        cdef int n, l2tp_len
        cdef counters_t* c
        if slot >= <uint32_t>self.max_sessions or self.sessions[slot].target == TARGET_FREE:
            return 0
        s = &self.sessions[slot]
        h[0] = 0x08 if s.flags & SEQ_TX else 0x00
        h[1] = 0x02
        h[2] = s.peer_tunnel_id >> 8
        h[3] = s.peer_tunnel_id & 0xFF
        h[4] = s.peer_session_id >> 8
        h[5] = s.peer_session_id & 0xFF
        n = 6
        if s.flags & SEQ_TX:
            h[6] = s.tx_ns >> 8
            h[7] = s.tx_ns & 0xFF
            h[8] = 0  # Nr is reserved in data messages (RFC 2661 3.1)
            h[9] = 0
            s.tx_ns += 1
            n = 10
        l2tp_len = n
        # RFC 1661 6.6: "The Address and Control fields MUST NOT be compressed when sending any
        # LCP packet." (6.5 says the same of the Protocol field; 0xC021 cannot be compressed.)
        if not (s.flags & ACFC) or protocol == 0xC021:
            h[n] = 0xFF
            h[n + 1] = 0x03
            n += 2
        if (s.flags & PFC) and protocol < 0x100 and (protocol & 1):
            h[n] = <uint8_t>protocol
            n += 1
        else:
            h[n] = (protocol >> 8) & 0xFF
            h[n + 1] = protocol & 0xFF
            n += 2
        c = &self.counter_rows[slot]
        c.tx_packets += 1
        c.tx_bytes += <uint64_t>(n - l2tp_len) + length
        return n

    # --- routes -------------------------------------------------------------------------------

    cdef inline uint32_t route_find(self, const uint8_t* addr, int n) noexcept nogil:
        """The bucket of the route for ``addr`` (``n`` 4: an IPv4 address; 8: an IPv6 /64 prefix)."""
        cdef uint64_t key = route_key(addr, n)
        cdef uint32_t b = <uint32_t>route_hash(key, n) & self.route_mask
        while self.route_lens[b] != 0:
            if self.route_keys[b] == key and self.route_lens[b] == n:
                return b
            b = (b + 1) & self.route_mask
        return NO_SLOT

    def route_add(self, bytes address not None, Py_ssize_t slot):
        """Packets to (``route_by="source"``: from) ``address`` go to the session in ``slot``.

        ``address`` is an IPv4 address (4 octets, a /32) or an IPv6 address (16 octets) whose
        /64 is routed: the last 8 octets (the interface identifier) are ignored, because the
        subscriber picks its own identifiers in the prefix it was given (RFC 4862 5.5.3).
        """
        self.lock_tables()
        try:
            self._route_add(address, slot)
        finally:
            self.unlock_tables()

    cdef _route_add(self, bytes address, Py_ssize_t slot):
        cdef int n = len(address)
        cdef const uint8_t* a = <const uint8_t*>address
        cdef uint32_t b
        if n != 4 and n != 16:
            raise ValueError("an IPv4 or IPv6 address: 4 or 16 octets")
        if n == 16:
            n = 8  # the /64
        self.used(slot)
        b = self.route_find(a, n)
        if b != NO_SLOT:
            self.route_slot[b] = <uint32_t>slot
            return
        if self.n_routes + 1 > (self.route_mask + 1) // 2:
            raise ValueError("the route table is full")
        b = <uint32_t>route_hash(route_key(a, n), n) & self.route_mask
        while self.route_lens[b] != 0:
            b = (b + 1) & self.route_mask
        self.route_keys[b] = route_key(a, n)
        self.route_lens[b] = <uint8_t>n
        self.route_slot[b] = <uint32_t>slot
        self.n_routes += 1

    cdef void route_delete_bucket(self, uint32_t b) noexcept nogil:
        cdef uint32_t j, home
        self.route_lens[b] = 0
        self.n_routes -= 1
        j = b
        while True:
            j = (j + 1) & self.route_mask
            if self.route_lens[j] == 0:
                break
            home = <uint32_t>route_hash(self.route_keys[j], self.route_lens[j]) & self.route_mask
            # Move j back to b unless its home lies cyclically in (b, j].
            if (j > b and (home <= b or home > j)) or (j < b and (home <= b and home > j)):
                self.route_keys[b] = self.route_keys[j]
                self.route_lens[b] = self.route_lens[j]
                self.route_slot[b] = self.route_slot[j]
                self.route_lens[j] = 0
                b = j

    def route_del(self, bytes address not None):
        """Remove the route of ``address`` (an IPv6 address removes its /64); False if none."""
        self.lock_tables()
        try:
            return self._route_del(address)
        finally:
            self.unlock_tables()

    cdef bint _route_del(self, bytes address):
        cdef int n = len(address)
        cdef uint32_t b
        if n != 4 and n != 16:
            return False
        b = self.route_find(<const uint8_t*>address, 4 if n == 4 else 8)
        if b == NO_SLOT:
            return False
        self.route_delete_bucket(b)
        return True

    cdef void drop_routes_to(self, uint32_t slot) noexcept nogil:
        cdef uint32_t b = 0
        if self.n_routes == 0:
            return
        while b <= self.route_mask:
            if self.route_lens[b] != 0 and self.route_slot[b] == slot:
                self.route_delete_bucket(b)  # may shift a later entry into b: look at b again
                continue
            b += 1

    def route_batch(
        self,
        const unsigned char[::1] buf not None,
        const uint32_t[::1] offsets not None,
        const uint32_t[::1] lengths not None,
        uint32_t[::1] slots not None,
        Py_ssize_t count=-1,
    ):
        """For each IP packet, the slot its destination (or source, ``route_by``) routes to
        (0xFFFFFFFF when none); returns how many found a session."""
        cdef Py_ssize_t i, found = 0, buf_len = buf.shape[0]
        cdef uint32_t start, length, b, slot
        cdef const uint8_t* p
        if count == -1:
            count = min(offsets.shape[0], lengths.shape[0])
        if count < 0 or count > offsets.shape[0] or count > lengths.shape[0] or count > slots.shape[0]:
            raise ValueError("count exceeds an input or output")
        for i in range(count):
            if <Py_ssize_t>offsets[i] + lengths[i] > buf_len:
                raise ValueError(f"packet {i} runs past the end of buf")
        with nogil:
            for i in range(count):
                start = offsets[i]
                length = lengths[i]
                p = &buf[start] if length > 0 else NULL
                slot = NO_SLOT
                if length >= 20 and p[0] >> 4 == 4:
                    b = self.route_find(p + self.route_offset4, 4)
                    if b != NO_SLOT:
                        slot = self.route_slot[b]
                elif length >= 40 and p[0] >> 4 == 6:
                    b = self.route_find(p + self.route_offset6, 8)  # the /64
                    if b != NO_SLOT:
                        slot = self.route_slot[b]
                slots[i] = slot
                if slot != NO_SLOT:
                    found += 1
        return found


def _layouts():
    """Sizes and field offsets of the C structs that mirror numpy dtypes (tests/fastpath)."""
    cdef delivery_t d
    cdef address_t a
    cdef counters_t c
    cdef char* bd = <char*>&d
    cdef char* ba = <char*>&a
    cdef char* bc = <char*>&c
    return {
        "delivery": {
            "itemsize": sizeof(delivery_t), "offset": <char*>&d.offset - bd, "length": <char*>&d.length - bd,
            "slot": <char*>&d.slot - bd, "datagram": <char*>&d.datagram - bd,
            "protocol": <char*>&d.protocol - bd, "action": <char*>&d.action - bd,
            "source": <char*>&d.source - bd,
        },
        "address": {
            "itemsize": sizeof(address_t), "addr": <char*>&a.addr - ba, "port": <char*>&a.port - ba,
            "family": <char*>&a.family - ba, "pad": <char*>&a.pad - ba,
        },
        "counters": {
            "itemsize": sizeof(counters_t), "rx_packets": <char*>&c.rx_packets - bc,
            "rx_bytes": <char*>&c.rx_bytes - bc, "tx_packets": <char*>&c.tx_packets - bc,
            "tx_bytes": <char*>&c.tx_bytes - bc, "out_of_order": <char*>&c.out_of_order - bc,
            "duplicates": <char*>&c.duplicates - bc, "reorder_timeouts": <char*>&c.reorder_timeouts - bc,
            "dropped": <char*>&c.dropped - bc,
        },
    }


include "bench.pxi"
include "gso.pxi"
include "loop.pxi"
include "loadgen.pxi"
