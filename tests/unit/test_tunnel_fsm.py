"""The control connection machine of RFC 2661 7.2 and what lives beside it (5.1.1, 4.4.3, 5.5, 5.7).

Row tests fire each input of :data:`tunnel.TRANSITIONS` at a tunnel put in the
row's state; the rest runs a LAC core against an LNS core through
:class:`ctlpair.Pair` on a fake clock and judges the datagrams on the wire and
the events each side reports.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from ctlpair import LAC_ADDR, LNS_ADDR, Pair

from l2tpfast.control.endpoint import Endpoint, Transmit
from l2tpfast.control.events import (
    CallType,
    Event,
    Role,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from l2tpfast.control.session import SessionState
from l2tpfast.control.settings import EndpointSettings, TunnelSettings
from l2tpfast.control.tunnel import (
    TRANSITIONS,
    Refusal,
    Tunnel,
    TunnelAction,
    TunnelInput,
    TunnelState,
    lookup,
)
from l2tpfast.wire.avp import ProtocolVersion
from l2tpfast.wire.constants import (
    AvpType,
    FramingCapability,
    GeneralError,
    MessageType,
    StopCCNResult,
)
from l2tpfast.wire.header import build_data_header, parse_header
from l2tpfast.wire.hiding import check_challenge_response
from l2tpfast.wire.message import ControlMessage, build_message, build_zlb, parse_message

A = AvpType
M = MessageType
TS = TunnelState
TI = TunnelInput
TA = TunnelAction

LOCAL_TID = 100
PEER_TID = 200
PEER = ("198.51.100.7", 1701)
SECRET = b"tunnel secret"


def parsed(data: bytes, secret: bytes | None = None) -> ControlMessage:
    return parse_message(data, secret=secret)


def wire_messages(p: Pair, side: str | None = None, secret: bytes | None = None) -> list[ControlMessage]:
    return [parsed(d, secret) for s, d in p.wire if side is None or s == side]


def drain(ep: Endpoint) -> list[Transmit]:
    return ep.datagrams_to_send()


def events(ep: Endpoint) -> list[Event]:
    out = []
    for _ in range(10_000):
        e = ep.next_event()
        if e is None:
            return out
        out.append(e)
    raise AssertionError("endless event queue")


def established(p: Pair, n: int = 1) -> Callable[[], bool]:
    return lambda: (
        len(p.events("lac", TunnelEstablished)) >= n and len(p.events("lns", TunnelEstablished)) >= n
    )


def open_tunnel(p: Pair) -> tuple[int, int]:
    """Bring one tunnel up; return (LAC's local Tunnel ID, LNS's local Tunnel ID)."""
    tid = p.lac.open_tunnel(LNS_ADDR, p.now)
    p.run_until(established(p), limit=10)
    p.run_for(1.0)  # let the last ZLB land
    return tid, p.lac.tunnels[tid].peer_tunnel_id


V1 = ProtocolVersion(1, 0)


def sccrq(*, version: ProtocolVersion = V1, assigned: int = 77, ns: int = 0) -> bytes:
    return build_message(
        M.SCCRQ,
        [
            (A.PROTOCOL_VERSION, version),
            (A.HOST_NAME, "peer"),
            (A.FRAMING_CAPABILITIES, FramingCapability.SYNC),
            (A.ASSIGNED_TUNNEL_ID, assigned),
        ],
        tunnel_id=0,
        ns=ns,
    ).encode()


def result_of(message: ControlMessage) -> tuple[int, int | None]:
    result = message[A.RESULT_CODE]
    return result.result_code, result.error_code


# --- every row of 7.2.1 ---------------------------------------------------------------------------


def tunnel_in(state: TunnelState, event: TunnelInput) -> tuple[Endpoint, Tunnel]:
    """A tunnel in ``state`` with one call waiting for it, as a LAC would have it."""
    ep = Endpoint(EndpointSettings(TunnelSettings(host_name="me")), rng=random.Random(5))
    tunnel = Tunnel(
        ep, LOCAL_TID, PEER, None, ep.settings.tunnel, initiator=state is TS.WAIT_CTL_REPLY, now=0.0
    )
    ep.tunnels[LOCAL_TID] = tunnel
    tunnel.state = state
    if not (state is TS.IDLE and event is TI.LOCAL_OPEN):
        tunnel.peer_tunnel_id = tunnel.channel.peer_tunnel_id = PEER_TID
    session = tunnel.new_session(Role.LAC, CallType.INCOMING, 0.0)
    session.state = SessionState.WAIT_TUNNEL
    return ep, tunnel


#: What the endpoint puts on the wire for each action (besides the waiting call's messages).
SENT = {
    TA.NONE: [],
    TA.SEND_SCCRQ: [M.SCCRQ],
    TA.SEND_SCCRP: [M.SCCRP],
    TA.SEND_SCCCN: [M.SCCCN],
    TA.TUNNEL_OPEN: [],
    TA.SEND_STOPCCN: [M.StopCCN],
    TA.CLEAN_UP: [],
    TA.REQUEUE: [],
}


def given_reason(event: TunnelInput) -> bool:
    """The tunnel code passes a reason (Refusal) with this input."""
    return event.name.endswith("_BAD") or event in (TI.ADMIN_CLOSE, TI.RECV_STOPCCN)


def fire(
    state: TunnelState, event: TunnelInput
) -> tuple[Endpoint, Tunnel, list[ControlMessage], list[Event]]:
    ep, tunnel = tunnel_in(state, event)
    # Where the tunnel code passes the reason along (refusals, the peer's StopCCN), do so here too.
    refusal = None
    if given_reason(event):
        refusal = Refusal(StopCCNResult.NOT_AUTHORIZED, GeneralError.NO_ERROR, "row test")
    tunnel.fire(event, 0.0, refusal)
    ep._after(tunnel)
    return ep, tunnel, [parsed(tx.data) for tx in drain(ep)], events(ep)


@pytest.mark.parametrize(("state", "event"), list(TRANSITIONS), ids=lambda x: x.name)
def test_transition_row(state: TunnelState, event: TunnelInput) -> None:
    action, new_state = TRANSITIONS[(state, event)]
    ep, tunnel, sent, evs = fire(state, event)
    assert tunnel.state is new_state
    tunnel_msgs = [m for m in sent if m.message_type != M.ICRQ]
    assert [m.message_type for m in tunnel_msgs] == SENT[action]
    for m in tunnel_msgs:
        # 5.1 / 4.4.3: nothing goes to the peer's tunnel before we know it; then always to it.
        assert m.tunnel_id == (0 if m.message_type == M.SCCRQ else PEER_TID)
    opened = [e for e in evs if isinstance(e, TunnelEstablished)]
    closed = [e for e in evs if isinstance(e, TunnelClosed)]
    session_closed = [e for e in evs if isinstance(e, SessionClosed)]
    icrq = [m for m in sent if m.message_type == M.ICRQ]
    waiting = list(tunnel.sessions.values())

    if action in (TA.SEND_SCCCN, TA.TUNNEL_OPEN):
        # "send tunnel-open event to waiting sessions": the waiting call places its ICRQ.
        # (it may wait behind SCCCN for the congestion window: sent or queued, once)
        assert len(icrq) + tunnel.channel.queued == 1 and waiting[0].state is SessionState.WAIT_REPLY
        # The tunnel is reported up when it becomes established, once.
        assert len(opened) == (0 if state is TS.ESTABLISHED else 1)
    else:
        assert not icrq and not opened
    if action in (TA.SEND_STOPCCN, TA.CLEAN_UP):
        assert len(closed) == 1 and closed[0].by_peer is (action is TA.CLEAN_UP)
        assert len(session_closed) == 1 and not tunnel.sessions
        if given_reason(event):
            expected = StopCCNResult.NOT_AUTHORIZED
        else:  # an unexpected message is an FSM error; a plain clean-up a general request
            expected = StopCCNResult.FSM_ERROR if action is TA.SEND_STOPCCN else StopCCNResult.GENERAL_REQUEST
        assert closed[0].result_code == expected
        if action is TA.SEND_STOPCCN:
            assert result_of(tunnel_msgs[0])[0] == expected
            assert tunnel_msgs[0][A.ASSIGNED_TUNNEL_ID] == LOCAL_TID
    else:
        assert not closed and not session_closed
    if action is TA.REQUEUE:
        # 4.4.3: the loser drops its tunnel silently; its calls wait for the peer's tunnel.
        assert LOCAL_TID not in ep.tunnels
        assert [s.state for s in ep._requeued[PEER[0]]] == [SessionState.WAIT_TUNNEL]
    elif action in (TA.NONE, TA.SEND_SCCRQ, TA.SEND_SCCRP):
        assert waiting and waiting[0].state is SessionState.WAIT_TUNNEL
        assert LOCAL_TID in ep.tunnels


MISSING = [(s, i) for s, i in itertools.product(TunnelState, TunnelInput) if lookup(s, i) is None]


def test_missing_pairs_exist() -> None:
    assert (TS.IDLE, TI.ADMIN_CLOSE) in MISSING
    assert (TS.WAIT_CTL_REPLY, TI.RECV_SCCRQ) in MISSING


@pytest.mark.parametrize(("state", "event"), MISSING, ids=lambda x: x.name)
def test_pair_not_in_table_is_fsm_error(state: TunnelState, event: TunnelInput) -> None:
    ep, tunnel = tunnel_in(state, event)
    tunnel.peer_tunnel_id = tunnel.channel.peer_tunnel_id = PEER_TID
    tunnel.fire(event, 0.0)
    ep._after(tunnel)
    sent = [parsed(tx.data) for tx in drain(ep)]
    assert [m.message_type for m in sent] == [M.StopCCN]
    assert result_of(sent[0])[0] == StopCCNResult.FSM_ERROR
    assert tunnel.state is TS.IDLE and tunnel.closing
    closed = [e for e in events(ep) if isinstance(e, TunnelClosed)]
    assert [(e.result_code, e.by_peer) for e in closed] == [(StopCCNResult.FSM_ERROR, False)]


# --- establishment and authentication (5.1.1) -------------------------------------------------------


def test_establishment_sequence() -> None:
    p = Pair()
    lac_tid, lns_tid = open_tunnel(p)
    msgs = wire_messages(p)
    assert [(s, m.name) for (s, _), m in zip(p.wire, msgs, strict=True)] == [
        ("lac", "SCCRQ"),
        ("lns", "SCCRP"),
        ("lac", "SCCCN"),
        ("lns", "ZLB"),
    ]
    assert [(m.tunnel_id, m.ns, m.nr) for m in msgs] == [
        (0, 0, 0),
        (lac_tid, 0, 1),
        (lns_tid, 1, 1),
        (lac_tid, 1, 2),
    ]
    assert msgs[0][A.ASSIGNED_TUNNEL_ID] == lac_tid and msgs[1][A.ASSIGNED_TUNNEL_ID] == lns_tid
    assert msgs[0][A.PROTOCOL_VERSION] == ProtocolVersion(1, 0)
    assert A.CHALLENGE not in msgs[0] and A.CHALLENGE_RESPONSE not in msgs[2]
    (lac_up,) = p.events("lac", TunnelEstablished)
    (lns_up,) = p.events("lns", TunnelEstablished)
    assert (lac_up.local_tunnel_id, lac_up.peer_tunnel_id, lac_up.initiator) == (lac_tid, lns_tid, True)
    assert (lns_up.local_tunnel_id, lns_up.peer_tunnel_id, lns_up.initiator) == (lns_tid, lac_tid, False)
    assert (lac_up.peer_host_name, lns_up.peer_host_name) == ("lns", "lac")
    assert p.lac.tunnels[lac_tid].channel.idle and p.lns.tunnels[lns_tid].channel.idle


def secret_pair(lac_secret: bytes | None, lns_secret: bytes | None, **extra: object) -> Pair:
    return Pair(
        lac=EndpointSettings(TunnelSettings(host_name="lac", secret=lac_secret, **extra)),  # type: ignore[arg-type]
        lns=EndpointSettings(TunnelSettings(host_name="lns", secret=lns_secret, **extra)),  # type: ignore[arg-type]
    )


def test_challenge_and_response_with_shared_secret() -> None:
    p = secret_pair(SECRET, SECRET)
    open_tunnel(p)
    rq, rp, cn, _ = wire_messages(p, secret=SECRET)
    lac_challenge, lns_challenge = rq[A.CHALLENGE], rp[A.CHALLENGE]
    assert len(lac_challenge) == 16 and lac_challenge != lns_challenge
    assert check_challenge_response(M.SCCRP, SECRET, lac_challenge, rp[A.CHALLENGE_RESPONSE])
    assert check_challenge_response(M.SCCCN, SECRET, lns_challenge, cn[A.CHALLENGE_RESPONSE])
    assert not p.events("lac", TunnelClosed) and not p.events("lns", TunnelClosed)


@pytest.mark.parametrize(
    ("lac_secret", "lns_secret", "refuser"),
    [(SECRET, None, "lns"), (None, SECRET, "lac"), (SECRET, b"another secret", "lac")],
    ids=["lac-only", "lns-only", "different"],
)
def test_secret_mismatch_is_not_authorized(
    lac_secret: bytes | None, lns_secret: bytes | None, refuser: str
) -> None:
    p = secret_pair(lac_secret, lns_secret)
    p.lac.open_tunnel(LNS_ADDR, p.now)
    p.run_until(lambda: bool(p.events("lac", TunnelClosed) and p.events("lns", TunnelClosed)), limit=10)
    for side in ("lac", "lns"):
        (closed,) = p.events(side, TunnelClosed)
        assert closed.result_code == StopCCNResult.NOT_AUTHORIZED, side
        assert closed.by_peer is (side != refuser)
        assert not p.events(side, TunnelEstablished)
    stops = [m for m in wire_messages(p, refuser) if m.message_type == M.StopCCN]
    assert len(stops) == 1 and result_of(stops[0])[0] == StopCCNResult.NOT_AUTHORIZED
    # 5.7: the sender of StopCCN releases once it is acknowledged, the receiver a cycle later.
    sender, receiver = (p.lns, p.lac) if refuser == "lns" else (p.lac, p.lns)
    p.run_until(lambda: not sender.tunnels, limit=3)
    assert receiver.tunnels
    p.run_until(lambda: not receiver.tunnels, limit=40)
    assert sender.counters["unknown_tunnel"] == 0


def test_hidden_avps_on_the_wire_and_tunnel_and_session_come_up() -> None:
    p = secret_pair(SECRET, SECRET, hide_avps=True)
    p.lac.open_session(LNS_ADDR, p.now)
    p.run_until(
        lambda: bool(p.events("lac", SessionEstablished) and p.events("lns", SessionEstablished)), limit=10
    )
    seen = set()
    for message in wire_messages(p, secret=SECRET):
        hidden = [a.attr_type for a in message.avps if a.hidden]
        if message.message_type in (M.SCCRQ, M.SCCRP):
            # The receiver may choose its secret by our Host Name in the same message: never hidden.
            assert hidden == [], message.name
        if message.message_type in (M.ICRQ, M.ICRP):
            seen.add(message.message_type)
            assert A.ASSIGNED_SESSION_ID in hidden, message.name
            kinds = [a.attr_type for a in message.avps]
            assert A.RANDOM_VECTOR in kinds
            assert kinds.index(A.RANDOM_VECTOR) < kinds.index(hidden[0])
    assert seen == {M.ICRQ, M.ICRP}
    raw = next(d for s, d in p.wire if s == "lac" and parse_message(d, secret=SECRET).message_type == M.ICRQ)
    _, offset = parse_header(raw)
    h_bits = []
    while offset < len(raw):  # walk the AVP headers by hand: the H bit is 0x4000
        word = int.from_bytes(raw[offset : offset + 2], "big")
        h_bits.append((int.from_bytes(raw[offset + 4 : offset + 6], "big"), bool(word & 0x4000)))
        offset += word & 0x3FF
    assert (A.ASSIGNED_SESSION_ID, True) in h_bits and (A.RANDOM_VECTOR, False) in h_bits
    assert len(p.events("lac", TunnelEstablished)) == 1


def test_protocol_version_2_is_refused_with_result_5() -> None:
    ep = Endpoint(rng=random.Random(3))
    ep.receive_datagram(sccrq(version=ProtocolVersion(2, 0), assigned=77), PEER, 0.0)
    (tx,) = drain(ep)
    stop = parsed(tx.data)
    assert tx.addr == PEER and stop.message_type == M.StopCCN and stop.tunnel_id == 77
    assert result_of(stop) == (StopCCNResult.BAD_PROTOCOL_VERSION, 0x0100)
    (closed,) = [e for e in events(ep) if isinstance(e, TunnelClosed)]
    assert closed.result_code == StopCCNResult.BAD_PROTOCOL_VERSION and not closed.by_peer


# --- Hello (5.5) ------------------------------------------------------------------------------------


def test_hello_after_idle_interval_is_acked() -> None:
    p = Pair()
    lac_tid, lns_tid = open_tunnel(p)
    p.run_for(58.0)
    assert M.HELLO not in [m.message_type for m in wire_messages(p)]
    p.run_for(3.0)
    hellos = [(s, parsed(d)) for s, d in p.wire if parsed(d).message_type == M.HELLO]
    assert len(hellos) == 1  # the first Hello counts as life for the other side
    side, hello = hellos[0]
    sender, tid = (p.lac, lac_tid) if side == "lac" else (p.lns, lns_tid)
    tunnel = sender.tunnels[tid]
    assert tunnel.channel.idle and not tunnel.hello_outstanding  # acknowledged
    assert hello.ns == (2 if side == "lac" else 1)  # after SCCRQ, SCCCN or after SCCRP
    p.run_for(120.0)
    assert len([m for m in wire_messages(p) if m.message_type == M.HELLO]) == 3
    assert not p.events("lac", TunnelClosed) and not p.events("lns", TunnelClosed)


@pytest.mark.parametrize("activity", ["data", "zlb", "note_activity"])
def test_activity_postpones_hello(activity: str) -> None:
    p = Pair()
    lac_tid, lns_tid = open_tunnel(p)
    lac = p.lac
    tunnel = lac.tunnels[lac_tid]
    t0 = tunnel.last_received
    assert lac.get_timer() == pytest.approx(t0 + 60.0)
    when = t0 + 50.0
    if activity == "data":
        frame = build_data_header(lac_tid, 9, payload_length=4) + b"\xff\x03\xc0\x21"
        lac.receive_datagram(frame, LNS_ADDR, when)
    elif activity == "zlb":
        peer = p.lns.tunnels[lns_tid].channel
        lac.receive_datagram(build_zlb(lac_tid, peer.ns, tunnel.channel.ns), LNS_ADDR, when)
    else:
        lac.note_activity(lac_tid, when)
    assert lac.get_timer() == pytest.approx(when + 60.0)
    lac.handle_timer(t0 + 60.0)
    assert drain(lac) == []
    lac.handle_timer(when + 60.0)
    assert [parsed(tx.data).message_type for tx in drain(lac)] == [M.HELLO]


def quiet_lns_pair() -> Pair:
    """The LNS never sends Hello itself, so only the LAC's keepalive is under test."""
    return Pair(lns=EndpointSettings(TunnelSettings(host_name="lns", hello_interval=0)))


