# Included by _dataplane.pyx (after bench.pxi, before loop.pxi): sending a batch of datagrams
# with UDP generic segmentation offload (GSO, Linux 4.18: the UDP_SEGMENT cmsg, udp(7)).
#
# A run of datagrams in a sendmmsg batch that go to the same peer, from the same source (the
# same PKTINFO cmsg) and have the same length leaves as one message: its iovecs are those of
# the run (they lie one after the other), and a UDP_SEGMENT cmsg gives the length of each. The
# kernel passes one buffer down its UDP and IP layers and cuts it into the datagrams at the
# device (or the NIC does): the per-datagram cost of the layers above goes once per run. The
# receiver sees the same datagrams as without it, each with its own UDP and IP header.
#
# Before Linux 6.11 GSO needs checksum offload on the route's device, and without it the kernel
# answers EIO (later kernels segment and checksum in software). A run refused so (EIO, or
# ENOPROTOOPT from an old kernel) is sent again datagram by datagram and GSO is switched off for
# this sender; a run refused for its size (EINVAL, EMSGSIZE: a segment
# longer than the path's MTU) is sent again datagram by datagram, and GSO stays on.
#
# Ownership: a gso_t's arrays are allocated by gso_init and freed by gso_free; the messages it
# builds point into the caller's mmsghdrs' names and iovecs, valid for one gso_send call.

from mmsg cimport (
    CMSG_DATA,
    CMSG_LEN,
    CMSG_SPACE,
    EINTR,
    EINVAL,
    EIO,
    EMSGSIZE,
    ENOPROTOOPT,
    SOL_UDP,
    UDP_SEGMENT,
    cmsghdr,
    errno,
    mmsghdr,
    sendmmsg,
)

cdef enum:
    GSO_CONTROL = 96            # a PKTINFO cmsg (at most CONTROL_LEN) and a UDP_SEGMENT one
    GSO_MAX_SEGMENTS = 64       # the kernel takes 64 (UDP_MAX_SEGMENTS, 128 since Linux 5.x)
    GSO_MAX_OCTETS = 65000      # a whole run as one UDP datagram: under 65535 with its headers


ctypedef struct gso_t:
    mmsghdr* out
    uint8_t* control
    int* first
    int* count
    int cap
    int enabled
    uint64_t runs               # messages sent with UDP_SEGMENT
    uint64_t in_runs            # datagrams they carried


cdef inline int gso_init(gso_t* g, int cap, bint enabled) noexcept:
    """0, or -1 when out of memory."""
    g.cap = cap
    g.enabled = enabled
    g.runs = 0
    g.in_runs = 0
    g.out = <mmsghdr*>PyMem_Malloc(cap * sizeof(mmsghdr))
    g.control = <uint8_t*>PyMem_Malloc(cap * GSO_CONTROL)
    g.first = <int*>PyMem_Malloc(cap * sizeof(int))
    g.count = <int*>PyMem_Malloc(cap * sizeof(int))
    if not g.out or not g.control or not g.first or not g.count:
        return -1
    return 0


cdef inline void gso_free(gso_t* g) noexcept:
    PyMem_Free(g.out)
    PyMem_Free(g.control)
    PyMem_Free(g.first)
    PyMem_Free(g.count)
    g.out = NULL
    g.control = NULL
    g.first = NULL
    g.count = NULL


cdef inline size_t msg_length(const mmsghdr* m) noexcept nogil:
    cdef size_t n = 0, i
    for i in range(m.msg_hdr.msg_iovlen):
        n += m.msg_hdr.msg_iov[i].iov_len
    return n


