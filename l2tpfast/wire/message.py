"""Control messages (RFC 2661 section 6): the AVP table, parse, validate, build.

:data:`MESSAGE_RULES` says, for each message type, which AVPs it MUST carry and
which it MAY carry (RFC 2661 6.1 to 6.14; the Random Vector AVP of 4.4.1 may
appear in every message, and the PPP Disconnect Cause Code of RFC 3145 in CDN).

We are strict in what we send and liberal in what we accept:

* :func:`build_message` refuses a message that lacks a required AVP, carries an
  AVP its row does not list, or hides an AVP the RFC says must stay plain.
* :func:`parse_message` accepts a known AVP that its message does not list
  (some LACs repeat SCCRQ AVPs in SCCCN) and ignores it; it accepts a Result
  Code of 2, 4 or more octets; it fails only where the RFC demands an answer,
  raising a :class:`~l2tpfast.errors.RemoteProtocolError` whose ``scope``
  says what to tear down (StopCCN for a tunnel message, CDN for a session
  message, 4.1) and whose ``result_code``/``error_code`` are what to answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from l2tpfast.errors import AvpError, HiddenAvpError, LocalProtocolError, MessageError, Scope
from l2tpfast.wire.avp import AVP_SPECS, Avp, AvpKey, encode_avps, iter_avps, make_avp
from l2tpfast.wire.constants import (
    CONTROL_HEADER_LEN,
    FLAG_P,
    TUNNEL_MESSAGES,
    VENDOR_IETF,
    AvpType,
    GeneralError,
    MessageType,
)
from l2tpfast.wire.header import build_control_header, parse_header
from l2tpfast.wire.hiding import hide_value, random_padding, unhide_value

A = AvpType


@dataclass(frozen=True, slots=True)
class MessageRule:
    """The AVPs one message type MUST and MAY carry."""

    required: frozenset[AvpType]
    optional: frozenset[AvpType]

    @property
    def allowed(self) -> frozenset[AvpType]:
        return self.required | self.optional | {A.RANDOM_VECTOR}


def _rule(required: Iterable[AvpType], optional: Iterable[AvpType] = ()) -> MessageRule:
    return MessageRule(frozenset({A.MESSAGE_TYPE, *required}), frozenset(optional))


#: RFC 2661 section 6, one row per message type in RFC order.
MESSAGE_RULES: dict[int, MessageRule] = {
    # 6.1
    MessageType.SCCRQ: _rule(
        [A.PROTOCOL_VERSION, A.HOST_NAME, A.FRAMING_CAPABILITIES, A.ASSIGNED_TUNNEL_ID],
        [
            A.BEARER_CAPABILITIES,
            A.RECEIVE_WINDOW_SIZE,
            A.CHALLENGE,
            A.TIE_BREAKER,
            A.FIRMWARE_REVISION,
            A.VENDOR_NAME,
        ],
    ),
    # 6.2
    MessageType.SCCRP: _rule(
        [A.PROTOCOL_VERSION, A.FRAMING_CAPABILITIES, A.HOST_NAME, A.ASSIGNED_TUNNEL_ID],
        [
            A.BEARER_CAPABILITIES,
            A.FIRMWARE_REVISION,
            A.VENDOR_NAME,
            A.RECEIVE_WINDOW_SIZE,
            A.CHALLENGE,
            A.CHALLENGE_RESPONSE,
        ],
    ),
    # 6.3
    MessageType.SCCCN: _rule([], [A.CHALLENGE_RESPONSE]),
    # 6.4
    MessageType.StopCCN: _rule([A.ASSIGNED_TUNNEL_ID, A.RESULT_CODE]),
    # 6.5
    MessageType.HELLO: _rule([]),
    # 6.6
    MessageType.ICRQ: _rule(
        [A.ASSIGNED_SESSION_ID, A.CALL_SERIAL_NUMBER],
        [A.BEARER_TYPE, A.PHYSICAL_CHANNEL_ID, A.CALLING_NUMBER, A.CALLED_NUMBER, A.SUB_ADDRESS],
    ),
    # 6.7
    MessageType.ICRP: _rule([A.ASSIGNED_SESSION_ID]),
    # 6.8
    MessageType.ICCN: _rule(
        [A.TX_CONNECT_SPEED, A.FRAMING_TYPE],
        [
            A.INITIAL_RECEIVED_LCP_CONFREQ,
            A.LAST_SENT_LCP_CONFREQ,
            A.LAST_RECEIVED_LCP_CONFREQ,
            A.PROXY_AUTHEN_TYPE,
            A.PROXY_AUTHEN_NAME,
            A.PROXY_AUTHEN_CHALLENGE,
            A.PROXY_AUTHEN_ID,
            A.PROXY_AUTHEN_RESPONSE,
            A.PRIVATE_GROUP_ID,
            A.RX_CONNECT_SPEED,
            A.SEQUENCING_REQUIRED,
        ],
    ),
    # 6.9
    MessageType.OCRQ: _rule(
        [
            A.ASSIGNED_SESSION_ID,
            A.CALL_SERIAL_NUMBER,
            A.MINIMUM_BPS,
            A.MAXIMUM_BPS,
            A.BEARER_TYPE,
            A.FRAMING_TYPE,
            A.CALLED_NUMBER,
        ],
        [A.SUB_ADDRESS],
    ),
    # 6.10
    MessageType.OCRP: _rule([A.ASSIGNED_SESSION_ID], [A.PHYSICAL_CHANNEL_ID]),
    # 6.11
    MessageType.OCCN: _rule(
        [A.TX_CONNECT_SPEED, A.FRAMING_TYPE], [A.RX_CONNECT_SPEED, A.SEQUENCING_REQUIRED]
    ),
    # 6.12 (+ RFC 3145 PPP Disconnect Cause Code)
    MessageType.CDN: _rule(
        [A.RESULT_CODE, A.ASSIGNED_SESSION_ID], [A.Q931_CAUSE_CODE, A.PPP_DISCONNECT_CAUSE_CODE]
    ),
    # 6.13
    MessageType.WEN: _rule([A.CALL_ERRORS]),
    # 6.14
    MessageType.SLI: _rule([A.ACCM]),
}

#: Identifiers that RFC 2661 4.4.3 and 4.4.4 say are non-zero, checked where they are assigned.
_NONZERO: dict[MessageType, tuple[AvpType, ...]] = {
    MessageType.SCCRQ: (A.ASSIGNED_TUNNEL_ID,),
    MessageType.SCCRP: (A.ASSIGNED_TUNNEL_ID,),
    MessageType.ICRQ: (A.ASSIGNED_SESSION_ID,),
    MessageType.ICRP: (A.ASSIGNED_SESSION_ID,),
    MessageType.OCRQ: (A.ASSIGNED_SESSION_ID,),
    MessageType.OCRP: (A.ASSIGNED_SESSION_ID,),
}


def message_scope(message_type: int) -> Scope:
    """What a fatal error in this message tears down (RFC 2661 4.1)."""
    return Scope.TUNNEL if message_type in TUNNEL_MESSAGES else Scope.SESSION


def type_name(message_type: int | None) -> str:
    if message_type is None:
        return "ZLB"
    try:
        return MessageType(message_type).name
    except ValueError:
        return f"message type {message_type}"


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A control message: header fields, the AVPs as on the wire, typed values.

    ``avps`` holds every AVP in order as on the wire (hidden ones still
    hidden), so :meth:`encode` gives back the received octets.  ``values``
    maps each understood AVP key listed for this message type to its decoded
    values, in order.  ``ignored`` holds known AVPs the message type does not
    list; ``unrecognized`` holds AVPs we do not know (M=0) or could not unhide
    (M=0, no secret).
    """

    message_type: int | None
    tunnel_id: int
    session_id: int
    ns: int = 0
    nr: int = 0
    avps: tuple[Avp, ...] = ()
    values: dict[AvpKey, list[Any]] = field(default_factory=dict, compare=False)
    ignored: tuple[Avp, ...] = field(default=(), compare=False)
    unrecognized: tuple[Avp, ...] = field(default=(), compare=False)
    #: Reserved and P bits of the header's first word as received (3.1: ignored on
    #: receipt); kept so that :meth:`encode` gives back the received octets.
    extra_flags: int = 0

    @property
    def is_zlb(self) -> bool:
        """A Zero-Length Body acknowledgement (RFC 2661 5.8): a header and no AVP."""
        return self.message_type is None

    @property
    def name(self) -> str:
        return type_name(self.message_type)

    def get(self, attr_type: int, default: Any = None, *, vendor_id: int = VENDOR_IETF) -> Any:
        """The typed value of the first such AVP, or ``default``."""
        found = self.values.get((vendor_id, attr_type))
        return found[0] if found else default

    def get_all(self, attr_type: int, *, vendor_id: int = VENDOR_IETF) -> list[Any]:
        return list(self.values.get((vendor_id, attr_type), ()))

    def __contains__(self, attr_type: object) -> bool:
        key = attr_type if isinstance(attr_type, tuple) else (VENDOR_IETF, attr_type)
        return key in self.values

    def __getitem__(self, attr_type: int) -> Any:
        found = self.values.get((VENDOR_IETF, attr_type))
        if not found:
            raise KeyError(_avp_name(attr_type))
        return found[0]

    def with_sequence(self, ns: int, nr: int) -> ControlMessage:
        """A copy with new Ns and Nr (a retransmission carries the latest Nr)."""
        return replace(self, ns=ns, nr=nr)

    def encode(self) -> bytes:
        body = encode_avps(self.avps)
        header = build_control_header(self.tunnel_id, self.session_id, self.ns, self.nr, len(body))
        if self.extra_flags:
            header = (int.from_bytes(header[:2], "big") | self.extra_flags).to_bytes(2, "big") + header[2:]
        return header + body


