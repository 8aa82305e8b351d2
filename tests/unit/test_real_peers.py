"""What real peers send, sans-IO: each point of the issue's "Real peers" list, one test or more.

The far end is a :class:`~peerscript.ScriptedPeer`, so every quirk is sent byte for byte:
vendor AVPs from Windows, Result Codes of odd lengths or in little-endian order, SLI right
behind ICCN, SCCRQ AVPs repeated in SCCCN, per-peer timers, omitted AVPs, a peer that
never acks Hello. Where a capture fits, the datagrams xl2tpd and l2tpns really sent
(tests/vectors) are replayed into our endpoint, with only the IDs and sequence numbers
changed to match our end (and Challenge Responses recomputed for our challenges).
"""

from __future__ import annotations

import dataclasses
from ipaddress import ip_network
from pathlib import Path

import pytest
from ctlpair import LAC_ADDR, LNS_ADDR
from pcaputil import read_udp_payloads
from peerscript import ScriptedPeer, connect_avps, raw

from l2tpfast.control.events import (
    CallType,
    LinkInfoSet,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
    WanErrorNotified,
)
from l2tpfast.control.settings import ByteOrder, EndpointSettings, PeerProfile, TunnelSettings
from l2tpfast.control.tunnel import TunnelState
from l2tpfast.wire.avp import Accm, Avp, CallErrors, ProtocolVersion, ResultCode, make_avp
from l2tpfast.wire.constants import (
    VENDOR_MICROSOFT,
    AvpType,
    BearerCapability,
    CDNResult,
    FramingCapability,
    GeneralError,
    MessageType,
    StopCCNResult,
)
from l2tpfast.wire.header import build_data_header, parse_header
from l2tpfast.wire.hiding import challenge_response, check_challenge_response
from l2tpfast.wire.message import AvpItem, ControlMessage, parse_message

A = AvpType
M = MessageType

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
SECRET = b"l2tpfast-test-secret"  # tests/vectors/README.md
PEER_SID = 0x0555


def _lns_peer(**settings: object) -> ScriptedPeer:
    """Our endpoint as LNS; the scripted peer is the LAC at LAC_ADDR."""
    return ScriptedPeer(settings=TunnelSettings(host_name="lns", **settings))  # type: ignore[arg-type]


def _icrq(peer_sid: int = PEER_SID, *extra: AvpItem) -> list[AvpItem]:
    return [(A.ASSIGNED_SESSION_ID, peer_sid), (A.CALL_SERIAL_NUMBER, 1), *extra]


def _session_up(peer: ScriptedPeer, peer_sid: int = PEER_SID) -> int:
    sid = peer.incoming_call(peer_sid)
    peer.settle()
    peer.take()
    return sid


# --- vendor AVPs and the M bit (RFC 2661 4.1) ---------------------------------------------------


def test_windows_icrq_with_a_microsoft_vendor_avp_is_accepted() -> None:
    peer = _lns_peer()
    peer.establish(host_name="WIN-CLIENT")
    ms = Avp(attr_type=2, value=b"\x00\x00\x00\x01", vendor_id=VENDOR_MICROSOFT, mandatory=False)
    replies = peer.send(
        M.ICRQ,
        [
            (A.ASSIGNED_SESSION_ID, PEER_SID),
            (A.CALL_SERIAL_NUMBER, 3),
            ms,
            (A.BEARER_TYPE, BearerCapability(0)),
            (A.CALLING_NUMBER, "192.0.2.77"),
        ],
    )
    assert [m.name for m in replies] == ["ICRP"]
    sid = replies[0][A.ASSIGNED_SESSION_ID]
    peer.send(M.ICCN, connect_avps(ms), session_id=sid)
    up = peer.events_of(SessionEstablished)
    assert len(up) == 1 and up[0].call.calling_number == "192.0.2.77"
    assert peer.endpoint.counters["cdn_sent"] == 0


