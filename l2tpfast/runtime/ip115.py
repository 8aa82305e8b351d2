"""L2TPv2 directly over IP, protocol 115: a raw-socket transport with UdpTransport's surface.

RFC 2661 8.2 makes UDP (8.1) the default and leaves others open: "Other configurations (perhaps
corresponding to a compressed header format) MAY be defined and made available as a configurable
option." IP protocol 115 belongs to L2TPv3 (RFC 3931 4.1.1), whose payload over IP starts with a
32-bit Session ID, zero for control messages (RFC 3931 4.1.1.2). The framing here is this
project's own: the IP payload is the L2TP v2 header as is (RFC 2661 3.1, Ver = 2) and what follows
it, with no UDP header and no Session ID in front. An RFC 3931 peer would read the first four
bytes as a Session ID, so both ends must be l2tpfast. Without UDP there is no checksum over the
L2TP bytes (RFC 3931 4.1.1.2 makes the same remark); the IPv4 header checksum covers the header.

Without ports, ``Received.peer`` is ``(host, 0)`` and `send` ignores the peer's port. An IPv4 raw
socket delivers the IP header with the payload; `recv` skips it by its IHL (RFC 791 3.1), options
included. An IPv6 raw socket delivers the payload alone (RFC 3542 3). As in `udp.py`, on a
wildcard bind the reply's source is chosen per datagram with IP_PKTINFO / IPV6_PKTINFO; the local
address reported for IPv4 is the received header's destination, the very field IP_PKTINFO's
ipi_addr copies. Opening the socket needs CAP_NET_RAW.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

from l2tpfast.runtime.udp import _ICMP_ERRNOS, IPV6_RECVPKTINFO, Address, DatagramTransport, Received

__all__ = ["IPPROTO_L2TP", "Address", "Ip115Transport", "Received", "ipv4_payload"]

#: IANA protocol number 115, "L2TP" (RFC 3931 4.1.1).
IPPROTO_L2TP = 115

_IN6_PKTINFO = struct.Struct("=16sI")  # in6_addr ipi6_addr; unsigned int ipi6_ifindex
# The largest IPv4 packet (Total Length is 16 bits) or IPv6 payload without a jumbogram.
_MAX_PACKET = 65535
_ANC_BUFSIZE6 = socket.CMSG_SPACE(_IN6_PKTINFO.size) * 2
_IPV4_MIN_HEADER = 20
# Bounded like udp.py: ICMP errors and discarded packets must not stall a read.
_MAX_SKIPS_PER_RECV = 8


def ipv4_payload(packet: memoryview) -> memoryview | None:
    """The payload of an IPv4 packet as a view into `packet`, or None if the header is broken.

    RFC 791 3.1: IHL is the header's length in 32-bit words, at least 5; options follow the 20
    fixed bytes.
    """
    if len(packet) < _IPV4_MIN_HEADER or packet[0] >> 4 != 4:
        return None
    header_len = (packet[0] & 0x0F) * 4
    if header_len < _IPV4_MIN_HEADER or header_len > len(packet):
        return None
    return packet[header_len:]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Ip115Transport(DatagramTransport):
    """A non-blocking raw IP socket for protocol 115 that reports and chooses the local address."""

    def __init__(self, host: str) -> None:
        self.family: int = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._wildcard = ipaddress.ip_address(host).is_unspecified
        except ValueError:
            self._wildcard = False
        sock: socket.socket | None = None
        try:
            sock = socket.socket(self.family, socket.SOCK_RAW, IPPROTO_L2TP)
            sock.setblocking(False)
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            # A raw socket has no port; bind only filters on the destination address.
            sock.bind((host, 0))
        except OSError as exc:
            if sock is not None:
                sock.close()
            hint = "; needs CAP_NET_RAW (run as root)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
            raise OSError(
                exc.errno,
                f"cannot bind IP protocol {IPPROTO_L2TP} on {_bracketed(host)}: {exc.strerror}{hint}",
            ) from exc
        self._sock = sock
        # One receive buffer, reused: each datagram's payload is copied out of it exactly once.
        self._buffer = bytearray(_MAX_PACKET)
        self._view = memoryview(self._buffer)

    @property
    def local_address(self) -> Address:
        """The bound address and port 0 (getsockname would show the protocol, 115, as port)."""
        host = self._sock.getsockname()[0]
        return (ipaddress.ip_address(host).compressed if self.family == socket.AF_INET6 else host, 0)

    def recv(self) -> Received | None:
        """Read one datagram's L2TP bytes, or return None when none is queued."""
        ancsize = _ANC_BUFSIZE6 if self.family == socket.AF_INET6 else 0
        for _ in range(_MAX_SKIPS_PER_RECV):
            try:
                nbytes, ancdata, _flags, addr = self._sock.recvmsg_into([self._buffer], ancsize)
            except BlockingIOError:
                return None
            except OSError as exc:
                if exc.errno in _ICMP_ERRNOS:
                    continue
                raise
            if self.family == socket.AF_INET6:
                peer = ipaddress.IPv6Address(addr[0].partition("%")[0]).compressed
                return Received(bytes(self._view[:nbytes]), (peer, 0), self.parse_local(ancdata))
            packet = self._view[:nbytes]
            payload = ipv4_payload(packet)
            if payload is None:
                continue  # the kernel checked this header already; never expected
            local = socket.inet_ntoa(packet[16:20])  # the destination address (RFC 791 3.1)
            return Received(bytes(payload), (addr[0], 0), local)
        return None

    def send(self, data: bytes, peer: Address, local: str | None = None) -> bool:
        """Send one datagram to `peer`'s host from `local` if given; False when dropped at once."""
        # Port 0 always: an IPv6 raw socket reads sin6_port as a protocol number and refuses any
        # other than its own (EINVAL); an IPv4 one ignores it.
        return self._sendmsg(data, (peer[0], 0), local)