def _avp_name(attr_type: int) -> str:
    try:
        return AvpType(attr_type).name
    except ValueError:
        return f"AVP type {attr_type}"


def build_zlb(tunnel_id: int, ns: int, nr: int) -> bytes:
    """A ZLB acknowledgement (RFC 2661 5.8): control header with no AVP."""
    return build_control_header(tunnel_id, 0, ns, nr, 0)


# --- parse -------------------------------------------------------------------


def _fail(exc: AvpError, scope: Scope) -> AvpError:
    exc.scope = scope
    return exc


def parse_message(data: bytes | bytearray | memoryview, *, secret: bytes | None = None) -> ControlMessage:
    """Parse and validate one control message datagram.

    Raises HeaderError for a header to drop silently, MessageError (scope
    MESSAGE) for an unknown message type whose M bit is clear, and AvpError or
    MessageError (scope TUNNEL or SESSION, with the codes to answer) for what
    the RFC says tears the tunnel or session down.
    """
    data = bytes(data)
    header, offset = parse_header(data)
    if not header.is_control:
        raise MessageError("a data message is not a control message", scope=Scope.DATAGRAM, result_code=0)
    assert header.ns is not None and header.nr is not None  # 3.1, checked by parse_header
    avps = tuple(_iter_checked(data, offset))
    base: dict[str, Any] = dict(
        tunnel_id=header.tunnel_id,
        session_id=header.session_id,
        ns=header.ns,
        nr=header.nr,
        extra_flags=header.reserved | (FLAG_P if header.priority else 0),
    )
    if not avps:
        return ControlMessage(message_type=None, avps=(), **base)
    message_type = _message_type(avps[0])
    rule = MESSAGE_RULES.get(message_type)
    if rule is None:
        if avps[0].mandatory:
            # RFC 2661 4.4.1: unknown type with M=1 clears the tunnel.
            raise MessageError(
                f"unknown message type {message_type} with the M bit set",
                error_code=GeneralError.OUT_OF_RANGE,
            )
        raise MessageError(f"unknown message type {message_type} ignored (M=0)", scope=Scope.MESSAGE)
    scope = message_scope(message_type)
    name = MessageType(message_type).name
    values: dict[AvpKey, list[Any]] = {(VENDOR_IETF, A.MESSAGE_TYPE): [message_type]}
    ignored: list[Avp] = []
    unrecognized: list[Avp] = []
    random_vector: bytes | None = None
    for avp in avps[1:]:
        spec = AVP_SPECS.get(avp.key) if not avp.reserved else None
        if spec is None:
            # RFC 2661 4.1: reserved bits set means unrecognised, like an unknown type.
            if avp.mandatory:
                raise AvpError(
                    f"unrecognised AVP {avp.vendor_id}:{avp.attr_type} with the M bit set in {name}",
                    attr_type=avp.attr_type,
                    vendor_id=avp.vendor_id,
                    error_code=GeneralError.UNKNOWN_MANDATORY_AVP,
                    scope=scope,
                )
            unrecognized.append(avp)
            continue
        plain = avp.value
        if avp.hidden:
            if not secret or random_vector is None:
                why = "no shared secret is configured" if not secret else "no Random Vector AVP precedes it"
                if not avp.mandatory:
                    unrecognized.append(avp)
                    continue
                raise HiddenAvpError(
                    f"hidden {spec.name} AVP in {name} cannot be revealed: {why} (RFC 2661 4.3)",
                    attr_type=avp.attr_type,
                    vendor_id=avp.vendor_id,
                    error_code=GeneralError.VENDOR_ERROR,
                    scope=scope,
                )
            try:
                plain = unhide_value(avp.attr_type, avp.value, secret, random_vector)
            except AvpError as exc:
                raise _fail(exc, scope) from None
        listed = avp.vendor_id != VENDOR_IETF or avp.attr_type in rule.allowed
        try:
            value = spec.decode_value(plain)
        except AvpError as exc:
            if not listed:
                ignored.append(avp)  # liberal: a malformed AVP we would ignore anyway
                continue
            raise _fail(exc, scope) from None
        if avp.key == (VENDOR_IETF, A.RANDOM_VECTOR):
            random_vector = value  # 4.3: the closest preceding Random Vector applies
        if not listed:
            ignored.append(avp)
            continue
        values.setdefault(avp.key, []).append(value)
    missing = [t for t in rule.required if (VENDOR_IETF, t) not in values]
    if missing:
        names = ", ".join(sorted(AvpType(t).name for t in missing))
        raise MessageError(
            f"{name} lacks mandatory AVP(s) {names} (RFC 2661 6)",
            scope=scope,
            error_code=GeneralError.VENDOR_ERROR,
        )
    for attr in _NONZERO.get(MessageType(message_type), ()):
        if values[(VENDOR_IETF, attr)][0] == 0:
            raise MessageError(
                f"{AvpType(attr).name} is 0 in {name}; it must be non-zero (RFC 2661 4.4)",
                scope=scope,
                error_code=GeneralError.OUT_OF_RANGE,
            )
    return ControlMessage(
        message_type=message_type,
        avps=avps,
        values=values,
        ignored=tuple(ignored),
        unrecognized=tuple(unrecognized),
        **base,
    )


