"""AVPs (RFC 2661 4.1, 4.4): the AVP header and a typed codec for every AVP.

An :class:`Avp` is what is on the wire: flags, vendor, type and the value
octets exactly as received (still hidden when H=1), so a parsed message
re-encodes byte-identically.  Typed values come from the spec table
:data:`AVP_SPECS`, keyed on (Vendor ID, Attribute Type): a vendor AVP never
reaches an IETF decoder, whatever its type number.  AVPs of unknown keys stay
raw octets.

Decoders check lengths only and raise :class:`~l2tpfast.errors.AvpError` with
General Error 2 ("Length is wrong"); ranges that depend on the message (a zero
Assigned Tunnel ID, say) are checked in :mod:`l2tpfast.wire.message`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from l2tpfast.errors import AvpError, LocalProtocolError
from l2tpfast.wire.constants import (
    AVP_FLAG_H,
    AVP_FLAG_M,
    AVP_HEADER_LEN,
    AVP_LENGTH_MASK,
    AVP_MAX_LEN,
    AVP_RESERVED_MASK,
    VENDOR_BROADBAND_FORUM,
    VENDOR_IETF,
    AvpType,
    BbfAvpType,
    BearerCapability,
    FramingCapability,
    GeneralError,
)

_HDR = struct.Struct("!HHH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")

AvpKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Avp:
    """One AVP as it is on the wire (RFC 2661 4.1)."""

    attr_type: int
    #: The Attribute Value octets; the hidden subformat when ``hidden``.
    value: bytes = b""
    vendor_id: int = VENDOR_IETF
    mandatory: bool = False
    hidden: bool = False
    #: The four reserved flag bits as received; always 0 in what we build.
    reserved: int = 0

    @property
    def key(self) -> AvpKey:
        return (self.vendor_id, self.attr_type)

    @property
    def length(self) -> int:
        return AVP_HEADER_LEN + len(self.value)

    def encode(self) -> bytes:
        length = self.length
        if length > AVP_MAX_LEN:
            raise LocalProtocolError(f"AVP {self.attr_type} of {length} octets exceeds {AVP_MAX_LEN}")
        word = length | (self.reserved & AVP_RESERVED_MASK)
        if self.mandatory:
            word |= AVP_FLAG_M
        if self.hidden:
            word |= AVP_FLAG_H
        return _HDR.pack(word, self.vendor_id, self.attr_type) + self.value


def iter_avps(data: bytes | memoryview, *, base: int = 0) -> Iterator[Avp]:
    """Split the AVPs of a control message body; ``base`` is only for messages.

    Raises AvpError (General Error 2, Length is wrong) when an AVP's Length is
    under 6 or runs past the end of the message.
    """
    view = memoryview(data)
    pos = 0
    end = len(view)
    while pos < end:
        if end - pos < AVP_HEADER_LEN:
            raise AvpError(
                f"{end - pos} trailing octets at offset {base + pos} are too few for an AVP header",
                attr_type=-1,
                error_code=GeneralError.BAD_LENGTH,
            )
        word, vendor_id, attr_type = _HDR.unpack_from(view, pos)
        length = word & AVP_LENGTH_MASK
        if length < AVP_HEADER_LEN or pos + length > end:
            raise AvpError(
                f"AVP {vendor_id}:{attr_type} at offset {base + pos} has Length {length}, "
                f"{end - pos} octets remain",
                attr_type=attr_type,
                vendor_id=vendor_id,
                error_code=GeneralError.BAD_LENGTH,
            )
        yield Avp(
            attr_type=attr_type,
            value=bytes(view[pos + AVP_HEADER_LEN : pos + length]),
            vendor_id=vendor_id,
            mandatory=bool(word & AVP_FLAG_M),
            hidden=bool(word & AVP_FLAG_H),
            reserved=word & AVP_RESERVED_MASK,
        )
        pos += length


def encode_avps(avps: Iterable[Avp]) -> bytes:
    return b"".join(avp.encode() for avp in avps)


# --- typed values -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResultCode:
    """RFC 2661 4.4.2 Result Code AVP: result, optional error code and message."""

    result_code: int
    error_code: int | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class ProtocolVersion:
    """RFC 2661 4.4.3: Ver 1, Rev 0 for this RFC."""

    version: int = 1
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Q931Cause:
    """RFC 2661 4.4.4 Q.931 Cause Code AVP."""

    cause_code: int
    cause_msg: int
    advisory: str | None = None


@dataclass(frozen=True, slots=True)
class CallErrors:
    """RFC 2661 4.4.6 Call Errors AVP (WEN): cumulative counters."""

    crc_errors: int = 0
    framing_errors: int = 0
    hardware_overruns: int = 0
    buffer_overruns: int = 0
    timeout_errors: int = 0
    alignment_errors: int = 0
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class Accm:
    """RFC 2661 4.4.6 ACCM AVP (SLI)."""

    send_accm: int = 0xFFFFFFFF
    receive_accm: int = 0xFFFFFFFF
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class PppDisconnectCause:
    """RFC 3145 PPP Disconnect Cause Code AVP (type 46), sent in CDN."""

    disconnect_code: int
    control_protocol: int
    direction: int
    message: str | None = None


def _text(raw: bytes) -> str:
    # surrogateescape keeps non-UTF-8 octets, so decode -> encode is byte-exact.
    return raw.decode("utf-8", "surrogateescape")


def _untext(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class AvpSpec:
    """How to encode and decode one AVP, and the RFC's rules for its flags."""

    vendor_id: int
    attr_type: int
    name: str
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    #: The value of the M bit the RFC says to send.
    mandatory: bool
    #: Whether the RFC lets the H bit be set.
    may_hide: bool
    min_length: int = 0
    #: ``None``: no upper bound below the 10-bit AVP length.
    max_length: int | None = None

    def check_length(self, value: bytes) -> None:
        size = len(value)
        if size < self.min_length or (self.max_length is not None and size > self.max_length):
            expected = (
                f"{self.min_length}"
                if self.max_length == self.min_length
                else f"{self.min_length}..{self.max_length if self.max_length is not None else ''}"
            )
            raise AvpError(
                f"{self.name} AVP value has {size} octets, expected {expected} (RFC 2661 4.4)",
                attr_type=self.attr_type,
                vendor_id=self.vendor_id,
                error_code=GeneralError.BAD_LENGTH,
            )

    def decode_value(self, value: bytes) -> Any:
        """Typed value of plain (unhidden) octets; AvpError on a bad length."""
        self.check_length(value)
        return self.decode(value)

    def encode_value(self, obj: Any) -> bytes:
        """Octets of a typed value; LocalProtocolError if they break the length rule."""
        try:
            raw = self.encode(obj)
        except (struct.error, TypeError, AttributeError, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode {obj!r} as {self.name}: {exc}") from exc
        try:
            self.check_length(raw)
        except AvpError as exc:
            raise LocalProtocolError(str(exc)) from None
        return raw


def _u16(value: bytes) -> int:
    return int(_U16.unpack(value)[0])


def _u32(value: bytes) -> int:
    return int(_U32.unpack(value)[0])


def _decode_result(value: bytes) -> ResultCode:
    # Liberal (issue 2): 2 octets (no Error Code), 4, or longer with a message.
    if len(value) == 3:
        raise AvpError(
            "Result Code AVP with a partial Error Code (Length 9)",
            attr_type=AvpType.RESULT_CODE,
            error_code=GeneralError.BAD_LENGTH,
        )
    result = _u16(value[:2])
    if len(value) == 2:
        return ResultCode(result)
    error = _u16(value[2:4])
    message = _text(value[4:]) if len(value) > 4 else None
    return ResultCode(result, error, message)


def _encode_result(obj: ResultCode) -> bytes:
    out = _U16.pack(obj.result_code)
    if obj.error_code is None:
        if obj.error_message is not None:
            raise ValueError("an Error Message needs an Error Code (RFC 2661 4.4.2)")
        return out
    out += _U16.pack(obj.error_code)
    if obj.error_message is not None:
        out += _untext(obj.error_message)
    return out


def _decode_q931(value: bytes) -> Q931Cause:
    return Q931Cause(_u16(value[:2]), value[2], _text(value[3:]) if len(value) > 3 else None)


def _encode_q931(obj: Q931Cause) -> bytes:
    return (
        _U16.pack(obj.cause_code)
        + bytes([obj.cause_msg])
        + (_untext(obj.advisory) if obj.advisory is not None else b"")
    )


_CALL_ERRORS = struct.Struct("!HIIIIII")


def _decode_call_errors(value: bytes) -> CallErrors:
    reserved, crc, framing, hw, buf, timeout, align = _CALL_ERRORS.unpack(value)
    return CallErrors(crc, framing, hw, buf, timeout, align, reserved)


def _encode_call_errors(obj: CallErrors) -> bytes:
    return _CALL_ERRORS.pack(
        obj.reserved,
        obj.crc_errors,
        obj.framing_errors,
        obj.hardware_overruns,
        obj.buffer_overruns,
        obj.timeout_errors,
        obj.alignment_errors,
    )


_ACCM = struct.Struct("!HII")


def _decode_accm(value: bytes) -> Accm:
    reserved, send, receive = _ACCM.unpack(value)
    return Accm(send, receive, reserved)


def _encode_accm(obj: Accm) -> bytes:
    return _ACCM.pack(obj.reserved, obj.send_accm, obj.receive_accm)


def _decode_disconnect(value: bytes) -> PppDisconnectCause:
    code, proto = struct.unpack_from("!HH", value)
    return PppDisconnectCause(code, proto, value[4], _text(value[5:]) if len(value) > 5 else None)


def _encode_disconnect(obj: PppDisconnectCause) -> bytes:
    return struct.pack("!HHB", obj.disconnect_code, obj.control_protocol, obj.direction) + (
        _untext(obj.message) if obj.message is not None else b""
    )


def _encode_authen_id(ident: int) -> bytes:
    if not 0 <= ident <= 0xFF:
        raise ValueError("the Proxy Authen ID is one PPP identifier octet (RFC 2661 4.4.5)")
    return _U16.pack(ident)


def _ident(value: bytes) -> bytes:
    return bytes(value)


def _empty_decode(value: bytes) -> bool:
    return True


def _empty_encode(obj: Any) -> bytes:
    return b""


# (decode, encode, min_length, max_length) per value shape.
_Shape = tuple[Callable[[bytes], Any], Callable[[Any], bytes], int, int | None]
_UINT16: _Shape = (_u16, _U16.pack, 2, 2)
_UINT32: _Shape = (_u32, _U32.pack, 4, 4)
_UINT64: _Shape = (lambda v: int(_U64.unpack(v)[0]), _U64.pack, 8, 8)
_TEXT: _Shape = (_text, _untext, 0, None)
_TEXT1: _Shape = (_text, _untext, 1, None)
_OCTETS: _Shape = (_ident, bytes, 0, None)
_OCTETS1: _Shape = (_ident, bytes, 1, None)
_FRAMING: _Shape = (lambda v: FramingCapability(_u32(v)), lambda f: _U32.pack(int(f)), 4, 4)
_BEARER: _Shape = (lambda v: BearerCapability(_u32(v)), lambda f: _U32.pack(int(f)), 4, 4)


def _spec(
    attr_type: int, shape: _Shape, mandatory: bool, may_hide: bool, vendor_id: int = VENDOR_IETF
) -> AvpSpec:
    decode, encode, lo, hi = shape
    name = (
        AvpType(attr_type).name if vendor_id == VENDOR_IETF else f"{vendor_id}:{BbfAvpType(attr_type).name}"
    )
    return AvpSpec(vendor_id, attr_type, name, decode, encode, mandatory, may_hide, lo, hi)


T = AvpType
# RFC 2661 4.4 (and RFC 3145 for type 46): value shape, the M bit to send, whether H may be 1.
_IETF_SPECS = [
    _spec(T.MESSAGE_TYPE, _UINT16, True, False),
    _spec(T.RESULT_CODE, (_decode_result, _encode_result, 2, None), True, False),
    _spec(
        T.PROTOCOL_VERSION,
        (lambda v: ProtocolVersion(v[0], v[1]), lambda p: bytes([p.version, p.revision]), 2, 2),
        True,
        False,
    ),
    _spec(T.FRAMING_CAPABILITIES, _FRAMING, True, True),
    _spec(T.BEARER_CAPABILITIES, _BEARER, True, True),
    _spec(T.TIE_BREAKER, _UINT64, False, False),
    _spec(T.FIRMWARE_REVISION, _UINT16, False, True),
    _spec(T.HOST_NAME, _TEXT1, True, False),
    _spec(T.VENDOR_NAME, _TEXT, False, True),
    _spec(T.ASSIGNED_TUNNEL_ID, _UINT16, True, True),
    _spec(T.RECEIVE_WINDOW_SIZE, _UINT16, True, False),
    _spec(T.CHALLENGE, _OCTETS1, True, True),
    _spec(T.Q931_CAUSE_CODE, (_decode_q931, _encode_q931, 3, None), True, False),
    _spec(T.CHALLENGE_RESPONSE, (_ident, bytes, 16, 16), True, True),
    _spec(T.ASSIGNED_SESSION_ID, _UINT16, True, True),
    _spec(T.CALL_SERIAL_NUMBER, _UINT32, True, True),
    _spec(T.MINIMUM_BPS, _UINT32, True, True),
    _spec(T.MAXIMUM_BPS, _UINT32, True, True),
    _spec(T.BEARER_TYPE, _BEARER, True, True),
    _spec(T.FRAMING_TYPE, _FRAMING, True, True),
    _spec(T.CALLED_NUMBER, _TEXT, True, True),
    _spec(T.CALLING_NUMBER, _TEXT, True, True),
    _spec(T.SUB_ADDRESS, _TEXT, True, True),
    _spec(T.TX_CONNECT_SPEED, _UINT32, True, True),
    _spec(T.PHYSICAL_CHANNEL_ID, _UINT32, False, True),
    _spec(T.INITIAL_RECEIVED_LCP_CONFREQ, _OCTETS, False, True),
    _spec(T.LAST_SENT_LCP_CONFREQ, _OCTETS, False, True),
    _spec(T.LAST_RECEIVED_LCP_CONFREQ, _OCTETS, False, True),
    _spec(T.PROXY_AUTHEN_TYPE, _UINT16, False, True),
    _spec(T.PROXY_AUTHEN_NAME, _TEXT, False, True),
    _spec(T.PROXY_AUTHEN_CHALLENGE, _OCTETS1, False, True),
    # 4.4.5: two octets, "the most significant octet MUST be 0"; accepted as received.
    _spec(T.PROXY_AUTHEN_ID, (_u16, _encode_authen_id, 2, 2), False, True),
    _spec(T.PROXY_AUTHEN_RESPONSE, _OCTETS, False, True),
    _spec(T.CALL_ERRORS, (_decode_call_errors, _encode_call_errors, 26, 26), True, True),
    _spec(T.ACCM, (_decode_accm, _encode_accm, 10, 10), True, True),
    _spec(T.RANDOM_VECTOR, _OCTETS1, True, False),
    _spec(T.PRIVATE_GROUP_ID, _OCTETS, False, True),
    _spec(T.RX_CONNECT_SPEED, _UINT32, False, True),
    _spec(T.SEQUENCING_REQUIRED, (_empty_decode, _empty_encode, 0, 0), True, False),
    _spec(T.PPP_DISCONNECT_CAUSE_CODE, (_decode_disconnect, _encode_disconnect, 5, None), False, True),
]
# Broadband Forum TR-101 line identification, sent by carrier LACs (M=0).
_VENDOR_SPECS = [
    _spec(BbfAvpType.AGENT_CIRCUIT_ID, _TEXT, False, True, VENDOR_BROADBAND_FORUM),
    _spec(BbfAvpType.AGENT_REMOTE_ID, _TEXT, False, True, VENDOR_BROADBAND_FORUM),
]

#: Every AVP we understand, keyed on (Vendor ID, Attribute Type).
AVP_SPECS: dict[AvpKey, AvpSpec] = {(s.vendor_id, s.attr_type): s for s in _IETF_SPECS + _VENDOR_SPECS}


def spec_for(key: AvpKey | int) -> AvpSpec:
    """The spec of an AVP key, or of an IETF attribute type; KeyError if unknown."""
    if isinstance(key, int):
        key = (VENDOR_IETF, key)
    return AVP_SPECS[key]


def make_avp(
    attr_type: int,
    value: Any,
    *,
    vendor_id: int = VENDOR_IETF,
    mandatory: bool | None = None,
) -> Avp:
    """A plain (unhidden) AVP of a known type from its typed value.

    The M bit is the RFC's unless ``mandatory`` overrides it.
    """
    spec = AVP_SPECS.get((vendor_id, attr_type))
    if spec is None:
        if not isinstance(value, bytes | bytearray):
            raise LocalProtocolError(f"AVP {vendor_id}:{attr_type} is unknown; give its value as bytes")
        return Avp(attr_type, bytes(value), vendor_id, bool(mandatory))
    raw = spec.encode_value(value)
    return Avp(attr_type, raw, vendor_id, spec.mandatory if mandatory is None else mandatory)
