"""PPP frame and packet codec (RFC 1661 2, 5, 6; RFC 1662 3.2).

Over L2TP a PPP frame has no flags and no FCS (RFC 2661 2). The Address and Control octets
FF 03 may be present or not (ACFC, and LACs differ), and the protocol field is one octet when
its low bit is set (PFC) and two otherwise: every form is accepted. Builders always send FF 03
and two octets unless told that the peer accepts compression.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from l2tpfast.errors import PppError

Option = tuple[int, bytes]


def parse_frame(frame: bytes) -> tuple[int, bytes]:
    """Return (protocol, information) of one PPP frame, with or without FF 03 and PFC."""
    i = 2 if frame[:2] == b"\xff\x03" else 0
    if len(frame) < i + 1:
        raise PppError("PPP frame without a protocol field")
    if frame[i] & 1:  # RFC 1661 6.5: a 1-octet protocol field has its low bit set
        return frame[i], bytes(frame[i + 1 :])
    if len(frame) < i + 2:
        raise PppError("PPP frame truncated in its protocol field")
    protocol = (frame[i] << 8) | frame[i + 1]
    if not protocol & 1:  # RFC 1661 2: the least significant octet is odd
        raise PppError(f"PPP protocol field 0x{protocol:04x} is not odd")
    return protocol, bytes(frame[i + 2 :])


def build_frame(protocol: int, information: bytes, *, acfc: bool = False, pfc: bool = False) -> bytes:
    """One PPP frame; ``acfc``/``pfc`` only when the peer accepted them (RFC 1661 6.5, 6.6)."""
    head = b"" if acfc else b"\xff\x03"
    # RFC 1661 6.5: LCP packets are never compressed, and only protocols below 0x100 can be.
    if pfc and protocol < 0x100:
        return head + bytes((protocol,)) + information
    return head + struct.pack("!H", protocol) + information


@dataclass(frozen=True, slots=True)
class Packet:
    """One control packet (RFC 1661 5): Code, Identifier, Data (Length is implied)."""

    code: int
    identifier: int
    data: bytes


def parse_packet(information: bytes) -> Packet:
    """RFC 1661 5: octets past Length are padding and ignored; a shorter packet is dropped."""
    if len(information) < 4:
        raise PppError("control packet shorter than 4 octets")
    code, identifier, length = struct.unpack_from("!BBH", information)
    if length < 4 or length > len(information):
        raise PppError(f"control packet Length {length} with {len(information)} octets")
    return Packet(code, identifier, bytes(information[4:length]))


def build_packet(code: int, identifier: int, data: bytes = b"") -> bytes:
    return struct.pack("!BBH", code, identifier & 0xFF, 4 + len(data)) + data


def parse_options(data: bytes) -> list[Option]:
    """RFC 1661 6: Type, Length (counting both), Data. A bad Length makes the whole list bad."""
    options: list[Option] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise PppError("configuration option truncated")
        kind, length = data[i], data[i + 1]
        if length < 2 or i + length > len(data):
            raise PppError(f"configuration option {kind} with Length {length}")
        options.append((kind, bytes(data[i + 2 : i + length])))
        i += length
    return options


def build_options(options: list[Option]) -> bytes:
    return b"".join(bytes((kind, 2 + len(value))) + value for kind, value in options)