cdef inline bint same_run(const mmsghdr* a, const mmsghdr* b, size_t length) noexcept nogil:
    """Whether ``b`` may follow ``a`` in one GSO message: same peer, source and length, and
    iovecs that continue ``a``'s."""
    return (
        b.msg_hdr.msg_iov == a.msg_hdr.msg_iov + a.msg_hdr.msg_iovlen
        and b.msg_hdr.msg_namelen == a.msg_hdr.msg_namelen
        and memcmp(b.msg_hdr.msg_name, a.msg_hdr.msg_name, a.msg_hdr.msg_namelen) == 0
        and b.msg_hdr.msg_controllen == a.msg_hdr.msg_controllen
        and (a.msg_hdr.msg_controllen == 0
             or memcmp(b.msg_hdr.msg_control, a.msg_hdr.msg_control, a.msg_hdr.msg_controllen) == 0)
        and msg_length(b) == length
    )


cdef inline int plain_send(int fd, mmsghdr* msgs, int k) noexcept nogil:
    """sendmmsg until done or an error; returns how many went."""
    cdef int done = 0, n
    while done < k:
        n = sendmmsg(fd, msgs + done, k - done, 0)
        if n <= 0:
            if n < 0 and errno == EINTR:
                continue
            break
        done += n
    return done


cdef inline int gso_send(gso_t* g, int fd, mmsghdr* msgs, int k) noexcept nogil:
    """Send ``k`` datagrams, runs of them as GSO messages; returns how many went out (the rest
    were lost to a full buffer or an ICMP error, as on a wire)."""
    cdef int i = 0, j, runs = 0, n, done = 0, sent, e
    cdef size_t length, control_len
    cdef mmsghdr* o
    cdef cmsghdr* c
    if not g.enabled or k < 2:
        return plain_send(fd, msgs, k)
    while i < k and runs < g.cap:
        length = msg_length(&msgs[i])
        j = i + 1
        while (j < k and j - i < GSO_MAX_SEGMENTS and <size_t>(j - i + 1) * length <= GSO_MAX_OCTETS
               and same_run(&msgs[j - 1], &msgs[j], length)):
            j += 1
        o = &g.out[runs]
        o.msg_hdr = msgs[i].msg_hdr
        o.msg_len = 0
        g.first[runs] = i
        g.count[runs] = j - i
        if j - i > 1:
            o.msg_hdr.msg_iovlen = msgs[i].msg_hdr.msg_iovlen * (j - i)
            control_len = msgs[i].msg_hdr.msg_controllen
            if control_len:
                memcpy(g.control + runs * GSO_CONTROL, msgs[i].msg_hdr.msg_control, control_len)
            c = <cmsghdr*>(g.control + runs * GSO_CONTROL + control_len)
            c.cmsg_level = SOL_UDP
            c.cmsg_type = UDP_SEGMENT
            c.cmsg_len = CMSG_LEN(sizeof(uint16_t))
            (<uint16_t*>CMSG_DATA(c))[0] = <uint16_t>length
            o.msg_hdr.msg_control = g.control + runs * GSO_CONTROL
            o.msg_hdr.msg_controllen = control_len + CMSG_SPACE(sizeof(uint16_t))
        runs += 1
        i = j
    # Messages past the capacity (cannot happen: cap covers a batch) go one by one.
    n = 0
    while n < runs:
        sent = sendmmsg(fd, g.out + n, runs - n, 0)
        if sent > 0:
            for j in range(n, n + sent):
                done += g.count[j]
                if g.count[j] > 1:
                    g.runs += 1
                    g.in_runs += g.count[j]
            n += sent
            continue
        e = errno
        if sent < 0 and e == EINTR:
            continue
        if g.count[n] > 1 and (e == EIO or e == ENOPROTOOPT or e == EINVAL or e == EMSGSIZE):
            if e == EIO or e == ENOPROTOOPT:
                g.enabled = 0  # no checksum offload on the way, or no UDP_SEGMENT: never again
            done += plain_send(fd, msgs + g.first[n], g.count[n])
            n += 1
            continue
        break  # a full buffer, an ICMP error: the rest is lost, as on a wire
    if i < k:
        done += plain_send(fd, msgs + i, k - i)
    return done