def test_peer_that_sends_data_but_never_acks_hello_stays() -> None:
    p = quiet_lns_pair()
    lac_tid, _ = open_tunnel(p)
    put = p.to_lac.put

    def drop_acks(tx: Transmit, src: tuple[str, int], now: float) -> None:
        header, offset = parse_header(tx.data)
        if not (header.is_control and offset == len(tx.data)):
            put(tx, src, now)

    p.to_lac.put = drop_acks  # type: ignore[method-assign]
    p.run_for(62.0)  # a quiet minute: the LAC sends Hello, whose ack is lost
    assert p.lac.tunnels[lac_tid].hello_outstanding
    # then data flows, so often that it would postpone any further Hello (5.5)
    frame = build_data_header(lac_tid, 9, payload_length=2) + b"\xc0\x21"
    for _ in range(50):  # 250 s: several full retransmission cycles of the unanswered Hello
        p.run_for(5.0)
        p.lac.receive_datagram(frame, LNS_ADDR, p.now)
    tunnel = p.lac.tunnels[lac_tid]
    assert tunnel.hello_outstanding and tunnel.channel.stats.retransmissions > 10
    assert not tunnel.closing and not p.events("lac", TunnelClosed)


def test_silent_peer_is_torn_down_after_retransmission_cycle() -> None:
    p = quiet_lns_pair()
    lac_tid, _ = open_tunnel(p)
    p.to_lac.put = lambda tx, src, now: None  # type: ignore[method-assign]
    hello_at = p.lac.tunnels[lac_tid].last_received + 60.0
    p.run_for(hello_at + 30.9 - p.now)
    assert lac_tid in p.lac.tunnels and not p.events("lac", TunnelClosed)
    p.run_for(0.2)
    (closed,) = p.events("lac", TunnelClosed)
    assert closed.local_tunnel_id == lac_tid and not closed.by_peer
    assert closed.result_code == StopCCNResult.GENERAL_ERROR
    assert lac_tid not in p.lac.tunnels
    sent = [m.message_type for m in wire_messages(p, "lac")]
    assert sent.count(M.HELLO) == 6  # the Hello and its five retransmissions


