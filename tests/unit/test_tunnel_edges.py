"""Edges of tunnel setup and teardown that real links and real peers produce (RFC 2661 4.4.3, 5.7, 7.2.1)."""

from __future__ import annotations

import ipaddress
import random

import pytest
from ctlpair import LAC_ADDR, LNS_ADDR, Pair

from l2tpfast.control.endpoint import Endpoint
from l2tpfast.control.events import (
    CallType,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from l2tpfast.control.settings import EndpointSettings, PeerProfile, TunnelSettings
from l2tpfast.control.tunnel import TunnelState
from l2tpfast.wire.avp import ProtocolVersion, ResultCode
from l2tpfast.wire.constants import AvpType, CDNResult, FramingCapability, MessageType, StopCCNResult
from l2tpfast.wire.header import build_data_header
from l2tpfast.wire.message import build_message, parse_message

A = AvpType
M = MessageType
PEER = ("192.0.2.9", 1701)


def _up(p: Pair, side: str) -> list[TunnelEstablished]:
    return p.events(side, TunnelEstablished)  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", range(30))
def test_crossing_sccrqs_over_a_lossy_link_leave_one_tunnel(seed: int) -> None:
    """Late retransmissions of the losing SCCRQ must not open a second tunnel (4.4.3)."""
    p = Pair(seed=seed, loss=0.2, duplicate=0.05, delay=0.3)
    p.lac.open_session(LNS_ADDR, p.now)
    p.lns.open_session(LAC_ADDR, p.now, call_type=CallType.OUTGOING)
    p.run_until(
        lambda: (
            len(p.events("lac", SessionEstablished)) == 2 and len(p.events("lns", SessionEstablished)) == 2
        ),
        limit=200,
    )
    p.run_for(80.0)  # every retransmission of the losing SCCRQ has arrived by now
    for side, ep in (("lac", p.lac), ("lns", p.lns)):
        live = [t for t in ep.tunnels.values() if not t.closing]
        assert len(live) == 1 and live[0].state is TunnelState.ESTABLISHED, (side, seed, ep.tunnels)
        assert not p.events(side, TunnelClosed), (side, seed, p.events(side, TunnelClosed))
        assert not p.events(side, SessionClosed), (side, seed)


def test_equal_tie_breakers_both_discard_and_redial() -> None:
    p = Pair()
    for ep in (p.lac, p.lns):
        urandom = ep.urandom
        ep.urandom = lambda n, u=urandom: (0x4242).to_bytes(8, "big") if n == 8 else u(n)  # type: ignore[method-assign,misc]
    p.lac.open_session(LNS_ADDR, p.now)
    p.run_for(0.0005)  # both SCCRQs are on the wire before either arrives
    p.lns.open_session(LAC_ADDR, p.now, call_type=CallType.OUTGOING)
    # With equal values forever nothing could ever win; the redial draws a fresh value.
    for ep, seed in ((p.lac, 1), (p.lns, 2)):
        rng = random.Random(seed)
        ep.urandom = lambda n, r=rng: r.getrandbits(8 * n).to_bytes(n, "big")  # type: ignore[method-assign,misc]
    p.run_until(
        lambda: (
            len(p.events("lac", SessionEstablished)) == 2 and len(p.events("lns", SessionEstablished)) == 2
        ),
        limit=60,
    )
    assert p.lac.counters["tie_breaker_lost"] + p.lns.counters["tie_breaker_lost"] >= 2


def _sccrq(assigned: int) -> bytes:
    return build_message(
        M.SCCRQ,
        [
            (A.PROTOCOL_VERSION, ProtocolVersion(1, 0)),
            (A.HOST_NAME, "peer"),
            (A.FRAMING_CAPABILITIES, FramingCapability.SYNC),
            (A.ASSIGNED_TUNNEL_ID, assigned),
        ],
        tunnel_id=0,
    ).encode()


def test_stopccn_to_tunnel_zero_finds_the_tunnel_by_its_assigned_id() -> None:
    """A peer that gives up before it saw our SCCRP sends StopCCN to Tunnel ID 0 (4.4.3, 5.7)."""
    ep = Endpoint(rng=random.Random(1))
    ep.receive_datagram(_sccrq(77), PEER, 0.0)
    ep.datagrams_to_send()
    stop = build_message(
        M.StopCCN,
        [(A.ASSIGNED_TUNNEL_ID, 77), (A.RESULT_CODE, ResultCode(StopCCNResult.GENERAL_REQUEST, 0))],
        tunnel_id=0,
        ns=1,
        nr=1,
    ).encode()
    ep.receive_datagram(stop, PEER, 0.5)
    (ack,) = ep.datagrams_to_send()
    zlb = parse_message(ack.data)
    assert zlb.is_zlb and zlb.tunnel_id == 77 and zlb.nr == 2
    closed = [e for e in iter(ep.next_event, None) if isinstance(e, TunnelClosed)]
    assert len(closed) == 1 and closed[0].by_peer
    assert ep.counters["unknown_tunnel"] == 0


def test_closing_before_the_sccrp_answers_the_late_sccrp_with_stopccn() -> None:
    p = Pair(seed=3)
    tid = p.lac.open_tunnel(LNS_ADDR, p.now)
    p.lac.close_tunnel(tid, p.now)  # SCCRQ already sent; the LNS's Tunnel ID is not known yet
    p.run_until(lambda: not p.lac.tunnels and not p.lns.tunnels, limit=120)
    stops = [parse_message(d) for s, d in p.wire if s == "lac" and parse_message(d).message_type == M.StopCCN]
    assert len(stops) == 1 and stops[0].tunnel_id != 0  # sent to the Tunnel ID the SCCRP gave
    (closed,) = p.events("lns", TunnelClosed)
    assert closed.by_peer and closed.result_code == StopCCNResult.GENERAL_REQUEST
    assert not p.events("lns", TunnelEstablished)


def test_close_tunnel_twice_is_harmless() -> None:
    p = Pair()
    tid = p.lac.open_tunnel(LNS_ADDR, p.now)
    p.run_until(lambda: bool(_up(p, "lac")), limit=10)
    p.lac.close_tunnel(tid, p.now)
    p.lac.close_tunnel(tid, p.now)  # already closing: nothing more happens
    p.run_until(lambda: not p.lac.tunnels, limit=10)
    assert sum(1 for s, d in p.wire if s == "lac" and parse_message(d).message_type == M.StopCCN) == 1


def test_host_name_profile_applies_to_a_tunnel_we_open() -> None:
    profile = PeerProfile("slow-lns", {"hello_interval": 5.0, "max_retries": 9}, host_names=("lns",))
    p = Pair(lac=EndpointSettings(TunnelSettings(host_name="lac"), profiles=(profile,)))
    tid = p.lac.open_tunnel(LNS_ADDR, p.now)
    assert p.lac.tunnels[tid].settings.hello_interval == 60.0  # before the SCCRP names the LNS
    p.run_until(lambda: bool(_up(p, "lac")), limit=10)
    tunnel = p.lac.tunnels[tid]
    assert tunnel.settings.hello_interval == 5.0 and tunnel.channel.settings.max_retries == 9
    # and the profile is used: a Hello after 5 s of silence
    p.run_for(6.0)
    assert any(parse_message(d).message_type == M.HELLO for s, d in p.wire if s == "lac")


def test_address_profile_for_one_peer_only() -> None:
    profile = PeerProfile("x", {"hello_interval": 3.0}, networks=(ipaddress.ip_network("192.0.2.1/32"),))
    settings = EndpointSettings(TunnelSettings(), profiles=(profile,))
    assert settings.for_peer("192.0.2.1").hello_interval == 3.0
    assert settings.for_peer("192.0.2.7").hello_interval == 60.0


def test_outgoing_call_the_lac_never_answers_times_out() -> None:
    """7.5.1 wait-cs-answer: "a timer expires waiting for the call to complete" -> CDN."""
    p = Pair(lac=EndpointSettings(TunnelSettings(host_name="lac", auto_answer_outgoing=False)))
    p.lac.open_tunnel(LNS_ADDR, p.now)
    p.run_until(lambda: bool(_up(p, "lns")), limit=10)
    (lns_tid,) = p.lns.tunnels
    p.lns.open_session(lns_tid, p.now, call_type=CallType.OUTGOING)
    p.run_until(lambda: bool(p.events("lns", SessionClosed)), limit=200)
    (lac_closed,) = p.events("lac", SessionClosed)
    assert not lac_closed.by_peer and lac_closed.result_code == CDNResult.TIMEOUT
    (lns_closed,) = p.events("lns", SessionClosed)
    assert lns_closed.by_peer and lns_closed.result_code == CDNResult.TIMEOUT


def test_lac_session_is_up_when_iccn_leaves_so_early_data_is_taken() -> None:
    """The LNS may send data (its first LCP frame) as soon as it has our ICCN, before its ack
    reaches us: the call is up for us when ICCN leaves (7.4.1 "send ICCN -> established")."""
    p = Pair()
    p.lac.open_session(LNS_ADDR, p.now)
    p.run_until(
        lambda: any(side == "lac" and parse_message(d).message_type == M.ICCN for side, d in p.wire), limit=10
    )
    (up,) = p.events("lac", SessionEstablished)
    (tunnel,) = p.lac.tunnels.values()
    assert tunnel.channel.outstanding == 1  # the ICCN, not yet acknowledged
    data = build_data_header(up.local_tunnel_id, up.local_session_id) + bytes.fromhex("ff03c021010100040000")
    p.lac.receive_datagram(data, LNS_ADDR, p.now)
    assert p.lac.counters["data_messages"] == 1
    assert not {"unknown_tunnel", "wrong_peer", "malformed_header"} & set(p.lac.counters)


def test_session_connected_follows_the_ack_of_iccn_and_occn() -> None:
    """SessionConnected: the sender of ICCN/OCCN learns that the peer has the call (a PPP client
    starts LCP then at the latest); the receiver of the connect message never reports it."""
    from l2tpfast.control.events import SessionConnected, SessionEstablished

    p = Pair(seed=5, loss=0.3)
    p.lac.open_session(LNS_ADDR, p.now)
    p.run_until(lambda: bool(p.events("lac", SessionConnected)), limit=400)
    (up,) = p.events("lac", SessionEstablished)
    (connected,) = p.events("lac", SessionConnected)
    assert (connected.local_tunnel_id, connected.local_session_id) == (
        up.local_tunnel_id,
        up.local_session_id,
    )
    assert p.lac_events.index(up) < p.lac_events.index(connected)
    assert p.events("lns", SessionEstablished) and not p.events("lns", SessionConnected)
    (lns_tid,) = p.lns.tunnels
    p.lns.open_session(lns_tid, p.now, call_type=CallType.OUTGOING)
    # 7.5: the LAC answers an outgoing call with OCRP and then OCCN; it is the connect's sender.
    p.run_until(lambda: len(p.events("lac", SessionConnected)) == 2, limit=400)
    assert len(p.events("lns", SessionEstablished)) == 2 and not p.events("lns", SessionConnected)