def test_an_unknown_mandatory_vendor_avp_in_icrq_ends_that_call_not_the_tunnel() -> None:
    peer = _lns_peer()
    peer.establish()
    kept = _session_up(peer, PEER_SID)
    weird = Avp(attr_type=77, value=b"\x01", vendor_id=9, mandatory=True)
    peer.send(M.ICRQ, _icrq(PEER_SID + 1, weird))
    peer.advance(1)
    messages = peer.take()
    assert [m.name for m in messages] == ["CDN"]
    cdn = messages[0]
    # RFC 2661 4.1: a session message -> the session ends (CDN), error 8, to the caller's ID.
    assert cdn.session_id == PEER_SID + 1
    result = cdn[A.RESULT_CODE]
    assert (result.result_code, result.error_code) == (
        CDNResult.GENERAL_ERROR,
        GeneralError.UNKNOWN_MANDATORY_AVP,
    )
    assert "9:77" in (result.error_message or "")
    # 4.4.4: the Assigned Session ID of a CDN is non-zero, even for a call we never took.
    assert cdn[A.ASSIGNED_SESSION_ID] != 0
    assert peer.tunnel.state is TunnelState.ESTABLISHED and not peer.tunnel.closing
    assert list(peer.tunnel.sessions) == [kept]
    assert peer.events_of(TunnelClosed) == []
    # The tunnel still takes calls.
    assert peer.send(M.ICRQ, _icrq(PEER_SID + 2))[0].name == "ICRP"


def test_an_unknown_mandatory_avp_in_iccn_ends_that_session_only() -> None:
    peer = _lns_peer()
    peer.establish()
    kept = _session_up(peer, PEER_SID)
    replies = peer.send(M.ICRQ, _icrq(PEER_SID + 1))
    sid = peer.take("ICRP")[0][A.ASSIGNED_SESSION_ID]
    assert replies
    peer.send(M.ICCN, connect_avps(Avp(attr_type=99, value=b"", vendor_id=0, mandatory=True)), session_id=sid)
    peer.advance(1)
    assert [m.name for m in peer.take()] == ["CDN"]
    closed = peer.events_of(SessionClosed)
    assert [(e.local_session_id, e.error_code) for e in closed] == [(sid, GeneralError.UNKNOWN_MANDATORY_AVP)]
    assert list(peer.tunnel.sessions) == [kept]


# --- Result Codes of every length and byte order (RFC 2661 4.4.2) -----------------------------


RESULT_VALUES = [
    pytest.param(b"\x00\x03", ResultCode(3), id="result-only"),
    pytest.param(b"\x00\x03\x00\x00", ResultCode(3, 0), id="result-error"),
    pytest.param(b"\x00\x03\x00\x00ok", ResultCode(3, 0, "ok"), id="result-error-2-octets"),
    pytest.param(b"\x00\x02\x00\x06oops", ResultCode(2, 6, "oops"), id="result-error-message"),
]


@pytest.mark.parametrize(("value", "expected"), RESULT_VALUES)
def test_cdn_result_codes_of_any_valid_length_are_accepted(value: bytes, expected: ResultCode) -> None:
    peer = _lns_peer()
    peer.establish()
    sid = _session_up(peer)
    peer.send_raw(
        [
            raw(A.MESSAGE_TYPE, M.CDN),
            Avp(A.RESULT_CODE, value, mandatory=True),
            raw(A.ASSIGNED_SESSION_ID, PEER_SID),
        ],
        session_id=sid,
    )
    closed = peer.events_of(SessionClosed)
    assert [(e.result_code, e.error_code, e.message, e.by_peer) for e in closed] == [
        (expected.result_code, expected.error_code, expected.error_message, True)
    ]
    assert peer.take("CDN", "StopCCN") == []


@pytest.mark.parametrize(("value", "expected"), RESULT_VALUES)
def test_stopccn_result_codes_of_any_valid_length_are_accepted(value: bytes, expected: ResultCode) -> None:
    peer = _lns_peer()
    peer.establish()
    peer.send_raw(
        [
            raw(A.MESSAGE_TYPE, M.StopCCN),
            raw(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id),
            Avp(A.RESULT_CODE, value, mandatory=True),
        ]
    )
    closed = peer.events_of(TunnelClosed)
    assert [(e.result_code, e.error_code, e.by_peer) for e in closed] == [
        (expected.result_code, expected.error_code, True)
    ]
    assert closed[0].message in (expected.error_message, "")
    assert peer.take("StopCCN") == []


def _apple_profile(order: ByteOrder) -> EndpointSettings:
    profile = PeerProfile(
        "apple", {"result_code_byte_order": order}, networks=(ip_network(f"{LAC_ADDR[0]}/32"),)
    )
    return EndpointSettings(TunnelSettings(host_name="lns"), profiles=(profile,))


