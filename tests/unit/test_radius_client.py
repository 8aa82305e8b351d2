"""The sans-IO RADIUS client with a fake clock: retransmission, failover, dead servers, Identifiers
(RFC 2865 2.5, 3; RFC 2866 3, 5.2). Servers are played by tests/radiuswire.py."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest
import radiuswire as rw
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpfast.aaa.radius.client import (
    AccessAnswered,
    AccountingAnswered,
    RadiusClient,
    RadiusEvent,
    RadiusServer,
    RadiusSettings,
    RequestFailed,
)
from l2tpfast.aaa.radius.packet import AccountingRecord, SessionInfo
from l2tpfast.errors import LocalProtocolError
from l2tpfast.ppp.auth.base import PapRequest

SECRET_A = b"secret-of-server-a"
SECRET_B = b"secret-of-server-b"
A = RadiusServer("10.0.0.1", 1812, SECRET_A)
B = RadiusServer("10.0.0.2", 1812, SECRET_B)
ACCT_A = RadiusServer("10.0.0.1", 1813, SECRET_A)
ACCT_B = RadiusServer("10.0.0.2", 1813, SECRET_B)
SESSION = SessionInfo("sess-1", 1, "alice")
PAP = PapRequest("alice", b"pw")
#: Bound of every loop that runs timers.
MAX_STEPS = 10_000


def _client(**kw: object) -> RadiusClient:
    base: dict[str, object] = {
        "auth_servers": (A, B),
        "acct_servers": (ACCT_A, ACCT_B),
        "timeout": 3.0,
        "retries": 2,
        "dead_time": 30.0,
    }
    base.update(kw)
    return RadiusClient(RadiusSettings(**base), rand=random.Random(7).randbytes)  # type: ignore[arg-type]


def _events(client: RadiusClient) -> list[RadiusEvent]:
    out = []
    while (event := client.next_event()) is not None:
        out.append(event)
    return out


def _answer(data: bytes, secret: bytes, code: int = 2, attrs: list[rw.Attr] | None = None) -> bytes:
    """What a server sends back for ``data``."""
    return rw.build_reply(code, data[1], data[4:20], attrs or [], secret)


def _run_until(client: RadiusClient, now: float, until: Callable[[], bool]) -> float:
    """Fire timers until ``until()`` holds; returns the time reached."""
    for _ in range(MAX_STEPS):
        if until():
            return now
        deadline = client.get_timer()
        assert deadline is not None, "no timer left"
        now = deadline
        client.handle_timer(now)
    raise AssertionError("condition not reached")


def test_retransmits_the_same_packet_then_fails_over() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    ((first, dest),) = client.datagrams_to_send()
    assert dest == ("10.0.0.1", 1812)
    assert client.get_timer() == 3.0
    client.handle_timer(2.999)
    assert client.datagrams_to_send() == []
    sent = []
    for now in (3.0, 6.0):
        client.handle_timer(now)
        sent += client.datagrams_to_send()
    # RFC 2865 2.5: to the same server, the same ID and Request Authenticator.
    assert sent == [(first, ("10.0.0.1", 1812))] * 2
    client.handle_timer(9.0)
    ((second, dest),) = client.datagrams_to_send()
    assert dest == ("10.0.0.2", 1812)
    wire = rw.parse(second)
    # A new packet for the new server: its secret hides the password.
    assert wire.authenticator != first[4:20]
    assert rw.unhide_password(wire.value(2), SECRET_B, wire.authenticator) == b"pw"
    counters = client.counters
    assert (counters["timeouts"], counters["retransmissions"], counters["failovers"]) == (3, 2, 1)
    client.receive_datagram(_answer(second, SECRET_B), ("10.0.0.2", 1812), 9.5)
    (event,) = _events(client)
    assert isinstance(event, AccessAnswered) and event.token == "t1" and event.reply.accepted
    assert event.server == "10.0.0.2:1812"
    assert client.counters["accepts"] == 1 and client.outstanding == 0
    assert client.get_timer() is None


def test_dead_server_is_skipped_then_retried_after_dead_time() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    client.datagrams_to_send()
    _run_until(client, 0.0, lambda: client.is_dead(A, 9.0))
    client.datagrams_to_send()
    assert client.is_dead(A, 9.0) and not client.is_dead(A, 39.0)
    # A new request starts at the live server.
    client.access_request("t2", PAP, SESSION, 10.0)
    ((data, dest),) = client.datagrams_to_send()
    assert dest == B.address
    client.receive_datagram(_answer(data, SECRET_B), B.address, 10.1)
    # After dead_time the primary is first again.
    client.access_request("t3", PAP, SESSION, 39.5)
    ((_, dest),) = client.datagrams_to_send()
    assert dest == A.address


def test_dead_primary_is_still_tried_last() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    _run_until(client, 0.0, lambda: client.is_dead(A, 9.0))
    ((data, dest),) = client.datagrams_to_send()[-1:]
    client.receive_datagram(_answer(data, SECRET_B), dest, 9.5)
    client.access_request("t2", PAP, SESSION, 10.0)
    now = _run_until(client, 10.0, lambda: client.is_dead(B, 19.0))
    assert now == 19.0
    # A dead mark only reorders: the dead primary is still tried, after the live server.
    assert [dest for _, dest in client.datagrams_to_send()] == [B.address] * 3 + [A.address]


def test_all_servers_silent_fails_the_request() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    now = _run_until(client, 0.0, lambda: client.outstanding == 0)
    # (1 + retries) transmissions, timeout apart, on each of the two servers.
    assert now == 18.0
    assert len(client.datagrams_to_send()) == 6
    (event,) = _events(client)
    assert isinstance(event, RequestFailed) and event.token == "t1"
    assert "no answer from 2 RADIUS server(s)" in event.reason
    assert client.counters["failed"] == 1 and client.get_timer() is None


def test_no_server_configured() -> None:
    client = _client(auth_servers=())
    client.access_request("t1", PAP, SESSION, 0.0)
    (event,) = _events(client)
    assert isinstance(event, RequestFailed) and "no RADIUS authentication server" in event.reason


def test_reply_from_wrong_address_or_with_wrong_secret_is_ignored() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    ((data, _),) = client.datagrams_to_send()
    client.receive_datagram(_answer(data, SECRET_A), ("10.0.0.9", 1812), 0.1)
    client.receive_datagram(_answer(data, SECRET_A), ("10.0.0.1", 9999), 0.1)
    client.receive_datagram(_answer(data, SECRET_B), A.address, 0.2)
    assert _events(client) == []
    assert client.counters["unknown_reply"] == 2 and client.counters["bad_authenticator"] == 1
    assert client.outstanding == 1
    reply = _answer(data, SECRET_A, code=3)
    client.receive_datagram(reply, A.address, 0.3)
    (event,) = _events(client)
    assert isinstance(event, AccessAnswered) and not event.reply.accepted
    # The same reply again: nothing outstanding under that Identifier any more.
    client.receive_datagram(reply, A.address, 0.4)
    assert _events(client) == [] and client.counters["unknown_reply"] == 3
    assert client.counters["rejects"] == 1


def test_reply_of_the_wrong_kind_is_dropped() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    ((data, _),) = client.datagrams_to_send()
    client.receive_datagram(_answer(data, SECRET_A, code=5), A.address, 0.1)
    client.receive_datagram(b"\x02\x00\x00", A.address, 0.1)
    assert _events(client) == [] and client.counters["malformed"] == 2


def test_ipv4_mapped_source_matches() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    ((data, _),) = client.datagrams_to_send()
    client.receive_datagram(_answer(data, SECRET_A), ("::ffff:10.0.0.1", 1812, 0, 0), 0.1)
    assert isinstance(client.next_event(), AccessAnswered)


def test_an_answer_revives_a_dead_server() -> None:
    client = _client(auth_servers=(A,))
    client.access_request("t1", PAP, SESSION, 0.0)
    _run_until(client, 0.0, lambda: client.outstanding == 0)
    assert client.is_dead(A, 10.0)
    client.datagrams_to_send()
    client.access_request("t2", PAP, SESSION, 10.0)
    ((data, _),) = client.datagrams_to_send()
    client.receive_datagram(_answer(data, SECRET_A), A.address, 10.1)
    assert not client.is_dead(A, 10.2)


def test_more_than_256_outstanding_requests_queue() -> None:
    client = _client(auth_servers=(A,), timeout=100.0)
    for i in range(300):
        client.access_request(i, PAP, SessionInfo(f"s{i}", i, "alice"), 0.0)
    sent = client.datagrams_to_send()
    assert len(sent) == 256 and client.counters["queued"] == 44
    in_flight = {data[1]: data for data, _ in sent}
    assert len(in_flight) == 256  # every Identifier once
    answered = 0
    for _ in range(MAX_STEPS):
        if not in_flight:
            break
        identifier = min(in_flight)
        data = in_flight.pop(identifier)
        client.receive_datagram(_answer(data, SECRET_A), A.address, 1.0)
        answered += 1
        for new, _ in client.datagrams_to_send():
            # Never an Identifier still outstanding on this server.
            assert new[1] not in in_flight
            in_flight[new[1]] = new
    assert answered == 300 and client.outstanding == 0
    assert {e.token for e in _events(client)} == set(range(300))  # type: ignore[union-attr]


def test_queued_requests_move_on_when_the_server_dies() -> None:
    client = _client(auth_servers=(A, B), timeout=1.0, retries=0)
    for i in range(260):
        client.access_request(i, PAP, SESSION, 0.0)
    assert len(client.datagrams_to_send()) == 256
    client.handle_timer(1.0)
    to_b = client.datagrams_to_send()
    # All 260 moved to B, where 4 wait for an Identifier again.
    assert len(to_b) == 256 and {dest for _, dest in to_b} == {B.address}
    assert client.counters["queued"] == 8 and client.outstanding == 260
    data, _ = to_b[0]
    client.receive_datagram(_answer(data, SECRET_B), B.address, 1.5)
    ((new, dest),) = client.datagrams_to_send()
    assert dest == B.address and new[1] not in {d[1] for d, _ in to_b[1:]}


def test_cancel_forgets_the_request() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    ((data, _),) = client.datagrams_to_send()
    assert client.cancel("t1", 0.5) and not client.cancel("t1", 0.5)
    client.receive_datagram(_answer(data, SECRET_A), A.address, 1.0)
    assert _events(client) == [] and client.get_timer() is None


def test_duplicate_token_is_refused() -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    with pytest.raises(LocalProtocolError):
        client.access_request("t1", PAP, SESSION, 0.0)


def test_request_that_cannot_be_encoded_fails() -> None:
    client = _client()
    client.access_request("t1", PapRequest("alice", b"x" * 200), SESSION, 0.0)
    (event,) = _events(client)
    assert isinstance(event, RequestFailed) and "128 octets" in event.reason
    assert client.datagrams_to_send() == [] and client.outstanding == 0


def test_accounting_failover_raises_acct_delay_time() -> None:
    client = _client(retries=3)
    client.accounting_request("a1", AccountingRecord("start", SESSION, delay_time=2), 100.0)
    ((first, dest),) = client.datagrams_to_send()
    assert dest == ACCT_A.address and rw.parse(first).integer(41) == 2
    now = _run_until(client, 100.0, lambda: client.is_dead(ACCT_A, client.get_timer() or 0.0))
    assert now == 112.0
    sent = client.datagrams_to_send()
    assert [d for d, _ in sent[:3]] == [first] * 3
    second, dest = sent[-1]
    wire = rw.parse(second)
    # RFC 2866 5.2: 12 more seconds; a changed packet needs a new authenticator (RFC 2866 4.1).
    assert dest == ACCT_B.address and wire.integer(41) == 14
    assert wire.authenticator == rw.accounting_authenticator(second, SECRET_B)
    # FreeRADIUS 3 signs an Accounting-Response's Message-Authenticator with 16 zero octets.
    response = rw.build_reply(5, second[1], second[4:20], [], SECRET_B, ma_vector=rw.ZERO16)
    client.receive_datagram(response, ACCT_B.address, now)
    (event,) = _events(client)
    assert isinstance(event, AccountingAnswered) and event.token == "a1"
    assert client.counters["accounting_responses"] == 1


def test_accounting_response_with_wrong_authenticator_is_ignored() -> None:
    client = _client()
    client.accounting_request("a1", AccountingRecord("stop", SESSION), 0.0)
    ((data, _),) = client.datagrams_to_send()
    wrong = rw.build_reply(5, data[1], bytes(16), [], SECRET_A, with_message_authenticator=False)
    client.receive_datagram(wrong, ACCT_A.address, 0.1)
    assert _events(client) == [] and client.counters["bad_authenticator"] == 1


def test_secrets_never_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings_ = RadiusSettings(auth_servers=(A, B), acct_servers=(ACCT_A,), retries=0, timeout=1.0)
    client = RadiusClient(settings_)
    client.access_request("t1", PAP, SESSION, 0.0)
    client.access_request("t2", PapRequest("alice", b"y" * 300), SESSION, 0.0)
    _run_until(client, 0.0, lambda: client.outstanding == 0)
    events = _events(client)
    texts = [repr(settings_), str(settings_), repr(A), str(A), repr(client), str(client.counters)]
    texts += [repr(event) for event in events] + [str(event) for event in events]
    with pytest.raises(ValueError) as info:
        RadiusServer("radius.example", 1812, SECRET_A)
    texts += [str(info.value), repr(info.value), caplog.text]
    for text in texts:
        assert SECRET_A.decode() not in text and SECRET_B.decode() not in text, text


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RadiusServer("10.0.0.1", 1812, b"")
    with pytest.raises(ValueError):
        RadiusServer("10.0.0.1", 0, b"s")
    with pytest.raises(ValueError):
        RadiusSettings(timeout=0)
    with pytest.raises(ValueError):
        RadiusSettings(retries=-1)
    with pytest.raises(ValueError):
        RadiusSettings(nas_identifier=None)
    assert RadiusServer("2001:db8::0001", 1812, b"s").host == "2001:db8::1"
    assert str(RadiusServer("2001:db8::1", 1812, b"s")) == "[2001:db8::1]:1812"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_datagrams_never_raise(data: bytes) -> None:
    client = _client()
    client.access_request("t1", PAP, SESSION, 0.0)
    client.accounting_request("a1", AccountingRecord("start", SESSION), 0.0)
    for _, dest in client.datagrams_to_send():
        client.receive_datagram(data, dest, 0.1)
    client.receive_datagram(data, ("not an address", "x"), 0.1)
    assert client.outstanding + len(_events(client)) == 2
