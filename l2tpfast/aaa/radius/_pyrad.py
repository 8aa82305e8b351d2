"""The only module that touches pyrad: RADIUS encoding and verification (RFC 2865 3, 5.2; RFC 2866 3;
RFC 3579 3.2; RFC 5176 2.3, 3.4).

pyrad (``pyrad.packet``, ``pyrad.dictionary``, ``pyrad.tools``) is used as a codec only: it builds
packets with l2tpfast's own dictionary file, hides User-Password (RFC 2865 5.2), computes the
Request and Response Authenticators and the Message-Authenticator, and decodes received packets.
Its Client and Server classes, which own sockets and retransmit on their own, are not used: the
retransmission timer is :class:`~l2tpfast.aaa.radius.client.RadiusClient`'s.

pyrad ships no type information. This module turns its untyped surface into a few typed
functions, so the rest of ``aaa.radius`` type-checks strictly. Received bytes are first checked
here for the RFC 2865 3 and 5 framing (Length field, attribute lengths) and only then given to
pyrad, and every error pyrad can raise on bad input is caught: nothing here raises on peer input.
"""

from __future__ import annotations

import functools
import io
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Address
from typing import Any

# pyrad has no type information (no py.typed): one ignore for the package, typed wrappers below.
from pyrad import dictionary as _dictionary  # type: ignore[import-untyped]
from pyrad import packet as _packet
from pyrad import tools as _tools

from l2tpfast.aaa.radius.constants import Code

#: One attribute as received: (Vendor-Id, or 0 for a standard attribute; Type; Value).
RawAttribute = tuple[int, int, bytes]
#: One attribute to encode: (its name in l2tpfast's dictionary, the value pyrad encodes).
Item = tuple[str, object]

HEADER_LENGTH = 20
#: RFC 2865 3: "The minimum length is 20 and maximum length is 4096."
MAX_LENGTH = 4096
MESSAGE_AUTHENTICATOR = 80
PROXY_STATE = 33

#: What pyrad raises on input it cannot decode.
_DECODE_ERRORS = (_packet.PacketError, ValueError, TypeError, KeyError, IndexError, struct.error)


@functools.cache
def dictionary() -> Any:
    """l2tpfast's dictionary (the ``dictionary`` file of this package), parsed once."""
    text = resources.files("l2tpfast.aaa.radius").joinpath("dictionary").read_text(encoding="utf-8")
    return _dictionary.Dictionary(io.StringIO(text))


def _packet_class(code: int) -> Any:
    if code in (Code.ACCESS_REQUEST, Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE):
        return _packet.AuthPacket
    if code in (Code.ACCOUNTING_REQUEST, Code.ACCOUNTING_RESPONSE):
        return _packet.AcctPacket
    return _packet.CoAPacket


# --- encoding ----------------------------------------------------------------------------------


def encode_request(
    code: int,
    identifier: int,
    secret: bytes,
    items: Sequence[Item],
    *,
    authenticator: bytes | None = None,
    password: bytes | None = None,
    message_authenticator: bool = False,
) -> bytes:
    """A request packet.

    An Access-Request takes ``authenticator`` (16 random octets, RFC 2865 3) and may carry a
    ``password``, hidden as User-Password with it (RFC 2865 5.2). For an Accounting-Request
    (RFC 2866 3) or a Disconnect/CoA-Request (RFC 5176 2.3) the Request Authenticator is the MD5
    over the packet and the secret; read it from octets 4-20 of the result. A
    Message-Authenticator goes first, computed as RFC 3579 3.2 says. Raises ValueError or
    TypeError for a value the dictionary type cannot hold (for example a name over 253 octets).
    """
    packet = _packet_class(code)(
        code=code, id=identifier, secret=secret, authenticator=authenticator, dict=dictionary()
    )
    if message_authenticator:
        packet.add_message_authenticator()
    for name, value in items:
        packet.AddAttribute(name, value)
    if password is not None:
        packet.AddAttribute("User-Password", packet.PwCrypt(password))
    return bytes(packet.RequestPacket())