# --- StopCCN (5.7) ----------------------------------------------------------------------------------


def test_stopccn_receiver_acks_holds_and_releases() -> None:
    p = Pair()
    lac_tid, lns_tid = open_tunnel(p)
    for _ in range(2):
        p.lac.open_session(lac_tid, p.now)
    p.run_until(lambda: len(p.events("lns", SessionEstablished)) == 2, limit=10)
    p.run_for(1.0)
    mark = len(p.wire)
    p.lac.close_tunnel(lac_tid, p.now, result_code=StopCCNResult.SHUTTING_DOWN, message="bye")
    p.run_until(lambda: bool(p.events("lns", TunnelClosed)), limit=5)
    received_at = p.now
    (closed,) = p.events("lns", TunnelClosed)
    assert (closed.result_code, closed.message, closed.by_peer) == (StopCCNResult.SHUTTING_DOWN, "bye", True)
    # every call of the tunnel is cleared on both sides, without CDN
    assert len(p.events("lns", SessionClosed)) == 2 and all(e.by_peer for e in p.events("lns", SessionClosed))
    assert len(p.events("lac", SessionClosed)) == 2
    assert not p.lns.tunnels[lns_tid].sessions
    p.run_until(lambda: lac_tid not in p.lac.tunnels, limit=1)  # the sender: released on the ack
    after = [(s, parsed(d)) for s, d in p.wire[mark:]]
    assert [(s, m.name) for s, m in after] == [("lac", "StopCCN"), ("lns", "ZLB")]
    stop_bytes = p.wire[mark][1]
    assert after[1][1].nr == after[0][1].ns + 1
    # the receiver keeps the tunnel, and a retransmitted StopCCN is acknowledged again
    p.run_for(20.0)
    assert lns_tid in p.lns.tunnels
    p.lns.receive_datagram(stop_bytes, LAC_ADDR, p.now)
    (re_ack,) = drain(p.lns)
    assert parsed(re_ack.data).is_zlb and parsed(re_ack.data).nr == after[1][1].nr
    p.run_for(received_at + p.lns.tunnels[lns_tid].settings.retransmission_cycle - 0.1 - p.now)
    assert lns_tid in p.lns.tunnels
    p.run_for(0.2)
    assert lns_tid not in p.lns.tunnels
    assert not [m for m in wire_messages(p) if m.message_type == M.CDN]


