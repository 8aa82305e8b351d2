"""Read and write UDP datagrams in classic libpcap files, with the standard library only.

Reading: classic pcap in either byte order, microsecond or nanosecond timestamps, link types
Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL and SLL2, and raw IP; IPv4 and IPv6;
UDP only. Everything else (other protocols, IP fragments, truncated captures) is skipped.
pcapng is refused with a hint: capture with ``tcpdump -w`` or ``tshark -F pcap``.

Writing: classic pcap (little-endian, microsecond timestamps), link type
raw IP (default) or Ethernet, with correct IPv4 header checksums and UDP checksums, so that
tshark reports no bad-checksum expert info. IPv4 and IPv6 addresses are both accepted.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_RAW",
    "UdpDatagram",
    "read_udp_payloads",
    "write_udp_pcap",
]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_MAGIC_USEC = 0xA1B2C3D4
_MAGIC_NSEC = 0xA1B23C4D
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)

_IPPROTO_UDP = 17
# IPv6 extension headers that are skipped to reach UDP (RFC 8200 4.1); 44 is Fragment.
_IPV6_EXTENSIONS = (0, 43, 60)
_IPV6_FRAGMENT = 44

_SNAPLEN = 262144
_ETH_SRC = bytes.fromhex("020000000001")
_ETH_DST = bytes.fromhex("020000000002")

Address = tuple[str, int]


@dataclass(frozen=True)
class UdpDatagram:
    """One UDP datagram from a capture; ``index`` is the 1-based frame number (as in tshark)."""

    src: Address
    dst: Address
    payload: bytes
    index: int


def read_udp_payloads(path: str | os.PathLike[str], *, port: int | None = None) -> list[UdpDatagram]:
    """All UDP datagrams in a classic pcap file, optionally only those to or from ``port``."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == _PCAPNG_MAGIC:
        raise ValueError(f"{path}: pcapng is not supported; write classic pcap (tshark -F pcap)")
    if len(data) < 24:
        raise ValueError(f"{path}: too short for a pcap file header")
    for endian in ("<", ">"):
        (magic,) = struct.unpack_from(endian + "I", data, 0)
        if magic in (_MAGIC_USEC, _MAGIC_NSEC):
            break
    else:
        raise ValueError(f"{path}: not a pcap file (magic {data[:4].hex()})")
    (network,) = struct.unpack_from(endian + "I", data, 20)
    linktype = network & 0x0FFFFFFF  # the upper bits may carry FCS information

    datagrams: list[UdpDatagram] = []
    offset = 24
    index = 0
    while offset < len(data):
        if offset + 16 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {offset}")
        _sec, _frac, caplen, _origlen = struct.unpack_from(endian + "IIII", data, offset)
        offset += 16
        if offset + caplen > len(data):
            raise ValueError(f"{path}: truncated record {index + 1} at byte {offset}")
        frame = data[offset : offset + caplen]
        offset += caplen
        index += 1
        parsed = _parse_frame(linktype, frame)
        if parsed is None:
            continue
        src, dst, payload = parsed
        if port is not None and port not in (src[1], dst[1]):
            continue
        datagrams.append(UdpDatagram(src=src, dst=dst, payload=payload, index=index))
    return datagrams


