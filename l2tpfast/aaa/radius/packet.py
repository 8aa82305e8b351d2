"""RADIUS packets of a PPP session: Access-Request and its replies (RFC 2865 3, 4, 5), accounting
(RFC 2866 3, 4, 5; RFC 2869 5.1, 5.2), Message-Authenticator (RFC 3579 3.2), MS-CHAP (RFC 2548
2.1.5, 2.3), DNS servers (RFC 2548 2.7.6, 2.7.7) and the DSL Forum line ids (RFC 4679 4).

Theory of operation. These are pure functions, bytes in and bytes out; the Identifier, the Request
Authenticator and the clock come from the caller (:class:`~l2tpfast.aaa.radius.client.RadiusClient`).
pyrad does the encoding through :mod:`~l2tpfast.aaa.radius._pyrad`.

- :func:`build_access_request` turns a PPP :data:`~l2tpfast.ppp.auth.base.AuthRequest` into an
  Access-Request: PAP as User-Password (RFC 2865 5.2), CHAP-MD5 as CHAP-Password and
  CHAP-Challenge (RFC 2865 5.3, 5.40), MS-CHAPv2 as MS-CHAP-Challenge and MS-CHAP2-Response
  (RFC 2548 2.3.2). Every Access-Request carries a Message-Authenticator, first: the
  Blast-RADIUS (CVE-2024-3596) countermeasure, allowed by RFC 3579 3.2 for any Access-Request.
- :func:`parse_access_reply` verifies a reply and returns None when it does not verify (RFC 2865
  3: "silently discarded"). An Access-Challenge is an Access-Reject for us: PPP has no way to
  pass a RADIUS challenge on (RFC 2865 4.4). An Access-Accept with a Service-Type other than
  Framed is one too (RFC 2865 5.6: unsupported Service-Types are treated "as though an
  Access-Reject had been received").
- :func:`build_accounting_request` writes a Start, Interim-Update or Stop. Octet counters are
  64-bit: the low 32 bits go in Acct-Input/Output-Octets, the wraps in Acct-Input/Output-Gigawords
  (RFC 2869 5.1, 5.2). Input is what the subscriber sent, output what it received (RFC 2866 5.3,
  5.4: octets "received from the port" and "sent to the port").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Literal, TypeVar

from l2tpfast.aaa.radius import _pyrad
from l2tpfast.aaa.radius._pyrad import Item, RawAttribute
from l2tpfast.aaa.radius.constants import (
    AcctAuthentic,
    AcctStatusType,
    Code,
    FramedProtocol,
    NasPortType,
    ServiceType,
)
from l2tpfast.errors import LocalProtocolError
from l2tpfast.ppp.auth.base import (
    AuthDecision,
    AuthRequest,
    MsChapV2Request,
    PapRequest,
    encode_name,
)

_T = TypeVar("_T")

AUTHENTICATOR_LENGTH = 16
#: RFC 2865 5.2: "The Password ... the String field is between 16 and 128 octets"; 128 of text.
MAX_PASSWORD_LENGTH = 128
#: RFC 2865 5: an attribute's Value is at most 253 octets.
MAX_VALUE_LENGTH = 253
#: RFC 2865 5.8: these Framed-IP-Address values ask the NAS to let the user (0xFFFFFFFF) or
#: the NAS itself (0xFFFFFFFE) choose: for us both mean "from the pool".
_SELECT_ADDRESSES = (IPv4Address("255.255.255.255"), IPv4Address("255.255.255.254"))

AccountingStatus = Literal["start", "interim", "stop"]
_STATUS_TYPES: Mapping[str, AcctStatusType] = {
    "start": AcctStatusType.START,
    "interim": AcctStatusType.INTERIM_UPDATE,
    "stop": AcctStatusType.STOP,
}


class RadiusEncodeError(LocalProtocolError):
    """A request RADIUS cannot carry (a password over 128 octets, a name over 253, ...)."""


@dataclass(frozen=True)
class SessionInfo:
    """What RADIUS learns about the session a request or record belongs to (RFC 2865 5, RFC 2866 5)."""

    #: RFC 2866 5.5: the same in the Access-Request and in every record of the session.
    acct_session_id: str
    #: RFC 2865 5.5: our number for the session (the local Session ID is a good one).
    nas_port: int
    #: RFC 2865 5.1: the name the peer authenticated with.
    username: str
    #: RFC 2865 5.31, 5.30: for L2TP the LAC's Calling and Called Number AVPs (RFC 2661 4.4.5).
    calling_station_id: str | None = None
    called_station_id: str | None = None
    #: RFC 4679 4: the access line the LAC names (its ADSL Forum VSAs, or RFC 2661 Sub-Address).
    agent_circuit_id: bytes | None = None
    agent_remote_id: bytes | None = None
    #: RFC 2865 5.8: in an Access-Request a hint; in accounting the address the subscriber has.
    framed_address: IPv4Address | None = None
    #: RFC 2865 5.41: Virtual (5), the L2TP session is no physical port.
    nas_port_type: int = NasPortType.VIRTUAL


@dataclass(frozen=True)
class AccessReply:
    """A verified Access-Accept, Access-Reject or Access-Challenge (RFC 2865 4.2-4.4)."""

    accepted: bool
    code: int
    #: RFC 2865 5.8; None also for 255.255.255.255/254 (the pool chooses).
    framed_address: IPv4Address | None = None
    #: RFC 2869 5.18: the pool to take an address from.
    framed_pool: str | None = None
    #: RFC 2865 5.27, 5.28 (seconds).
    session_timeout: int | None = None
    idle_timeout: int | None = None
    #: RFC 2869 5.16 (seconds; "MUST NOT be smaller than 60": clamp it where it is used).
    acct_interim_interval: int | None = None
    #: RFC 2865 5.25: to be echoed unmodified in every accounting record of the session.
    class_values: tuple[bytes, ...] = ()
    #: RFC 2865 5.18: all Reply-Message attributes, in order, joined by a space.
    reply_message: str | None = None
    #: RFC 2548 2.3.3: the 42-octet authenticator response b"S=<40 hex>", without the Ident.
    ms_chap2_success: bytes | None = None
    #: RFC 2548 2.1.5: "E=691 R=0 ..." without the Ident.
    ms_chap_error: str | None = None
    #: RFC 2548 2.7.6, 2.7.7: MS-Primary-DNS-Server, MS-Secondary-DNS-Server (in that order).
    dns_servers: tuple[IPv4Address, ...] = ()
    #: RFC 2865 5.12.
    framed_mtu: int | None = None
    #: Every attribute of the reply: (Vendor-Id or 0, Type, Value).
    attributes: tuple[RawAttribute, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class AccountingRecord:
    """One Accounting-Request's content (RFC 2866 5, RFC 2869 5.1-5.3)."""

    status: AccountingStatus
    session: SessionInfo
    #: RFC 2866 5.7 (seconds; interim and stop).
    session_time: int = 0
    #: From the subscriber (RFC 2866 5.3, 5.8), 64-bit and 32-bit counters.
    input_octets: int = 0
    input_packets: int = 0
    #: To the subscriber (RFC 2866 5.4, 5.9).
    output_octets: int = 0
    output_packets: int = 0
    #: RFC 2866 5.10 (stop only); see :mod:`~l2tpfast.aaa.radius.terminate`.
    terminate_cause: int | None = None
    #: RFC 2865 5.25: the Class values of the Access-Accept, echoed.
    class_values: tuple[bytes, ...] = ()
    #: RFC 2866 5.2: seconds the record has waited before this transmission.
    delay_time: int = 0
    #: RFC 2866 5.6.
    authentic: int = AcctAuthentic.RADIUS
    #: RFC 2869 5.3: seconds since 1970-01-01 UTC of the event, if the caller knows the wall clock.
    event_timestamp: int | None = None


