"""Every control message type with every AVP it may carry, as typed values.

Shared by the round-trip tests, the property tests and the tshark judge.
Values are chosen so that each one is distinguishable on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l2tpfast.wire.avp import (
    AVP_SPECS,
    Accm,
    CallErrors,
    PppDisconnectCause,
    ProtocolVersion,
    Q931Cause,
    ResultCode,
)
from l2tpfast.wire.constants import (
    AvpType,
    BearerCapability,
    FramingCapability,
    MessageType,
    ProxyAuthenType,
)
from l2tpfast.wire.message import MESSAGE_RULES

A = AvpType

SECRET = b"l2tpfast-test-secret"

#: One typed value per IETF AVP type (Random Vector and Message Type are added by the builder).
SAMPLE_VALUES: dict[AvpType, Any] = {
    A.RESULT_CODE: ResultCode(2, 6, "missing AVP"),
    A.PROTOCOL_VERSION: ProtocolVersion(1, 0),
    A.FRAMING_CAPABILITIES: FramingCapability.SYNC | FramingCapability.ASYNC,
    A.BEARER_CAPABILITIES: BearerCapability.ANALOG | BearerCapability.DIGITAL,
    A.TIE_BREAKER: 0x0123456789ABCDEF,
    A.FIRMWARE_REVISION: 0x0102,
    A.HOST_NAME: "lns.example.net",
    A.VENDOR_NAME: "l2tpfast",
    A.ASSIGNED_TUNNEL_ID: 0x1234,
    A.RECEIVE_WINDOW_SIZE: 16,
    A.CHALLENGE: bytes(range(1, 17)),
    A.Q931_CAUSE_CODE: Q931Cause(16, 0x45, "normal clearing"),
    A.CHALLENGE_RESPONSE: bytes(range(0xA0, 0xB0)),
    A.ASSIGNED_SESSION_ID: 0x4321,
    A.CALL_SERIAL_NUMBER: 0xC0FFEE,
    A.MINIMUM_BPS: 64000,
    A.MAXIMUM_BPS: 100_000_000,
    A.BEARER_TYPE: BearerCapability.DIGITAL,
    A.FRAMING_TYPE: FramingCapability.SYNC,
    A.CALLED_NUMBER: "5551234",
    A.CALLING_NUMBER: "5559876",
    A.SUB_ADDRESS: "12",
    A.TX_CONNECT_SPEED: 10_000_000,
    A.PHYSICAL_CHANNEL_ID: 77,
    A.INITIAL_RECEIVED_LCP_CONFREQ: bytes.fromhex("010405dc05061122334407020802"),
    A.LAST_SENT_LCP_CONFREQ: bytes.fromhex("010405780305c22305"),  # MRU 1400, CHAP MD5
    A.LAST_RECEIVED_LCP_CONFREQ: bytes.fromhex("0104059005065566778807020802"),
    A.PROXY_AUTHEN_TYPE: ProxyAuthenType.PPP_CHAP,
    A.PROXY_AUTHEN_NAME: "alice@example.net",
    A.PROXY_AUTHEN_CHALLENGE: bytes(range(0x10, 0x20)),
    A.PROXY_AUTHEN_ID: 7,
    A.PROXY_AUTHEN_RESPONSE: bytes(range(0x30, 0x40)),
    A.CALL_ERRORS: CallErrors(1, 2, 3, 4, 5, 6),
    A.ACCM: Accm(0x000A0000, 0xFFFFFFFF),
    A.PRIVATE_GROUP_ID: b"group-7",
    A.RX_CONNECT_SPEED: 2_000_000,
    A.SEQUENCING_REQUIRED: True,
    A.PPP_DISCONNECT_CAUSE_CODE: PppDisconnectCause(3, 0xC021, 1, "peer terminated"),
}


@dataclass(frozen=True)
class Case:
    """One message to build: type, AVPs in RFC order, the ones to hide."""

    message_type: MessageType
    avps: tuple[tuple[AvpType, Any], ...]
    hide: frozenset[AvpType]
    tunnel_id: int
    session_id: int

    @property
    def id(self) -> str:
        return f"{self.message_type.name}-{'hidden' if self.hide else 'plain'}"


def _avps_for(message_type: MessageType) -> tuple[tuple[AvpType, Any], ...]:
    rule = MESSAGE_RULES[message_type]
    wanted = sorted((rule.required | rule.optional) - {A.MESSAGE_TYPE})
    return tuple((t, SAMPLE_VALUES[t]) for t in wanted)


def _hideable(avps: tuple[tuple[AvpType, Any], ...]) -> frozenset[AvpType]:
    return frozenset(t for t, _ in avps if AVP_SPECS[(0, t)].may_hide)


def all_cases() -> list[Case]:
    """Each message type twice: every AVP plain, and every hideable AVP hidden."""
    cases = []
    for message_type in MessageType:
        avps = _avps_for(message_type)
        session_id = (
            0
            if message_type
            in (
                MessageType.SCCRQ,
                MessageType.SCCRP,
                MessageType.SCCCN,
                MessageType.StopCCN,
                MessageType.HELLO,
            )
            else 0x0BAD
        )
        tunnel_id = 0 if message_type == MessageType.SCCRQ else 0x2345
        cases.append(Case(message_type, avps, frozenset(), tunnel_id, session_id))
        hide = _hideable(avps)
        if hide:
            cases.append(Case(message_type, avps, hide, tunnel_id, session_id))
    return cases