LITTLE_ENDIAN_CDNS = [
    # (octets on the wire, what a little-endian peer meant)
    pytest.param(b"\x03\x00", (3, None), id="result-3"),
    pytest.param(b"\x03\x00\x00\x00", (3, 0), id="result-3-error-0"),
    pytest.param(b"\x02\x00\x06\x00", (2, 6), id="result-2-error-6"),
    pytest.param(b"\x02\x00\x04\x00busy", (2, 4), id="result-2-error-4-message"),
]


@pytest.mark.parametrize("order", [ByteOrder.AUTO, ByteOrder.LITTLE])
@pytest.mark.parametrize(("value", "meant"), LITTLE_ENDIAN_CDNS)
def test_little_endian_cdn_result_codes_are_normalised(
    order: ByteOrder, value: bytes, meant: tuple[int, int | None]
) -> None:
    peer = ScriptedPeer(settings=_apple_profile(order))
    peer.establish()
    sid = _session_up(peer)
    peer.send_raw(
        [
            raw(A.MESSAGE_TYPE, M.CDN),
            Avp(A.RESULT_CODE, value, mandatory=True),
            raw(A.ASSIGNED_SESSION_ID, PEER_SID),
        ],
        session_id=sid,
    )
    closed = peer.events_of(SessionClosed)
    assert [(e.result_code, e.error_code) for e in closed] == [meant]


def test_big_endian_result_codes_stay_as_they_are_with_auto() -> None:
    peer = _lns_peer()
    peer.establish()
    sid = _session_up(peer)
    peer.send(
        M.CDN, [(A.RESULT_CODE, ResultCode(3, 6, "x")), (A.ASSIGNED_SESSION_ID, PEER_SID)], session_id=sid
    )
    assert [(e.result_code, e.error_code) for e in peer.events_of(SessionClosed)] == [(3, 6)]


@pytest.mark.parametrize("order", [ByteOrder.AUTO, ByteOrder.LITTLE])
def test_little_endian_stopccn_is_normalised(order: ByteOrder) -> None:
    peer = ScriptedPeer(settings=_apple_profile(order))
    peer.establish()
    peer.send_raw(
        [
            raw(A.MESSAGE_TYPE, M.StopCCN),
            raw(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id),
            Avp(A.RESULT_CODE, b"\x06\x00\x00\x00", mandatory=True),
        ]
    )
    assert [(e.result_code, e.error_code) for e in peer.events_of(TunnelClosed)] == [
        (StopCCNResult.SHUTTING_DOWN, 0)
    ]


def test_auto_keeps_a_big_endian_version_error_code() -> None:
    # 4.4.2: StopCCN result 5 carries the highest version supported (1.0 = 0x0100) as its Error
    # Code. It is big-endian; AUTO must not mistake it for a little-endian 1.
    peer = _lns_peer()
    peer.establish()
    peer.send(
        M.StopCCN,
        [(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id), (A.RESULT_CODE, ResultCode(5, 0x0100, "version"))],
    )
    assert [(e.result_code, e.error_code) for e in peer.events_of(TunnelClosed)] == [(5, 0x0100)]


def test_auto_swaps_a_little_endian_version_error_code_with_its_result() -> None:
    peer = _lns_peer()
    peer.establish()
    peer.send_raw(
        [
            raw(A.MESSAGE_TYPE, M.StopCCN),
            raw(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id),
            Avp(A.RESULT_CODE, b"\x05\x00\x00\x01", mandatory=True),
        ]
    )
    assert [(e.result_code, e.error_code) for e in peer.events_of(TunnelClosed)] == [(5, 0x0100)]


@pytest.mark.parametrize("order", [ByteOrder.LITTLE, ByteOrder.AUTO, ByteOrder.BIG])
def test_with_little_we_send_ours_little_endian_too(order: ByteOrder) -> None:
    peer = ScriptedPeer(settings=_apple_profile(order))
    tid = peer.establish()
    sid = _session_up(peer)
    peer.endpoint.close_session(tid, sid, peer.now, result_code=CDNResult.ADMINISTRATIVE, error_code=4)
    peer.collect()
    cdn = peer.take("CDN")[0]
    wire = next(avp for avp in cdn.avps if avp.attr_type == A.RESULT_CODE).value
    assert wire == (b"\x03\x00\x04\x00" if order is ByteOrder.LITTLE else b"\x00\x03\x00\x04")
    # The event says what we meant, whatever the byte order on the wire.
    assert [(e.result_code, e.error_code) for e in peer.events_of(SessionClosed)] == [(3, 4)]