def _iter_checked(data: bytes, offset: int) -> Iterator[Avp]:
    try:
        yield from iter_avps(memoryview(data)[offset:], base=offset)
    except AvpError as exc:
        # Without intact AVP framing the message type cannot be trusted: the tunnel answers.
        raise _fail(exc, Scope.TUNNEL) from None


def _message_type(first: Avp) -> int:
    if first.key != (VENDOR_IETF, A.MESSAGE_TYPE) or first.reserved:
        raise MessageError(
            f"first AVP is {first.vendor_id}:{first.attr_type}, not Message Type (RFC 2661 4.4.1)",
            error_code=GeneralError.VENDOR_ERROR,
        )
    if first.hidden:
        raise MessageError(
            "the Message Type AVP is hidden (RFC 2661 4.4.1)", error_code=GeneralError.OUT_OF_RANGE
        )
    if len(first.value) != 2:
        raise MessageError(
            f"Message Type AVP has {len(first.value)} value octets, not 2 (RFC 2661 4.4.1)",
            error_code=GeneralError.BAD_LENGTH,
        )
    return (first.value[0] << 8) | first.value[1]


# --- build -------------------------------------------------------------------

AvpItem = tuple[int, Any] | Avp


def build_message(
    message_type: MessageType,
    avps: Iterable[AvpItem] = (),
    *,
    tunnel_id: int,
    session_id: int = 0,
    ns: int = 0,
    nr: int = 0,
    secret: bytes | None = None,
    hide: Collection[int] = (),
    random_vector: bytes | None = None,
    urandom: Callable[[int], bytes] = os.urandom,
) -> ControlMessage:
    """Build a control message that follows RFC 2661 to the letter.

    ``avps`` are ``(AvpType, value)`` pairs (typed values as
    :mod:`l2tpfast.wire.avp` decodes them) or ready :class:`Avp` objects (for
    vendor AVPs); the Message Type AVP is added first.  AVPs whose type is in
    ``hide`` are hidden with ``secret`` (4.3), behind one Random Vector AVP
    (``random_vector`` or 16 octets of ``urandom``) placed before the first.
    """
    rule = MESSAGE_RULES[MessageType(message_type)]
    hide = set(hide)
    if hide and not secret:
        raise LocalProtocolError("hidden AVPs need a shared secret (RFC 2661 4.3)")
    out: list[Avp] = []
    values: dict[AvpKey, list[Any]] = {}

    def emit(avp: Avp, plain: bytes) -> None:
        out.append(avp)
        spec = AVP_SPECS.get(avp.key)
        if spec is not None:
            values.setdefault(avp.key, []).append(spec.decode_value(plain))

    first = make_avp(A.MESSAGE_TYPE, int(message_type))
    emit(first, first.value)
    present: set[int] = set()
    rv: bytes | None = None
    for item in avps:
        avp = item if isinstance(item, Avp) else make_avp(item[0], item[1])
        plain = avp.value
        if avp.key in AVP_SPECS and avp.vendor_id == VENDOR_IETF:
            # Unknown types pass: a caller that builds a raw Avp knows what it sends.
            if avp.attr_type not in rule.allowed or avp.attr_type == A.MESSAGE_TYPE:
                raise LocalProtocolError(
                    f"{_avp_name(avp.attr_type)} is not an AVP "
                    f"of {MessageType(message_type).name} (RFC 2661 6)"
                )
            present.add(avp.attr_type)
            if avp.attr_type == A.RANDOM_VECTOR:
                rv = avp.value
        if avp.vendor_id == VENDOR_IETF and avp.attr_type in hide:
            spec = AVP_SPECS[avp.key]
            if not spec.may_hide:
                raise LocalProtocolError(f"{spec.name} MUST NOT be hidden (RFC 2661 4.4)")
            assert secret is not None
            if rv is None:
                rv = random_vector if random_vector is not None else urandom(16)
                emit(make_avp(A.RANDOM_VECTOR, rv), rv)
            value = hide_value(
                avp.attr_type, avp.value, secret, rv, padding=random_padding(len(avp.value), urandom)
            )
            avp = replace(avp, value=value, hidden=True)
        emit(avp, plain)
    missing = rule.required - present - {A.MESSAGE_TYPE}
    if missing:
        names = ", ".join(sorted(AvpType(t).name for t in missing))
        raise LocalProtocolError(f"{MessageType(message_type).name} needs {names} (RFC 2661 6)")
    body_len = sum(avp.length for avp in out)
    if CONTROL_HEADER_LEN + body_len > 0xFFFF:
        raise LocalProtocolError(f"{MessageType(message_type).name} of {body_len} octets is too long")
    return ControlMessage(
        message_type=int(message_type),
        tunnel_id=tunnel_id,
        session_id=session_id,
        ns=ns,
        nr=nr,
        avps=tuple(out),
        values=values,
    )
