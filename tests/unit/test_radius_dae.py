"""The sans-IO Dynamic Authorization server (RFC 5176): verification, duplicates, ACK/NAK.

Requests are built by tests/radiuswire.py as a DAE client (radclient, a RADIUS server) would.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
import radiuswire as rw
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpfast.aaa.radius.constants import ErrorCause
from l2tpfast.aaa.radius.dae import DaeServer
from l2tpfast.errors import LocalProtocolError

SECRET = b"dae-secret"
CLIENT = ("192.0.2.10", 40000)
DISCONNECT = [(44, b"sess-1"), (1, b"alice"), (8, bytes([198, 51, 100, 7])), (5, rw.u32(9))]


def _server(**kw: object) -> DaeServer:
    return DaeServer({"192.0.2.10": SECRET}, **kw)  # type: ignore[arg-type]


def _check_response(data: bytes, request: bytes, code: int) -> rw.Wire:
    wire = rw.parse(data)
    assert (wire.code, wire.identifier) == (code, request[1])
    # RFC 5176 2.3: MD5(Code+ID+Length+Request Authenticator+Attributes+Secret).
    assert wire.authenticator == rw.response_authenticator(data, request[4:20], SECRET)
    return wire


def test_disconnect_request_acked() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 17, DISCONNECT, SECRET)
    request = dae.receive_datagram(data, CLIENT, 0.0)
    assert request is not None and request.kind == "disconnect" and request.identifier == 17
    assert request.addr == CLIENT
    assert (request.acct_session_id, request.user_name, request.nas_port) == ("sess-1", "alice", 9)
    assert request.framed_ip_address == IPv4Address("198.51.100.7")
    assert request.identifies_session
    response = dae.build_response(request, True)
    wire = _check_response(response, data, 41)
    assert wire.attributes == []
    assert dae.counters["disconnect_requests"] == 1 and dae.counters["acks"] == 1


def test_nak_carries_error_cause() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 3, [(44, b"nobody")], SECRET)
    request = dae.receive_datagram(data, CLIENT, 0.0)
    assert request is not None
    wire = _check_response(dae.build_response(request, False, ErrorCause.SESSION_CONTEXT_NOT_FOUND), data, 42)
    assert wire.integer(101) == 503
    assert dae.counters["naks"] == 1


def test_coa_request() -> None:
    dae = _server()
    attrs = [(44, b"sess-1"), (27, rw.u32(7200)), (28, rw.u32(900)), (85, rw.u32(600)), (25, b"new-class")]
    data = rw.build_signed_request(43, 8, attrs, SECRET)
    request = dae.receive_datagram(data, CLIENT, 0.0)
    assert request is not None and request.kind == "coa"
    assert (request.session_timeout, request.idle_timeout, request.acct_interim_interval) == (7200, 900, 600)
    assert request.class_values == (b"new-class",)
    _check_response(dae.build_response(request, True), data, 44)
    again = rw.build_signed_request(43, 9, attrs, SECRET)
    request = dae.receive_datagram(again, CLIENT, 0.0)
    assert request is not None
    wire = _check_response(dae.build_response(request, False, ErrorCause.UNSUPPORTED_SERVICE), again, 45)
    assert wire.integer(101) == 405


def test_bad_authenticator_is_dropped() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 1, DISCONNECT, b"wrong-secret")
    assert dae.receive_datagram(data, CLIENT, 0.0) is None
    tampered = bytearray(rw.build_signed_request(40, 1, DISCONNECT, SECRET))
    tampered[-1] ^= 1
    assert dae.receive_datagram(bytes(tampered), CLIENT, 0.0) is None
    assert dae.counters["bad_authenticator"] == 2 and dae.datagrams_to_send() == []


def test_unknown_client_is_dropped() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 1, DISCONNECT, SECRET)
    assert dae.receive_datagram(data, ("192.0.2.99", 40000), 0.0) is None
    assert dae.receive_datagram(data, ("garbage",), 0.0) is None
    assert dae.counters["unknown_client"] == 2


def test_other_codes_are_dropped() -> None:
    dae = _server()
    access_request = rw.build_signed_request(1, 1, [(1, b"x")], SECRET)
    assert dae.receive_datagram(access_request, CLIENT, 0.0) is None
    assert dae.receive_datagram(b"\x28\x01\x00\x15" + bytes(16) + b"\x01", CLIENT, 0.0) is None
    assert dae.counters["unknown_code"] == 1 and dae.counters["malformed"] == 1


def test_retransmission_answered_from_cache_without_acting_again() -> None:
    dae = _server(cache_time=30.0)
    data = rw.build_signed_request(40, 5, DISCONNECT, SECRET)
    request = dae.receive_datagram(data, CLIENT, 0.0)
    assert request is not None
    response = dae.build_response(request, True)
    # RFC 5176 2.3 / RFC 5080 2.2.2: the same client, Identifier and authenticator again.
    assert dae.receive_datagram(data, CLIENT, 5.0) is None
    assert dae.datagrams_to_send() == [(response, CLIENT)]
    assert dae.counters["duplicates"] == 1 and dae.counters["requests"] == 1
    # From another source port it is another request.
    assert dae.receive_datagram(data, ("192.0.2.10", 40001), 6.0) is not None
    # After the cache time the request is new again.
    assert dae.receive_datagram(data, CLIENT, 31.0) is not None
    assert dae.counters["requests"] == 3


def test_duplicate_before_the_answer_is_dropped() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 5, DISCONNECT, SECRET)
    assert dae.receive_datagram(data, CLIENT, 0.0) is not None
    assert dae.receive_datagram(data, CLIENT, 0.1) is None
    assert dae.datagrams_to_send() == []


def test_cache_is_bounded() -> None:
    dae = _server(cache_size=4)
    for identifier in range(10):
        assert dae.receive_datagram(rw.build_signed_request(40, identifier, DISCONNECT, SECRET), CLIENT, 0.0)
    first = rw.build_signed_request(40, 0, DISCONNECT, SECRET)
    assert dae.receive_datagram(first, CLIENT, 0.0) is not None


def test_message_authenticator() -> None:
    dae = _server()
    signed = rw.build_signed_request(40, 1, DISCONNECT, SECRET, with_message_authenticator=True)
    assert dae.receive_datagram(signed, CLIENT, 0.0) is not None
    # A wrong Message-Authenticator under a correct Request Authenticator.
    forged = rw.build_signed_request(40, 2, [(rw.MESSAGE_AUTHENTICATOR, b"\x07" * 16), *DISCONNECT], SECRET)
    assert dae.receive_datagram(forged, CLIENT, 0.0) is None
    strict = _server(require_message_authenticator=True)
    assert strict.receive_datagram(rw.build_signed_request(40, 3, DISCONNECT, SECRET), CLIENT, 0.0) is None
    assert strict.receive_datagram(signed, CLIENT, 0.0) is not None


def test_proxy_state_is_echoed() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 1, [*DISCONNECT, (33, b"ps-1"), (33, b"ps-2")], SECRET)
    request = dae.receive_datagram(data, CLIENT, 0.0)
    assert request is not None and request.proxy_state == (b"ps-1", b"ps-2")
    wire = _check_response(dae.build_response(request, True), data, 41)
    assert wire.values(33) == [b"ps-1", b"ps-2"]


def test_request_without_identification() -> None:
    dae = _server()
    data = rw.build_signed_request(40, 1, [(32, b"some-nas")], SECRET)
    request = dae.receive_datagram(data, CLIENT, 0.0)
    assert request is not None and not request.identifies_session
    assert request.nas_identifier == "some-nas"


def test_configuration_checks_and_repr() -> None:
    with pytest.raises(ValueError):
        DaeServer({"not-an-ip": b"s"})
    with pytest.raises(ValueError):
        DaeServer({"192.0.2.1": b""})
    dae = _server()
    assert SECRET.decode() not in repr(dae)
    request = dae.receive_datagram(rw.build_signed_request(40, 1, DISCONNECT, SECRET), CLIENT, 0.0)
    assert request is not None and SECRET.decode() not in repr(request)
    with pytest.raises(LocalProtocolError):
        DaeServer({"192.0.2.11": SECRET}).build_response(request, True)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    dae = _server()
    assert dae.receive_datagram(data, CLIENT, 0.0) is None


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_corrupted_requests_never_raise(position: int, value: int) -> None:
    data = bytearray(rw.build_signed_request(40, 1, DISCONNECT, SECRET, with_message_authenticator=True))
    original = bytes(data)
    data[position % len(data)] = value
    request = _server().receive_datagram(bytes(data), CLIENT, 0.0)
    assert request is None or bytes(data) == original