def test_little_endian_applies_only_to_the_profiled_peer() -> None:
    endpoint_settings = _apple_profile(ByteOrder.LITTLE)
    apple = ScriptedPeer(settings=endpoint_settings)
    other = ScriptedPeer(apple.endpoint, addr=("192.0.2.9", 1701))
    other.tunnel_id = 0x4321
    apple.establish()
    other.establish()
    for peer in (apple, other):
        sid = _session_up(peer)
        peer.endpoint.close_session(peer.endpoint_tunnel_id, sid, peer.now)
        peer.collect()
    wire = [
        next(a for a in p.take("CDN")[0].avps if a.attr_type == A.RESULT_CODE).value for p in (apple, other)
    ]
    assert [w[:2] for w in wire] == [b"\x03\x00", b"\x00\x03"]  # the Result Code, in each byte order


# --- SLI and WEN --------------------------------------------------------------------------------


def test_sli_in_the_same_burst_as_iccn_gives_link_info() -> None:
    peer = _lns_peer()
    peer.establish()
    sid = peer.send(M.ICRQ, _icrq())[0][A.ASSIGNED_SESSION_ID]
    # A real LAC sends ICCN and SLI back to back, before our ZLB for the ICCN could arrive.
    iccn = peer.build(M.ICCN, connect_avps(), session_id=sid)
    peer.ns += 1
    sli = peer.build(M.SLI, [(A.ACCM, Accm(0, 0xFFFFFFFF))], session_id=sid)
    peer.ns += 1
    peer.deliver(iccn)
    peer.deliver(sli)
    assert [type(e).__name__ for e in peer.events[-2:]] == ["SessionEstablished", "LinkInfoSet"]
    assert peer.events_of(LinkInfoSet)[0].accm == Accm(0, 0xFFFFFFFF)


def test_sli_arriving_before_its_iccn_waits_for_it() -> None:
    peer = _lns_peer()
    peer.establish()
    sid = peer.send(M.ICRQ, _icrq())[0][A.ASSIGNED_SESSION_ID]
    iccn = peer.build(M.ICCN, connect_avps(), session_id=sid)
    peer.ns += 1
    sli = peer.build(M.SLI, [(A.ACCM, Accm())], session_id=sid)
    peer.ns += 1
    peer.deliver(sli)  # reordered on the way: Ns one ahead
    assert peer.events_of(LinkInfoSet) == []
    peer.deliver(iccn)
    assert [type(e).__name__ for e in peer.events[-2:]] == ["SessionEstablished", "LinkInfoSet"]
    assert peer.endpoint.counters["cdn_sent"] == 0


@pytest.mark.parametrize("stage", ["wait-connect", "established"])
@pytest.mark.parametrize("kind", ["SLI", "WEN"])
def test_lns_accepts_sli_and_wen_while_the_call_is_up_or_coming_up(stage: str, kind: str) -> None:
    peer = _lns_peer()
    peer.establish()
    if stage == "established":
        sid = _session_up(peer)
    else:
        sid = peer.send(M.ICRQ, _icrq())[0][A.ASSIGNED_SESSION_ID]
    assert peer.tunnel.sessions[sid].state.value == stage
    errors = CallErrors(crc_errors=9, alignment_errors=1)
    if kind == "SLI":
        peer.send(M.SLI, [(A.ACCM, Accm(1, 2))], session_id=sid)
        assert peer.events_of(LinkInfoSet) == [LinkInfoSet(peer.endpoint_tunnel_id, sid, Accm(1, 2))]
    else:
        peer.send(M.WEN, [(A.CALL_ERRORS, errors)], session_id=sid)
        assert peer.events_of(WanErrorNotified) == [WanErrorNotified(peer.endpoint_tunnel_id, sid, errors)]
    peer.advance(1)
    assert peer.take("CDN", "StopCCN") == []
    assert peer.tunnel.sessions[sid].state.value == stage


