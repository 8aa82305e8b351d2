# Included by _dataplane.pyx (after loop.pxi): the benchmark harness's senders and its sink's
# receiver (``l2tpfast bench``; the payload is described in bench.pxi).
#
# LoadGenerator sends the harness's packets at a paced rate, a batch per sendmmsg, with the GIL
# released, round robin over its sessions:
#   - through L2TP (``path`` given): an IPv4/UDP packet from the session's address, inside the
#     header DataPath.encap_one writes for the session's slot (its Ns when the session sequences
#     data, RFC 2661 5.4, and its PPP framing), to the session's peer, from the tunnel's local
#     address: exactly what the LAC's forwarding loop sends for a packet read from TUN;
#   - as plain UDP (no ``path``): to each session's address, through the kernel (the sink behind
#     the LNS sends downstream traffic so).
# It never waits for more than one packet's time: below the rate it sleeps until the next
# packet is due, and when the clock is ahead of what it sent (it could not keep up) it sends a
# whole batch at once and counts a "late" batch; the rate it reached says whether it kept up.
#
# UdpReceiver is the sink's loop: recvmmsg, a LoadCounter over the payloads, and an echo of
# every probe back to where it came from (sendmmsg, in the receive buffer: no copy).
#
# Ownership: each object allocates its buffers in __cinit__ and frees them in __dealloc__; the
# msghdrs and iovecs point only into those, and into the DataPath's session rows (read with its
# lock held) while a batch is built.

from libc.stdint cimport int64_t

from mmsg cimport POLLOUT, nanosleep

LOAD_STATS = ("sent", "send_errors", "batches", "late_batches", "no_session")
cdef enum:
    LS_SENT = 0
    LS_SEND_ERRORS = 1
    LS_BATCHES = 2
    LS_LATE = 3
    LS_NO_SESSION = 4
    N_LOAD_STATS = 5
    IPV4_UDP = 28              # IPv4 header without options, UDP header

RECEIVER_STATS = ("datagrams", "echoes", "recv_errors", "send_errors", "batches")


