"""Control messages (RFC 2661 section 6): round trips, validation, answers."""

from __future__ import annotations

import struct
from itertools import count

import pytest
from catalog import SAMPLE_VALUES, SECRET, Case, all_cases

from l2tpfast.errors import (
    AvpError,
    HeaderError,
    HiddenAvpError,
    LocalProtocolError,
    MessageError,
    Scope,
)
from l2tpfast.wire.avp import Avp, ProtocolVersion, ResultCode, make_avp
from l2tpfast.wire.constants import (
    VENDOR_BROADBAND_FORUM,
    VENDOR_MICROSOFT,
    AvpType,
    BbfAvpType,
    FramingCapability,
    GeneralError,
    MessageType,
)
from l2tpfast.wire.header import build_control_header
from l2tpfast.wire.message import MESSAGE_RULES, ControlMessage, build_message, build_zlb, parse_message

A = AvpType


def _seeded_urandom() -> object:
    counter = count()

    def urandom(n: int) -> bytes:
        return bytes(next(counter) & 0xFF for _ in range(n))

    return urandom


def _build(case: Case) -> ControlMessage:
    return build_message(
        case.message_type,
        case.avps,
        tunnel_id=case.tunnel_id,
        session_id=case.session_id,
        ns=3,
        nr=4,
        secret=SECRET if case.hide else None,
        hide=case.hide,
        urandom=_seeded_urandom(),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.id)
def test_build_parse_build_is_identical(case: Case) -> None:
    message = _build(case)
    wire = message.encode()
    parsed = parse_message(wire, secret=SECRET)
    assert parsed.message_type == case.message_type
    assert (parsed.tunnel_id, parsed.session_id, parsed.ns, parsed.nr) == (
        case.tunnel_id,
        case.session_id,
        3,
        4,
    )
    for attr_type, value in case.avps:
        assert parsed[attr_type] == value, attr_type.name
    assert parsed.encode() == wire
    assert parsed.values == message.values  # what the builder reports is what the receiver sees
    assert parsed.ignored == () and parsed.unrecognized == ()
    hidden = {a.attr_type for a in parsed.avps if a.hidden}
    assert hidden == set(case.hide)
    if case.hide:
        # 4.3: a Random Vector precedes the first hidden AVP.
        types = [a.attr_type for a in parsed.avps]
        first_hidden = min(types.index(t) for t in case.hide)
        assert A.RANDOM_VECTOR in types[:first_hidden]


def test_every_message_type_has_a_rule() -> None:
    assert set(MESSAGE_RULES) == set(MessageType)


def test_zlb() -> None:
    zlb = build_zlb(0x22, 5, 6)
    assert zlb == build_control_header(0x22, 0, 5, 6, 0)
    msg = parse_message(zlb)
    assert msg.is_zlb and msg.name == "ZLB" and (msg.ns, msg.nr) == (5, 6)
    assert msg.encode() == zlb


def _sccrq(*extra: tuple[AvpType, object] | Avp) -> list[tuple[AvpType, object] | Avp]:
    return [
        (A.PROTOCOL_VERSION, ProtocolVersion()),
        (A.HOST_NAME, "lac"),
        (A.FRAMING_CAPABILITIES, FramingCapability.SYNC),
        (A.ASSIGNED_TUNNEL_ID, 5),
        *extra,
    ]


def _raw(message_type: int, avps: list[Avp], tunnel_id: int = 1, session_id: int = 0) -> bytes:
    body = make_avp(A.MESSAGE_TYPE, message_type).encode() + b"".join(a.encode() for a in avps)
    return build_control_header(tunnel_id, session_id, 0, 0, len(body)) + body


def test_missing_mandatory_avp_answers_with_general_error() -> None:
    data = _raw(MessageType.SCCRQ, [make_avp(A.HOST_NAME, "lac"), make_avp(A.ASSIGNED_TUNNEL_ID, 3)])
    with pytest.raises(MessageError) as info:
        parse_message(data)
    err = info.value
    assert err.scope is Scope.TUNNEL and err.result_code == 2 and err.error_code == GeneralError.VENDOR_ERROR
    assert "FRAMING_CAPABILITIES" in err.message and "PROTOCOL_VERSION" in err.message


def test_missing_avp_in_session_message_is_a_cdn() -> None:
    data = _raw(MessageType.ICRQ, [make_avp(A.ASSIGNED_SESSION_ID, 9)], session_id=0)
    with pytest.raises(MessageError) as info:
        parse_message(data)
    assert info.value.scope is Scope.SESSION and info.value.result_code == 2


def test_unknown_mandatory_avp_is_error_8_in_the_right_scope() -> None:
    unknown = Avp(250, b"x", mandatory=True)
    with pytest.raises(AvpError) as info:
        parse_message(build_message(MessageType.SCCRQ, [*_sccrq(unknown)], tunnel_id=0).encode())
    assert info.value.scope is Scope.TUNNEL
    assert info.value.error_code == GeneralError.UNKNOWN_MANDATORY_AVP
    assert "250" in info.value.message
    icrq = [(A.ASSIGNED_SESSION_ID, 1), (A.CALL_SERIAL_NUMBER, 1), Avp(99, b"", vendor_id=9, mandatory=True)]
    with pytest.raises(AvpError) as info:
        parse_message(build_message(MessageType.ICRQ, icrq, tunnel_id=1).encode())
    assert info.value.scope is Scope.SESSION  # RFC 2661 4.1: the session, not the tunnel


