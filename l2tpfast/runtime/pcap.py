"""A capture of the L2TP control traffic a node sends and receives, as a classic pcap file.

The shell sees each control datagram as bytes and two addresses, never the packet the kernel
built, so :class:`ControlCapture` rebuilds one around it: an IPv4 header (RFC 791 3.1, with its
header checksum) or an IPv6 header (RFC 8200 3), then for L2TP over UDP (RFC 2661 8.1) a UDP header
(RFC 768) with its checksum. RFC 8200 8.1 forbids a zero UDP checksum over IPv6; over IPv4 zero
would be allowed, but a real one lets ``tshark -o udp.check_checksum:TRUE`` vouch for the file.

For L2TP over IP protocol 115 (``record_ip``) the IP payload is exactly what ``runtime/ip115.py``
puts on the wire: the L2TPv2 header and message as they are, without the 32-bit zero Session ID
that RFC 3931 4.1.1.2 puts in front of an L2TPv3 control message, so the file shows what peers
exchange. tshark therefore decodes those frames as L2TPv3 data of a made-up session (see
tests/unit/test_ip115.py).

The file is classic libpcap: magic 0xa1b2c3d4 in this host's byte order, version 2.4, microsecond
timestamps, snap length 65535 and LINKTYPE_RAW (101), whose frames start with the IP header, so
IPv4 and IPv6 share one file. It is created with mode 0600: control messages carry host names,
challenges and, unhidden, whatever AVPs the peers send. Records are buffered and flushed every
``flush_every`` records and on close. Past ``max_bytes`` nothing more is written (logged once); a
failed write stops the capture (logged once) and never reaches the caller, because a diagnostic
must not break the control plane.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import struct
from types import TracebackType
from typing import BinaryIO, Self

from l2tpfast.wire.constants import IP_PROTO_L2TP

__all__ = ["LINKTYPE_RAW", "PCAP_MAGIC", "SNAPLEN", "Address", "ControlCapture", "build_packet"]

log = logging.getLogger("l2tpfast.pcap")

Address = tuple[str, int]
"""(host, port); for L2TP over IP the port is ignored (the transports report it as 0)."""

PCAP_MAGIC = 0xA1B2C3D4
#: The link type whose frames begin with an IPv4 or IPv6 header (the version nibble tells which).
LINKTYPE_RAW = 101
SNAPLEN = 65535
IPPROTO_UDP = 17

_FILE_HEADER = struct.Struct("=IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, network
_RECORD_HEADER = struct.Struct("=IIII")  # ts_sec, ts_usec, incl_len, orig_len
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_IPV4_DONT_FRAGMENT = 0x4000
_HOP_LIMIT = 64


def _checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _addresses(src: str, dst: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    pair = []
    for host in (src, dst):
        ip = ipaddress.ip_address(host)
        # A dual-stack socket may report an IPv4 peer as ::ffff:a.b.c.d; the packet was IPv4.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        pair.append(ip)
    if pair[0].version != pair[1].version:
        raise ValueError(f"address families differ: {src} and {dst}")
    return tuple(pair)


def build_packet(payload: bytes, src: Address, dst: Address, protocol: int, identification: int = 0) -> bytes:
    """An IPv4 or IPv6 packet carrying ``payload`` as UDP (protocol 17) or directly (any other)."""
    src_ip, dst_ip = _addresses(src[0], dst[0])
    if protocol == IPPROTO_UDP:
        udp_length = _UDP.size + len(payload)
        if udp_length > 0xFFFF:
            raise ValueError(f"a UDP payload of {len(payload)} octets does not fit in one datagram")
        if src_ip.version == 4:
            pseudo = src_ip.packed + dst_ip.packed + struct.pack("!xBH", IPPROTO_UDP, udp_length)
        else:  # RFC 8200 8.1: upper-layer length as 32 bits, three zero octets, next header
            pseudo = src_ip.packed + dst_ip.packed + struct.pack("!I3xB", udp_length, IPPROTO_UDP)
        header = _UDP.pack(src[1], dst[1], udp_length, 0)
        # RFC 768: a sum that comes out as zero is sent as all ones, since zero means "none".
        checksum = _checksum(pseudo + header + payload) or 0xFFFF
        payload = _UDP.pack(src[1], dst[1], udp_length, checksum) + payload
    if src_ip.version == 6:
        if len(payload) > 0xFFFF:
            raise ValueError(f"an IPv6 payload of {len(payload)} octets needs a jumbogram")
        return _IPV6.pack(6 << 28, len(payload), protocol, _HOP_LIMIT, src_ip.packed, dst_ip.packed) + payload
    total = _IPV4.size + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"an IPv4 payload of {len(payload)} octets does not fit in one packet")
    header = _IPV4.pack(
        0x45,  # version 4, IHL 5: no options
        0,
        total,
        identification & 0xFFFF,
        _IPV4_DONT_FRAGMENT,
        _HOP_LIMIT,
        protocol,
        0,
        src_ip.packed,
        dst_ip.packed,
    )
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


class ControlCapture:
    """Appends control datagrams to a pcap file; one instance per capture, used from one thread."""

    def __init__(
        self, path: str | os.PathLike[str], *, max_bytes: int | None = 64 << 20, flush_every: int = 32
    ) -> None:
        if max_bytes is not None and max_bytes < _FILE_HEADER.size:
            raise ValueError(
                f"max_bytes {max_bytes} leaves no room for the {_FILE_HEADER.size}-octet file header"
            )
        if flush_every < 1:
            raise ValueError(f"flush_every must be at least 1, not {flush_every}")
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.flush_every = flush_every
        #: Records written, records left out (cap reached, write failed, closed), octets in the file.
        self.records = 0
        self.dropped = 0
        self.bytes_written = 0
        self._unflushed = 0
        self._identification = 0
        # O_NOFOLLOW: a daemon run as root must not write through a link someone planted.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a file it creates
            file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        header = _FILE_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)
        try:
            file.write(header)
            file.flush()
        except BaseException:
            file.close()
            raise
        self._file: BinaryIO | None = file
        self.bytes_written = len(header)

    @property
    def stopped(self) -> bool:
        """True once nothing more will be written: closed, full, or after a failed write."""
        return self._file is None

    def record(self, data: bytes, src: Address, dst: Address, when: float) -> None:
        """One L2TP-over-UDP datagram from ``src`` to ``dst``; ``when`` in seconds since the epoch.

        ValueError for addresses of two families or more octets than one datagram holds: neither
        comes from a socket, so either is a bug of the caller.
        """
        self._record(data, src, dst, when, IPPROTO_UDP)

    def record_ip(self, data: bytes, src: Address, dst: Address, when: float) -> None:
        """One L2TP-over-IP datagram (protocol 115) as ``runtime/ip115.py`` frames it; ports ignored."""
        self._record(data, src, dst, when, IP_PROTO_L2TP)

    def _record(self, data: bytes, src: Address, dst: Address, when: float, protocol: int) -> None:
        if self._file is None:
            self.dropped += 1
            return
        self._identification += 1
        try:
            packet = build_packet(bytes(data), src, dst, protocol, self._identification)
        except ValueError as exc:
            # Addresses of other families, or more octets than any socket delivers: a caller's bug.
            raise ValueError(f"control capture {self.path}: {exc}") from exc
        caplen = min(len(packet), SNAPLEN)
        size = _RECORD_HEADER.size + caplen
        if self.max_bytes is not None and self.bytes_written + size > self.max_bytes:
            log.warning(
                "control capture %s reached its limit of %d bytes; later datagrams are not recorded",
                self.path,
                self.max_bytes,
            )
            self.dropped += 1
            self._stop()
            return
        microseconds = round(when * 1_000_000)
        seconds, micros = divmod(microseconds, 1_000_000)
        self._write(_RECORD_HEADER.pack(seconds, micros, caplen, len(packet)) + packet[:caplen])
        if self._file is None:
            self.dropped += 1
            return
        self.records += 1
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self.flush()

    def _write(self, chunk: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(chunk)
        except OSError as exc:
            self._failed(exc)
            return
        self.bytes_written += len(chunk)

    def flush(self) -> None:
        """Hand the buffered records to the kernel (readers of the file see them)."""
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            self._failed(exc)
            return
        self._unflushed = 0

    def _failed(self, exc: OSError) -> None:
        log.error("control capture %s stopped: %s", self.path, exc)
        file, self._file = self._file, None
        if file is not None:
            # What it still buffered is lost with the failing disk.
            with contextlib.suppress(OSError):
                file.close()

    def _stop(self) -> None:
        self.flush()
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                log.error("control capture %s: %s", self.path, exc)

    def close(self) -> None:
        """Flush and close; records after this are counted as dropped."""
        self._stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
