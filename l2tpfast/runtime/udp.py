"""The control plane's UDP socket (RFC 2661 8.1, "L2TP over UDP/IP").

RFC 2661 8.1 lets the recipient answer "setting its own source port to the free port it found";
we answer from the very address and port the peer sent to, because NATs and firewalls in front of
peers expect that. On a wildcard bind the destination comes from IP_PKTINFO / IPV6_PKTINFO and
goes back as the reply's source. Only bytes and addresses pass through here; every protocol rule
lives in the core.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import Self

Address = tuple[str, int]
"""(host, port) for IPv4 and IPv6 alike; IPv6 hosts in compressed text form."""

# Linux values, for Python builds that do not expose the names (CPython often lacks IP_PKTINFO).
IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO: int = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO: int = getattr(socket, "IPV6_PKTINFO", 50)

_IN_PKTINFO = struct.Struct("=i4s4s")  # int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr
_IN6_PKTINFO = struct.Struct("=16sI")  # in6_addr ipi6_addr; unsigned int ipi6_ifindex
_MAX_DATAGRAM = 65535
_ANC_BUFSIZE = socket.CMSG_SPACE(_IN6_PKTINFO.size) * 2
# An ICMP error is reported once by the next socket call; a few in a row must not stall a read.
_MAX_ERRORS_PER_RECV = 8
# ICMP errors that the kernel may report on a later socket call; the reliable channel (RFC 2661
# 5.8) retransmits, so the shell just drops the lost datagram.
_ICMP_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPROTO})
_SEND_DROP_ERRNOS = _ICMP_ERRNOS | {errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS}


@dataclass(frozen=True, slots=True)
class Received:
    """One datagram, where it came from, and the local address it was sent to."""

    data: bytes
    peer: Address
    local: str | None  # None only when the kernel gave no packet-info cmsg


def _host_text(host: str, family: int) -> str:
    return ipaddress.ip_address(host).compressed if family == socket.AF_INET6 else host


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DatagramTransport:
    """What the UDP and the IP-protocol-115 transports share: batches, PKTINFO, sends, closing."""

    family: int
    _sock: socket.socket
    _wildcard: bool

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self) -> Received | None:
        raise NotImplementedError

    def recv_batch(self, limit: int = 64) -> list[Received]:
        """Read up to `limit` queued datagrams."""
        batch: list[Received] = []
        while len(batch) < limit:
            item = self.recv()
            if item is None:
                break
            batch.append(item)
        return batch

    def _sendmsg(self, data: bytes, dest: Address, local: str | None) -> bool:
        """Send from `local` if given; False when the network dropped the datagram at once."""
        ancdata: list[tuple[int, int, bytes]] = []
        # A socket bound to one address receives only what is sent to that address, so its
        # replies already leave from the right one; the cmsg would only override the bind.
        if local is not None and self._wildcard:
            packed = ipaddress.ip_address(local).packed
            if self.family == socket.AF_INET6:
                ancdata.append((socket.IPPROTO_IPV6, IPV6_PKTINFO, _IN6_PKTINFO.pack(packed, 0)))
            else:
                # ipi_spec_dst is the source on send (ip(7)).
                ancdata.append((socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, packed, bytes(4))))
        try:
            self._sock.sendmsg([data], ancdata, 0, dest)
        except OSError as exc:
            if exc.errno in _SEND_DROP_ERRNOS:
                return False
            raise
        return True

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @staticmethod
    def parse_local(ancdata: list[tuple[int, int, bytes]]) -> str | None:
        """The destination address of a received datagram, from its PKTINFO cmsg."""
        for level, kind, payload in ancdata:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= _IN_PKTINFO.size:
                # ipi_addr is the header's destination; ipi_spec_dst may differ for broadcast.
                return str(ipaddress.IPv4Address(_IN_PKTINFO.unpack_from(payload)[2]))
            if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(payload) >= _IN6_PKTINFO.size:
                return ipaddress.IPv6Address(_IN6_PKTINFO.unpack_from(payload)[0]).compressed
        return None


class UdpTransport(DatagramTransport):
    """A non-blocking UDP socket that reports and chooses the local address per datagram."""

    def __init__(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        self.family: int = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            # A wildcard bind may also be a hostname; only a literal address can be unspecified.
            self._wildcard = ipaddress.ip_address(host).is_unspecified
        except ValueError:
            self._wildcard = False
        sock: socket.socket | None = None
        try:
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            # No SO_REUSEADDR: on Linux it lets two UDP sockets bind the same address and port,
            # and a second daemon would then silently take the first one's datagrams.
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if self.family == socket.AF_INET6:
                # "::" must not take IPv4 too: an IPv4 listener may want the same port.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.bind((host, port))
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise OSError(exc.errno, f"cannot bind UDP {_host_port(host, port)}: {exc.strerror}") from exc
        self._sock = sock

    @property
    def local_address(self) -> Address:
        """The bound address, with the port the kernel chose when 0 was asked for."""
        name = self._sock.getsockname()
        return (_host_text(name[0], self.family), name[1])

    def recv(self) -> Received | None:
        """Read one datagram, or return None when none is queued."""
        for _ in range(_MAX_ERRORS_PER_RECV):
            try:
                data, ancdata, _flags, addr = self._sock.recvmsg(_MAX_DATAGRAM, _ANC_BUFSIZE)
            except BlockingIOError:
                return None
            except OSError as exc:
                if exc.errno in _ICMP_ERRNOS:
                    continue
                raise
            return Received(data, (_host_text(addr[0], self.family), addr[1]), self.parse_local(ancdata))
        return None

    def send(self, data: bytes, peer: Address, local: str | None = None) -> bool:
        """Send one datagram from `local` if given; False when the network dropped it at once."""
        return self._sendmsg(data, peer, local)