def test_reserved_bits_make_an_avp_unrecognized() -> None:
    flagged = Avp(A.HOST_NAME, b"x", mandatory=True, reserved=0x0800)
    data = _raw(MessageType.HELLO, [flagged])
    with pytest.raises(AvpError) as info:
        parse_message(data)
    assert info.value.error_code == GeneralError.UNKNOWN_MANDATORY_AVP
    msg = parse_message(_raw(MessageType.HELLO, [Avp(A.HOST_NAME, b"x", reserved=0x0800)]))
    assert msg.unrecognized[0].reserved == 0x0800


def test_unknown_avp_without_m_bit_is_kept_raw_and_reencodes() -> None:
    windows = Avp(1, b"\x00\x00\x00\x01", vendor_id=VENDOR_MICROSOFT)  # every Windows ICRQ has it
    circuit = make_avp(BbfAvpType.AGENT_CIRCUIT_ID, "atm 1/0:1.32", vendor_id=VENDOR_BROADBAND_FORUM)
    msg = build_message(
        MessageType.ICRQ,
        [(A.ASSIGNED_SESSION_ID, 1), windows, circuit, (A.CALL_SERIAL_NUMBER, 2)],
        tunnel_id=1,
    )
    parsed = parse_message(msg.encode())
    assert parsed.unrecognized == (windows,)
    assert parsed.get(BbfAvpType.AGENT_CIRCUIT_ID, vendor_id=VENDOR_BROADBAND_FORUM) == "atm 1/0:1.32"
    assert parsed.get(A.RESULT_CODE) is None  # vendor type 1 is not the IETF Result Code
    assert parsed.encode() == msg.encode()


def test_known_avps_a_message_does_not_list_are_ignored() -> None:
    # Some LACs repeat SCCRQ AVPs (all M=1) in SCCCN.
    extra = [
        make_avp(A.HOST_NAME, "lac"),
        make_avp(A.ASSIGNED_TUNNEL_ID, 5),
        make_avp(A.PROTOCOL_VERSION, ProtocolVersion()),
    ]
    data = _raw(MessageType.SCCCN, extra)
    msg = parse_message(data)
    assert msg.message_type == MessageType.SCCCN
    assert [a.attr_type for a in msg.ignored] == [A.HOST_NAME, A.ASSIGNED_TUNNEL_ID, A.PROTOCOL_VERSION]
    assert A.HOST_NAME not in msg
    assert msg.encode() == data


def test_short_result_code_accepted() -> None:
    data = _raw(
        MessageType.StopCCN,
        [make_avp(A.ASSIGNED_TUNNEL_ID, 4), Avp(A.RESULT_CODE, b"\x00\x01", mandatory=True)],
    )
    assert parse_message(data)[A.RESULT_CODE] == ResultCode(1)


def test_unknown_message_type() -> None:
    with pytest.raises(MessageError) as info:
        parse_message(_raw(99, []))
    assert info.value.scope is Scope.TUNNEL and info.value.error_code == GeneralError.OUT_OF_RANGE
    body = Avp(A.MESSAGE_TYPE, b"\x00\x63").encode()  # M=0: may be ignored
    with pytest.raises(MessageError) as info:
        parse_message(build_control_header(1, 0, 0, 0, len(body)) + body)
    assert info.value.scope is Scope.MESSAGE


@pytest.mark.parametrize(
    ("first", "error_code"),
    [
        (make_avp(A.HOST_NAME, "x"), GeneralError.VENDOR_ERROR),
        (Avp(A.MESSAGE_TYPE, b"\x00\x06", mandatory=True, hidden=True), GeneralError.OUT_OF_RANGE),
        (Avp(A.MESSAGE_TYPE, b"\x00\x00\x06", mandatory=True), GeneralError.BAD_LENGTH),
    ],
)
def test_message_type_must_come_first_plain_and_two_octets(first: Avp, error_code: int) -> None:
    body = first.encode()
    with pytest.raises(MessageError) as info:
        parse_message(build_control_header(1, 0, 0, 0, len(body)) + body)
    assert info.value.error_code == error_code


@pytest.mark.parametrize(
    ("message_type", "avps"),
    [
        (MessageType.SCCRQ, [*_sccrq()[:3], (A.ASSIGNED_TUNNEL_ID, 0)]),
        (MessageType.ICRP, [(A.ASSIGNED_SESSION_ID, 0)]),
    ],
)
def test_zero_assigned_ids_are_out_of_range(
    message_type: MessageType, avps: list[tuple[AvpType, object]]
) -> None:
    with pytest.raises(MessageError) as info:
        parse_message(build_message(message_type, avps, tunnel_id=1).encode())
    assert info.value.error_code == GeneralError.OUT_OF_RANGE