def encode_reply(
    code: int,
    identifier: int,
    secret: bytes,
    request_authenticator: bytes,
    items: Sequence[Item],
    raw: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """A reply with its Response Authenticator, MD5(Code+ID+Length+RequestAuth+Attributes+Secret)
    (RFC 2865 3, RFC 2866 3, RFC 5176 2.3); ``raw`` are (Type, Value) pairs copied as they are,
    such as Proxy-State (RFC 2865 5.33)."""
    packet = _packet.Packet(
        code=code, id=identifier, secret=secret, authenticator=request_authenticator, dict=dictionary()
    )
    for name, value in items:
        packet.AddAttribute(name, value)
    for attr_type, value in raw:
        OrderedDict.setdefault(packet, attr_type, []).append(value)
    return bytes(packet.ReplyPacket())


# --- decoding ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    """A received packet whose framing is sound; nothing about its authenticity is known yet."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[RawAttribute, ...]
    #: The packet without the padding past its Length field.
    data: bytes

    def has(self, vendor_id: int, attr_type: int) -> bool:
        return any(v == vendor_id and t == attr_type for v, t, _ in self.attributes)


def well_formed(data: bytes) -> int | None:
    """The Length of a packet whose framing RFC 2865 3 and 5 allow, else None.

    RFC 2865 3: a packet shorter than its Length field is silently discarded, octets past it are
    padding. RFC 2865 5: an attribute with an invalid length in a reply means the packet is
    treated as an Access-Reject "or else silently discarded"; we discard.
    """
    if len(data) < HEADER_LENGTH:
        return None
    length = int.from_bytes(data[2:4], "big")
    if length < HEADER_LENGTH or length > MAX_LENGTH or len(data) < length:
        return None
    at = HEADER_LENGTH
    while at < length:
        if length - at < 2 or data[at + 1] < 2 or at + data[at + 1] > length:
            return None
        at += data[at + 1]
    return length


def decode(data: bytes) -> Decoded | None:
    """Split a packet into its attributes (vendor-specific ones per RFC 2865 5.26), or None."""
    length = well_formed(data)
    if length is None:
        return None
    data = bytes(data[:length])
    try:
        packet = _packet.Packet(packet=data, dict=dictionary())
    except _DECODE_ERRORS:
        return None
    attributes: list[RawAttribute] = []
    for key, values in OrderedDict.items(packet):
        if isinstance(key, int):
            vendor_id, attr_type = 0, key
        elif isinstance(key, tuple) and len(key) == 2:
            vendor_id, attr_type = key
        else:  # pragma: no cover - only TLV types make other keys; the dictionary has none
            continue
        if isinstance(values, list):
            attributes.extend((vendor_id, attr_type, bytes(value)) for value in values)
    return Decoded(data[0], data[1], data[4:20], tuple(attributes), data)


def verify_reply(data: bytes, request_code: int, request_authenticator: bytes, secret: bytes) -> bool:
    """A reply's Response Authenticator (RFC 2865 3, RFC 2866 3), its Message-Authenticator if it has
    one (RFC 3579 3.2), and, for an Access-Request, that it carries no Proxy-State we did not send.

    The last two are pyrad's Blast-RADIUS (CVE-2024-3596) countermeasures. ``data`` must have
    passed :func:`well_formed`.
    """
    request = _packet_class(request_code)(
        code=request_code, id=data[1], secret=secret, authenticator=request_authenticator, dict=dictionary()
    )
    try:
        reply = request.CreateReply(packet=data)
        return bool(request.VerifyReply(reply))
    except _DECODE_ERRORS:
        return False


def verify_request(data: bytes, secret: bytes) -> bool:
    """An accounting-style Request Authenticator, MD5(Code+ID+Length+16 zero octets+Attributes+Secret)
    (RFC 2866 3, RFC 5176 2.3), and the Message-Authenticator if present (RFC 5176 3.4, with the
    Request Authenticator taken as 16 zero octets). ``data`` must have passed :func:`well_formed`."""
    try:
        packet = _packet.CoAPacket(packet=data, secret=secret, dict=dictionary())
        if not packet.VerifyCoARequest():
            return False
        if packet.message_authenticator:
            return bool(packet.verify_message_authenticator())
        return True
    except _DECODE_ERRORS:
        return False


# --- attribute values --------------------------------------------------------------------------


def _values(attributes: Sequence[RawAttribute], name: str) -> list[Any]:
    """The decoded values of attribute ``name`` in order; a value of the wrong length is skipped."""
    definition = dictionary().attributes[name]
    vendor_id = dictionary().vendors.GetForward(definition.vendor)
    out: list[Any] = []
    for vendor, attr_type, raw in attributes:
        if vendor == vendor_id and attr_type == definition.code:
            try:
                out.append(_tools.DecodeAttr(definition.type, raw))
            except _DECODE_ERRORS:
                continue
    return out


def integers(attributes: Sequence[RawAttribute], name: str) -> list[int]:
    return [value for value in _values(attributes, name) if isinstance(value, int)]


def octets(attributes: Sequence[RawAttribute], name: str) -> list[bytes]:
    out: list[bytes] = []
    for value in _values(attributes, name):
        if isinstance(value, bytes):
            out.append(value)
        elif isinstance(value, str):
            out.append(value.encode("utf-8"))
    return out


def texts(attributes: Sequence[RawAttribute], name: str) -> list[str]:
    """String values as text; octets that are not UTF-8 are decoded with replacement characters."""
    return [value.decode("utf-8", "replace") for value in octets(attributes, name)]


def ipv4_addresses(attributes: Sequence[RawAttribute], name: str) -> list[IPv4Address]:
    return [IPv4Address(value) for value in _values(attributes, name) if isinstance(value, str)]