def _parse_frame(linktype: int, frame: bytes) -> tuple[Address, Address, bytes] | None:
    """(src, dst, UDP payload) of one link-layer frame, or None when it is not complete UDP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        pos = 12
        (ethertype,) = struct.unpack_from("!H", frame, pos)
        while ethertype in _ETHERTYPE_VLAN and len(frame) >= pos + 6:
            pos += 4
            (ethertype,) = struct.unpack_from("!H", frame, pos)
        return _parse_ethertype(ethertype, frame[pos + 2 :])
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, 14)
        return _parse_ethertype(ethertype, frame[16:])
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, 0)
        return _parse_ethertype(ethertype, frame[20:])
    if linktype == LINKTYPE_RAW:
        return _parse_ip(frame)
    if linktype == LINKTYPE_IPV4:
        return _parse_ipv4(frame)
    if linktype == LINKTYPE_IPV6:
        return _parse_ipv6(frame)
    return None


def _parse_ethertype(ethertype: int, packet: bytes) -> tuple[Address, Address, bytes] | None:
    if ethertype == _ETHERTYPE_IPV4:
        return _parse_ipv4(packet)
    if ethertype == _ETHERTYPE_IPV6:
        return _parse_ipv6(packet)
    return None


def _parse_ip(packet: bytes) -> tuple[Address, Address, bytes] | None:
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        return _parse_ipv4(packet)
    if version == 6:
        return _parse_ipv6(packet)
    return None


def _parse_ipv4(packet: bytes) -> tuple[Address, Address, bytes] | None:
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header_length = (packet[0] & 0x0F) * 4
    (total_length, flags_fragment) = struct.unpack_from("!H2xH", packet, 2)
    # total_length trims link-layer padding (Ethernet pads frames to 60 bytes)
    if header_length < 20 or total_length < header_length or total_length > len(packet):
        return None
    if flags_fragment & 0x3FFF:  # More Fragments set or a non-zero offset: not a whole datagram
        return None
    if packet[9] != _IPPROTO_UDP:
        return None
    src = str(ipaddress.IPv4Address(packet[12:16]))
    dst = str(ipaddress.IPv4Address(packet[16:20]))
    return _parse_udp(src, dst, packet[header_length:total_length])


def _parse_ipv6(packet: bytes) -> tuple[Address, Address, bytes] | None:
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    (payload_length,) = struct.unpack_from("!H", packet, 4)
    if 40 + payload_length > len(packet):
        return None
    next_header = packet[6]
    src = str(ipaddress.IPv6Address(packet[8:24]))
    dst = str(ipaddress.IPv6Address(packet[24:40]))
    rest = packet[40 : 40 + payload_length]
    while next_header in (*_IPV6_EXTENSIONS, _IPV6_FRAGMENT):
        if len(rest) < 8:
            return None
        if next_header == _IPV6_FRAGMENT:
            (fragment,) = struct.unpack_from("!H", rest, 2)
            if fragment & 0xFFF9:  # offset or M flag: only atomic fragments are whole
                return None
            extension_length = 8
        else:
            extension_length = (rest[1] + 1) * 8
        if extension_length > len(rest):
            return None
        next_header = rest[0]
        rest = rest[extension_length:]
    if next_header != _IPPROTO_UDP:
        return None
    return _parse_udp(src, dst, rest)


def _parse_udp(src: str, dst: str, segment: bytes) -> tuple[Address, Address, bytes] | None:
    if len(segment) < 8:
        return None
    src_port, dst_port, udp_length = struct.unpack_from("!HHH", segment, 0)
    if udp_length < 8 or udp_length > len(segment):  # truncated by the snap length
        return None
    return (src, src_port), (dst, dst_port), bytes(segment[8:udp_length])


def write_udp_pcap(
    path: str | os.PathLike[str],
    datagrams: Iterable[tuple[bytes, Address, Address]],
    *,
    linktype: int = LINKTYPE_RAW,
    start_time: float = 1_700_000_000.0,
    interval: float = 0.001,
) -> int:
    """Write (payload, src, dst) datagrams as a classic pcap file; returns how many were written.

    Timestamps start at ``start_time`` and advance by ``interval`` per datagram, so the file
    is byte-for-byte reproducible. ``linktype`` is LINKTYPE_RAW or LINKTYPE_ETHERNET.
    """
    if linktype not in (LINKTYPE_RAW, LINKTYPE_ETHERNET):
        raise ValueError(f"cannot write link type {linktype}; use LINKTYPE_RAW or LINKTYPE_ETHERNET")
    records = [struct.pack("<IHHiIII", _MAGIC_USEC, 2, 4, 0, 0, _SNAPLEN, linktype)]
    count = 0
    for number, (payload, src, dst) in enumerate(datagrams):
        packet = _build_ip_udp(bytes(payload), src, dst, identification=number & 0xFFFF)
        if linktype == LINKTYPE_ETHERNET:
            ethertype = _ETHERTYPE_IPV4 if packet[0] >> 4 == 4 else _ETHERTYPE_IPV6
            packet = _ETH_DST + _ETH_SRC + struct.pack("!H", ethertype) + packet
        microseconds = round((start_time + number * interval) * 1_000_000)
        seconds, micros = divmod(microseconds, 1_000_000)
        records.append(struct.pack("<IIII", seconds, micros, len(packet), len(packet)))
        records.append(packet)
        count += 1
    with open(path, "wb") as f:
        f.write(b"".join(records))
    return count


def _build_ip_udp(payload: bytes, src: Address, dst: Address, *, identification: int) -> bytes:
    """An IPv4 or IPv6 packet carrying one UDP datagram, with every checksum filled in."""
    src_ip = ipaddress.ip_address(src[0])
    dst_ip = ipaddress.ip_address(dst[0])
    if src_ip.version != dst_ip.version:
        raise ValueError(f"address families differ: {src[0]} and {dst[0]}")
    udp_length = 8 + len(payload)
    if udp_length > 0xFFFF or (src_ip.version == 4 and 20 + udp_length > 0xFFFF):
        raise ValueError(f"UDP payload of {len(payload)} bytes does not fit in one datagram")
    udp_header = struct.pack("!HHHH", src[1], dst[1], udp_length, 0)
    if src_ip.version == 4:
        pseudo_header = src_ip.packed + dst_ip.packed + struct.pack("!BBH", 0, _IPPROTO_UDP, udp_length)
    else:
        pseudo_header = src_ip.packed + dst_ip.packed + struct.pack("!I3xB", udp_length, _IPPROTO_UDP)
    # RFC 768: a computed checksum of zero is sent as all ones (zero means "none")
    udp_checksum = _internet_checksum(pseudo_header + udp_header + payload) or 0xFFFF
    segment = udp_header[:6] + struct.pack("!H", udp_checksum) + payload
    if src_ip.version == 6:
        return (
            struct.pack("!IHBB", 6 << 28, udp_length, _IPPROTO_UDP, 64)
            + src_ip.packed
            + dst_ip.packed
            + segment
        )
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # version 4, five 32-bit words of header
        0,
        20 + udp_length,
        identification,
        0x4000,  # Don't Fragment
        64,
        _IPPROTO_UDP,
        0,
        src_ip.packed,
        dst_ip.packed,
    )
    header = header[:10] + struct.pack("!H", _internet_checksum(header)) + header[12:]
    return header + segment


def _internet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum of 16-bit words, complemented."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
