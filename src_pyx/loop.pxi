# Included by _dataplane.pyx: the forwarding loop around a DataPath (STYLE.md 1, layer 2).
#
# One Forwarder owns one UDP socket (and optionally one TUN queue) and runs with the GIL
# released: recvmmsg into a preallocated ring of slots, DataPath.process_c on the batch, then
#   TUN rows     -> write() to the session's own TUN device when it has one (DataPath.set_tun),
#                   else to the Forwarder's TUN fd, one packet per call (TUN has no batch);
#   SWITCH rows  -> a header for the target session and sendmmsg with two iovecs a datagram
#                   (header, payload in the receive slot): payloads are never copied;
#   CONTROL, PPP -> copied into Python objects under the GIL, once per batch, and handed to
#                   the ``handoff`` callable (the shell queues them and wakes its asyncio loop);
# and from the TUN side: read() up to a batch of packets, route them by destination address
# (an LNS: a subscriber's address is its session) or by source address (``route_by="source"``:
# a LAC that originates many sessions over one TUN device), headers, sendmmsg.
#
# Sends go out as UDP GSO messages where a run of datagrams shares peer, source and length
# (gso.pxi). With gro=True (the caller set UDP_GRO on the socket) a receive slot is 64 KiB and may
# hold a run the kernel coalesced; split_runs cuts it into its datagrams (entries pointing into
# the slot, no copy) before classification, so the rest of the loop never sees the difference.
#
# A Forwarder made with receive_udp=False reads its TUN device only: the reader of a session's
# own TUN device. It sends on the UDP socket it shares with the main loops (sendmmsg from several
# threads on one UDP socket is safe: each call queues whole datagrams), never receives from it,
# and never releases held packets (they are the receive side's). The table lock
# is held for the processing of a batch, never across a system call that blocks and never while
# the GIL is taken.
#
# Ownership: every buffer here is allocated by the Forwarder and freed in __dealloc__; the
# iovecs and msghdrs point into those buffers only (and into the DataPath's pool, whose rows
# stay valid until the next process_c/release_c, that is within one loop iteration).

from mmsg cimport (
    AF_INET,
    AF_INET6,
    CLOCK_MONOTONIC,
    EAGAIN,
    EINTR,
    EWOULDBLOCK,
    IP_PKTINFO,
    IPPROTO_IP,
    IPPROTO_IPV6,
    IPV6_PKTINFO,
    MSG_DONTWAIT,
    MSG_TRUNC,
    POLLIN,
    CMSG_DATA,
    CMSG_FIRSTHDR,
    CMSG_LEN,
    CMSG_NXTHDR,
    UDP_GRO,
    CMSG_SPACE,
    clock_gettime,
    cmsghdr,
    errno,
    in6_pktinfo,
    in_pktinfo,
    iovec,
    mmsghdr,
    poll,
    pollfd,
    read,
    recvmmsg,
    sendmmsg,
    sockaddr_in,
    sockaddr_in6,
    timespec,
    write,
)
from ipaddress import IPv4Address as _IPv4Address
from ipaddress import IPv6Address as _IPv6Address

from mmsg cimport htons as c_htons
from mmsg cimport ntohs as c_ntohs

# Names of the Forwarder.stats columns, in order.
FORWARDER_STATS = (
    "batches", "udp_rx", "udp_tx", "tun_rx", "tun_tx", "tun_errors", "send_errors", "recv_errors",
    "truncated", "no_session", "no_route",
)
cdef enum:
    STAT_BATCHES = 0
    STAT_UDP_RX = 1
    STAT_UDP_TX = 2
    STAT_TUN_RX = 3
    STAT_TUN_TX = 4
    STAT_TUN_ERRORS = 5
    STAT_SEND_ERRORS = 6
    STAT_RECV_ERRORS = 7
    STAT_TRUNCATED = 8
    STAT_NO_SESSION = 9
    STAT_NO_ROUTE = 10