@pytest.mark.parametrize("call_type", [CallType.INCOMING, CallType.OUTGOING])
def test_lac_accepts_sli_when_established(call_type: CallType) -> None:
    peer = ScriptedPeer(addr=LNS_ADDR, endpoint_addr=LAC_ADDR, settings=TunnelSettings(host_name="lac"))
    tid = peer.endpoint.open_tunnel(peer.addr, peer.now)
    peer.collect()
    peer.answer()
    peer.settle()
    peer.take()
    if call_type is CallType.INCOMING:
        _, sid = peer.endpoint.open_session(tid, peer.now)
        peer.collect()
        peer.send(M.ICRP, [(A.ASSIGNED_SESSION_ID, PEER_SID)], session_id=sid)
    else:
        ocrq = [
            (A.ASSIGNED_SESSION_ID, PEER_SID),
            (A.CALL_SERIAL_NUMBER, 5),
            (A.MINIMUM_BPS, 0),
            (A.MAXIMUM_BPS, 10**6),
            (A.BEARER_TYPE, BearerCapability.DIGITAL),
            (A.FRAMING_TYPE, FramingCapability.SYNC),
            (A.CALLED_NUMBER, "100"),
        ]
        sid = peer.send(M.OCRQ, ocrq)[0][A.ASSIGNED_SESSION_ID]
    assert peer.tunnel.sessions[sid].state.value == "established"
    peer.send(M.SLI, [(A.ACCM, Accm(0xA, 0xB))], session_id=sid)
    assert peer.events_of(LinkInfoSet) == [LinkInfoSet(tid, sid, Accm(0xA, 0xB))]


def test_sli_for_an_unknown_session_is_counted_and_dropped() -> None:
    peer = _lns_peer()
    peer.establish()
    peer.send(M.SLI, [(A.ACCM, Accm())], session_id=4242)
    peer.advance(1)
    assert peer.events_of(LinkInfoSet) == []
    assert peer.endpoint.counters["unknown_session"] == 1
    assert peer.take() == []  # acked by a ZLB only


# --- SCCCN that repeats the SCCRQ ---------------------------------------------------------------


def test_scccn_repeating_sccrq_avps_brings_the_tunnel_up() -> None:
    peer = _lns_peer()
    replies = peer.send(M.SCCRQ, peer.sccrq_avps(host_name="chatty"))
    peer.endpoint_tunnel_id = replies[0][A.ASSIGNED_TUNNEL_ID]
    repeated = [
        raw(A.MESSAGE_TYPE, M.SCCCN),
        raw(A.PROTOCOL_VERSION, ProtocolVersion(1, 0)),
        raw(A.HOST_NAME, "chatty"),
        raw(A.FRAMING_CAPABILITIES, FramingCapability.SYNC | FramingCapability.ASYNC),
        raw(A.BEARER_CAPABILITIES, BearerCapability.ANALOG),
        raw(A.ASSIGNED_TUNNEL_ID, peer.tunnel_id),
        raw(A.RECEIVE_WINDOW_SIZE, 16),
        raw(A.FIRMWARE_REVISION, 0x0100),
        raw(A.VENDOR_NAME, "Chatty Networks"),
    ]
    peer.send_raw(repeated)
    peer.advance(1)
    assert len(peer.events_of(TunnelEstablished)) == 1
    assert peer.tunnel.state is TunnelState.ESTABLISHED
    assert peer.take("StopCCN") == []
    assert peer.send(M.ICRQ, _icrq())[0].name == "ICRP"


# --- per-peer profiles --------------------------------------------------------------------------


