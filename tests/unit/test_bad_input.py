"""Bad input from the network: what is dropped, what clears a session, what clears the tunnel.

RFC 2661 3.1 (a malformed header is dropped silently), 4.1 (an unknown AVP with M=1 clears
the session for a session message, the tunnel for a tunnel message), 4.4.1 (an unknown
message type clears the tunnel when M=1, is ignored when M=0), 4.4.2 (Result and Error
Codes of the answer), 6 (mandatory AVPs). Messages for an unknown tunnel or session, or
from an address that does not own the tunnel, are dropped and counted. Last, a property
test throws mutated real and built datagrams at an LNS and checks that nothing escapes,
everything we send parses, and nothing stays half-open once the tunnel is closed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from ctlpair import LAC_ADDR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcaputil import read_udp_payloads
from peerscript import ScriptedPeer, connect_avps, raw

from l2tpfast.control.endpoint import Endpoint
from l2tpfast.control.events import Event, SessionClosed, SessionEstablished, TunnelClosed, TunnelEstablished
from l2tpfast.control.settings import TunnelSettings
from l2tpfast.control.tunnel import TunnelState
from l2tpfast.wire.avp import Accm, Avp, CallErrors, ResultCode
from l2tpfast.wire.constants import AvpType, CDNResult, GeneralError, MessageType, StopCCNResult
from l2tpfast.wire.header import build_data_header, parse_header
from l2tpfast.wire.message import ControlMessage, parse_message

A = AvpType
M = MessageType

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
SECRET = b"l2tpfast-test-secret"
PEER_SID = 0x0321


def _peer() -> ScriptedPeer:
    return ScriptedPeer(settings=TunnelSettings(host_name="lns"))


def _two_calls(peer: ScriptedPeer) -> tuple[int, int]:
    """An established tunnel with two established calls; their local Session IDs."""
    peer.establish()
    first = peer.incoming_call(PEER_SID)
    second = peer.incoming_call(PEER_SID + 1)
    peer.settle()
    peer.take()
    peer.take_events()
    return first, second


def _result(message: ControlMessage) -> tuple[int, int | None]:
    result: ResultCode = message[A.RESULT_CODE]
    return result.result_code, result.error_code


# --- malformed headers (RFC 2661 3.1) -----------------------------------------------------------


def _headers(tunnel_id: int) -> list[object]:
    good = struct.pack("!HHHHHH", 0xC802, 12, tunnel_id, 0, 0, 0)
    return [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc8", id="one-octet"),
        pytest.param(good[:10], id="truncated"),
        pytest.param(struct.pack("!HHHHHH", 0xC803, 12, tunnel_id, 0, 0, 0), id="version-3"),
        pytest.param(struct.pack("!HHHHHH", 0xC801, 12, tunnel_id, 0, 0, 0), id="l2f"),
        pytest.param(struct.pack("!HHHHHH", 0xC802, 40, tunnel_id, 0, 0, 0), id="length-too-long"),
        pytest.param(struct.pack("!HHHHHH", 0xC802, 11, tunnel_id, 0, 0, 0) + b"\0", id="length-short"),
        pytest.param(struct.pack("!HHHHH", 0x8802, tunnel_id, 0, 0, 0), id="control-without-L"),
        pytest.param(struct.pack("!HHHH", 0xC002, 8, tunnel_id, 0), id="control-without-S"),
        pytest.param(good + b"\0\0", id="length-disagrees"),
        pytest.param(struct.pack("!HHHHHHH", 0xCA02, 14, tunnel_id, 0, 0, 0, 0), id="control-with-O"),
    ]


@pytest.mark.parametrize("known_tunnel", [True, False], ids=["to-our-tunnel", "to-tunnel-0"])
@pytest.mark.parametrize("data", _headers(0xFFFF))
def test_a_malformed_header_is_dropped_silently(known_tunnel: bool, data: bytes) -> None:
    peer = _peer()
    tid = peer.establish()
    peer.take_events()
    if known_tunnel and len(data) >= 8:
        # Point the datagram at our tunnel (the Tunnel ID follows the optional Length field).
        pos = 4 if data[0] & 0x40 else 2
        data = data[:pos] + tid.to_bytes(2, "big") + data[pos + 2 :]
    nr = peer.tunnel.channel.nr
    before = peer.datagrams_out
    peer.deliver(data)
    peer.advance(5)
    assert peer.datagrams_out == before  # not even an ack
    assert peer.endpoint.counters["malformed_header"] == 1
    assert peer.tunnel.channel.nr == nr and peer.tunnel.state is TunnelState.ESTABLISHED
    assert peer.take_events() == []


# --- missing mandatory AVPs (RFC 2661 6) --------------------------------------------------------


TUNNEL_BROKEN = {
    "SCCRQ-without-host-name": lambda p: [
        raw(A.MESSAGE_TYPE, M.SCCRQ),
        raw(A.PROTOCOL_VERSION, parse_message(p.build(M.SCCRQ, p.sccrq_avps()))[A.PROTOCOL_VERSION]),
        raw(A.FRAMING_CAPABILITIES, 1),
        raw(A.ASSIGNED_TUNNEL_ID, p.tunnel_id),
    ],
    "StopCCN-without-result-code": lambda p: [
        raw(A.MESSAGE_TYPE, M.StopCCN),
        raw(A.ASSIGNED_TUNNEL_ID, p.tunnel_id),
    ],
    "StopCCN-without-assigned-tunnel-id": lambda p: [
        raw(A.MESSAGE_TYPE, M.StopCCN),
        raw(A.RESULT_CODE, ResultCode(1)),
    ],
}


@pytest.mark.parametrize("case", sorted(TUNNEL_BROKEN))
def test_a_tunnel_message_without_a_mandatory_avp_clears_the_tunnel(case: str) -> None:
    peer = _peer()
    first, second = _two_calls(peer)
    peer.send_raw(TUNNEL_BROKEN[case](peer))
    stop = peer.take("StopCCN")
    assert len(stop) == 1
    # RFC 2661 4.4.2: result 2 (general error), error 6 with a message saying what was wrong.
    assert _result(stop[0]) == (StopCCNResult.GENERAL_ERROR, GeneralError.VENDOR_ERROR)
    assert "lacks mandatory" in stop[0][A.RESULT_CODE].error_message
    assert stop[0][A.ASSIGNED_TUNNEL_ID] == peer.endpoint_tunnel_id
    closed = peer.events_of(TunnelClosed)
    assert [(e.result_code, e.error_code, e.by_peer) for e in closed] == [(2, 6, False)]
    assert sorted(e.local_session_id for e in peer.events_of(SessionClosed)) == sorted([first, second])
    assert peer.endpoint.session_count() == 0


SESSION_BROKEN = {
    "ICCN-without-framing-type": [raw(A.MESSAGE_TYPE, M.ICCN), raw(A.TX_CONNECT_SPEED, 1000)],
    "WEN-without-call-errors": [raw(A.MESSAGE_TYPE, M.WEN)],
    "SLI-without-accm": [raw(A.MESSAGE_TYPE, M.SLI)],
    "CDN-without-result-code": [raw(A.MESSAGE_TYPE, M.CDN), raw(A.ASSIGNED_SESSION_ID, PEER_SID)],
}


@pytest.mark.parametrize("case", sorted(SESSION_BROKEN))
def test_a_session_message_without_a_mandatory_avp_clears_that_session_only(case: str) -> None:
    peer = _peer()
    first, second = _two_calls(peer)
    peer.send_raw(SESSION_BROKEN[case], session_id=first)
    peer.advance(1)
    messages = peer.take()
    assert [m.name for m in messages] == ["CDN"]
    cdn = messages[0]
    assert cdn.session_id == PEER_SID and cdn[A.ASSIGNED_SESSION_ID] == first
    assert _result(cdn) == (CDNResult.GENERAL_ERROR, GeneralError.VENDOR_ERROR)
    closed = peer.events_of(SessionClosed)
    assert [(e.local_session_id, e.result_code, e.error_code) for e in closed] == [(first, 2, 6)]
    assert list(peer.tunnel.sessions) == [second]
    assert peer.tunnel.state is TunnelState.ESTABLISHED and not peer.tunnel.closing


def test_an_icrq_without_a_mandatory_avp_is_refused_with_cdn() -> None:
    peer = _peer()
    peer.establish()
    peer.send_raw([raw(A.MESSAGE_TYPE, M.ICRQ), raw(A.ASSIGNED_SESSION_ID, PEER_SID)])
    peer.advance(1)
    messages = peer.take()
    assert [m.name for m in messages] == ["CDN"]
    assert messages[0].session_id == PEER_SID  # the caller's Assigned Session ID names the call
    assert _result(messages[0]) == (CDNResult.GENERAL_ERROR, GeneralError.VENDOR_ERROR)
    assert peer.endpoint.session_count() == 0 and not peer.tunnel.closing


# --- bad lengths (RFC 2661 4.4.2 error 2) -------------------------------------------------------


def test_a_bad_avp_length_in_a_session_message_clears_that_session_with_error_2() -> None:
    peer = _peer()
    first, second = _two_calls(peer)
    # WEN's Call Errors AVP is 26 octets long (4.4.6); this one has 25.
    bad = Avp(A.CALL_ERRORS, bytes(25), mandatory=True)
    peer.send_raw([raw(A.MESSAGE_TYPE, M.WEN), bad], session_id=second)
    cdn = peer.take("CDN")
    assert len(cdn) == 1 and cdn[0].session_id == PEER_SID + 1
    assert _result(cdn[0]) == (CDNResult.GENERAL_ERROR, GeneralError.BAD_LENGTH)
    assert list(peer.tunnel.sessions) == [first]


def test_a_three_octet_result_code_in_cdn_is_a_length_error() -> None:
    peer = _peer()
    first, _ = _two_calls(peer)
    peer.send_raw(
        [
            raw(A.MESSAGE_TYPE, M.CDN),
            Avp(A.RESULT_CODE, b"\x00\x01\x00", mandatory=True),
            raw(A.ASSIGNED_SESSION_ID, 7),
        ],
        session_id=first,
    )
    cdn = peer.take("CDN")
    assert len(cdn) == 1 and _result(cdn[0]) == (CDNResult.GENERAL_ERROR, GeneralError.BAD_LENGTH)
    assert first not in peer.tunnel.sessions


@pytest.mark.parametrize("how", ["runs-past-the-end", "shorter-than-a-header"])
def test_broken_avp_framing_clears_the_tunnel_with_error_2(how: str) -> None:
    peer = _peer()
    first, _ = _two_calls(peer)
    body = raw(A.MESSAGE_TYPE, M.ICCN).encode()
    if how == "runs-past-the-end":
        body += struct.pack("!HHH", 0x8000 | 40, 0, A.TX_CONNECT_SPEED) + b"\0\0\0\1"
    else:
        body += struct.pack("!HHH", 0x8000 | 4, 0, A.TX_CONNECT_SPEED) + b"\0\0\0\1"
    header = struct.pack("!HHHHHH", 0xC802, 12 + len(body), peer.endpoint_tunnel_id, first, peer.ns, peer.nr)
    peer.ns += 1
    peer.deliver(header + body)
    stop = peer.take("StopCCN")
    # Without intact AVP framing nothing in the message can be trusted: the tunnel answers.
    assert len(stop) == 1 and _result(stop[0]) == (StopCCNResult.GENERAL_ERROR, GeneralError.BAD_LENGTH)
    assert peer.events_of(TunnelClosed)


# --- unknown message types (RFC 2661 4.4.1) -----------------------------------------------------


@pytest.mark.parametrize("message_type", [5, 13, 17, 200, 0xFFFF])
def test_an_unknown_message_type_with_m_set_clears_the_tunnel(message_type: int) -> None:
    peer = _peer()
    _two_calls(peer)
    peer.send_raw([Avp(A.MESSAGE_TYPE, message_type.to_bytes(2, "big"), mandatory=True)])
    stop = peer.take("StopCCN")
    # 4.4.1: "the tunnel MUST be cleared". No Error Code is named there; ours is 3 (a field
    # value out of range), with a message that names the type.
    assert len(stop) == 1
    assert _result(stop[0]) == (StopCCNResult.GENERAL_ERROR, GeneralError.OUT_OF_RANGE)
    assert str(message_type) in stop[0][A.RESULT_CODE].error_message
    assert peer.endpoint.session_count() == 0


def test_an_unknown_message_type_without_m_is_ignored_but_acked() -> None:
    peer = _peer()
    first, _ = _two_calls(peer)
    nr = peer.tunnel.channel.nr
    peer.send_raw([Avp(A.MESSAGE_TYPE, (77).to_bytes(2, "big"), mandatory=False), raw(A.ACCM, Accm())])
    peer.advance(1)
    zlbs = [m for m in peer.log[-1:] if m.is_zlb]
    assert zlbs and zlbs[0].nr == (nr + 1) & 0xFFFF  # acknowledged, in sequence
    assert peer.take() == [] and peer.take_events() == []
    # The next message, with the next Ns, is handled as usual.
    peer.send(M.WEN, [(A.CALL_ERRORS, CallErrors(crc_errors=1))], session_id=first)
    assert peer.take() == [] and len(peer.take_events()) == 1


# --- nobody's messages ------------------------------------------------------------------------


def test_a_message_for_an_unknown_tunnel_is_dropped_and_counted() -> None:
    peer = _peer()
    tid = peer.establish()
    before = peer.datagrams_out
    stray = peer.build(M.HELLO, tunnel_id=(tid + 1) & 0xFFFF or 1)
    peer.deliver(stray)
    peer.deliver(build_data_header((tid + 1) & 0xFFFF or 1, 5) + b"\xff\x03")
    peer.deliver(peer.build(M.ICRQ, [(A.ASSIGNED_SESSION_ID, 1), (A.CALL_SERIAL_NUMBER, 1)], tunnel_id=0))
    peer.advance(1)
    assert peer.datagrams_out == before
    assert peer.endpoint.counters["unknown_tunnel"] == 3


def test_a_message_for_an_unknown_session_is_dropped_acked_and_counted() -> None:
    peer = _peer()
    first, second = _two_calls(peer)
    unknown = next(s for s in range(1, 0x10000) if s not in (first, second))
    peer.send(M.ICCN, connect_avps(), session_id=unknown)
    peer.send(M.CDN, [(A.RESULT_CODE, ResultCode(3)), (A.ASSIGNED_SESSION_ID, 999)], session_id=unknown)
    peer.advance(1)
    assert peer.take() == []  # no CDN for a call we do not know; a ZLB acks them
    assert peer.log[-1].is_zlb and peer.log[-1].nr == peer.ns
    assert peer.endpoint.counters["unknown_session"] == 2
    assert sorted(peer.tunnel.sessions) == sorted([first, second])


@pytest.mark.parametrize(
    "addr", [("192.0.2.66", 1701), (LAC_ADDR[0], 1702)], ids=["other-host", "other-port"]
)
def test_a_message_from_a_wrong_address_is_dropped_and_counted(addr: tuple[str, int]) -> None:
    peer = _peer()
    first, _ = _two_calls(peer)
    nr = peer.tunnel.channel.nr
    before = peer.datagrams_out
    forged = peer.build(
        M.CDN, [(A.RESULT_CODE, ResultCode(3)), (A.ASSIGNED_SESSION_ID, PEER_SID)], session_id=first
    )
    peer.deliver(forged, addr=addr)
    stop = peer.build(M.StopCCN, [(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id), (A.RESULT_CODE, ResultCode(1))])
    peer.deliver(stop, addr=addr)
    peer.advance(2)
    assert peer.datagrams_out == before
    assert peer.endpoint.counters["wrong_peer"] == 2
    assert peer.tunnel.channel.nr == nr and first in peer.tunnel.sessions
    assert peer.take_events() == []
    # The real peer is still heard.
    peer.send(M.CDN, [(A.RESULT_CODE, ResultCode(3)), (A.ASSIGNED_SESSION_ID, PEER_SID)], session_id=first)
    assert [e.local_session_id for e in peer.events_of(SessionClosed)] == [first]


def test_a_bad_sccrq_to_tunnel_0_is_counted_and_answered_with_nothing() -> None:
    peer = _peer()
    peer.deliver(peer.build_raw([raw(A.MESSAGE_TYPE, M.SCCRQ), raw(A.HOST_NAME, "x")], tunnel_id=0))
    assert peer.datagrams_out == 0 and peer.endpoint.tunnels == {}
    assert peer.endpoint.counters["bad_sccrq"] == 1


# --- property: nothing escapes, everything parses, nothing is left half-open -------------------


def _captured() -> list[bytes]:
    out = []
    for path in sorted(VECTORS.glob("*.pcap")):
        out.extend(d.payload for d in read_udp_payloads(path))
    return out


CAPTURED = _captured()


def _built(peer: ScriptedPeer, sid: int) -> list[bytes]:
    """Well-formed messages of every kind, for the tunnel and call under test."""
    icrq = [(A.ASSIGNED_SESSION_ID, 9), (A.CALL_SERIAL_NUMBER, 9), (A.CALLING_NUMBER, "1")]
    return [
        peer.build(M.HELLO),
        peer.build(M.ICRQ, icrq),
        peer.build(M.ICCN, connect_avps(), session_id=sid),
        peer.build(M.SLI, [(A.ACCM, Accm())], session_id=sid),
        peer.build(M.WEN, [(A.CALL_ERRORS, CallErrors())], session_id=sid),
        peer.build(
            M.CDN,
            [(A.RESULT_CODE, ResultCode(1, 0, "bye")), (A.ASSIGNED_SESSION_ID, PEER_SID)],
            session_id=sid,
        ),
        peer.build(M.StopCCN, [(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id), (A.RESULT_CODE, ResultCode(1))]),
        peer.build(M.SCCRQ, peer.sccrq_avps(host_name="again")),
        peer.build(M.SCCCN),
        build_data_header(peer.endpoint_tunnel_id, sid, ns=0, length=True, payload_length=4)
        + b"\xff\x03\xc0\x21",
    ]


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 400), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 400), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 400), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 400), st.integers(1, 8)),
)

datagram = st.tuples(
    st.sampled_from(["captured", "built"]),
    st.integers(0, 10_000),
    st.lists(mutation, max_size=4),
    st.booleans(),  # put our IDs and the expected Ns/Nr into the header, so that it gets deep
    st.booleans(),  # fix the Length field after the mutations
    st.booleans(),  # leave the 12-octet header alone: mutate the AVPs only
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]], start: int = 0) -> bytes:
    buf = bytearray(data)
    start = min(start, len(buf))
    for kind, pos, arg in mutations:
        at = start + pos % (len(buf) - start + 1)
        if kind == "flip" and buf:
            buf[at % len(buf)] ^= arg
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = bytes([arg])
        elif kind == "delete":
            del buf[at : at + arg]
    return bytes(buf)


def _aim(data: bytes, peer: ScriptedPeer, sid: int) -> bytes:
    """Our Tunnel ID, the call's Session ID when one is set, and the Ns/Nr we expect."""
    if len(data) < 12 or not data[0] & 0x80 or not data[0] & 0x40:
        return data
    session = data[6:8] if data[6:8] == b"\0\0" else sid.to_bytes(2, "big")
    tunnel = data[4:6] if data[4:6] == b"\0\0" else peer.endpoint_tunnel_id.to_bytes(2, "big")
    ours = peer.endpoint.tunnels.get(peer.endpoint_tunnel_id)
    if ours is None:
        return data[:4] + tunnel + session + data[8:]
    # Ns: the one the tunnel expects; Nr: all it sent is acknowledged.
    sequence = struct.pack("!HH", ours.channel.nr, ours.channel.ns)
    return data[:4] + tunnel + session + sequence + data[12:]