# --- tie breaker (4.4.3) ----------------------------------------------------------------------------


def fix_tie_breaker(ep: Endpoint, value: int) -> None:
    urandom = ep.urandom
    ep.urandom = lambda n: value.to_bytes(8, "big") if n == 8 else urandom(n)  # type: ignore[method-assign]


@pytest.mark.parametrize("winner", ["lac", "lns"])
def test_tie_breaker_leaves_one_tunnel(winner: str) -> None:
    p = Pair()
    fix_tie_breaker(p.lac, 0x1111 if winner == "lac" else 0x9999)
    fix_tie_breaker(p.lns, 0x1111 if winner == "lns" else 0x9999)
    lac_tid = p.lac.open_tunnel(LNS_ADDR, p.now)
    p.lac.open_session(lac_tid, p.now)  # an incoming call, waiting for the tunnel
    lns_tid = p.lns.open_tunnel(LAC_ADDR, p.now)
    p.lns.open_session(lns_tid, p.now, call_type=CallType.OUTGOING)
    p.run_until(
        lambda: (
            len(p.events("lac", SessionEstablished)) == 2 and len(p.events("lns", SessionEstablished)) == 2
        ),
        limit=10,
    )
    p.run_for(5.0)
    values = {s: parsed(d)[A.TIE_BREAKER] for s, d in p.wire if parsed(d).message_type == M.SCCRQ}
    assert values == {
        "lac": 0x1111 if winner == "lac" else 0x9999,
        "lns": 0x1111 if winner == "lns" else 0x9999,
    }
    assert min(values, key=values.__getitem__) == winner
    for side, ep in (("lac", p.lac), ("lns", p.lns)):
        (tunnel,) = ep.tunnels.values()
        assert tunnel.state is TS.ESTABLISHED
        assert tunnel.initiator is (side == winner), side
        assert len(tunnel.sessions) == 2
        assert len(p.events(side, TunnelEstablished)) == 1
        assert not p.events(side, TunnelClosed) and not p.events(side, SessionClosed)
    loser = p.lns if winner == "lac" else p.lac
    assert loser.counters["tie_breaker_lost"] == 1
    # the calls of the discarded tunnel kept their Session IDs on the surviving tunnel
    assert (lac_tid if winner == "lns" else lns_tid) not in loser.tunnels