@pytest.mark.parametrize("match", ["network", "host-name"])
def test_retries_and_hello_interval_follow_the_peer_profile(match: str) -> None:
    special = {"max_retries": 2, "hello_interval": 10.0}
    profile = (
        PeerProfile("quick", special, networks=(ip_network("192.0.2.1/32"),))
        if match == "network"
        else PeerProfile("quick", special, host_names=("quick-lac",))
    )
    settings = EndpointSettings(
        TunnelSettings(host_name="lns", max_retries=4, hello_interval=30.0), profiles=(profile,)
    )
    quick = ScriptedPeer(settings=settings, addr=LAC_ADDR)
    plain = ScriptedPeer(quick.endpoint, addr=("192.0.2.9", 1701))
    plain.tunnel_id = 0x4321
    quick.establish(host_name="quick-lac")
    plain.establish(host_name="plain-lac")
    start = quick.now
    for _ in range(2000):  # nobody acks anything: each tunnel says Hello, retries, gives up
        quick.advance(0.25)
        plain.now = quick.now
        plain.collect()
        if len(quick.events_of(TunnelClosed)) == 2:  # every peer sees every event of the endpoint
            break
    q_hellos = [m for m in quick.log if m.name == "HELLO"]
    p_hellos = [m for m in plain.log if m.name == "HELLO"]
    # One Hello plus max_retries retransmissions of it, each to its own peer.
    assert len(q_hellos) == 1 + 2
    assert len(p_hellos) == 1 + 4
    assert all(m.tunnel_id == quick.tunnel_id for m in q_hellos)
    assert all(m.tunnel_id == plain.tunnel_id for m in p_hellos)
    # Each gave up after its own number of retransmissions of its own Hello.
    q_closed, p_closed = quick.events_of(TunnelClosed)[:1], quick.events_of(TunnelClosed)[1:]
    assert [e.local_tunnel_id for e in q_closed] == [quick.endpoint_tunnel_id]
    assert [e.local_tunnel_id for e in p_closed] == [plain.endpoint_tunnel_id]
    assert "after 2 retransmissions" in (q_closed[0].message or "")
    assert "after 4 retransmissions" in (p_closed[0].message or "")
    assert quick.now - start < 120


def test_hello_interval_of_the_profile_is_used_for_that_peer_only() -> None:
    profile = PeerProfile("quick", {"hello_interval": 10.0}, networks=(ip_network("192.0.2.1/32"),))
    settings = EndpointSettings(TunnelSettings(host_name="lns", hello_interval=40.0), profiles=(profile,))
    quick = ScriptedPeer(settings=settings)
    plain = ScriptedPeer(quick.endpoint, addr=("192.0.2.9", 1701))
    plain.tunnel_id = 0x4321
    quick.establish()
    plain.establish()
    first: dict[str, float] = {}
    for _ in range(400):
        quick.advance(0.25)
        plain.now = quick.now
        for name, peer in (("quick", quick), ("plain", plain)):
            peer.collect()
            if any(m.name == "HELLO" for m in peer.take()):
                first.setdefault(name, peer.now)
                peer.ack()
    assert 10.0 <= first["quick"] <= 11.0
    assert 40.0 <= first["plain"] <= 41.0


def test_omit_avps_leaves_optional_avps_out_of_what_we_send() -> None:
    omitted = frozenset(
        {A.FIRMWARE_REVISION, A.VENDOR_NAME, A.BEARER_CAPABILITIES, A.RECEIVE_WINDOW_SIZE, A.TIE_BREAKER}
    )
    profile = PeerProfile("picky", {"omit_avps": omitted}, networks=(ip_network("192.0.2.1/32"),))
    settings = EndpointSettings(TunnelSettings(host_name="lns"), profiles=(profile,))
    picky = ScriptedPeer(settings=settings)
    other = ScriptedPeer(picky.endpoint, addr=("192.0.2.9", 1701))
    other.tunnel_id = 0x4321
    sccrp = {}
    for name, peer in (("picky", picky), ("other", other)):
        replies = peer.send(M.SCCRQ, peer.sccrq_avps())
        sccrp[name] = {avp.attr_type for avp in replies[0].avps}
    assert not sccrp["picky"] & omitted
    optional = {A.FIRMWARE_REVISION, A.VENDOR_NAME, A.BEARER_CAPABILITIES, A.RECEIVE_WINDOW_SIZE}
    assert optional <= sccrp["other"]
    # What stays is what 6.2 requires.
    assert {A.PROTOCOL_VERSION, A.HOST_NAME, A.FRAMING_CAPABILITIES, A.ASSIGNED_TUNNEL_ID} <= sccrp["picky"]


