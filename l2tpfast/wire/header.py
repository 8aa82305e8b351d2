"""The L2TP header (RFC 2661 3.1): parse and build, in pure Python.

This module is the readable statement of the header rules; the compiled
``l2tpfast._parse`` applies the same rules to whole batches and is tested
against it.  Rules:

* Ver must be 2; Ver 1 (L2F) and any other version are discarded.
* A control message (T=1) must have L=1 and S=1 and O=0.  Its P bit MUST be
  0 on send; on receipt we ignore it (be liberal in what we accept).
* When L=1 the Length field must equal the datagram's length.
* Reserved bits are ignored on receipt and kept in :attr:`Header.reserved` so
  that a parsed header re-encodes byte-identically; we send them as zero.
* An Offset Size past the end of the datagram is malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from l2tpfast.errors import HeaderError, LocalProtocolError
from l2tpfast.wire.constants import (
    CONTROL_HEADER_LEN,
    FLAG_L,
    FLAG_O,
    FLAG_P,
    FLAG_S,
    FLAG_T,
    L2F_VERSION,
    L2TP_VERSION,
    RESERVED_MASK,
    VER_MASK,
    ParseStatus,
)

_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Header:
    """Every field and flag of an L2TP header."""

    is_control: bool
    tunnel_id: int
    session_id: int
    #: Length field; ``None`` when L=0.
    length: int | None = None
    #: Ns and Nr; ``None`` when S=0.
    ns: int | None = None
    nr: int | None = None
    #: Offset Size; ``None`` when O=0.  ``offset_pad`` holds the padding octets.
    offset_size: int | None = None
    offset_pad: bytes = b""
    priority: bool = False
    ver: int = L2TP_VERSION
    #: The reserved bits of the first word as received (zero for what we build).
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The first 16-bit word as it goes on the wire."""
        word = self.ver | self.reserved
        if self.is_control:
            word |= FLAG_T
        if self.length is not None:
            word |= FLAG_L
        if self.ns is not None:
            word |= FLAG_S
        if self.offset_size is not None:
            word |= FLAG_O
        if self.priority:
            word |= FLAG_P
        return word

    @property
    def header_length(self) -> int:
        """Octets from the start of the datagram to the payload."""
        size = 6
        if self.length is not None:
            size += 2
        if self.ns is not None:
            size += 4
        if self.offset_size is not None:
            size += 2 + self.offset_size
        return size


def parse_header(data: bytes | bytearray | memoryview) -> tuple[Header, int]:
    """Parse the header at the start of ``data``, which must be the whole datagram.

    Returns the header and the offset of the payload.  Raises
    :class:`~l2tpfast.errors.HeaderError` (carrying the ParseStatus) when the
    datagram must be dropped.
    """
    size = len(data)
    if size < 6:
        raise HeaderError(f"datagram of {size} octets is shorter than any L2TP header", ParseStatus.TRUNCATED)
    word = (data[0] << 8) | data[1]
    ver = word & VER_MASK
    if ver != L2TP_VERSION:
        if ver == L2F_VERSION:
            raise HeaderError("Ver=1 is an L2F packet (RFC 2661 3.1)", ParseStatus.L2F)
        raise HeaderError(f"unknown Ver {ver} (RFC 2661 3.1)", ParseStatus.BAD_VERSION)
    is_control = bool(word & FLAG_T)
    has_length = bool(word & FLAG_L)
    has_seq = bool(word & FLAG_S)
    has_offset = bool(word & FLAG_O)
    if is_control and (not has_length or not has_seq or has_offset):
        raise HeaderError(
            "control message without L=1, S=1, O=0 (RFC 2661 3.1)", ParseStatus.BAD_CONTROL_FLAGS
        )
    pos = 2
    length: int | None = None
    if has_length:
        length = (data[2] << 8) | data[3]
        pos = 4
    need = pos + 4 + (4 if has_seq else 0) + (2 if has_offset else 0)
    if size < need:
        raise HeaderError(f"header needs {need} octets, datagram has {size}", ParseStatus.TRUNCATED)
    if length is not None and length != size:
        raise HeaderError(f"Length field {length} but datagram has {size} octets", ParseStatus.BAD_LENGTH)
    tunnel_id = (data[pos] << 8) | data[pos + 1]
    session_id = (data[pos + 2] << 8) | data[pos + 3]
    pos += 4
    ns: int | None = None
    nr: int | None = None
    if has_seq:
        ns = (data[pos] << 8) | data[pos + 1]
        nr = (data[pos + 2] << 8) | data[pos + 3]
        pos += 4
    offset_size: int | None = None
    offset_pad = b""
    if has_offset:
        offset_size = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if pos + offset_size > size:
            raise HeaderError(
                f"Offset Size {offset_size} runs past the datagram's end", ParseStatus.BAD_OFFSET
            )
        offset_pad = bytes(data[pos : pos + offset_size])
        pos += offset_size
    header = Header(
        is_control=is_control,
        tunnel_id=tunnel_id,
        session_id=session_id,
        length=length,
        ns=ns,
        nr=nr,
        offset_size=offset_size,
        offset_pad=offset_pad,
        priority=bool(word & FLAG_P),
        ver=ver,
        reserved=word & RESERVED_MASK,
    )
    return header, pos