cdef inline uint16_t ip_checksum(const uint8_t* p, int n) noexcept nogil:
    """The Internet checksum (RFC 791, RFC 1071) of ``n`` octets, ``n`` even."""
    cdef uint32_t s = 0
    cdef int i
    for i in range(0, n, 2):
        s += (<uint32_t>p[i] << 8) | p[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return <uint16_t>(~s & 0xFFFF)


cdef inline void sleep_ns(uint64_t ns) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = <long>(ns // 1000000000ULL)
    ts.tv_nsec = <long>(ns % 1000000000ULL)
    nanosleep(&ts, NULL)


cdef class LoadGenerator:
    """The harness's paced sender: through a DataPath's L2TP sessions, or plain UDP."""

    cdef readonly int fd
    cdef readonly int batch
    cdef readonly int n_sessions
    cdef readonly bint l2tp
    cdef readonly DataPath path
    cdef readonly object stats       # uint64, LOAD_STATS
    cdef uint64_t* stat
    cdef uint32_t* slots             # L2TP: the DataPath slot of each session index
    cdef uint8_t* templates          # L2TP: each session's IPv4 + UDP headers (IPV4_UDP octets)
    cdef uint8_t* names              # UDP: each session's destination, a sockaddr (NAME_LEN)
    cdef uint32_t* name_lengths
    cdef uint32_t* seqs
    cdef uint8_t* packets            # batch * RX_SLOT: the packets of the batch being sent
    cdef uint8_t* headers            # batch * MAX_HEADER
    cdef uint8_t* tx_names
    cdef uint8_t* tx_control
    cdef mmsghdr* msgs
    cdef iovec* iov
    cdef int next_index
    cdef int burst_left
    cdef int burst
    cdef int current
    cdef gso_t gso
    cdef volatile int stopping

    def __cinit__(self, int fd, int n_sessions, DataPath path=None, int batch=64):
        if not 1 <= batch <= 1024:
            raise ValueError("batch is 1..1024")
        if not 1 <= n_sessions <= 16_777_216:
            raise ValueError("n_sessions is 1..16777216")
        self.fd = fd
        self.batch = batch
        self.n_sessions = n_sessions
        self.path = path
        self.l2tp = path is not None
        self.stats = np.zeros(N_LOAD_STATS, dtype=np.uint64)
        self.stat = <uint64_t*><size_t>self.stats.ctypes.data
        self.slots = <uint32_t*>PyMem_Malloc(n_sessions * sizeof(uint32_t))
        self.templates = <uint8_t*>PyMem_Malloc(n_sessions * IPV4_UDP)
        self.names = <uint8_t*>PyMem_Malloc(n_sessions * NAME_LEN)
        self.name_lengths = <uint32_t*>PyMem_Malloc(n_sessions * sizeof(uint32_t))
        self.seqs = <uint32_t*>PyMem_Malloc(n_sessions * sizeof(uint32_t))
        self.packets = <uint8_t*>PyMem_Malloc(batch * RX_SLOT)
        self.headers = <uint8_t*>PyMem_Malloc(batch * MAX_HEADER)
        self.tx_names = <uint8_t*>PyMem_Malloc(batch * NAME_LEN)
        self.tx_control = <uint8_t*>PyMem_Malloc(batch * CONTROL_LEN)
        self.msgs = <mmsghdr*>PyMem_Malloc(batch * sizeof(mmsghdr))
        self.iov = <iovec*>PyMem_Malloc(batch * 2 * sizeof(iovec))
        if (not self.slots or not self.templates or not self.names or not self.name_lengths
                or not self.seqs or not self.packets or not self.headers or not self.tx_names
                or not self.tx_control or not self.msgs or not self.iov):
            raise MemoryError()
        memset(self.slots, 0xFF, n_sessions * sizeof(uint32_t))
        memset(self.templates, 0, n_sessions * IPV4_UDP)
        memset(self.names, 0, n_sessions * NAME_LEN)
        memset(self.name_lengths, 0, n_sessions * sizeof(uint32_t))
        memset(self.seqs, 0, n_sessions * sizeof(uint32_t))
        memset(self.packets, 0, batch * RX_SLOT)
        self.next_index = 0
        self.burst_left = 0
        self.burst = 1
        self.stopping = 0
        if gso_init(&self.gso, batch, True) < 0:
            raise MemoryError()

    @property
    def gso_stats(self):
        """(UDP GSO messages sent, datagrams they carried); GSO is off once the kernel refused it."""
        return int(self.gso.runs), int(self.gso.in_runs)

    def __dealloc__(self):
        gso_free(&self.gso)
        PyMem_Free(self.slots)
        PyMem_Free(self.templates)
        PyMem_Free(self.names)
        PyMem_Free(self.name_lengths)
        PyMem_Free(self.seqs)
        PyMem_Free(self.packets)
        PyMem_Free(self.headers)
        PyMem_Free(self.tx_names)
        PyMem_Free(self.tx_control)
        PyMem_Free(self.msgs)
        PyMem_Free(self.iov)

    def set_session(self, int index, bytes source, bytes destination, int source_port,
                    int destination_port, int slot=-1):
        """Session ``index``: IPv4 ``source`` -> ``destination`` (4 octets each) and UDP ports;
        ``slot`` is its DataPath slot (L2TP only). Through L2TP the packet is built here; as
        plain UDP only the destination is used (the socket's bind is the source)."""
        cdef uint8_t* t
        cdef address_t a
        if not 0 <= index < self.n_sessions:
            raise IndexError(f"session index {index} not in 0..{self.n_sessions - 1}")
        if len(source) != 4 or len(destination) != 4:
            raise ValueError("source and destination are IPv4 addresses, 4 octets each")
        if not (0 <= source_port <= 0xFFFF and 0 <= destination_port <= 0xFFFF):
            raise ValueError("ports are 0..65535")
        if self.l2tp:
            if slot < 0:
                raise ValueError("an L2TP generator needs the session's DataPath slot")
            self.slots[index] = <uint32_t>slot
            t = self.templates + index * IPV4_UDP
            memset(t, 0, IPV4_UDP)
            t[0] = 0x45            # IPv4, 20-octet header
            t[6] = 0x40            # DF: never fragmented on the way
            t[8] = 64              # TTL
            t[9] = 17              # UDP
            memcpy(t + 12, <const char*>source, 4)
            memcpy(t + 16, <const char*>destination, 4)
            t[20] = source_port >> 8
            t[21] = source_port & 0xFF
            t[22] = destination_port >> 8
            t[23] = destination_port & 0xFF
            # UDP checksum 0: none (RFC 768), so the payload may change without recomputing it.
        else:
            memset(&a, 0, sizeof(address_t))
            memcpy(a.addr, <const char*>destination, 4)
            a.family = 4
            a.port = <uint16_t>destination_port
            self.name_lengths[index] = from_address(&a, self.names + index * NAME_LEN)

    def reset(self):
        """Zero the counters and every session's sequence number (a new step of a run)."""
        self.stats[:] = 0
        memset(self.seqs, 0, self.n_sessions * sizeof(uint32_t))

    def stop(self):
        """Make a ``run`` in another thread return after its current batch."""
        self.stopping = 1

    def run(self, double rate, int size, double seconds, int probe_every=0, int burst=1):
        """Send ``rate`` packets a second (0: as fast as it can) of ``size`` IP octets for
        ``seconds``; every ``probe_every``-th packet asks the sink for an echo (0: none); ``burst``
        packets in a row to each session (plain UDP: one GSO message each).
        Returns (packets sent, seconds it took)."""
        cdef uint64_t t0, now, end, target, sent = 0, period_ns = 0
        cdef int64_t due
        cdef int k, n, i
        cdef int udp_length = size - 20  # RFC 768: the UDP header and its data
        cdef uint8_t* t
        if size < IPV4_UDP + BENCH_HEADER or size > RX_SLOT:
            raise ValueError(f"size is {IPV4_UDP + BENCH_HEADER}..{RX_SLOT} octets of IP")
        if rate < 0 or seconds <= 0:
            raise ValueError("rate >= 0 and seconds > 0")
        if probe_every < 0:
            raise ValueError("probe_every >= 0")
        if not 1 <= burst <= self.batch:
            raise ValueError(f"burst is 1..{self.batch}")
        self.burst = burst
        self.burst_left = 0
        for i in range(self.n_sessions):
            if (self.l2tp and self.slots[i] == NO_SLOT) or (not self.l2tp and not self.name_lengths[i]):
                raise ValueError(f"session index {i} was never set (set_session)")
        if self.l2tp:
            for i in range(self.n_sessions):
                t = self.templates + i * IPV4_UDP
                t[2] = size >> 8
                t[3] = size & 0xFF
                t[10] = 0
                t[11] = 0
                n = ip_checksum(t, 20)
                t[10] = n >> 8
                t[11] = n & 0xFF
                t[24] = udp_length >> 8
                t[25] = udp_length & 0xFF
        self.stopping = 0
        if rate > 0:
            period_ns = <uint64_t>(1e9 / rate)
        with nogil:
            t0 = monotonic_ns()
            end = t0 + <uint64_t>(seconds * 1e9)
            while not self.stopping:
                now = monotonic_ns()
                if now >= end:
                    break
                if rate > 0:
                    target = <uint64_t>(<double>(now - t0) * rate / 1e9) + 1
                    due = <int64_t>target - <int64_t>sent
                    if due <= 0:
                        sleep_ns(period_ns if period_ns < 1000000 else 1000000)
                        continue
                    if due > self.batch:
                        due = self.batch
                        self.stat[LS_LATE] += 1
                else:
                    due = self.batch
                n = self.build(<int>due, size, probe_every, now)
                k = self.send(n)
                sent += <uint64_t>k
                self.stat[LS_BATCHES] += 1
            now = monotonic_ns()
        return sent, (now - t0) / 1e9

    cdef int build(self, int count, int size, int probe_every, uint64_t now) noexcept nogil:
        """Fill ``count`` messages (fewer if sessions are gone); returns how many."""
        cdef int k = 0, j, hl, index
        cdef uint8_t* pkt
        cdef uint8_t* p
        cdef session_t* s
        cdef uint32_t seq
        if self.l2tp:
            PyThread_acquire_lock(self.path.lock, WAIT_LOCK)
        for j in range(count):
            if self.burst_left == 0:
                self.burst_left = self.burst
                index = self.next_index
                self.next_index = index + 1 if index + 1 < self.n_sessions else 0
                self.current = index
            index = self.current
            self.burst_left -= 1
            pkt = self.packets + k * RX_SLOT
            if self.l2tp:
                hl = self.path.encap_one(self.slots[index], 0x0021, size, self.headers + k * MAX_HEADER)
                if hl == 0:
                    self.stat[LS_NO_SESSION] += 1
                    continue
                s = &self.path.sessions[self.slots[index]]
                memcpy(pkt, self.templates + index * IPV4_UDP, IPV4_UDP)
                p = pkt + IPV4_UDP
                self.iov[2 * k].iov_base = self.headers + k * MAX_HEADER
                self.iov[2 * k].iov_len = hl
                self.iov[2 * k + 1].iov_base = pkt
                self.iov[2 * k + 1].iov_len = size
                self.msgs[k].msg_hdr.msg_iovlen = 2
                self.msgs[k].msg_hdr.msg_name = self.tx_names + k * NAME_LEN
                self.msgs[k].msg_hdr.msg_namelen = from_address(&s.peer, self.tx_names + k * NAME_LEN)
                self.msgs[k].msg_hdr.msg_controllen = put_pktinfo(&self.path.locals[s.local_index],
                                                                  self.tx_control + k * CONTROL_LEN)
                self.msgs[k].msg_hdr.msg_control = (
                    self.tx_control + k * CONTROL_LEN if self.msgs[k].msg_hdr.msg_controllen else NULL
                )
            else:
                p = pkt
                self.iov[k].iov_base = pkt
                self.iov[k].iov_len = size - IPV4_UDP
                self.msgs[k].msg_hdr.msg_iov = &self.iov[k]
                self.msgs[k].msg_hdr.msg_iovlen = 1
                self.msgs[k].msg_hdr.msg_name = self.names + index * NAME_LEN
                self.msgs[k].msg_hdr.msg_namelen = self.name_lengths[index]
                self.msgs[k].msg_hdr.msg_control = NULL
                self.msgs[k].msg_hdr.msg_controllen = 0
            if self.l2tp:
                self.msgs[k].msg_hdr.msg_iov = &self.iov[2 * k]
            self.msgs[k].msg_hdr.msg_flags = 0
            seq = self.seqs[index]
            self.seqs[index] = seq + 1
            put_be32(p, BENCH_MAGIC)
            put_be32(p + 4, <uint32_t>index)
            put_be32(p + 8, seq)
            p[12] = FLAG_PROBE if probe_every and (self.stat[LS_SENT] + k) % probe_every == 0 else 0
            p[13] = 0
            p[14] = 0
            p[15] = 0
            put_be64(p + 16, now)
            k += 1
        if self.l2tp:
            PyThread_release_lock(self.path.lock)
        return k

    cdef int send(self, int k) noexcept nogil:
        """Send the batch (runs as UDP GSO messages, gso.pxi); a full socket buffer makes it wait
        (a generator slows down rather than drop its own packets). Returns how many went out."""
        cdef int done = 0, n, tries = 0
        cdef pollfd pfd
        while done < k:
            errno = 0
            n = gso_send(&self.gso, self.fd, self.msgs + done, k - done)
            done += n
            if done >= k:
                break
            if (errno == EAGAIN or errno == EWOULDBLOCK) and tries < 100:
                tries += 1
                pfd.fd = self.fd
                pfd.events = POLLOUT
                poll(&pfd, 1, 10)
                continue
            # ENOBUFS, an ICMP error, or a buffer that stayed full for a second: lost, as on a wire.
            self.stat[LS_SEND_ERRORS] += k - done
            break
        self.stat[LS_SENT] += done
        return done


cdef class UdpReceiver:
    """The sink's loop: receive the harness's datagrams, count them, echo the probes."""

    cdef readonly int fd
    cdef readonly int batch
    cdef readonly LoadCounter counter
    cdef readonly object stats       # uint64, RECEIVER_STATS
    cdef uint64_t* stat
    cdef uint8_t* rx_data
    cdef uint8_t* rx_names
    cdef mmsghdr* rx_msgs
    cdef iovec* rx_iov
    cdef mmsghdr* tx_msgs
    cdef iovec* tx_iov

    def __cinit__(self, int fd, LoadCounter counter not None, int batch=64):
        if not 1 <= batch <= 1024:
            raise ValueError("batch is 1..1024")
        self.fd = fd
        self.batch = batch
        self.counter = counter
        self.stats = np.zeros(len(RECEIVER_STATS), dtype=np.uint64)
        self.stat = <uint64_t*><size_t>self.stats.ctypes.data
        self.rx_data = <uint8_t*>PyMem_Malloc(batch * RX_SLOT)
        self.rx_names = <uint8_t*>PyMem_Malloc(batch * NAME_LEN)
        self.rx_msgs = <mmsghdr*>PyMem_Malloc(batch * sizeof(mmsghdr))
        self.rx_iov = <iovec*>PyMem_Malloc(batch * sizeof(iovec))
        self.tx_msgs = <mmsghdr*>PyMem_Malloc(batch * sizeof(mmsghdr))
        self.tx_iov = <iovec*>PyMem_Malloc(batch * sizeof(iovec))
        if (not self.rx_data or not self.rx_names or not self.rx_msgs or not self.rx_iov
                or not self.tx_msgs or not self.tx_iov):
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.rx_data)
        PyMem_Free(self.rx_names)
        PyMem_Free(self.rx_msgs)
        PyMem_Free(self.rx_iov)
        PyMem_Free(self.tx_msgs)
        PyMem_Free(self.tx_iov)

    def run(self, int stop_fd, double idle_timeout=0.1):
        """Receive until ``stop_fd`` (an eventfd or pipe) becomes readable."""
        cdef pollfd fds[2]
        cdef int ready
        fds[0].fd = stop_fd
        fds[0].events = POLLIN
        fds[1].fd = self.fd
        fds[1].events = POLLIN
        while True:
            with nogil:
                ready = poll(fds, 2, <int>(idle_timeout * 1000))
                if ready > 0 and fds[1].revents:
                    self.step()
            if ready < 0 and errno != EINTR:
                raise OSError(errno, "poll failed in the sink's loop")
            if ready > 0 and fds[0].revents:
                return

    cdef void step(self) noexcept nogil:
        cdef int i, n, k = 0, done = 0, sent
        cdef uint64_t now
        for i in range(self.batch):
            self.rx_iov[i].iov_base = self.rx_data + i * RX_SLOT
            self.rx_iov[i].iov_len = RX_SLOT
            self.rx_msgs[i].msg_hdr.msg_name = self.rx_names + i * NAME_LEN
            self.rx_msgs[i].msg_hdr.msg_namelen = NAME_LEN
            self.rx_msgs[i].msg_hdr.msg_iov = &self.rx_iov[i]
            self.rx_msgs[i].msg_hdr.msg_iovlen = 1
            self.rx_msgs[i].msg_hdr.msg_control = NULL
            self.rx_msgs[i].msg_hdr.msg_controllen = 0
            self.rx_msgs[i].msg_hdr.msg_flags = 0
        n = recvmmsg(self.fd, self.rx_msgs, self.batch, MSG_DONTWAIT, NULL)
        if n <= 0:
            if n < 0 and errno != EAGAIN and errno != EWOULDBLOCK and errno != EINTR:
                self.stat[2] += 1
            return
        now = monotonic_ns()
        self.stat[0] += n
        self.stat[4] += 1
        for i in range(n):
            if self.counter.count_payload(self.rx_data + i * RX_SLOT, self.rx_msgs[i].msg_len,
                                          self.rx_msgs[i].msg_len + IPV4_UDP, now) & FLAG_PROBE:
                # Echo in place: the same octets, the flag turned, back to its sender.
                self.rx_data[i * RX_SLOT + 12] = FLAG_ECHO
                self.tx_iov[k].iov_base = self.rx_data + i * RX_SLOT
                self.tx_iov[k].iov_len = self.rx_msgs[i].msg_len
                self.tx_msgs[k].msg_hdr.msg_name = self.rx_names + i * NAME_LEN
                self.tx_msgs[k].msg_hdr.msg_namelen = self.rx_msgs[i].msg_hdr.msg_namelen
                self.tx_msgs[k].msg_hdr.msg_iov = &self.tx_iov[k]
                self.tx_msgs[k].msg_hdr.msg_iovlen = 1
                self.tx_msgs[k].msg_hdr.msg_control = NULL
                self.tx_msgs[k].msg_hdr.msg_controllen = 0
                self.tx_msgs[k].msg_hdr.msg_flags = 0
                k += 1
        while done < k:
            sent = sendmmsg(self.fd, self.tx_msgs + done, k - done, 0)
            if sent <= 0:
                if sent < 0 and errno == EINTR:
                    continue
                self.stat[3] += k - done
                break
            done += sent
        self.stat[1] += done