def test_omit_avps_applies_to_tunnels_we_open_and_to_call_messages() -> None:
    omitted = frozenset({A.TIE_BREAKER, A.VENDOR_NAME, A.BEARER_TYPE, A.SEQUENCING_REQUIRED})
    settings = TunnelSettings(host_name="lac", omit_avps=omitted, sequencing_required=True)
    peer = ScriptedPeer(addr=LNS_ADDR, endpoint_addr=LAC_ADDR, settings=settings)
    tid, sid = peer.endpoint.open_session(peer.addr, peer.now)
    peer.collect()
    sccrq = peer.inbox[0]
    assert sccrq.name == "SCCRQ" and not {a.attr_type for a in sccrq.avps} & omitted
    peer.answer()
    peer.ack()
    icrq = peer.take("ICRQ")[0]
    assert A.BEARER_TYPE not in {a.attr_type for a in icrq.avps}
    peer.send(M.ICRP, [(A.ASSIGNED_SESSION_ID, PEER_SID)], session_id=sid)
    iccn = peer.take("ICCN")[0]
    assert A.SEQUENCING_REQUIRED not in {a.attr_type for a in iccn.avps}
    assert tid == peer.endpoint_tunnel_id


# --- Hello ------------------------------------------------------------------------------------


def _data(peer: ScriptedPeer, sid: int) -> bytes:
    payload = b"\xff\x03\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00"  # LCP Echo-Request
    return build_data_header(peer.endpoint_tunnel_id, sid) + payload


@pytest.mark.parametrize("sends_data", [True, False])
def test_a_peer_that_never_acks_hello_but_sends_data_stays_up(sends_data: bool) -> None:
    peer = _lns_peer(hello_interval=10.0)
    peer.establish()
    sid = _session_up(peer)
    peer.advance(11)  # a quiet spell: we say Hello
    assert [m.name for m in peer.take()] == ["HELLO"]
    for _ in range(240):  # two minutes, data only, never a control message (so no ack) from the peer
        peer.advance(0.5)
        if sends_data:
            peer.deliver(_data(peer, sid))
    retransmitted = [m for m in peer.log if m.name == "HELLO"]
    assert len(retransmitted) > 5  # the Hello was sent again and again, and never acked
    if sends_data:
        assert peer.events_of(TunnelClosed) == []
        assert peer.tunnel.state is TunnelState.ESTABLISHED and sid in peer.tunnel.sessions
        assert peer.endpoint.counters["data_messages"] == 240
    else:
        assert len(peer.events_of(TunnelClosed)) == 1
        assert peer.endpoint.tunnels == {} or peer.tunnel.closing


# --- replaying captured peers -------------------------------------------------------------------


def _frames(name: str, src: str) -> list[bytes]:
    return [d.payload for d in read_udp_payloads(VECTORS / name) if d.src[0] == src]


def _retarget(data: bytes, tunnel_id: int, session_id: int, nr: int) -> bytes:
    """The captured datagram with our end's IDs (and, for control, our Nr); all else as sent."""
    header, _ = parse_header(data)
    if not header.is_control:
        pos = 4 if header.length is not None else 2
        return data[:pos] + tunnel_id.to_bytes(2, "big") + session_id.to_bytes(2, "big") + data[pos + 4 :]
    message = parse_message(data)
    sid = session_id if message.session_id else 0
    return dataclasses.replace(message, tunnel_id=tunnel_id, session_id=sid, nr=nr).encode()


def _answering(message: ControlMessage, tunnel_id: int, nr: int, response: bytes) -> bytes:
    """The captured SCCRP/SCCCN answering our Challenge instead of the one it answered."""
    avps = tuple(a for a in message.avps if a.attr_type != A.CHALLENGE_RESPONSE)
    avps += (make_avp(A.CHALLENGE_RESPONSE, response),)
    return dataclasses.replace(message, avps=avps, tunnel_id=tunnel_id, nr=nr).encode()


LAC_CAPTURES = ["xl2tpd-lac_l2tpns-lns.pcap", "xl2tpd-lac_xl2tpd-lns_hidden.pcap"]