def test_bad_avp_length_inside_message() -> None:
    data = bytearray(build_message(MessageType.SCCRQ, _sccrq(), tunnel_id=0).encode())
    struct.pack_into("!H", data, 12 + 8, 0x8000 | 30)  # second AVP claims 30 octets
    with pytest.raises(AvpError) as info:
        parse_message(bytes(data))
    assert info.value.error_code == GeneralError.BAD_LENGTH and info.value.scope is Scope.TUNNEL


def test_bad_value_length_in_session_message_is_a_cdn() -> None:
    data = _raw(MessageType.ICRP, [Avp(A.ASSIGNED_SESSION_ID, b"\x00\x01\x02", mandatory=True)])
    with pytest.raises(AvpError) as info:
        parse_message(data)
    assert info.value.scope is Scope.SESSION and info.value.error_code == GeneralError.BAD_LENGTH


def test_hidden_avps_need_secret_and_random_vector() -> None:
    msg = build_message(
        MessageType.SCCRQ,
        _sccrq((A.VENDOR_NAME, "v")),
        tunnel_id=0,
        secret=SECRET,
        hide={A.ASSIGNED_TUNNEL_ID, A.VENDOR_NAME},
    )
    with pytest.raises(HiddenAvpError) as info:
        parse_message(msg.encode())  # no secret; Assigned Tunnel ID is M=1
    assert info.value.attr_type == A.ASSIGNED_TUNNEL_ID
    with pytest.raises(HiddenAvpError):
        parse_message(msg.encode(), secret=b"not the secret")
    # Without the Random Vector before it, a hidden AVP cannot be revealed.
    no_rv = [a for a in msg.avps[1:] if a.attr_type != A.RANDOM_VECTOR]
    with pytest.raises(HiddenAvpError) as info:
        parse_message(_raw(MessageType.SCCRQ, no_rv), secret=SECRET)
    assert "Random Vector" in info.value.message


def test_hidden_optional_avp_without_secret_is_set_aside() -> None:
    msg = build_message(
        MessageType.SCCRQ, _sccrq((A.VENDOR_NAME, "v")), tunnel_id=0, secret=SECRET, hide={A.VENDOR_NAME}
    )
    parsed = parse_message(msg.encode())
    assert parsed.get(A.VENDOR_NAME) is None
    assert [a.attr_type for a in parsed.unrecognized] == [A.VENDOR_NAME]


def test_the_closest_random_vector_applies() -> None:
    rv1, rv2 = b"1" * 16, b"2" * 16
    from l2tpfast.wire.hiding import hide_value

    avps = [
        make_avp(A.PROTOCOL_VERSION, ProtocolVersion()),
        make_avp(A.RANDOM_VECTOR, rv1),
        Avp(A.HOST_NAME, b"lac", mandatory=True),
        Avp(
            A.FRAMING_CAPABILITIES,
            hide_value(3, b"\x00\x00\x00\x01", SECRET, rv1),
            mandatory=True,
            hidden=True,
        ),
        make_avp(A.RANDOM_VECTOR, rv2),
        Avp(A.ASSIGNED_TUNNEL_ID, hide_value(9, b"\x00\x2a", SECRET, rv2), mandatory=True, hidden=True),
    ]
    msg = parse_message(_raw(MessageType.SCCRQ, avps), secret=SECRET)
    assert msg[A.ASSIGNED_TUNNEL_ID] == 42
    assert msg[A.FRAMING_CAPABILITIES] == FramingCapability.SYNC


def test_builder_is_strict() -> None:
    with pytest.raises(LocalProtocolError, match="needs"):
        build_message(MessageType.SCCRQ, [(A.HOST_NAME, "x")], tunnel_id=0)
    with pytest.raises(LocalProtocolError, match="not an AVP of"):
        build_message(MessageType.HELLO, [(A.HOST_NAME, "x")], tunnel_id=1)
    with pytest.raises(LocalProtocolError, match="MUST NOT be hidden"):
        build_message(MessageType.SCCRQ, _sccrq(), tunnel_id=0, secret=SECRET, hide={A.HOST_NAME})
    with pytest.raises(LocalProtocolError, match="secret"):
        build_message(MessageType.SCCRQ, _sccrq(), tunnel_id=0, hide={A.ASSIGNED_TUNNEL_ID})


def test_data_message_is_not_a_control_message() -> None:
    with pytest.raises(MessageError) as info:
        parse_message(b"\x00\x02\x00\x01\x00\x01\xff\x03")
    assert info.value.scope is Scope.DATAGRAM


def test_malformed_header_raises_header_error() -> None:
    with pytest.raises(HeaderError):
        parse_message(b"\xc8\x02\x00\x20" + bytes(8))


def test_sample_values_cover_every_optional_avp() -> None:
    for rule in MESSAGE_RULES.values():
        assert (rule.required | rule.optional) - {A.MESSAGE_TYPE} <= set(SAMPLE_VALUES)