def _fix_length(data: bytes) -> bytes:
    if len(data) >= 4 and data[0] & 0x40:
        return data[:2] + min(len(data), 0xFFFF).to_bytes(2, "big") + data[4:]
    return data


def _drain(ep: Endpoint, secret: bytes | None, events: list[Event]) -> None:
    """Take what the endpoint emitted: every datagram must be a control message that parses."""
    for tx in ep.datagrams_to_send():
        header, _ = parse_header(tx.data)
        assert header.is_control, tx
        parse_message(tx.data, secret=secret)
    while (event := ep.next_event()) is not None:
        events.append(event)


def _close_everything(ep: Endpoint, now: float, secret: bytes | None, events: list[Event]) -> None:
    """close_tunnel on every open tunnel, then run the timers out (the peer answers nothing)."""
    for tid, tunnel in list(ep.tunnels.items()):
        if not tunnel.closing:
            ep.close_tunnel(tid, now)
    _drain(ep, secret, events)
    for _ in range(10_000):
        timer = ep.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        ep.handle_timer(now)
        _drain(ep, secret, events)
    else:
        raise AssertionError("timers never ran out")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(datagram, min_size=1, max_size=6), st.booleans())
def test_mutated_datagrams_never_escape_and_leave_nothing_half_open(
    datagrams: list[tuple[str, int, list[tuple[str, int, int]], bool, bool, bool]], with_secret: bool
) -> None:
    secret = SECRET if with_secret else None
    peer = ScriptedPeer(settings=TunnelSettings(host_name="lns", secret=secret), secret=secret)
    peer.establish()
    sid = peer.incoming_call(PEER_SID)
    built = _built(peer, sid)
    ep, now = peer.endpoint, peer.now
    events: list[Event] = list(peer.events)
    for source, index, mutations, aim, fix_length, body_only in datagrams:
        pool = CAPTURED if source == "captured" else built
        data = pool[index % len(pool)]
        if aim:
            data = _aim(data, peer, sid)
        data = _mutate(data, mutations, 12 if body_only else 0)
        if fix_length:
            data = _fix_length(data)
        ep.receive_datagram(data, peer.addr, now, "192.0.2.2")  # nothing may escape
        _drain(ep, secret, events)
        now += 0.2
        ep.handle_timer(now)
        _drain(ep, secret, events)
    _close_everything(ep, now, secret, events)
    assert ep.tunnels == {}
    assert ep.session_count() == 0
    assert ep.get_timer() is None
    # Every call and tunnel that came up went down again, with an event for each.
    up = {e.local_session_id for e in events if isinstance(e, SessionEstablished)}
    down = {e.local_session_id for e in events if isinstance(e, SessionClosed)}
    assert up <= down
    tunnels_up = {e.local_tunnel_id for e in events if isinstance(e, TunnelEstablished)}
    tunnels_down = {e.local_tunnel_id for e in events if isinstance(e, TunnelClosed)}
    assert tunnels_up <= tunnels_down