cdef enum:
    RX_SLOT = 2048         # octets a received datagram may have; longer ones are truncated, dropped
    GRO_SLOT = 65536       # with UDP GRO: room for one coalesced run (at most 64 KiB of UDP payload)
    GRO_SEGMENTS = 64      # datagrams a run may hold (the kernel's UDP_MAX_SEGMENTS is 64 or 128)
    NAME_LEN = 28          # sizeof(struct sockaddr_in6), the larger of the two
    CONTROL_LEN = 64       # room for one in_pktinfo or in6_pktinfo cmsg


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline void to_address(const uint8_t* name, address_t* a) noexcept nogil:
    """A received sockaddr_in/in6 as an address_t (port in host order)."""
    cdef const sockaddr_in* v4
    cdef const sockaddr_in6* v6
    memset(a, 0, sizeof(address_t))
    if (<const sockaddr_in*>name).sin_family == AF_INET:
        v4 = <const sockaddr_in*>name
        memcpy(a.addr, &v4.sin_addr, 4)
        a.port = c_ntohs(v4.sin_port)
        a.family = 4
    else:
        v6 = <const sockaddr_in6*>name
        memcpy(a.addr, &v6.sin6_addr, 16)
        a.port = c_ntohs(v6.sin6_port)
        a.family = 6


cdef inline int from_address(const address_t* a, uint8_t* name) noexcept nogil:
    """An address_t as a sockaddr to send to; returns its length."""
    cdef sockaddr_in* v4
    cdef sockaddr_in6* v6
    memset(name, 0, NAME_LEN)
    if a.family == 4:
        v4 = <sockaddr_in*>name
        v4.sin_family = AF_INET
        v4.sin_port = c_htons(a.port)
        memcpy(&v4.sin_addr, a.addr, 4)
        return sizeof(sockaddr_in)
    v6 = <sockaddr_in6*>name
    v6.sin6_family = AF_INET6
    v6.sin6_port = c_htons(a.port)
    memcpy(&v6.sin6_addr, a.addr, 16)
    return sizeof(sockaddr_in6)


cdef inline size_t put_pktinfo(const address_t* local, uint8_t* control) noexcept nogil:
    """An IP_PKTINFO/IPV6_PKTINFO cmsg choosing our source address (RFC 2661 8.1: data leaves
    from the address the tunnel uses); returns the control length, 0 for "let the kernel choose"."""
    cdef cmsghdr* c = <cmsghdr*>control
    cdef in_pktinfo* p4
    cdef in6_pktinfo* p6
    if local.family == 0:
        return 0
    memset(control, 0, CONTROL_LEN)
    if local.family == 4:
        c.cmsg_level = IPPROTO_IP
        c.cmsg_type = IP_PKTINFO
        c.cmsg_len = CMSG_LEN(sizeof(in_pktinfo))
        p4 = <in_pktinfo*>CMSG_DATA(c)
        memcpy(&p4.ipi_spec_dst, local.addr, 4)
        return CMSG_SPACE(sizeof(in_pktinfo))
    c.cmsg_level = IPPROTO_IPV6
    c.cmsg_type = IPV6_PKTINFO
    c.cmsg_len = CMSG_LEN(sizeof(in6_pktinfo))
    p6 = <in6_pktinfo*>CMSG_DATA(c)
    memcpy(&p6.ipi6_addr, local.addr, 16)
    return CMSG_SPACE(sizeof(in6_pktinfo))