# --- Access-Request ----------------------------------------------------------------------------


def _check_header(identifier: int, authenticator: bytes | None) -> None:
    if not 0 <= identifier <= 255:
        raise LocalProtocolError(f"RADIUS Identifier {identifier} is not one octet")
    if authenticator is not None and len(authenticator) != AUTHENTICATOR_LENGTH:
        raise LocalProtocolError("a Request Authenticator is 16 octets (RFC 2865 3)")


def _nas_items(nas_identifier: str | None, nas_ip_address: IPv4Address | None) -> list[Item]:
    items: list[Item] = []
    if nas_identifier:
        items.append(("NAS-Identifier", nas_identifier))
    if nas_ip_address is not None:
        items.append(("NAS-IP-Address", str(nas_ip_address)))
    return items


def _session_items(session: SessionInfo) -> list[Item]:
    items: list[Item] = [
        ("User-Name", encode_name(session.username)),
        ("NAS-Port", session.nas_port),
        ("NAS-Port-Type", session.nas_port_type),
        ("Service-Type", ServiceType.FRAMED),
        ("Framed-Protocol", FramedProtocol.PPP),
        ("Acct-Session-Id", session.acct_session_id),
    ]
    if session.calling_station_id is not None:
        items.append(("Calling-Station-Id", session.calling_station_id))
    if session.called_station_id is not None:
        items.append(("Called-Station-Id", session.called_station_id))
    if session.agent_circuit_id is not None:
        items.append(("Agent-Circuit-Id", session.agent_circuit_id))
    if session.agent_remote_id is not None:
        items.append(("Agent-Remote-Id", session.agent_remote_id))
    if session.framed_address is not None:
        items.append(("Framed-IP-Address", str(session.framed_address)))
    return items