@pytest.mark.parametrize("capture", LAC_CAPTURES)
def test_replay_the_xl2tpd_lac_into_our_lns(capture: str) -> None:
    peer = ScriptedPeer(settings=TunnelSettings(host_name="lns.l2tpfast.test", secret=SECRET), secret=SECRET)
    ours: bytes | None = None
    sid = 0
    for data in _frames(capture, LAC_ADDR[0]):
        message = parse_message(data)
        if message.name == "SCCRQ":
            sccrp = next(m for m in peer.deliver(data) if m.name == "SCCRP")
            # 5.1.1: we answer xl2tpd's challenge with the shared secret, and challenge it.
            assert check_challenge_response(
                M.SCCRP, SECRET, message[A.CHALLENGE], sccrp[A.CHALLENGE_RESPONSE]
            )
            peer.endpoint_tunnel_id = sccrp[A.ASSIGNED_TUNNEL_ID]
            ours = sccrp[A.CHALLENGE]
            continue
        assert ours is not None
        if message.name == "SCCCN":
            response = challenge_response(M.SCCCN, SECRET, ours)
            replies = peer.deliver(_answering(message, peer.endpoint_tunnel_id, peer.nr, response))
        else:
            replies = peer.deliver(_retarget(data, peer.endpoint_tunnel_id, sid, peer.nr))
        if message.name == "ICRQ":
            sid = next(m for m in replies if m.name == "ICRP")[A.ASSIGNED_SESSION_ID]
        peer.advance(0.1)
    up = peer.events_of(TunnelEstablished)
    assert [(e.peer_host_name, e.peer_vendor_name) for e in up] == [("lac.l2tpfast.test", "xelerance.com")]
    calls = peer.events_of(SessionEstablished)
    assert len(calls) == 1
    call = calls[0].call
    assert (call.call_serial_number, call.framing_type, call.tx_connect_speed, call.rx_connect_speed) == (
        1,
        FramingCapability.SYNC,
        0,
        0,
    )
    closed = peer.events_of(SessionClosed)
    assert len(closed) == 1 and closed[0].by_peer
    if capture.startswith("xl2tpd-lac_l2tpns"):
        assert (closed[0].result_code, closed[0].error_code) == (1, 0)  # the LAC's CDN
    gone = peer.events_of(TunnelClosed)
    assert [(e.result_code, e.message, e.by_peer) for e in gone] == [(1, "Goodbye!", True)]
    sent = [m.name for m in peer.log if not m.is_zlb]
    assert sent == ["SCCRP", "ICRP"]  # nothing refused, nothing torn down by us
    assert not any(k.startswith("protocol_error") for k in peer.endpoint.counters)


LNS_CAPTURES = ["xl2tpd-lac_l2tpns-lns.pcap", "xl2tpd-lac_xl2tpd-lns_hidden.pcap"]


@pytest.mark.parametrize("capture", LNS_CAPTURES)
def test_replay_the_real_lns_into_our_lac(capture: str) -> None:
    peer = ScriptedPeer(
        addr=LNS_ADDR,
        endpoint_addr=LAC_ADDR,
        settings=TunnelSettings(host_name="lac.l2tpfast.test", secret=SECRET),
        secret=SECRET,
    )
    tid, sid = peer.endpoint.open_session(peer.addr, peer.now)
    peer.collect()
    sccrq = peer.take("SCCRQ")[0]
    peer.endpoint_tunnel_id = tid
    for data in _frames(capture, LNS_ADDR[0]):
        header, _ = parse_header(data)
        message = parse_message(data) if header.is_control else None
        if message is not None and message.name == "SCCRP":
            response = challenge_response(M.SCCRP, SECRET, sccrq[A.CHALLENGE])
            replies = peer.deliver(_answering(message, tid, peer.nr, response))
            scccn = next(m for m in replies if m.name == "SCCCN")
            if A.CHALLENGE in message:  # the xl2tpd LNS challenges us too
                assert check_challenge_response(
                    M.SCCCN, SECRET, message[A.CHALLENGE], scccn[A.CHALLENGE_RESPONSE]
                )
        else:
            peer.deliver(_retarget(data, tid, sid, peer.nr))
        peer.advance(0.1)
    up = peer.events_of(TunnelEstablished)
    assert [e.peer_host_name for e in up] == ["lns.l2tpfast.test"]
    calls = peer.events_of(SessionEstablished)
    assert [(e.local_session_id, e.role.value) for e in calls] == [(sid, "lac")]
    sent = [m.name for m in peer.log if not m.is_zlb]
    assert sent == ["SCCRQ", "SCCCN", "ICRQ", "ICCN"]
    if capture.endswith("_hidden.pcap"):  # this LNS cleared the call
        closed = peer.events_of(SessionClosed)
        assert [(e.result_code, e.error_code, e.by_peer) for e in closed] == [(1, 0, True)]
    else:
        assert peer.endpoint.counters["data_messages"] == 1
    assert peer.events_of(TunnelClosed) == []
    assert not any(k.startswith("protocol_error") for k in peer.endpoint.counters)