def build_header(header: Header, payload_length: int) -> bytes:
    """Encode ``header`` for a payload of ``payload_length`` octets.

    When L=1 the Length field is computed from the payload, whatever
    ``header.length`` says.  Raises LocalProtocolError for a control header
    that breaks RFC 2661 3.1.
    """
    if header.is_control and (
        header.length is None or header.ns is None or header.offset_size is not None or header.priority
    ):
        raise LocalProtocolError("a control header needs L=1, S=1, O=0 and P=0 (RFC 2661 3.1)")
    if (header.ns is None) != (header.nr is None):
        raise LocalProtocolError("Ns and Nr are present together or not at all (RFC 2661 3.1)")
    if header.offset_size is not None and len(header.offset_pad) != header.offset_size:
        raise LocalProtocolError("offset_pad must be exactly offset_size octets")
    total = header.header_length + payload_length
    if total > 0xFFFF and header.length is not None:
        raise LocalProtocolError(f"message of {total} octets does not fit the Length field")
    parts = [_U16.pack(header.flags)]
    if header.length is not None:
        parts.append(_U16.pack(total))
    parts.append(struct.pack("!HH", header.tunnel_id, header.session_id))
    if header.ns is not None and header.nr is not None:
        parts.append(struct.pack("!HH", header.ns, header.nr))
    if header.offset_size is not None:
        parts.append(_U16.pack(header.offset_size))
        parts.append(header.offset_pad)
    return b"".join(parts)


def build_control_header(tunnel_id: int, session_id: int, ns: int, nr: int, payload_length: int) -> bytes:
    """The 12-octet header of a control message (T=1, L=1, S=1, Ver=2)."""
    return struct.pack(
        "!HHHHHH",
        FLAG_T | FLAG_L | FLAG_S | L2TP_VERSION,
        CONTROL_HEADER_LEN + payload_length,
        tunnel_id,
        session_id,
        ns,
        nr,
    )


def build_data_header(
    tunnel_id: int,
    session_id: int,
    *,
    ns: int | None = None,
    length: bool = False,
    offset_size: int | None = None,
    priority: bool = False,
    payload_length: int = 0,
) -> bytes:
    """The header of a data message; Nr is reserved in data and sent as 0 (RFC 2661 3.1)."""
    pad = b"\x00" * offset_size if offset_size is not None else b""
    header = Header(
        is_control=False,
        tunnel_id=tunnel_id,
        session_id=session_id,
        length=0 if length else None,
        ns=ns,
        nr=0 if ns is not None else None,
        offset_size=offset_size,
        offset_pad=pad,
        priority=priority,
    )
    return build_header(header, payload_length)