def _auth_items(request: AuthRequest) -> tuple[list[Item], bytes | None]:
    """The attributes that carry the PPP peer's proof, and a PAP password to hide."""
    if isinstance(request, PapRequest):
        if len(request.password) > MAX_PASSWORD_LENGTH:
            raise RadiusEncodeError(
                "a PAP password over 128 octets does not fit User-Password (RFC 2865 5.2)"
            )
        return [], request.password
    if isinstance(request, MsChapV2Request):
        if (len(request.authenticator_challenge), len(request.peer_challenge), len(request.nt_response)) != (
            16,
            16,
            24,
        ):
            raise RadiusEncodeError("an MS-CHAPv2 Response has a 16-octet challenge and a 24-octet response")
        # RFC 2548 2.3.2: Ident, Flags (0), Peer-Challenge, 8 reserved zero octets, NT-Response.
        response = bytes((request.identifier & 0xFF, 0)) + request.peer_challenge + bytes(8)
        return [
            ("MS-CHAP-Challenge", request.authenticator_challenge),
            ("MS-CHAP2-Response", response + request.nt_response),
        ], None
    # RFC 2865 5.3: CHAP Ident, then the 16-octet MD5 Response; 5.40: the Challenge.
    if len(request.response) != 16:
        raise RadiusEncodeError("a CHAP-MD5 Response is 16 octets (RFC 2865 5.3)")
    if not 0 < len(request.challenge) <= MAX_VALUE_LENGTH:
        raise RadiusEncodeError("a CHAP Challenge of 1 to 253 octets fits CHAP-Challenge (RFC 2865 5.40)")
    return [
        ("CHAP-Password", bytes((request.identifier & 0xFF,)) + request.response),
        ("CHAP-Challenge", request.challenge),
    ], None


