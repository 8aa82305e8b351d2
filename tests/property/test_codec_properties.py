"""Hypothesis: the pure-Python codec round-trips and never fails untyped."""

from __future__ import annotations

import contextlib
from typing import Any

from catalog import SECRET, all_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tpfast.errors import L2TPError
from l2tpfast.wire.avp import (
    AVP_SPECS,
    Accm,
    CallErrors,
    PppDisconnectCause,
    ProtocolVersion,
    Q931Cause,
    ResultCode,
    iter_avps,
    make_avp,
)
from l2tpfast.wire.constants import AvpType, BearerCapability, FramingCapability
from l2tpfast.wire.header import parse_header
from l2tpfast.wire.hiding import hide_value, unhide_value
from l2tpfast.wire.message import MESSAGE_RULES, build_message, parse_message

A = AvpType
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
text = st.text(max_size=40)
# An empty trailing message and no message are the same octets: draw non-empty ones.
msg_text = st.text(min_size=1, max_size=40)
octets = st.binary(max_size=60)
octets1 = st.binary(min_size=1, max_size=60)

VALUE_STRATEGIES: dict[AvpType, st.SearchStrategy[Any]] = {
    A.RESULT_CODE: st.one_of(
        st.builds(ResultCode, u16),
        st.builds(ResultCode, u16, u16),
        st.builds(ResultCode, u16, u16, msg_text),
    ),
    A.PROTOCOL_VERSION: st.builds(ProtocolVersion, st.integers(0, 255), st.integers(0, 255)),
    A.FRAMING_CAPABILITIES: u32.map(FramingCapability),
    A.BEARER_CAPABILITIES: u32.map(BearerCapability),
    A.TIE_BREAKER: st.integers(0, 2**64 - 1),
    A.FIRMWARE_REVISION: u16,
    A.HOST_NAME: st.text(min_size=1, max_size=40),
    A.VENDOR_NAME: text,
    A.ASSIGNED_TUNNEL_ID: st.integers(1, 0xFFFF),
    A.RECEIVE_WINDOW_SIZE: u16,
    A.CHALLENGE: octets1,
    A.Q931_CAUSE_CODE: st.builds(Q931Cause, u16, st.integers(0, 255), st.none() | msg_text),
    A.CHALLENGE_RESPONSE: st.binary(min_size=16, max_size=16),
    A.ASSIGNED_SESSION_ID: st.integers(1, 0xFFFF),
    A.CALL_SERIAL_NUMBER: u32,
    A.MINIMUM_BPS: u32,
    A.MAXIMUM_BPS: u32,
    A.BEARER_TYPE: u32.map(BearerCapability),
    A.FRAMING_TYPE: u32.map(FramingCapability),
    A.CALLED_NUMBER: text,
    A.CALLING_NUMBER: text,
    A.SUB_ADDRESS: text,
    A.TX_CONNECT_SPEED: u32,
    A.PHYSICAL_CHANNEL_ID: u32,
    A.INITIAL_RECEIVED_LCP_CONFREQ: octets,
    A.LAST_SENT_LCP_CONFREQ: octets,
    A.LAST_RECEIVED_LCP_CONFREQ: octets,
    A.PROXY_AUTHEN_TYPE: u16,
    A.PROXY_AUTHEN_NAME: text,
    A.PROXY_AUTHEN_CHALLENGE: octets1,
    A.PROXY_AUTHEN_ID: st.integers(0, 255),
    A.PROXY_AUTHEN_RESPONSE: octets,
    A.CALL_ERRORS: st.builds(CallErrors, u32, u32, u32, u32, u32, u32),
    A.ACCM: st.builds(Accm, u32, u32),
    A.PRIVATE_GROUP_ID: octets,
    A.RX_CONNECT_SPEED: u32,
    A.SEQUENCING_REQUIRED: st.just(True),
    A.PPP_DISCONNECT_CAUSE_CODE: st.builds(
        PppDisconnectCause, u16, u16, st.integers(0, 255), st.none() | msg_text
    ),
}


