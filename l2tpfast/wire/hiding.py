"""Hidden AVPs (RFC 2661 4.3) and tunnel authentication (RFC 2661 5.1.1).

Hiding turns an AVP's value into the Hidden AVP Subformat (2-octet original
length, value, padding) and XORs it, 16 octets at a time, with a chain of MD5
hashes::

    b1 = MD5(attribute type + secret + random vector)   c1 = p1 xor b1
    bi = MD5(secret + c(i-1))                           ci = pi xor bi

The last block may be short: only the octets present are XORed.  On receipt
the original length may be shorter than the space after it (senders pad to
hide the length; carrier LACs always do), but never longer: a longer one means
a wrong secret or a corrupt AVP, and is a typed error, not garbage.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable

from l2tpfast.errors import HiddenAvpError, LocalProtocolError
from l2tpfast.wire.constants import AVP_HEADER_LEN, AVP_MAX_LEN, GeneralError

_BLOCK = 16


def _xor_chain(attr_type: int, data: bytes, secret: bytes, random_vector: bytes, *, hiding: bool) -> bytes:
    out = bytearray(len(data))
    digest = hashlib.md5(struct.pack("!H", attr_type) + secret + random_vector).digest()
    for start in range(0, len(data), _BLOCK):
        chunk = data[start : start + _BLOCK]
        mixed = bytes(a ^ b for a, b in zip(chunk, digest, strict=False))
        out[start : start + len(chunk)] = mixed
        # The next hash runs over the ciphertext block: the output when hiding,
        # the input when revealing.
        cipher = mixed if hiding else chunk
        digest = hashlib.md5(secret + cipher).digest()
    return bytes(out)


def hide_value(
    attr_type: int,
    value: bytes,
    secret: bytes,
    random_vector: bytes,
    *,
    padding: bytes = b"",
) -> bytes:
    """The hidden form of an AVP value: subformat (length, value, padding) XOR the MD5 chain."""
    if not secret:
        raise LocalProtocolError("hiding an AVP needs a shared secret (RFC 2661 4.3)")
    if not random_vector:
        raise LocalProtocolError("hiding an AVP needs a non-empty Random Vector (RFC 2661 4.3)")
    subformat = struct.pack("!H", len(value)) + value + padding
    if AVP_HEADER_LEN + len(subformat) > AVP_MAX_LEN:
        raise LocalProtocolError(f"hidden AVP {attr_type} would exceed {AVP_MAX_LEN} octets")
    return _xor_chain(attr_type, subformat, secret, random_vector, hiding=True)


def unhide_value(attr_type: int, hidden: bytes, secret: bytes, random_vector: bytes) -> bytes:
    """The original value of a hidden AVP; HiddenAvpError if it cannot be recovered."""
    if len(hidden) < 2:
        raise HiddenAvpError(
            f"hidden AVP {attr_type} has {len(hidden)} octets, too few for the original length",
            attr_type=attr_type,
            error_code=GeneralError.BAD_LENGTH,
        )
    plain = _xor_chain(attr_type, hidden, secret, random_vector, hiding=False)
    original = (plain[0] << 8) | plain[1]
    if original > len(plain) - 2:
        raise HiddenAvpError(
            f"hidden AVP {attr_type}: original length {original} exceeds the {len(plain) - 2} "
            "octets present (wrong shared secret?)",
            attr_type=attr_type,
            error_code=GeneralError.VENDOR_ERROR,
        )
    return plain[2 : 2 + original]


def random_padding(value_length: int, urandom: Callable[[int], bytes] = os.urandom) -> bytes:
    """Random padding that rounds the subformat up to the next 16 octets, plus 0 to 15 more.

    The length of a hidden value is then invisible within 16 octets.
    """
    base = (-(value_length + 2)) % _BLOCK
    extra = urandom(1)[0] % _BLOCK
    room = AVP_MAX_LEN - AVP_HEADER_LEN - 2 - value_length
    return urandom(max(0, min(base + extra, room)))


def challenge_response(message_type: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 2661 5.1.1 / 4.4.3: MD5(ID + secret + challenge), CHAP style (RFC 1994).

    The ID is the Message Type of the message that carries the response (2 for
    SCCRP, 3 for SCCCN).
    """
    return hashlib.md5(bytes([message_type & 0xFF]) + secret + challenge).digest()


def check_challenge_response(message_type: int, secret: bytes, challenge: bytes, response: bytes) -> bool:
    """Constant-time comparison of a received Challenge Response."""
    return hmac.compare_digest(challenge_response(message_type, secret, challenge), response)
