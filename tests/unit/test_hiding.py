"""Hidden AVPs (RFC 2661 4.3) and the Challenge Response (5.1.1)."""

from __future__ import annotations

import hashlib

import pytest

from l2tpfast.errors import HiddenAvpError, LocalProtocolError
from l2tpfast.wire.hiding import (
    challenge_response,
    check_challenge_response,
    hide_value,
    random_padding,
    unhide_value,
)

SECRET = b"s3cret"
RV = bytes(range(16))


def _rfc_formula(attr_type: int, subformat: bytes) -> bytes:
    """RFC 2661 4.3, written out block by block as the RFC's "detailed explanation" does."""
    blocks = [subformat[i : i + 16] for i in range(0, len(subformat), 16)]
    out = b""
    b = hashlib.md5(attr_type.to_bytes(2, "big") + SECRET + RV).digest()
    for p in blocks:
        c = bytes(x ^ y for x, y in zip(p, b, strict=False))
        out += c
        b = hashlib.md5(SECRET + c).digest()
    return out


@pytest.mark.parametrize("size", [0, 1, 13, 14, 15, 16, 30, 31, 32, 33, 100, 500])
@pytest.mark.parametrize("pad", [0, 1, 7, 16])
def test_hide_matches_the_rfc_and_reverses(size: int, pad: int) -> None:
    value = bytes((i * 7 + 3) & 0xFF for i in range(size))
    padding = b"\x5a" * pad
    hidden = hide_value(9, value, SECRET, RV, padding=padding)
    assert len(hidden) == 2 + size + pad
    assert hidden == _rfc_formula(9, size.to_bytes(2, "big") + value + padding)
    assert unhide_value(9, hidden, SECRET, RV) == value


def test_attribute_type_enters_the_hash() -> None:
    assert hide_value(9, b"ab", SECRET, RV) != hide_value(14, b"ab", SECRET, RV)


def test_carrier_padding_accepted() -> None:
    # Original length 2 with 20 octets of padding behind it.
    hidden = hide_value(14, b"\x12\x34", SECRET, RV, padding=bytes(20))
    assert unhide_value(14, hidden, SECRET, RV) == b"\x12\x34"


def test_wrong_secret_is_a_typed_error() -> None:
    hidden = hide_value(9, b"\x00\x07", SECRET, RV)
    with pytest.raises(HiddenAvpError) as info:
        unhide_value(9, hidden, b"other", RV)
    assert "wrong shared secret" in str(info.value)


def test_too_short_hidden_value() -> None:
    with pytest.raises(HiddenAvpError):
        unhide_value(9, b"\x01", SECRET, RV)


def test_hiding_needs_secret_and_vector() -> None:
    with pytest.raises(LocalProtocolError):
        hide_value(9, b"x", b"", RV)
    with pytest.raises(LocalProtocolError):
        hide_value(9, b"x", SECRET, b"")


def test_random_padding_rounds_to_blocks() -> None:
    for value_length in range(40):
        pad = random_padding(value_length, urandom=lambda n: bytes(n))
        assert (value_length + 2 + len(pad)) % 16 == 0


def test_challenge_response_is_chap_md5() -> None:
    # RFC 1994: MD5(Identifier || secret || challenge); the Identifier is the message type.
    challenge = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    expected = hashlib.md5(b"\x02" + SECRET + challenge).hexdigest()
    assert challenge_response(2, SECRET, challenge).hex() == expected
    assert check_challenge_response(2, SECRET, challenge, bytes.fromhex(expected))
    assert not check_challenge_response(3, SECRET, challenge, bytes.fromhex(expected))
