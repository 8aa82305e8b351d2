"""RADIUS packets (l2tpfast.aaa.radius.packet), decoded and built independently by tests/radiuswire.py.

RFC 2865 3 (header, authenticators), 5.2 (User-Password), 5.3/5.40 (CHAP), RFC 2548 2.3.2/2.3.3
(MS-CHAPv2), RFC 3579 3.2 (Message-Authenticator), RFC 2866 3 and RFC 2869 5.1/5.2 (accounting).
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address

import pytest
import radiuswire as rw
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpfast.aaa.radius import _pyrad
from l2tpfast.aaa.radius.constants import AcctTerminateCause, Code
from l2tpfast.aaa.radius.packet import (
    AccountingRecord,
    RadiusEncodeError,
    SessionInfo,
    build_access_request,
    build_accounting_request,
    parse_access_reply,
    parse_accounting_response,
    to_decision,
)
from l2tpfast.errors import LocalProtocolError
from l2tpfast.ppp.auth.base import ChapRequest, MsChapV2Request, PapRequest
from l2tpfast.ppp.auth.chap import chap_md5_response
from l2tpfast.ppp.auth.mschapv2 import generate_authenticator_response, generate_nt_response

SECRET = b"s3cret-shared-with-server"
AUTH = bytes(range(16))
MS = 311
DSL = 3561

SESSION = SessionInfo(
    acct_session_id="0000002a-0007",
    nas_port=7,
    username="alice",
    calling_station_id="0301234567",
    called_station_id="lns-1",
    agent_circuit_id=b"eth 1/1/1:100",
    agent_remote_id=b"\x00\x11remote",
    framed_address=IPv4Address("198.51.100.9"),
)


def _request(request: PapRequest | ChapRequest | MsChapV2Request, **kw: object) -> rw.Wire:
    data = build_access_request(request, SESSION, 42, SECRET, AUTH, **kw)  # type: ignore[arg-type]
    return rw.parse(data)


def _mschapv2_request(password: str = "pw") -> MsChapV2Request:
    challenge, peer = bytes(range(16, 32)), bytes(range(32, 48))
    return MsChapV2Request(
        "alice", 9, challenge, peer, generate_nt_response(challenge, peer, "alice", password)
    )


# --- Access-Request ----------------------------------------------------------------------------


def test_pap_request_layout() -> None:
    wire = _request(PapRequest("alice", b"correct horse", 1), nas_ip_address=IPv4Address("192.0.2.2"))
    assert (wire.code, wire.identifier, wire.authenticator) == (1, 42, AUTH)
    # RFC 3579 3.2 and the Blast-RADIUS advice: Message-Authenticator first.
    assert wire.attributes[0][0] == rw.MESSAGE_AUTHENTICATOR
    assert rw.unhide_password(wire.value(2), SECRET, AUTH) == b"correct horse"
    assert wire.value(1) == b"alice"
    assert wire.value(32) == b"l2tpfast"  # NAS-Identifier
    assert wire.value(4) == bytes([192, 0, 2, 2])  # NAS-IP-Address
    assert wire.integer(5) == 7  # NAS-Port
    assert wire.integer(61) == 5  # NAS-Port-Type Virtual
    assert wire.integer(6) == 2  # Service-Type Framed
    assert wire.integer(7) == 1  # Framed-Protocol PPP
    assert wire.value(44) == b"0000002a-0007"  # Acct-Session-Id (RFC 2866 5.5)
    assert wire.value(31) == b"0301234567" and wire.value(30) == b"lns-1"
    assert wire.value(8) == bytes([198, 51, 100, 9])  # Framed-IP-Address hint
    assert wire.vsa(DSL, 1) == b"eth 1/1/1:100" and wire.vsa(DSL, 2) == b"\x00\x11remote"
    assert not wire.values(3) and not wire.values(60)


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 100, 128])
def test_user_password_hiding_roundtrip(length: int) -> None:
    password = bytes((65 + i % 26) for i in range(length))
    hidden = _request(PapRequest("alice", password)).value(2)
    # RFC 2865 5.2: padded with NULs to a multiple of 16, at least 16.
    assert len(hidden) == max(16, -(-length // 16) * 16)
    assert rw.unhide_password(hidden, SECRET, AUTH) == password


def test_password_over_128_octets_cannot_be_sent() -> None:
    with pytest.raises(RadiusEncodeError):
        _request(PapRequest("alice", b"x" * 129))


def test_chap_request_layout() -> None:
    challenge = bytes(range(100, 116))
    response = chap_md5_response(77, b"pw", challenge)
    wire = _request(ChapRequest("alice", 77, challenge, response))
    # RFC 2865 5.3: CHAP Ident, then the 16-octet Response; 5.40: the Challenge.
    assert wire.value(3) == bytes([77]) + response
    assert wire.value(60) == challenge
    assert not wire.values(2)
    assert hashlib.md5(bytes([77]) + b"pw" + wire.value(60)).digest() == wire.value(3)[1:]


def test_chap_response_of_wrong_length_cannot_be_sent() -> None:
    with pytest.raises(RadiusEncodeError):
        _request(ChapRequest("alice", 1, bytes(16), bytes(15)))


def test_mschapv2_request_layout() -> None:
    request = _mschapv2_request()
    wire = _request(request)
    assert wire.vsa(MS, 11) == request.authenticator_challenge
    response = wire.vsa(MS, 25)
    # RFC 2548 2.3.2: Ident, Flags, Peer-Challenge (16), Reserved (8 zeros), Response (24).
    assert len(response) == 50
    assert response[0] == 9 and response[1] == 0
    assert response[2:18] == request.peer_challenge
    assert response[18:26] == bytes(8)
    assert response[26:50] == request.nt_response
    assert not wire.values(2) and not wire.values(3)


@pytest.mark.parametrize(
    "request_",
    [PapRequest("alice", b"pw"), ChapRequest("alice", 1, bytes(16), bytes(16)), _mschapv2_request()],
    ids=["pap", "chap", "mschapv2"],
)
def test_message_authenticator_is_hmac_md5(request_: PapRequest | ChapRequest | MsChapV2Request) -> None:
    data = build_access_request(request_, SESSION, 3, SECRET, AUTH)
    wire = rw.parse(data)
    assert wire.value(rw.MESSAGE_AUTHENTICATOR) == rw.message_authenticator(data, SECRET, AUTH)


def test_request_header_checks() -> None:
    with pytest.raises(LocalProtocolError):
        build_access_request(PapRequest("a", b"p"), SESSION, 256, SECRET, AUTH)
    with pytest.raises(LocalProtocolError):
        build_access_request(PapRequest("a", b"p"), SESSION, 1, SECRET, bytes(15))
    with pytest.raises(LocalProtocolError):
        build_access_request(PapRequest("a", b"p"), SESSION, 1, SECRET, AUTH, nas_identifier=None)
    long_name = SessionInfo("x", 1, "n" * 254)
    with pytest.raises(RadiusEncodeError):
        build_access_request(PapRequest("n", b"p"), long_name, 1, SECRET, AUTH)


def test_minimal_session_sends_no_optional_attributes() -> None:
    data = build_access_request(PapRequest("bob", b"p"), SessionInfo("s", 1, "bob"), 1, SECRET, AUTH)
    types = {t for t, _ in rw.parse(data).attributes}
    assert types == {80, 32, 1, 5, 61, 6, 7, 44, 2}


# --- replies -----------------------------------------------------------------------------------

ACCEPT_ATTRS = [
    (8, bytes([198, 51, 100, 77])),
    (27, rw.u32(3600)),
    (28, rw.u32(600)),
    (85, rw.u32(300)),
    (25, b"class-one"),
    (25, b"class-two"),
    (18, b"Welcome,"),
    (18, b"alice"),
    (88, b"pool-a"),
    (12, rw.u32(1492)),
    rw.vsa(MS, 28, bytes([198, 51, 100, 53])),
    rw.vsa(MS, 29, bytes([198, 51, 100, 54])),
]


@pytest.mark.parametrize("with_ma", [True, False])
def test_accept_decoded(with_ma: bool) -> None:
    data = rw.build_reply(2, 42, AUTH, ACCEPT_ATTRS, SECRET, with_message_authenticator=with_ma)
    reply = parse_access_reply(data, AUTH, SECRET)
    assert reply is not None and reply.accepted and reply.code == Code.ACCESS_ACCEPT
    assert reply.framed_address == IPv4Address("198.51.100.77")
    assert (reply.session_timeout, reply.idle_timeout, reply.acct_interim_interval) == (3600, 600, 300)
    assert reply.class_values == (b"class-one", b"class-two")
    assert reply.reply_message == "Welcome, alice"
    assert reply.framed_pool == "pool-a" and reply.framed_mtu == 1492
    assert reply.dns_servers == (IPv4Address("198.51.100.53"), IPv4Address("198.51.100.54"))
    decision = to_decision(reply)
    assert decision.accepted and decision.framed_address == IPv4Address("198.51.100.77")
    assert decision.attributes["session_timeout"] == 3600
    assert decision.attributes["class_values"] == (b"class-one", b"class-two")
    assert decision.attributes["radius_reply"] is reply


def test_tampered_reply_is_discarded() -> None:
    data = bytearray(rw.build_reply(2, 42, AUTH, ACCEPT_ATTRS, SECRET, with_message_authenticator=False))
    assert parse_access_reply(bytes(data), AUTH, SECRET) is not None
    data[-1] ^= 1
    assert parse_access_reply(bytes(data), AUTH, SECRET) is None


def test_reply_with_wrong_secret_or_request_is_discarded() -> None:
    data = rw.build_reply(2, 42, AUTH, ACCEPT_ATTRS, b"other")
    assert parse_access_reply(data, AUTH, SECRET) is None
    good = rw.build_reply(2, 42, AUTH, ACCEPT_ATTRS, SECRET)
    assert parse_access_reply(good, bytes(16), SECRET) is None


def test_reply_with_bad_message_authenticator_is_discarded() -> None:
    # A correct Response Authenticator over a wrong Message-Authenticator.
    attrs = [(rw.MESSAGE_AUTHENTICATOR, b"\x01" * 16), *ACCEPT_ATTRS]
    data = rw.build_reply(2, 42, AUTH, attrs, SECRET, with_message_authenticator=False)
    assert parse_access_reply(data, AUTH, SECRET) is None


def test_message_authenticator_can_be_required() -> None:
    without = rw.build_reply(2, 42, AUTH, [], SECRET, with_message_authenticator=False)
    with_ma = rw.build_reply(2, 42, AUTH, [], SECRET)
    assert parse_access_reply(without, AUTH, SECRET, require_message_authenticator=True) is None
    assert parse_access_reply(with_ma, AUTH, SECRET, require_message_authenticator=True) is not None


def test_proxy_state_we_never_sent_is_discarded() -> None:
    # Blast-RADIUS: a Proxy-State in a reply to a request without one is the attack's mark.
    data = rw.build_reply(2, 42, AUTH, [(33, b"inject")], SECRET)
    assert parse_access_reply(data, AUTH, SECRET) is None


def test_reject_and_challenge_are_not_accepted() -> None:
    reject = rw.build_reply(3, 1, AUTH, [(18, b"bad password"), rw.vsa(MS, 2, b"\x09E=691 R=0")], SECRET)
    reply = parse_access_reply(reject, AUTH, SECRET)
    assert reply is not None and not reply.accepted
    assert reply.ms_chap_error == "E=691 R=0" and reply.reply_message == "bad password"
    assert to_decision(reply).message == "bad password"
    challenge = rw.build_reply(11, 1, AUTH, [(24, b"state")], SECRET)
    reply = parse_access_reply(challenge, AUTH, SECRET)
    # RFC 2865 4.4: a NAS without challenge/response treats it as an Access-Reject.
    assert reply is not None and not reply.accepted and reply.code == Code.ACCESS_CHALLENGE


def test_accept_with_unsupported_service_type_is_a_reject() -> None:
    data = rw.build_reply(2, 1, AUTH, [(6, rw.u32(1))], SECRET)  # Login
    reply = parse_access_reply(data, AUTH, SECRET)
    assert reply is not None and not reply.accepted
    assert reply.reply_message == "unsupported Service-Type 1"
    framed = parse_access_reply(rw.build_reply(2, 1, AUTH, [(6, rw.u32(2))], SECRET), AUTH, SECRET)
    assert framed is not None and framed.accepted


@pytest.mark.parametrize("address", ["255.255.255.254", "255.255.255.255"])
def test_framed_address_select_values_mean_the_pool(address: str) -> None:
    data = rw.build_reply(2, 1, AUTH, [(8, IPv4Address(address).packed)], SECRET)
    reply = parse_access_reply(data, AUTH, SECRET)
    assert reply is not None and reply.framed_address is None


def test_mschapv2_success_becomes_the_authenticator_response() -> None:
    request = _mschapv2_request("secret-pw")
    expected = generate_authenticator_response(
        "secret-pw", request.nt_response, request.peer_challenge, request.authenticator_challenge, "alice"
    )
    data = rw.build_reply(2, 1, AUTH, [rw.vsa(MS, 26, bytes([9]) + expected.encode())], SECRET)
    reply = parse_access_reply(data, AUTH, SECRET)
    assert reply is not None and reply.ms_chap2_success == expected.encode()
    assert to_decision(reply).authenticator_response == expected


def test_attribute_of_wrong_length_is_ignored() -> None:
    data = rw.build_reply(2, 1, AUTH, [(27, b"\x00\x01"), (8, b"\x01\x02\x03")], SECRET)
    reply = parse_access_reply(data, AUTH, SECRET)
    assert reply is not None and reply.session_timeout is None and reply.framed_address is None


def test_framing_rules() -> None:
    good = rw.build_reply(2, 1, AUTH, [(18, b"hi")], SECRET)
    # RFC 2865 3: octets past Length are padding; a packet shorter than Length is discarded.
    assert parse_access_reply(good + b"\x00" * 7, AUTH, SECRET) is not None
    assert parse_access_reply(good[:-1], AUTH, SECRET) is None
    # RFC 2865 5: an attribute with an invalid length: the packet is discarded.
    broken = bytearray(good)
    broken[21] = 1
    assert parse_access_reply(bytes(broken), AUTH, SECRET) is None
    assert parse_access_reply(good[:19], AUTH, SECRET) is None
    # Not an Access-Accept/Reject/Challenge.
    accounting = rw.build_reply(5, 1, AUTH, [], SECRET)
    assert parse_access_reply(accounting, AUTH, SECRET) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert parse_access_reply(data, AUTH, SECRET) is None or data[0] in (2, 3, 11)
    parse_accounting_response(data, AUTH, SECRET)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255))
def test_corrupted_replies_never_raise(position: int, value: int) -> None:
    data = bytearray(rw.build_reply(2, 1, AUTH, ACCEPT_ATTRS, SECRET))
    data[position % len(data)] = value
    reply = parse_access_reply(bytes(data), AUTH, SECRET)
    # A change anywhere but in a place that leaves the packet as it was cannot verify.
    assert reply is None or bytes(data) == rw.build_reply(2, 1, AUTH, ACCEPT_ATTRS, SECRET)


# --- accounting --------------------------------------------------------------------------------


def _accounting(record: AccountingRecord, identifier: int = 5) -> rw.Wire:
    data = build_accounting_request(record, identifier, SECRET)
    wire = rw.parse(data)
    # RFC 2866 3: the Request Authenticator is an MD5 over the packet and the secret.
    assert wire.authenticator == rw.accounting_authenticator(data, SECRET)
    return wire


def test_accounting_start() -> None:
    wire = _accounting(AccountingRecord("start", SESSION, class_values=(b"c1", b"c2"), delay_time=4))
    assert wire.code == 4 and wire.identifier == 5
    assert wire.integer(40) == 1  # Start
    assert wire.value(44) == b"0000002a-0007" and wire.value(1) == b"alice"
    assert wire.values(25) == [b"c1", b"c2"]  # RFC 2865 5.25: Class echoed unmodified
    assert wire.integer(41) == 4 and wire.integer(45) == 1  # Acct-Delay-Time, Acct-Authentic RADIUS
    assert wire.value(8) == bytes([198, 51, 100, 9])
    for absent in (42, 43, 46, 47, 48, 49, 52, 53):
        assert not wire.values(absent), absent


def test_accounting_interim_splits_64_bit_counters() -> None:
    record = AccountingRecord(
        "interim",
        SESSION,
        session_time=61,
        input_octets=5 * 2**32 + 123,
        output_octets=2**32 - 1,
        input_packets=2**32 + 9,
        output_packets=1000,
        event_timestamp=1_700_000_000,
    )
    wire = _accounting(record)
    assert wire.integer(40) == 3
    assert wire.integer(46) == 61
    # RFC 2869 5.1, 5.2: the low 32 bits and the number of wraps.
    assert (wire.integer(42), wire.integer(52)) == (123, 5)
    assert (wire.integer(43), wire.integer(53)) == (2**32 - 1, 0)
    assert (wire.integer(47), wire.integer(48)) == (9, 1000)
    assert wire.integer(55) == 1_700_000_000
    assert not wire.values(49)


def test_accounting_stop_has_terminate_cause() -> None:
    record = AccountingRecord(
        "stop", SESSION, session_time=5, terminate_cause=AcctTerminateCause.USER_REQUEST
    )
    wire = _accounting(record)
    assert wire.integer(40) == 2 and wire.integer(49) == 1 and wire.integer(46) == 5


def test_accounting_status_must_be_known() -> None:
    with pytest.raises(LocalProtocolError):
        build_accounting_request(AccountingRecord("update", SESSION), 1, SECRET)  # type: ignore[arg-type]


def test_accounting_response_verification() -> None:
    request = build_accounting_request(AccountingRecord("start", SESSION), 5, SECRET)
    authenticator = request[4:20]
    response = rw.build_reply(5, 5, authenticator, [], SECRET, with_message_authenticator=False)
    assert parse_accounting_response(response, authenticator, SECRET)
    assert not parse_accounting_response(response, authenticator, b"wrong")
    tampered = bytearray(response)
    tampered[4] ^= 0xFF
    assert not parse_accounting_response(bytes(tampered), authenticator, SECRET)
    accept = rw.build_reply(2, 5, authenticator, [], SECRET, with_message_authenticator=False)
    assert not parse_accounting_response(accept, authenticator, SECRET)


# --- the dictionary ----------------------------------------------------------------------------


def test_dictionary_reads_without_skipping() -> None:
    dictionary = _pyrad.dictionary()
    assert not dictionary.skipped_attributes
    expected = {
        "User-Password": (0, 2),
        "CHAP-Challenge": (0, 60),
        "Acct-Input-Gigawords": (0, 52),
        "Message-Authenticator": (0, 80),
        "Framed-Pool": (0, 88),
        "Error-Cause": (0, 101),
        "MS-CHAP-Error": (311, 2),
        "MS-CHAP-Challenge": (311, 11),
        "MS-CHAP2-Response": (311, 25),
        "MS-CHAP2-Success": (311, 26),
        "MS-Primary-DNS-Server": (311, 28),
        "MS-Secondary-DNS-Server": (311, 29),
        "Agent-Circuit-Id": (3561, 1),
        "Agent-Remote-Id": (3561, 2),
    }
    for name, (vendor, code) in expected.items():
        attribute = dictionary.attributes[name]
        assert (dictionary.vendors.GetForward(attribute.vendor), attribute.code) == (vendor, code), name