def build_access_request(
    request: AuthRequest,
    session: SessionInfo,
    identifier: int,
    secret: bytes,
    authenticator: bytes,
    *,
    nas_identifier: str | None = "l2tpfast",
    nas_ip_address: IPv4Address | None = None,
) -> bytes:
    """An Access-Request (RFC 2865 4.1) for a PPP authentication, with a Message-Authenticator.

    RFC 2865 4.1 wants a NAS-IP-Address or a NAS-Identifier: give at least one. Raises
    :class:`RadiusEncodeError` for a request that does not fit RADIUS's limits.
    """
    _check_header(identifier, authenticator)
    if not nas_identifier and nas_ip_address is None:
        raise LocalProtocolError("an Access-Request needs NAS-Identifier or NAS-IP-Address (RFC 2865 4.1)")
    proof, password = _auth_items(request)
    items = [*_nas_items(nas_identifier, nas_ip_address), *_session_items(session), *proof]
    try:
        return _pyrad.encode_request(
            Code.ACCESS_REQUEST,
            identifier,
            secret,
            items,
            authenticator=authenticator,
            password=password,
            message_authenticator=True,
        )
    except (ValueError, TypeError) as exc:
        raise RadiusEncodeError(f"the Access-Request cannot be encoded: {exc}") from None


def parse_access_reply(
    data: bytes,
    request_authenticator: bytes,
    secret: bytes,
    *,
    require_message_authenticator: bool = False,
) -> AccessReply | None:
    """The reply to the Access-Request with ``request_authenticator``, or None to discard it.

    None when the framing is bad, the code is none of Access-Accept/Reject/Challenge, the Response
    Authenticator or a Message-Authenticator does not verify, a Proxy-State appears that we never
    sent, or (``require_message_authenticator``) the Message-Authenticator is missing.
    """
    decoded = _pyrad.decode(data)
    if decoded is None or decoded.code not in (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE):
        return None
    if require_message_authenticator and not decoded.has(0, _pyrad.MESSAGE_AUTHENTICATOR):
        return None
    if not _pyrad.verify_reply(decoded.data, Code.ACCESS_REQUEST, request_authenticator, secret):
        return None
    attrs = decoded.attributes
    messages = _pyrad.texts(attrs, "Reply-Message")
    reply_message = " ".join(messages) if messages else None
    accepted = decoded.code == Code.ACCESS_ACCEPT
    service_types = _pyrad.integers(attrs, "Service-Type")
    if accepted and service_types and service_types[0] != ServiceType.FRAMED:
        accepted = False
        reply_message = reply_message or f"unsupported Service-Type {service_types[0]}"
    addresses = [a for a in _pyrad.ipv4_addresses(attrs, "Framed-IP-Address") if a not in _SELECT_ADDRESSES]
    success = _pyrad.octets(attrs, "MS-CHAP2-Success")
    errors = _pyrad.octets(attrs, "MS-CHAP-Error")
    return AccessReply(
        accepted=accepted,
        code=decoded.code,
        framed_address=addresses[0] if addresses else None,
        framed_pool=_first(_pyrad.texts(attrs, "Framed-Pool")),
        session_timeout=_first(_pyrad.integers(attrs, "Session-Timeout")),
        idle_timeout=_first(_pyrad.integers(attrs, "Idle-Timeout")),
        acct_interim_interval=_first(_pyrad.integers(attrs, "Acct-Interim-Interval")),
        class_values=tuple(_pyrad.octets(attrs, "Class")),
        reply_message=reply_message,
        # RFC 2548 2.3.3, 2.1.5: an Ident octet, then the string.
        ms_chap2_success=success[0][1:] if success and len(success[0]) > 1 else None,
        ms_chap_error=errors[0][1:].decode("utf-8", "replace") if errors and len(errors[0]) > 1 else None,
        dns_servers=tuple(
            _pyrad.ipv4_addresses(attrs, "MS-Primary-DNS-Server")[:1]
            + _pyrad.ipv4_addresses(attrs, "MS-Secondary-DNS-Server")[:1]
        ),
        framed_mtu=_first(_pyrad.integers(attrs, "Framed-MTU")),
        attributes=attrs,
    )


def _first(values: list[_T]) -> _T | None:
    return values[0] if values else None


