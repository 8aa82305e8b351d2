# cython: language_level=3
"""C declarations of the system calls and structs the data plane uses (STYLE.md 4).

Batch UDP I/O (``recvmmsg``/``sendmmsg`` with per-datagram ancillary data), TUN
``read``/``write``, the eventfd hand-off to the control plane, ``poll`` and the
monotonic clock.  Only ``extern`` declarations live here, so every extension that
cimports this file gets the same view and nothing holds state (STYLE.md 2).

``recvmmsg``, ``sendmmsg`` and ``struct in6_pktinfo`` are GNU extensions: glibc
declares them only when ``_GNU_SOURCE`` is defined before its first header.  A
``#define`` from here would come too late, because Cython includes ``Python.h``
first; but ``pyconfig.h`` defines ``_GNU_SOURCE`` on Linux, so it is already in
effect.  The guard below turns a build where that stops being true into a compile
error instead of an implicit declaration.  ``tests/fastpath/test_mmsg_pxd.py``
compiles a module that cimports this file and runs a batch round trip through it.
"""

from libc.stdint cimport uint16_t, uint32_t
from libc.time cimport time_t


cdef extern from *:
    """
    #if !defined(_GNU_SOURCE)
    #error "mmsg.pxd: recvmmsg/sendmmsg need _GNU_SOURCE; Python.h defines it on Linux"
    #endif
    #if defined(__GLIBC__) && !defined(__USE_GNU)
    #error "mmsg.pxd: glibc headers were read before _GNU_SOURCE was defined"
    #endif
    """


cdef extern from "<time.h>" nogil:
    ctypedef int clockid_t

    struct timespec:
        time_t tv_sec
        long tv_nsec

    enum:
        CLOCK_MONOTONIC

    int clock_gettime(clockid_t clk_id, timespec* tp)
    int nanosleep(const timespec* req, timespec* rem)


cdef extern from "<sys/uio.h>" nogil:
    # One scatter/gather element; the memory it points to belongs to the caller.
    struct iovec:
        void* iov_base
        size_t iov_len


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    struct sockaddr:
        sa_family_t sa_family

    # Large and aligned enough for any address family: the msg_name of a receive slot.
    struct sockaddr_storage:
        sa_family_t ss_family

    struct msghdr:
        void* msg_name            # source (receive) or destination (send) address
        socklen_t msg_namelen     # in: size of msg_name; out: length of the address
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control         # ancillary data buffer (IP_PKTINFO, ...)
        size_t msg_controllen     # in: buffer size; out: length used
        int msg_flags             # out (receive): MSG_TRUNC, MSG_CTRUNC

    # One slot of a recvmmsg/sendmmsg batch; msg_len is the octets received or sent.
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len

    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type

    enum:
        AF_INET
        AF_INET6
        MSG_DONTWAIT
        MSG_WAITFORONE            # block for the first datagram only, then take what is queued
        MSG_TRUNC                 # msg_flags: the datagram was longer than the buffer
        MSG_CTRUNC                # msg_flags: ancillary data did not fit msg_control

    # Returns the number of slots filled, or -1 with errno set (and nothing received).
    int recvmmsg(int sockfd, mmsghdr* msgvec, unsigned int vlen, int flags, timespec* timeout)
    # Returns the number of slots sent, which may be fewer than vlen: the caller resends the rest.
    int sendmmsg(int sockfd, mmsghdr* msgvec, unsigned int vlen, int flags)

    # Macros; the pointers they return point into msg_control of the msghdr given.
    cmsghdr* CMSG_FIRSTHDR(msghdr* msgh)
    cmsghdr* CMSG_NXTHDR(msghdr* msgh, cmsghdr* cmsg)
    unsigned char* CMSG_DATA(cmsghdr* cmsg)
    size_t CMSG_SPACE(size_t length)
    size_t CMSG_LEN(size_t length)


cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr           # network byte order

    struct in6_addr:
        unsigned char s6_addr[16]

    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port         # network byte order
        in_addr sin_addr

    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port        # network byte order
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

    # IP_PKTINFO ancillary data: ipi_addr is the destination address of the datagram,
    # which an LNS bound to the wildcard address must answer from (RFC 2661 8.1).
    struct in_pktinfo:
        int ipi_ifindex
        in_addr ipi_spec_dst
        in_addr ipi_addr

    struct in6_pktinfo:
        in6_addr ipi6_addr
        unsigned int ipi6_ifindex

    enum:
        IPPROTO_IP
        IPPROTO_IPV6
        IPPROTO_UDP
        IP_PKTINFO                # setsockopt to receive in_pktinfo; also the cmsg type
        IPV6_PKTINFO              # the cmsg type of in6_pktinfo
        IPV6_RECVPKTINFO          # setsockopt to receive in6_pktinfo (RFC 3542)

    uint16_t htons(uint16_t hostshort)
    uint16_t ntohs(uint16_t netshort)
    uint32_t htonl(uint32_t hostlong)
    uint32_t ntohl(uint32_t netlong)


cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void* buf, size_t count)
    ssize_t write(int fd, const void* buf, size_t count)
    int close(int fd)


cdef extern from "<sys/eventfd.h>" nogil:
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC
    int eventfd(unsigned int initval, int flags)


cdef extern from "<errno.h>" nogil:
    # Thread-local in glibc, so reading it after a call with the GIL released is safe.
    int errno
    enum:
        EAGAIN
        EINTR
        EIO
        EINVAL
        EMSGSIZE
        ENOPROTOOPT
    # Equal to EAGAIN on Linux.  A const, not an enum member: Cython turns
    # `e == EAGAIN or e == EWOULDBLOCK` on two enum members into a C switch,
    # and two equal case labels do not compile.
    const int EWOULDBLOCK


cdef extern from "<netinet/udp.h>" nogil:
    # UDP generic segmentation offload (Linux 4.18): one sendmsg carries many equal datagrams.
    enum:
        SOL_UDP
        UDP_SEGMENT
        UDP_GRO                 # receive side: a run of datagrams in one buffer, cmsg = their size


cdef extern from "<poll.h>" nogil:
    ctypedef unsigned long nfds_t

    struct pollfd:
        int fd
        short events
        short revents

    enum:
        POLLIN
        POLLOUT
        POLLERR
        POLLHUP

    int poll(pollfd* fds, nfds_t nfds, int timeout)