cdef class Forwarder:
    """The forwarding loop of one UDP socket (and TUN queue) over a DataPath."""

    cdef readonly DataPath path
    cdef readonly int udp_fd
    cdef readonly int tun_fd
    cdef readonly int batch
    cdef readonly bint raw
    cdef readonly bint receive_udp
    cdef public object handoff
    cdef readonly object stats
    cdef uint64_t* stat
    cdef uint8_t* rx_data
    cdef uint8_t* rx_names
    cdef uint8_t* rx_control
    cdef mmsghdr* rx_msgs
    cdef iovec* rx_iov
    cdef uint32_t* rx_offsets
    cdef uint32_t* rx_lengths
    cdef address_t* rx_sources
    cdef delivery_t* rows
    cdef Py_ssize_t rows_cap
    cdef uint8_t* tx_headers
    cdef uint8_t* tx_names
    cdef uint8_t* tx_control
    cdef mmsghdr* tx_msgs
    cdef iovec* tx_iov
    cdef uint8_t* tun_data
    cdef uint32_t* tun_lengths
    cdef double next_release
    cdef LoadCounter sink_counter
    cdef bint has_sink
    cdef gso_t gso
    cdef readonly bint gro
    cdef int slot_size            # octets of a receive slot: RX_SLOT, or GRO_SLOT with gro
    cdef int entries_cap          # datagrams a batch may yield: batch, or batch * GRO_SEGMENTS
    cdef uint32_t* rx_entry_msg   # the message (receive slot) each datagram came in
    cdef uint64_t gro_runs        # messages that held more than one datagram
    cdef uint64_t gro_in_runs     # the datagrams they held

    def __cinit__(
        self, DataPath path not None, int udp_fd, int tun_fd=-1, int batch=64, bint raw=False, *,
        bint receive_udp=True, bint gso=True, bint gro=False,
    ):
        cdef int i, rx_batch
        if not 1 <= batch <= 1024:
            raise ValueError("batch is 1..1024")
        if not receive_udp and tun_fd < 0:
            raise ValueError("a Forwarder that does not receive UDP reads a TUN device: give tun_fd")
        self.path = path
        self.udp_fd = udp_fd
        self.tun_fd = tun_fd
        self.batch = batch
        # L2TP over IP (protocol 115, raw sockets): no ports, and IPv4 delivers its IP header.
        self.raw = raw
        self.receive_udp = receive_udp
        self.handoff = None
        # UDP GRO (the caller set UDP_GRO on the socket): a slot holds a coalesced run, cut here
        # into its datagrams. Not for raw sockets (no UDP) nor for a TUN reader (no receiving).
        self.gro = gro and receive_udp and not raw
        self.gro_runs = 0
        self.gro_in_runs = 0
        self.slot_size = GRO_SLOT if self.gro else RX_SLOT
        rx_batch = batch if receive_udp else 1
        self.entries_cap = rx_batch * GRO_SEGMENTS if self.gro else rx_batch
        # A delivery row per datagram, plus what a datagram releases from the pool; a TUN reader
        # only sends what it reads, and needs no receive ring (one loop per session's device).
        # Held packets are released once each, so with GRO the pool's size bounds the releases.
        if self.gro:
            self.rows_cap = self.entries_cap + path.pool_slots + 16
        else:
            self.rows_cap = batch * (path.reorder_window + 2) + 16 if receive_udp else batch
        self.rx_data = <uint8_t*>PyMem_Malloc(rx_batch * self.slot_size)
        self.rx_names = <uint8_t*>PyMem_Malloc(rx_batch * NAME_LEN)
        self.rx_control = <uint8_t*>PyMem_Malloc(rx_batch * CONTROL_LEN)
        self.rx_msgs = <mmsghdr*>PyMem_Malloc(rx_batch * sizeof(mmsghdr))
        self.rx_iov = <iovec*>PyMem_Malloc(rx_batch * sizeof(iovec))
        self.rx_offsets = <uint32_t*>PyMem_Malloc(self.entries_cap * sizeof(uint32_t))
        self.rx_lengths = <uint32_t*>PyMem_Malloc(self.entries_cap * sizeof(uint32_t))
        self.rx_sources = <address_t*>PyMem_Malloc(self.entries_cap * sizeof(address_t))
        self.rx_entry_msg = <uint32_t*>PyMem_Malloc(self.entries_cap * sizeof(uint32_t))
        self.rows = <delivery_t*>PyMem_Malloc(self.rows_cap * sizeof(delivery_t))
        self.tx_headers = <uint8_t*>PyMem_Malloc(self.rows_cap * MAX_HEADER)
        self.tx_names = <uint8_t*>PyMem_Malloc(self.rows_cap * NAME_LEN)
        self.tx_control = <uint8_t*>PyMem_Malloc(self.rows_cap * CONTROL_LEN)
        self.tx_msgs = <mmsghdr*>PyMem_Malloc(self.rows_cap * sizeof(mmsghdr))
        self.tx_iov = <iovec*>PyMem_Malloc(self.rows_cap * 2 * sizeof(iovec))
        self.tun_data = <uint8_t*>PyMem_Malloc(batch * RX_SLOT)
        self.tun_lengths = <uint32_t*>PyMem_Malloc(batch * sizeof(uint32_t))
        if (not self.rx_data or not self.rx_names or not self.rx_control or not self.rx_msgs
                or not self.rx_iov or not self.rx_offsets or not self.rx_lengths or not self.rx_sources
                or not self.rx_entry_msg
                or not self.rows or not self.tx_headers or not self.tx_names or not self.tx_control
                or not self.tx_msgs or not self.tx_iov or not self.tun_data or not self.tun_lengths):
            raise MemoryError()
        for i in range(rx_batch):
            self.rx_offsets[i] = <uint32_t>(i * self.slot_size)
            self.rx_entry_msg[i] = i
        self.next_release = 0.0
        # UDP GSO (gso.pxi) for runs to one peer; L2TP over IP has no such offload.
        if gso_init(&self.gso, self.rows_cap, gso and not raw) < 0:
            raise MemoryError()
        self.stats = np.zeros(len(FORWARDER_STATS), dtype=np.uint64)
        self.stat = <uint64_t*><size_t>self.stats.ctypes.data
        self.has_sink = False

    @property
    def sink(self):
        """A LoadCounter that counts the packets for the TUN side instead of writing them there
        (the benchmark harness's generator, which has no TUN device); None: write them."""
        return self.sink_counter

    @sink.setter
    def sink(self, LoadCounter counter):
        # Set before ``run`` starts: the loop reads it without the GIL.
        self.sink_counter = counter
        self.has_sink = counter is not None

    @property
    def gso(self):
        """Whether runs of datagrams to one peer leave as one UDP GSO message (gso.pxi): off when
        made with gso=False or raw, or once the kernel refused it (no checksum offload)."""
        return bool(self.gso.enabled)

    @property
    def gro_stats(self):
        """(coalesced runs received with UDP GRO, datagrams they held)."""
        return int(self.gro_runs), int(self.gro_in_runs)

    @property
    def gso_stats(self):
        """(GSO messages sent, datagrams they carried)."""
        return int(self.gso.runs), int(self.gso.in_runs)

    def __dealloc__(self):
        gso_free(&self.gso)
        PyMem_Free(self.rx_data)
        PyMem_Free(self.rx_names)
        PyMem_Free(self.rx_control)
        PyMem_Free(self.rx_msgs)
        PyMem_Free(self.rx_iov)
        PyMem_Free(self.rx_offsets)
        PyMem_Free(self.rx_lengths)
        PyMem_Free(self.rx_sources)
        PyMem_Free(self.rx_entry_msg)
        PyMem_Free(self.rows)
        PyMem_Free(self.tx_headers)
        PyMem_Free(self.tx_names)
        PyMem_Free(self.tx_control)
        PyMem_Free(self.tx_msgs)
        PyMem_Free(self.tx_iov)
        PyMem_Free(self.tun_data)
        PyMem_Free(self.tun_lengths)

    # --- UDP side -------------------------------------------------------------------------------

    cdef int receive_batch(self) noexcept nogil:
        """One recvmmsg batch; returns the datagrams received (0 when none, -1 on error)."""
        cdef int i, n
        for i in range(self.batch):
            self.rx_iov[i].iov_base = self.rx_data + i * self.slot_size
            self.rx_iov[i].iov_len = self.slot_size
            self.rx_msgs[i].msg_hdr.msg_name = self.rx_names + i * NAME_LEN
            self.rx_msgs[i].msg_hdr.msg_namelen = NAME_LEN
            self.rx_msgs[i].msg_hdr.msg_iov = &self.rx_iov[i]
            self.rx_msgs[i].msg_hdr.msg_iovlen = 1
            self.rx_msgs[i].msg_hdr.msg_control = self.rx_control + i * CONTROL_LEN
            self.rx_msgs[i].msg_hdr.msg_controllen = CONTROL_LEN
            self.rx_msgs[i].msg_hdr.msg_flags = 0
        n = recvmmsg(self.udp_fd, self.rx_msgs, self.batch, MSG_DONTWAIT, NULL)
        if n < 0:
            if errno == EAGAIN or errno == EWOULDBLOCK or errno == EINTR:
                return 0
            self.stat[STAT_RECV_ERRORS] += 1
            return -1
        if self.gro:
            return self.split_runs(n)
        for i in range(n):
            self.rx_offsets[i] = <uint32_t>(i * RX_SLOT)
            self.rx_lengths[i] = self.rx_msgs[i].msg_len
            if self.rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                # Longer than a slot: drop it (length 0 parses as TRUNCATED).
                self.rx_lengths[i] = 0
                self.stat[STAT_TRUNCATED] += 1
            to_address(self.rx_names + i * NAME_LEN, &self.rx_sources[i])
            if self.raw:
                self.rx_sources[i].port = 0
                if self.rx_sources[i].family == 4:
                    self.skip_ip_header(i)
        self.stat[STAT_UDP_RX] += n
        self.stat[STAT_BATCHES] += 1
        return n

    cdef int split_runs(self, int n) noexcept nogil:
        """UDP GRO: cut each received message into its datagrams (the UDP_GRO cmsg gives their
        size; the last may be shorter); returns how many. Payloads stay where they are."""
        cdef int i, e = 0
        cdef uint32_t size, at, length
        cdef cmsghdr* c
        for i in range(n):
            length = self.rx_msgs[i].msg_len
            size = 0
            c = CMSG_FIRSTHDR(&self.rx_msgs[i].msg_hdr)
            while c != NULL:
                if c.cmsg_level == SOL_UDP and c.cmsg_type == UDP_GRO:
                    size = <uint32_t>(<int*>CMSG_DATA(c))[0]
                c = CMSG_NXTHDR(&self.rx_msgs[i].msg_hdr, c)
            if size == 0 or size >= length:
                size = length
            if self.rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                self.stat[STAT_TRUNCATED] += 1
                continue
            if length > size:
                self.gro_runs += 1
                self.gro_in_runs += (length + size - 1) // size
            at = 0
            while at < length and e < self.entries_cap:
                self.rx_offsets[e] = <uint32_t>(i * self.slot_size) + at
                self.rx_lengths[e] = size if length - at > size else length - at
                to_address(self.rx_names + i * NAME_LEN, &self.rx_sources[e])
                self.rx_entry_msg[e] = i
                at += size
                e += 1
            if length == 0 and e < self.entries_cap:
                self.rx_offsets[e] = <uint32_t>(i * self.slot_size)
                self.rx_lengths[e] = 0
                to_address(self.rx_names + i * NAME_LEN, &self.rx_sources[e])
                self.rx_entry_msg[e] = i
                e += 1
        self.stat[STAT_UDP_RX] += e
        self.stat[STAT_BATCHES] += 1
        return e

    cdef void skip_ip_header(self, int i) noexcept nogil:
        """A raw IPv4 socket hands over the IP header: start the datagram after it, without a copy."""
        cdef uint32_t ihl
        if self.rx_lengths[i] < 20:
            self.rx_lengths[i] = 0
            return
        ihl = (self.rx_data[i * RX_SLOT] & 0x0F) * 4
        if ihl < 20 or ihl > self.rx_lengths[i]:
            self.rx_lengths[i] = 0
            return
        self.rx_offsets[i] += ihl
        self.rx_lengths[i] -= ihl

    cdef int queue_send(self, int k, uint32_t slot, uint32_t protocol, const uint8_t* payload,
                        uint32_t length) noexcept nogil:
        """Queue one datagram for ``slot`` (header + payload iovecs); returns the new queue length."""
        cdef int hl
        cdef session_t* s
        if k >= self.rows_cap:
            return k
        hl = self.path.encap_one(slot, protocol, length, self.tx_headers + k * MAX_HEADER)
        if hl == 0:
            self.stat[STAT_NO_SESSION] += 1
            return k
        s = &self.path.sessions[slot]
        self.tx_iov[2 * k].iov_base = self.tx_headers + k * MAX_HEADER
        self.tx_iov[2 * k].iov_len = hl
        self.tx_iov[2 * k + 1].iov_base = <void*>payload
        self.tx_iov[2 * k + 1].iov_len = length
        self.tx_msgs[k].msg_hdr.msg_name = self.tx_names + k * NAME_LEN
        self.tx_msgs[k].msg_hdr.msg_namelen = from_address(&s.peer, self.tx_names + k * NAME_LEN)
        self.tx_msgs[k].msg_hdr.msg_iov = &self.tx_iov[2 * k]
        self.tx_msgs[k].msg_hdr.msg_iovlen = 2
        self.tx_msgs[k].msg_hdr.msg_controllen = put_pktinfo(&self.path.locals[s.local_index],
                                                             self.tx_control + k * CONTROL_LEN)
        self.tx_msgs[k].msg_hdr.msg_control = (
            self.tx_control + k * CONTROL_LEN if self.tx_msgs[k].msg_hdr.msg_controllen else NULL
        )
        self.tx_msgs[k].msg_hdr.msg_flags = 0
        return k + 1

    cdef void flush_sends(self, int k) noexcept nogil:
        cdef int done = gso_send(&self.gso, self.udp_fd, self.tx_msgs, k)
        # ENOBUFS, EAGAIN, an ICMP error: the datagrams not sent are lost, as on a wire.
        if done < k:
            self.stat[STAT_SEND_ERRORS] += k - done
        self.stat[STAT_UDP_TX] += done

    cdef int dispatch(self, const uint8_t* rx_base, Py_ssize_t n_rows, int* handoff) noexcept nogil:
        """Carry out the rows of a batch; returns how many datagrams were queued for sending.
        ``handoff[0]`` is set when some rows are for Python. The caller holds the lock."""
        cdef Py_ssize_t j
        cdef delivery_t* r
        cdef const uint8_t* where
        cdef int k = 0, fd
        cdef uint64_t now = monotonic_ns() if self.has_sink else 0
        for j in range(n_rows):
            r = &self.rows[j]
            where = (rx_base if r.source == 0 else self.path.pool_data) + r.offset
            if r.action == ACT_TUN and self.has_sink:
                self.sink_counter.count_ip(where, r.length, now)
                self.stat[STAT_TUN_TX] += 1
            elif r.action == ACT_TUN:
                # The session's own device (set_tun), else ours; the lock keeps the fd current.
                fd = self.path.sessions[r.slot].tun_fd
                if fd < 0:
                    fd = self.tun_fd
                if fd < 0 or write(fd, where, r.length) < 0:
                    self.stat[STAT_TUN_ERRORS] += 1
                else:
                    self.stat[STAT_TUN_TX] += 1
            elif r.action == ACT_SWITCH:
                k = self.queue_send(k, self.path.sessions[r.slot].target_index, r.protocol, where, r.length)
            else:
                handoff[0] = 1
        return k

    cdef object handoff_rows(self, const uint8_t* rx_base, Py_ssize_t n_rows):
        """CONTROL and PPP rows as Python objects (with the GIL): one call of ``handoff``."""
        cdef DataPath dp = self.path
        cdef Py_ssize_t j
        cdef delivery_t* r
        cdef const uint8_t* where
        items = []
        for j in range(n_rows):
            r = &self.rows[j]
            where = (rx_base if r.source == 0 else dp.pool_data) + r.offset
            if r.action == ACT_CONTROL:
                items.append((
                    "control", (<const char*>where)[:r.length], self.peer_of(r.datagram),
                    self.local_of(r.datagram),
                ))
            elif r.action == ACT_PPP:
                items.append(("ppp", r.slot, r.protocol, (<const char*>where)[:r.length]))
        if items and self.handoff is not None:
            self.handoff(items)

    cdef object peer_of(self, uint32_t i):
        cdef address_t* a = &self.rx_sources[i]
        return (_address_text(a), a.port)

    cdef object local_of(self, uint32_t i):
        """The local address a datagram was sent to, from its IP_PKTINFO/IPV6_PKTINFO cmsg."""
        cdef mmsghdr* m = &self.rx_msgs[self.rx_entry_msg[i]]
        cdef cmsghdr* c = CMSG_FIRSTHDR(&m.msg_hdr)
        cdef address_t a
        memset(&a, 0, sizeof(address_t))
        while c != NULL:
            if c.cmsg_level == IPPROTO_IP and c.cmsg_type == IP_PKTINFO:
                memcpy(a.addr, &(<in_pktinfo*>CMSG_DATA(c)).ipi_addr, 4)
                a.family = 4
                return _address_text(&a)
            if c.cmsg_level == IPPROTO_IPV6 and c.cmsg_type == IPV6_PKTINFO:
                memcpy(a.addr, &(<in6_pktinfo*>CMSG_DATA(c)).ipi6_addr, 16)
                a.family = 6
                return _address_text(&a)
            c = CMSG_NXTHDR(&m.msg_hdr, c)
        return None

    # --- TUN side -------------------------------------------------------------------------------

    cdef int receive_tun(self) noexcept nogil:
        cdef int k = 0
        cdef ssize_t r
        while k < self.batch:
            r = read(self.tun_fd, self.tun_data + k * RX_SLOT, RX_SLOT)
            if r <= 0:
                break
            self.tun_lengths[k] = <uint32_t>r
            k += 1
        self.stat[STAT_TUN_RX] += k
        return k

    cdef int route_tun(self, int n) noexcept nogil:
        """Headers and iovecs for the TUN packets read; the caller holds the lock."""
        cdef int i, k = 0
        cdef uint32_t b, slot, length
        cdef const uint8_t* p
        for i in range(n):
            p = self.tun_data + i * RX_SLOT
            length = self.tun_lengths[i]
            b = NO_SLOT
            if length >= 20 and p[0] >> 4 == 4:
                b = self.path.route_find(p + self.path.route_offset4, 4)
            elif length >= 40 and p[0] >> 4 == 6:
                b = self.path.route_find(p + self.path.route_offset6, 8)  # the /64
            if b == NO_SLOT:
                self.stat[STAT_NO_ROUTE] += 1
                continue
            slot = self.path.route_slot[b]
            k = self.queue_send(k, slot, 0x0021 if p[0] >> 4 == 4 else 0x0057, p, length)
        return k

    # --- the loop ---------------------------------------------------------------------------------

    def run(self, int stop_fd, double idle_timeout=0.1):
        """Forward until ``stop_fd`` becomes readable (an eventfd or pipe the shell writes to).

        Polls only what this loop reads: the UDP socket unless ``receive_udp`` is False, and the
        TUN device when it has one."""
        cdef pollfd fds[3]
        cdef int nfds = 1, udp_at = -1, tun_at = -1, timeout_ms, ready
        cdef DataPath dp = self.path
        fds[0].fd = stop_fd
        fds[0].events = POLLIN
        if self.receive_udp:
            udp_at = nfds
            fds[nfds].fd = self.udp_fd
            fds[nfds].events = POLLIN
            nfds += 1
        if self.tun_fd >= 0:
            tun_at = nfds
            fds[nfds].fd = self.tun_fd
            fds[nfds].events = POLLIN
            nfds += 1
        while True:
            # Held packets time out after reorder_timeout: look at them twice as often.
            timeout_ms = <int>(idle_timeout * 1000)
            if self.receive_udp and dp.pool_slots - dp.n_free_pool - dp.n_release_later > 0:
                timeout_ms = min(timeout_ms, max(1, <int>(dp.reorder_timeout * 500)))
            with nogil:
                ready = poll(fds, nfds, timeout_ms)
            if ready < 0 and errno != EINTR:
                raise OSError(errno, "poll failed in the data plane loop")
            if ready > 0 and fds[0].revents:
                return
            self.step(ready > 0 and udp_at > 0 and fds[udp_at].revents != 0,
                      ready > 0 and tun_at > 0 and fds[tun_at].revents != 0)

    def run_once(self, bint udp=True, bint tun=True):
        """One iteration without waiting (tests and benchmarks); returns the UDP datagrams received."""
        return self.step(udp, tun and self.tun_fd >= 0)

    cdef int step(self, bint udp, bint tun) except -1:
        cdef DataPath dp = self.path
        cdef int n = 0, k = 0, want_handoff = 0
        cdef Py_ssize_t n_rows = 0, n_released = 0
        cdef double now
        if not self.receive_udp:
            # A TUN reader: the socket and the held packets are the main loops'.
            if tun:
                self.step_tun()
            return 0
        with nogil:
            now = monotonic()
            if udp:
                n = self.receive_batch()
            PyThread_acquire_lock(dp.lock, WAIT_LOCK)
            if n > 0:
                n_rows = dp.process_c(self.rx_data, self.rx_offsets, self.rx_lengths, self.rx_sources,
                                      n, now, self.rows, self.rows_cap)
                if n_rows < 0:
                    n_rows = 0  # cannot happen: rows_cap covers a batch and all it may release
                k = self.dispatch(self.rx_data, n_rows, &want_handoff)
            PyThread_release_lock(dp.lock)
            if k:
                self.flush_sends(k)
        if want_handoff:
            self.handoff_rows(self.rx_data, n_rows)
        if now >= self.next_release:
            # RFC 2661 5.4 reordering must not hold a packet forever: release what timed out.
            self.next_release = now + dp.reorder_timeout / 2
            want_handoff = 0
            with nogil:
                PyThread_acquire_lock(dp.lock, WAIT_LOCK)
                n_released = dp.release_c(now, self.rows, self.rows_cap)
                if n_released < 0:
                    n_released = 0
                k = self.dispatch(self.rx_data, n_released, &want_handoff)
                PyThread_release_lock(dp.lock)
                if k:
                    self.flush_sends(k)
            if want_handoff:
                self.handoff_rows(self.rx_data, n_released)
        if tun:
            self.step_tun()
        return n

    cdef void step_tun(self) noexcept:
        """Read up to a batch from the TUN device, route it, send it."""
        cdef DataPath dp = self.path
        cdef int m, k
        with nogil:
            m = self.receive_tun()
            if m:
                PyThread_acquire_lock(dp.lock, WAIT_LOCK)
                k = self.route_tun(m)
                PyThread_release_lock(dp.lock)
                if k:
                    self.flush_sends(k)


cdef object _address_text(const address_t* a):
    if a.family == 4:
        return str(_IPv4Address((<const char*>a.addr)[:4]))
    return _IPv6Address((<const char*>a.addr)[:16]).compressed