def to_decision(reply: AccessReply) -> AuthDecision:
    """The :class:`~l2tpfast.ppp.auth.base.AuthDecision` a PPP authenticator completes with.

    ``attributes`` carries what PPP does not use itself, under these keys when present:
    ``session_timeout``, ``idle_timeout``, ``acct_interim_interval``, ``framed_pool``,
    ``framed_mtu``, ``dns_servers``, ``class_values``, and always ``radius_reply`` (the reply).
    """
    attributes: dict[str, object] = {"radius_reply": reply}
    for key in ("session_timeout", "idle_timeout", "acct_interim_interval", "framed_pool", "framed_mtu"):
        value = getattr(reply, key)
        if value is not None:
            attributes[key] = value
    if reply.dns_servers:
        attributes["dns_servers"] = reply.dns_servers
    if reply.class_values:
        attributes["class_values"] = reply.class_values
    message = reply.reply_message or (reply.ms_chap_error if not reply.accepted else None) or ""
    success = reply.ms_chap2_success
    return AuthDecision(
        accepted=reply.accepted,
        message=message,
        authenticator_response=success.decode("ascii", "replace") if success and reply.accepted else None,
        framed_address=reply.framed_address if reply.accepted else None,
        attributes=attributes,
    )


# --- accounting --------------------------------------------------------------------------------


def _u32(value: int) -> int:
    """A counter as RFC 2866 carries it: 32 bits, wrapping."""
    return max(0, value) & 0xFFFFFFFF


def build_accounting_request(
    record: AccountingRecord,
    identifier: int,
    secret: bytes,
    *,
    nas_identifier: str | None = "l2tpfast",
    nas_ip_address: IPv4Address | None = None,
) -> bytes:
    """An Accounting-Request (RFC 2866 4.1); its Request Authenticator is octets 4-20 of the result.

    RFC 2866 5.3, 5.4, 5.7-5.10 put counters, the session time and the cause in a Stop; an
    Interim-Update (RFC 2866 5.1, RFC 2869 5.16) carries the counters and time so far. A Start
    carries none of them.
    """
    _check_header(identifier, None)
    if record.status not in _STATUS_TYPES:
        raise LocalProtocolError(f"accounting status {record.status!r}: one of {sorted(_STATUS_TYPES)}")
    items: list[Item] = [
        ("Acct-Status-Type", _STATUS_TYPES[record.status]),
        *_nas_items(nas_identifier, nas_ip_address),
        *_session_items(record.session),
        ("Acct-Authentic", record.authentic),
        ("Acct-Delay-Time", _u32(record.delay_time)),
    ]
    items.extend(("Class", value) for value in record.class_values)
    if record.event_timestamp is not None:
        items.append(("Event-Timestamp", _u32(record.event_timestamp)))
    if record.status != "start":
        in_octets, out_octets = max(0, record.input_octets), max(0, record.output_octets)
        items += [
            ("Acct-Session-Time", _u32(record.session_time)),
            # RFC 2869 5.1, 5.2: how many times the 32-bit octet counter wrapped.
            ("Acct-Input-Octets", _u32(in_octets)),
            ("Acct-Input-Gigawords", _u32(in_octets >> 32)),
            ("Acct-Output-Octets", _u32(out_octets)),
            ("Acct-Output-Gigawords", _u32(out_octets >> 32)),
            ("Acct-Input-Packets", _u32(record.input_packets)),
            ("Acct-Output-Packets", _u32(record.output_packets)),
        ]
    if record.status == "stop" and record.terminate_cause is not None:
        items.append(("Acct-Terminate-Cause", record.terminate_cause))
    try:
        return _pyrad.encode_request(Code.ACCOUNTING_REQUEST, identifier, secret, items)
    except (ValueError, TypeError) as exc:
        raise RadiusEncodeError(f"the Accounting-Request cannot be encoded: {exc}") from None


def parse_accounting_response(data: bytes, request_authenticator: bytes, secret: bytes) -> bool:
    """Whether ``data`` is a valid Accounting-Response to the request (RFC 2866 3, 4.2)."""
    decoded = _pyrad.decode(data)
    if decoded is None or decoded.code != Code.ACCOUNTING_RESPONSE:
        return False
    return _pyrad.verify_reply(decoded.data, Code.ACCOUNTING_REQUEST, request_authenticator, secret)
