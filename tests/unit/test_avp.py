"""AVP header and typed values (RFC 2661 4.1, 4.4)."""

from __future__ import annotations

import struct

import pytest
from catalog import SAMPLE_VALUES

from l2tpfast.errors import AvpError, LocalProtocolError
from l2tpfast.wire.avp import AVP_SPECS, Avp, ResultCode, iter_avps, make_avp, spec_for
from l2tpfast.wire.constants import (
    VENDOR_BROADBAND_FORUM,
    VENDOR_IETF,
    VENDOR_MICROSOFT,
    AvpType,
    GeneralError,
)


def test_every_rfc2661_avp_type_has_a_spec() -> None:
    # Types 0 to 39 except the unassigned 20, and 46 from RFC 3145.
    expected = {t for t in range(40) if t != 20} | {46}
    assert {t for (v, t) in AVP_SPECS if v == VENDOR_IETF} == expected
    assert set(SAMPLE_VALUES) == {AvpType(t) for t in expected} - {
        AvpType.MESSAGE_TYPE,
        AvpType.RANDOM_VECTOR,
    }


@pytest.mark.parametrize("attr_type", sorted(SAMPLE_VALUES))
def test_typed_value_round_trip(attr_type: AvpType) -> None:
    avp = make_avp(attr_type, SAMPLE_VALUES[attr_type])
    wire = avp.encode()
    (parsed,) = iter_avps(wire)
    assert parsed == avp
    assert parsed.encode() == wire
    assert spec_for(attr_type).decode_value(parsed.value) == SAMPLE_VALUES[attr_type]
    assert parsed.mandatory is spec_for(attr_type).mandatory


def test_avp_header_bits() -> None:
    avp = Avp(7, b"x", vendor_id=0, mandatory=True, hidden=True)
    assert avp.encode() == struct.pack("!HHH", 0xC000 | 7, 0, 7) + b"x"
    (back,) = iter_avps(struct.pack("!HHH", 0x8000 | 0x0400 | 6, 0, 39))
    assert back.reserved == 0x0400 and back.mandatory and not back.hidden and back.value == b""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x00\x01", ResultCode(1)),  # Length 8: no Error Code (liberal, issue 2)
        (b"\x00\x02\x00\x06", ResultCode(2, 6)),
        (b"\x00\x02\x00\x06oops", ResultCode(2, 6, "oops")),
        (b"\x00\x02\x00\x06\xff", ResultCode(2, 6, "\udcff")),  # not UTF-8: kept octet for octet
    ],
)
def test_result_code_lengths(value: bytes, expected: ResultCode) -> None:
    spec = spec_for(AvpType.RESULT_CODE)
    assert spec.decode_value(value) == expected
    assert spec.encode_value(expected) == value


@pytest.mark.parametrize(
    ("attr_type", "value"),
    [
        (AvpType.RESULT_CODE, b"\x00"),
        (AvpType.RESULT_CODE, b"\x00\x01\x00"),
        (AvpType.ASSIGNED_TUNNEL_ID, b"\x00"),
        (AvpType.ASSIGNED_TUNNEL_ID, b"\x00\x01\x00"),
        (AvpType.CHALLENGE_RESPONSE, bytes(15)),
        (AvpType.HOST_NAME, b""),
        (AvpType.CALL_ERRORS, bytes(25)),
        (AvpType.ACCM, bytes(11)),
        (AvpType.SEQUENCING_REQUIRED, b"\x00"),
        (AvpType.Q931_CAUSE_CODE, b"\x00\x10"),
        (AvpType.TIE_BREAKER, bytes(7)),
    ],
)
def test_bad_value_length_is_general_error_2(attr_type: AvpType, value: bytes) -> None:
    with pytest.raises(AvpError) as info:
        spec_for(attr_type).decode_value(value)
    assert info.value.error_code == GeneralError.BAD_LENGTH
    assert info.value.attr_type == attr_type


@pytest.mark.parametrize("length", [0, 5, 9])
def test_avp_length_field_out_of_bounds(length: int) -> None:
    data = struct.pack("!HHH", 0x8000 | length, 0, 7) + b"ab"
    with pytest.raises(AvpError) as info:
        list(iter_avps(data))
    assert info.value.error_code == GeneralError.BAD_LENGTH


def test_trailing_octets_shorter_than_an_avp_header() -> None:
    data = make_avp(AvpType.HOST_NAME, "h").encode() + b"\x00\x00"
    with pytest.raises(AvpError):
        list(iter_avps(data))


def test_vendor_avps_never_reach_ietf_decoders() -> None:
    # Broadband Forum type 1 is Agent-Circuit-Id, not a Result Code.
    bbf = make_avp(1, "eth 1/1/1:100", vendor_id=VENDOR_BROADBAND_FORUM)
    assert bbf.key == (VENDOR_BROADBAND_FORUM, 1)
    assert AVP_SPECS[bbf.key].decode_value(bbf.value) == "eth 1/1/1:100"
    # Microsoft vendor 311 type 1 is unknown to us: raw octets only.
    assert (VENDOR_MICROSOFT, 1) not in AVP_SPECS
    ms = make_avp(1, b"\x00\x00\x00\x01", vendor_id=VENDOR_MICROSOFT)
    assert ms.encode() == struct.pack("!HHH", 10, VENDOR_MICROSOFT, 1) + b"\x00\x00\x00\x01"
    with pytest.raises(LocalProtocolError):
        make_avp(1, "text", vendor_id=VENDOR_MICROSOFT)


def test_encode_refuses_values_that_break_the_rfc() -> None:
    with pytest.raises(LocalProtocolError):
        make_avp(AvpType.CHALLENGE_RESPONSE, b"short")
    with pytest.raises(LocalProtocolError):
        make_avp(AvpType.ASSIGNED_TUNNEL_ID, 70000)
    with pytest.raises(LocalProtocolError):
        make_avp(AvpType.RESULT_CODE, ResultCode(1, None, "message without code"))
    with pytest.raises(LocalProtocolError):
        Avp(7, bytes(1018)).encode()
