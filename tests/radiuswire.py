"""RADIUS on the wire, written again from the RFCs for the tests (a plain module: ``import radiuswire``).

Independent of pyrad and of l2tpfast.aaa.radius: the tests decode what l2tpfast sends and build
what a server sends with these functions, so an error shared by the code and its codec shows.

- RFC 2865 3: Code, Identifier, Length, Authenticator, then Type-Length-Value attributes; the
  Response Authenticator MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
- RFC 2865 5.2: User-Password hiding, c(i) = p(i) xor MD5(S + c(i-1)), c(0) = the Request
  Authenticator.
- RFC 2865 5.26: Vendor-Specific = Vendor-Id (4 octets), then Vendor-Type, Vendor-Length, Value.
- RFC 2866 3 / RFC 5176 2.3: the Request Authenticator MD5(Code+ID+Length+16 zeros+Attrs+Secret).
- RFC 3579 3.2: Message-Authenticator HMAC-MD5 over the packet with its own value zeroed and the
  Authenticator field replaced as the packet kind says.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

MESSAGE_AUTHENTICATOR = 80
VENDOR_SPECIFIC = 26
ZERO16 = bytes(16)

Attr = tuple[int, bytes]


@dataclass
class Wire:
    code: int
    identifier: int
    length: int
    authenticator: bytes
    attributes: list[Attr]

    def values(self, attr_type: int) -> list[bytes]:
        return [value for t, value in self.attributes if t == attr_type]

    def value(self, attr_type: int) -> bytes:
        (found,) = self.values(attr_type)
        return found

    def integer(self, attr_type: int) -> int:
        value = self.value(attr_type)
        assert len(value) == 4, (attr_type, value)
        return int.from_bytes(value, "big")

    def vsas(self, vendor_id: int, vendor_type: int) -> list[bytes]:
        out = []
        for value in self.values(VENDOR_SPECIFIC):
            assert len(value) >= 6
            if int.from_bytes(value[:4], "big") != vendor_id:
                continue
            at = 4
            while at < len(value):
                sub_type, sub_len = value[at], value[at + 1]
                assert sub_len >= 2 and at + sub_len <= len(value)
                if sub_type == vendor_type:
                    out.append(value[at + 2 : at + sub_len])
                at += sub_len
        return out

    def vsa(self, vendor_id: int, vendor_type: int) -> bytes:
        (found,) = self.vsas(vendor_id, vendor_type)
        return found


def parse(data: bytes) -> Wire:
    """Decode a packet by hand (RFC 2865 3); asserts that the framing is exact."""
    code, identifier, length = struct.unpack("!BBH", data[:4])
    assert length == len(data), (length, len(data))
    attributes: list[Attr] = []
    at = 20
    while at < length:
        attr_type, attr_len = data[at], data[at + 1]
        assert attr_len >= 2 and at + attr_len <= length
        attributes.append((attr_type, data[at + 2 : at + attr_len]))
        at += attr_len
    return Wire(code, identifier, length, data[4:20], attributes)


def encode_attributes(attributes: Sequence[Attr]) -> bytes:
    return b"".join(bytes((t, len(v) + 2)) + v for t, v in attributes)


def vsa(vendor_id: int, vendor_type: int, value: bytes) -> Attr:
    return (VENDOR_SPECIFIC, vendor_id.to_bytes(4, "big") + bytes((vendor_type, len(value) + 2)) + value)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def unhide_password(hidden: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """RFC 2865 5.2 backwards: p(i) = c(i) xor MD5(S + c(i-1)), then strip the NUL padding."""
    assert len(hidden) % 16 == 0 and 16 <= len(hidden) <= 128
    clear, previous = b"", request_authenticator
    for i in range(0, len(hidden), 16):
        block = hidden[i : i + 16]
        pad = hashlib.md5(secret + previous).digest()
        clear += bytes(a ^ b for a, b in zip(block, pad, strict=True))
        previous = block
    return clear.rstrip(b"\x00")


def zero_message_authenticator(data: bytes) -> bytes:
    out = bytearray(data)
    at = 20
    while at < len(out):
        if out[at] == MESSAGE_AUTHENTICATOR:
            out[at + 2 : at + 18] = ZERO16
        at += out[at + 1]
    return bytes(out)


def message_authenticator(data: bytes, secret: bytes, vector: bytes) -> bytes:
    """RFC 3579 3.2: HMAC-MD5(Type, Identifier, Length, ``vector``, Attributes), the M-A zeroed."""
    zeroed = zero_message_authenticator(data)
    return hmac.new(secret, zeroed[:4] + vector + zeroed[20:], "md5").digest()


def accounting_authenticator(data: bytes, secret: bytes) -> bytes:
    """RFC 2866 3: MD5(Code+Identifier+Length+16 zero octets+request attributes+secret)."""
    return hashlib.md5(data[:4] + ZERO16 + data[20:] + secret).digest()


def response_authenticator(data: bytes, request_authenticator: bytes, secret: bytes) -> bytes:
    """RFC 2865 3: MD5(Code+ID+Length+RequestAuth+Attributes+Secret)."""
    return hashlib.md5(data[:4] + request_authenticator + data[20:] + secret).digest()


def build_reply(
    code: int,
    identifier: int,
    request_authenticator: bytes,
    attributes: Sequence[Attr],
    secret: bytes,
    *,
    with_message_authenticator: bool = True,
    ma_vector: bytes | None = None,
) -> bytes:
    """A server's reply: Message-Authenticator first (RFC 3579 3.2 with the Request Authenticator,
    or ``ma_vector``), then the Response Authenticator over the result."""
    attrs = list(attributes)
    if with_message_authenticator:
        attrs.insert(0, (MESSAGE_AUTHENTICATOR, ZERO16))
    body = encode_attributes(attrs)
    header = struct.pack("!BBH", code, identifier, 20 + len(body))
    packet = header + request_authenticator + body
    if with_message_authenticator:
        vector = request_authenticator if ma_vector is None else ma_vector
        mac = message_authenticator(packet, secret, vector)
        packet = packet[:22] + mac + packet[38:]
    return header + response_authenticator(packet, request_authenticator, secret) + packet[20:]


def build_signed_request(
    code: int,
    identifier: int,
    attributes: Sequence[Attr],
    secret: bytes,
    *,
    with_message_authenticator: bool = False,
) -> bytes:
    """An accounting-style request (Accounting, Disconnect, CoA: RFC 2866 3, RFC 5176 2.3)."""
    attrs = list(attributes)
    if with_message_authenticator:
        attrs.insert(0, (MESSAGE_AUTHENTICATOR, ZERO16))
    body = encode_attributes(attrs)
    header = struct.pack("!BBH", code, identifier, 20 + len(body))
    packet = header + ZERO16 + body
    if with_message_authenticator:
        # RFC 5176 3.4: computed with the Request Authenticator as 16 zero octets, before it.
        mac = message_authenticator(packet, secret, ZERO16)
        packet = packet[:22] + mac + packet[38:]
    return header + accounting_authenticator(packet, secret) + packet[20:]