def test_strategies_cover_every_avp() -> None:
    ietf = {AvpType(t) for (v, t) in AVP_SPECS if v == 0} - {A.MESSAGE_TYPE, A.RANDOM_VECTOR}
    assert set(VALUE_STRATEGIES) == ietf


@st.composite
def messages(draw: st.DrawFn) -> tuple[Any, list[tuple[AvpType, Any]], set[AvpType]]:
    message_type = draw(st.sampled_from(sorted(MESSAGE_RULES)))
    rule = MESSAGE_RULES[message_type]
    optional = draw(st.sets(st.sampled_from(sorted(rule.optional)))) if rule.optional else set()
    chosen = sorted((rule.required | optional) - {A.MESSAGE_TYPE})
    avps = [(t, draw(VALUE_STRATEGIES[t])) for t in chosen]
    hideable = [t for t in chosen if AVP_SPECS[(0, t)].may_hide]
    hide = draw(st.sets(st.sampled_from(hideable))) if hideable else set()
    return message_type, avps, hide


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), u16, u16, u16, u16, st.binary(min_size=1, max_size=32))
def test_build_parse_build_round_trip(
    spec: tuple[Any, list[tuple[AvpType, Any]], set[AvpType]],
    tunnel_id: int,
    session_id: int,
    ns: int,
    nr: int,
    random_vector: bytes,
) -> None:
    message_type, avps, hide = spec
    msg = build_message(
        message_type,
        avps,
        tunnel_id=tunnel_id,
        session_id=session_id,
        ns=ns,
        nr=nr,
        secret=SECRET if hide else None,
        hide=hide,
        random_vector=random_vector,
        urandom=bytes,
    )
    wire = msg.encode()
    parsed = parse_message(wire, secret=SECRET)
    assert parsed.encode() == wire
    for attr_type, value in avps:
        assert parsed[attr_type] == value


@settings(max_examples=200)
@given(
    st.sampled_from(sorted(VALUE_STRATEGIES)).flatmap(lambda t: st.tuples(st.just(t), VALUE_STRATEGIES[t]))
)
def test_avp_round_trip(item: tuple[AvpType, Any]) -> None:
    attr_type, value = item
    avp = make_avp(attr_type, value)
    (back,) = iter_avps(avp.encode())
    assert back == avp
    assert AVP_SPECS[(0, attr_type)].decode_value(back.value) == value


@settings(max_examples=200)
@given(
    u16,
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=20),
    st.binary(min_size=1, max_size=40),
    st.binary(max_size=40),
)
def test_hiding_round_trip(attr_type: int, value: bytes, secret: bytes, rv: bytes, padding: bytes) -> None:
    hidden = hide_value(attr_type, value, secret, rv, padding=padding)
    assert unhide_value(attr_type, hidden, secret, rv) == value


@settings(max_examples=1000)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_typed_error(data: bytes) -> None:
    for parse in (parse_header, parse_message):
        with contextlib.suppress(L2TPError):
            parse(data)  # type: ignore[operator]


_VALID = [c for c in all_cases()]


@settings(max_examples=1000)
@given(st.sampled_from(_VALID), st.data())
def test_mutated_messages_parse_or_typed_error(case: Any, data: st.DataObject) -> None:
    msg = build_message(
        case.message_type,
        case.avps,
        tunnel_id=case.tunnel_id,
        session_id=case.session_id,
        secret=SECRET if case.hide else None,
        hide=case.hide,
        random_vector=b"rv" * 8,
        urandom=bytes,  # deterministic padding: hypothesis replays must see the same octets
    )
    wire = bytearray(msg.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        if action == "flip" and wire:
            i = data.draw(st.integers(0, len(wire) - 1))
            wire[i] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "truncate":
            del wire[data.draw(st.integers(0, len(wire))) :]
        else:
            i = data.draw(st.integers(0, len(wire)))
            wire[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    for secret in (None, SECRET, b"wrong"):
        try:
            parsed = parse_message(bytes(wire), secret=secret)
        except L2TPError:
            continue
        assert parsed.encode() == bytes(wire)  # whatever parses re-encodes byte-identically