def test_tie_breaker_sent_by_one_side_only_wins() -> None:
    p = Pair(lns=EndpointSettings(TunnelSettings(host_name="lns", tie_breaker=False)))
    p.lac.open_tunnel(LNS_ADDR, p.now)
    p.lns.open_tunnel(LAC_ADDR, p.now)
    p.run_until(established(p), limit=10)
    p.run_for(5.0)
    ((lac_tunnel,), (lns_tunnel,)) = (list(p.lac.tunnels.values()), list(p.lns.tunnels.values()))
    assert lac_tunnel.initiator and not lns_tunnel.initiator
    assert lac_tunnel.state is lns_tunnel.state is TS.ESTABLISHED


def test_without_tie_breakers_two_tunnels() -> None:
    no_tb = {"tie_breaker": False}
    p = Pair(
        lac=EndpointSettings(TunnelSettings(host_name="lac", **no_tb)),  # type: ignore[arg-type]
        lns=EndpointSettings(TunnelSettings(host_name="lns", **no_tb)),  # type: ignore[arg-type]
    )
    p.lac.open_tunnel(LNS_ADDR, p.now)
    p.lns.open_tunnel(LAC_ADDR, p.now)
    p.run_until(established(p, 2), limit=10)
    p.run_for(5.0)
    assert all(A.TIE_BREAKER not in m for m in wire_messages(p) if m.message_type == M.SCCRQ)
    for ep in (p.lac, p.lns):
        assert len(ep.tunnels) == 2
        assert sorted(t.initiator for t in ep.tunnels.values()) == [False, True]
        assert all(t.state is TS.ESTABLISHED for t in ep.tunnels.values())


# --- the endpoint's demultiplexing ---------------------------------------------------------------------


def test_retransmitted_sccrq_does_not_create_second_tunnel() -> None:
    ep = Endpoint(rng=random.Random(3))
    ep.receive_datagram(sccrq(assigned=77), PEER, 0.0)
    (first,) = drain(ep)
    assert parsed(first.data).message_type == M.SCCRP
    ep.receive_datagram(sccrq(assigned=77), PEER, 1.0)
    (again,) = drain(ep)
    reply = parsed(again.data)
    assert reply.is_zlb and reply.tunnel_id == 77 and reply.nr == 1  # re-acked, not answered anew
    assert len(ep.tunnels) == 1 and ep.counters["tunnels_accepted"] == 1
    # the same Assigned Tunnel ID from another peer is another tunnel
    ep.receive_datagram(sccrq(assigned=77), ("198.51.100.8", 1701), 2.0)
    assert len(ep.tunnels) == 2


def test_datagram_from_wrong_peer_is_dropped() -> None:
    p = Pair()
    _, lns_tid = open_tunnel(p)
    tunnel = p.lns.tunnels[lns_tid]
    ns, nr, seen = tunnel.channel.nr, tunnel.channel.ns, tunnel.last_received
    hello = build_message(M.HELLO, tunnel_id=lns_tid, ns=ns, nr=nr).encode()
    for addr in (("192.0.2.99", 1701), (LAC_ADDR[0], 40000)):
        p.lns.receive_datagram(hello, addr, p.now + 1)
    assert p.lns.counters["wrong_peer"] == 2
    assert drain(p.lns) == [] and events(p.lns) == []
    assert (tunnel.channel.nr, tunnel.channel.ns, tunnel.last_received) == (ns, nr, seen)
    assert tunnel.peer == LAC_ADDR
    p.lns.receive_datagram(hello, LAC_ADDR, p.now + 1)  # the same bytes from the peer are fine
    assert tunnel.channel.nr == ns + 1


def test_unknown_tunnel_and_malformed_header_are_counted() -> None:
    ep = Endpoint(rng=random.Random(3))
    ep.receive_datagram(build_message(M.HELLO, tunnel_id=555).encode(), PEER, 0.0)
    ep.receive_datagram(build_data_header(555, 1, payload_length=2) + b"\x00\x00", PEER, 0.0)
    ep.receive_datagram(build_data_header(0, 1, payload_length=2) + b"\x00\x00", PEER, 0.0)
    ep.receive_datagram(build_zlb(0, 0, 0), PEER, 0.0)
    assert ep.counters["unknown_tunnel"] == 4
    good = build_message(M.HELLO, tunnel_id=555).encode()
    for bad in (b"", b"\xc8", good[:-1], bytes([good[0], (good[1] & 0xF0) | 3]) + good[2:]):
        ep.receive_datagram(bad, PEER, 0.0)
    assert ep.counters["malformed_header"] == 4
    assert drain(ep) == [] and events(ep) == [] and not ep.tunnels


@pytest.mark.parametrize("limit", ["max_tunnels", "max_tunnels_per_peer"])
def test_tunnel_limits_refuse_with_no_resources(limit: str) -> None:
    p = Pair(lns=EndpointSettings(TunnelSettings(host_name="lns"), **{limit: 2}))  # type: ignore[arg-type]
    tids = [p.lac.open_tunnel(LNS_ADDR, p.now) for _ in range(3)]
    p.run_until(lambda: len(p.events("lac", TunnelEstablished)) + len(p.events("lac", TunnelClosed)) == 3)
    p.run_for(1.0)
    (closed,) = p.events("lac", TunnelClosed)
    assert closed.local_tunnel_id == tids[2] and closed.by_peer
    assert (closed.result_code, closed.error_code) == (StopCCNResult.GENERAL_ERROR, GeneralError.NO_RESOURCES)
    stops = [m for m in wire_messages(p, "lns") if m.message_type == M.StopCCN]
    assert [(m.tunnel_id, result_of(m)) for m in stops] == [
        (tids[2], (StopCCNResult.GENERAL_ERROR, GeneralError.NO_RESOURCES))
    ]
    assert len(p.events("lns", TunnelEstablished)) == 2 and p.lns.counters["tunnels_refused"] == 1
    p.run_until(lambda: len(p.lns.tunnels) == 2, limit=3)  # the refusal is acknowledged
