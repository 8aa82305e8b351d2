"""The RFC 1661 4 automaton: the table against the RFC's text, every cell, the counters and timers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ppplayer import RecordingLayer

from l2tpfast.errors import PppError
from l2tpfast.ppp.constants import Code, LcpOption, Protocol
from l2tpfast.ppp.frame import Option, Packet, build_options, build_packet, parse_options, parse_packet
from l2tpfast.ppp.fsm import (
    NEGOTIATING,
    TIMER_STATES,
    TRANSITIONS,
    Action,
    Automaton,
    FsmSettings,
    Input,
    State,
)
from l2tpfast.ppp.lcp import Lcp, LcpSettings

# RFC 1661 4.1, verbatim: TRANSITIONS is checked against it cell by cell.
RFC_TABLE = """
      | State
      |    0         1         2         3         4         5
Events| Initial   Starting  Closed    Stopped   Closing   Stopping
------+-----------------------------------------------------------
 Up   |    2     irc,scr/6     -         -         -         -
 Down |    -         -         0       tls/1       0         1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r
 Close|    0       tlf/0       2         2         4         4
      |
  TO+ |    -         -         -         -       str/4     str/5
  TO- |    -         -         -         -       tlf/2     tlf/3
      |
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
 RCA  |    -         -       sta/2     sta/3       4         5
 RCN  |    -         -       sta/2     sta/3       4         5
      |
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3
      |
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
 RXJ+ |    -         -         2         3         4         5
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
      |
 RXR  |    -         -         2         3         4         5

      | State
      |    6         7         8           9
Events| Req-Sent  Ack-Rcvd  Ack-Sent    Opened
------+-----------------------------------------
 Up   |    -         -         -           -
 Down |    1         1         1         tld/1
 Open |    6         7         8           9r
 Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
      |
  TO+ |  scr/6     scr/6     scr/8         -
  TO- |  tlf/3p    tlf/3p    tlf/3p        -
      |
 RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
      |
 RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    6         6         8       tld,scr/6
      |
 RUC  |  scj/6     scj/7     scj/8       scj/9
 RXJ+ |    6         6         8           9
 RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
      |
 RXR  |    6         7         8         ser/9
"""

SEND_CODE = {
    Action.SCR: Code.CONFIGURE_REQUEST,
    Action.SCA: Code.CONFIGURE_ACK,
    Action.SCN: Code.CONFIGURE_REJECT,  # the stimulus for RCR- below carries an unknown option
    Action.STR: Code.TERMINATE_REQUEST,
    Action.STA: Code.TERMINATE_ACK,
    Action.SCJ: Code.CODE_REJECT,
    Action.SER: Code.ECHO_REPLY,
}
CALLBACK = {Action.TLU: "up", Action.TLD: "down", Action.TLS: "started", Action.TLF: "finished"}


class ScriptedHandler:
    """Requests ``request``; answers the peer with ``verdict``; records what it was told."""

    def __init__(self, request: list[Option] | None = None) -> None:
        self.request = request if request is not None else [(1, b"\x05\xdc")]
        self.verdict: tuple[Code, list[Option]] | None = None
        self.resets = 0
        self.naks: list[list[Option]] = []
        self.rejects: list[list[Option]] = []

    def reset(self) -> None:
        self.resets += 1

    def build_request(self) -> list[Option]:
        return list(self.request)

    def receive_request(self, options: list[Option]) -> tuple[Code, list[Option]]:
        return self.verdict or (Code.CONFIGURE_ACK, options)

    def receive_ack(self, options: list[Option]) -> bool:
        return True

    def receive_nak(self, options: list[Option]) -> None:
        self.naks.append(options)

    def receive_reject(self, options: list[Option]) -> bool:
        self.rejects.append(options)
        return True


def sent(outbox: list[tuple[int, bytes]]) -> list[Packet]:
    packets = [parse_packet(info) for _, info in outbox]
    outbox.clear()
    return packets


def codes(outbox: list[tuple[int, bytes]]) -> list[int]:
    return [p.code for p in sent(outbox)]


DEFAULT_FSM = FsmSettings()


def make(settings: FsmSettings = DEFAULT_FSM) -> tuple[Automaton, ScriptedHandler, RecordingLayer, list]:
    handler = ScriptedHandler()
    layer = RecordingLayer()
    outbox: list[tuple[int, bytes]] = []
    return Automaton(Protocol.IPCP, handler, layer, outbox, settings), handler, layer, outbox


# --- the table itself ---


def parse_rfc_table() -> dict[tuple[State, Input], tuple[tuple[Action, ...], State]]:
    events = {e.value: e for e in Input}
    table = {}
    for block in RFC_TABLE.split("\n\n"):
        lines = [line for line in block.splitlines() if "|" in line]
        states = [State(int(n)) for n in lines[1].split("|")[1].split()]
        for line in lines[3:]:
            name, cells = line.split("|")
            if not name.strip():
                continue
            # Cells are separated by spaces; an action list never contains one.
            for state, cell in zip(states, cells.split(), strict=True):
                if cell == "-":
                    continue
                acts, _, target = cell.rpartition("/")
                number = re.match(r"\d", target)
                assert number is not None
                actions = tuple(Action(a) for a in acts.split(",")) if acts else ()
                table[(state, events[name.strip()])] = (actions, State(int(number.group())))
    return table


def test_table_is_rfc_1661_4_1_cell_for_cell() -> None:
    rfc = parse_rfc_table()
    assert len(rfc) == 120
    assert rfc == TRANSITIONS


def test_table_is_in_rfc_order() -> None:
    order = [(e, s) for e in Input for s in State]
    keys = [(e, s) for s, e in TRANSITIONS]
    assert keys == [k for k in order if (k[1], k[0]) in TRANSITIONS]


def test_timer_states_are_those_with_timeout_events() -> None:
    assert {State.CLOSING, State.STOPPING, *NEGOTIATING} == TIMER_STATES


# --- every cell, driven by real stimuli on an LCP automaton ---

NOW = 100.0


def lcp_in(state: State) -> tuple[Lcp, RecordingLayer, list[tuple[int, bytes]]]:
    layer = RecordingLayer()
    outbox: list[tuple[int, bytes]] = []
    lcp = Lcp(layer, outbox, LcpSettings(magic=False, echo_interval=0), rand=lambda n: b"\x11" * n)
    lcp.state = state
    if state in TIMER_STATES:
        lcp._restart_deadline = NOW + 3
        lcp.restart_count = 5
    # An outstanding Configure-Request, so an Ack/Nak for it is valid (RFC 1661 5.2).
    lcp._request, lcp._request_id, lcp._request_answered = [], 7, False
    return lcp, layer, outbox


def stimulate(lcp: Lcp, event: Input, now: float = NOW) -> None:
    if event is Input.UP:
        lcp.up(now)
    elif event is Input.DOWN:
        lcp.down(now)
    elif event is Input.OPEN:
        lcp.open(now)
    elif event is Input.CLOSE:
        lcp.close(now, "bye")
    elif event in (Input.TO_PLUS, Input.TO_MINUS):
        if lcp._restart_deadline is None:
            lcp._event(event, now)  # no timer runs in this state: only the event itself can be fed
            return
        lcp.restart_count = 1 if event is Input.TO_PLUS else 0
        lcp.handle_timer(lcp._restart_deadline)
    elif event is Input.RCR_PLUS:
        lcp.receive(Packet(Code.CONFIGURE_REQUEST, 50, b""), now)
    elif event is Input.RCR_MINUS:
        lcp.receive(Packet(Code.CONFIGURE_REQUEST, 50, bytes([99, 2])), now)
    elif event is Input.RCA:
        lcp.receive(Packet(Code.CONFIGURE_ACK, 7, b""), now)
    elif event is Input.RCN:
        lcp.receive(Packet(Code.CONFIGURE_NAK, 7, b""), now)
    elif event is Input.RTR:
        lcp.receive(Packet(Code.TERMINATE_REQUEST, 51, b"why"), now)
    elif event is Input.RTA:
        lcp.receive(Packet(Code.TERMINATE_ACK, 52, b""), now)
    elif event is Input.RUC:
        lcp.receive(Packet(42, 53, b"x"), now)
    elif event is Input.RXJ_PLUS:
        lcp.receive(Packet(Code.CODE_REJECT, 54, build_packet(42, 1, b"")), now)
    elif event is Input.RXJ_MINUS:
        lcp.receive(Packet(Code.CODE_REJECT, 55, build_packet(Code.CONFIGURE_REQUEST, 1)), now)
    elif event is Input.RXR:
        lcp.receive(Packet(Code.ECHO_REQUEST, 56, b"\0\0\0\0ping"), now)


@pytest.mark.parametrize(("state", "event"), list(TRANSITIONS), ids=lambda x: getattr(x, "name", x))
def test_every_cell(state: State, event: Input) -> None:
    actions, new_state = TRANSITIONS[(state, event)]
    lcp, layer, outbox = lcp_in(state)
    stimulate(lcp, event)
    assert lcp.state is new_state
    packets = sent(outbox)
    assert [p.code for p in packets] == [SEND_CODE[a] for a in actions if a in SEND_CODE]
    assert layer.calls == [(CALLBACK[a], Protocol.LCP) for a in actions if a in CALLBACK]
    assert lcp.counters.fsm_errors == 0
    # RFC 1661 4.1: the Restart timer runs exactly in the states with TO events.
    assert (lcp.deadline is not None) == (new_state in TIMER_STATES)
    fsm = lcp.fsm_settings
    if Action.IRC in actions:
        expected = fsm.max_terminate if Action.STR in actions else fsm.max_configure
        sends = Action.SCR in actions or Action.STR in actions  # "decremented for each transmission"
        assert lcp.restart_count == expected - sends
    if Action.ZRC in actions:
        assert lcp.restart_count == 0
        assert lcp.deadline == NOW + fsm.restart_timer
    for p in packets:
        if p.code in (Code.CONFIGURE_ACK, Code.CONFIGURE_REJECT, Code.TERMINATE_ACK):
            assert p.identifier in (50, 51, 52, 53, 54, 55, 7)  # replies echo the Identifier
        if p.code == Code.ECHO_REPLY:
            assert (p.identifier, p.data) == (56, b"\0\0\0\0ping")
        if p.code == Code.CODE_REJECT:
            assert p.data == build_packet(42, 53, b"x")
        if p.code == Code.TERMINATE_REQUEST and event is Input.CLOSE:
            assert p.data == b"bye"


MISSING = [(s, e) for s in State for e in Input if (s, e) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "event"), MISSING, ids=lambda x: getattr(x, "name", x))
def test_missing_cells_are_logged_never_raised(state: State, event: Input) -> None:
    lcp, layer, outbox = lcp_in(state)
    before = lcp.counters.fsm_errors
    stimulate(lcp, event)
    assert lcp.state is state
    assert outbox == []
    assert layer.calls == []
    assert lcp.counters.fsm_errors == before + 1


def test_every_state_input_pair_is_covered() -> None:
    assert len(TRANSITIONS) + len(MISSING) == len(State) * len(Input)


# --- the automaton's own rules ---


def opened_pair_halves() -> tuple[Automaton, ScriptedHandler, RecordingLayer, list]:
    a, handler, layer, outbox = make()
    a.up(0)
    a.open(0)
    (req,) = sent(outbox)
    a.receive(Packet(Code.CONFIGURE_ACK, req.identifier, req.data), 0)
    a.receive(Packet(Code.CONFIGURE_REQUEST, 9, b""), 0)
    assert a.state is State.OPENED
    outbox.clear()
    layer.calls.clear()
    return a, handler, layer, outbox


def test_retransmission_keeps_identifier_then_gives_up_after_max_configure() -> None:
    a, _handler, layer, outbox = make(FsmSettings(restart_timer=2.0, max_configure=3))
    a.up(0.0)
    a.open(0.0)
    first = sent(outbox)
    assert [p.code for p in first] == [Code.CONFIGURE_REQUEST]
    assert a.deadline == 2.0
    a.handle_timer(1.9)  # early: nothing
    assert outbox == []
    ids = [first[0].identifier]
    for t in (2.0, 4.0):
        a.handle_timer(t)
        (p,) = sent(outbox)
        assert p.code == Code.CONFIGURE_REQUEST and p.data == first[0].data
        ids.append(p.identifier)
    assert len(set(ids)) == 1  # RFC 1661 5.1: the same Identifier on retransmission
    a.handle_timer(6.0)  # counter expired: TO-
    assert outbox == []
    assert a.state is State.STOPPED
    assert layer.calls == [("finished", Protocol.IPCP)]
    assert a.deadline is None


def test_passive_option_skips_this_layer_finished() -> None:
    a, _, layer, _outbox = make(FsmSettings(max_configure=1, passive=True))
    a.up(0)
    a.open(0)
    a.handle_timer(3.0)
    assert a.state is State.STOPPED
    assert layer.calls == []


def test_changed_options_get_a_new_identifier_on_timeout() -> None:
    a, handler, _, outbox = make()
    a.up(0)
    a.open(0)
    (first,) = sent(outbox)
    handler.request = [(1, b"\x05\x00")]
    a.handle_timer(3.0)
    (second,) = sent(outbox)
    assert second.identifier != first.identifier


def test_ack_with_wrong_identifier_or_options_is_discarded() -> None:
    a, _, _, outbox = make()
    a.up(0)
    a.open(0)
    (req,) = sent(outbox)
    a.receive(Packet(Code.CONFIGURE_ACK, (req.identifier + 1) & 0xFF, req.data), 0)
    a.receive(Packet(Code.CONFIGURE_ACK, req.identifier, b""), 0)
    a.receive(Packet(Code.CONFIGURE_NAK, (req.identifier + 1) & 0xFF, b""), 0)
    assert a.state is State.REQ_SENT
    assert a.counters.dropped == 3
    a.receive(Packet(Code.CONFIGURE_ACK, req.identifier, req.data), 0)
    assert a.state is State.ACK_RCVD
    # RFC 1661 5.1: one valid reply per Identifier; a duplicate Ack is discarded.
    a.receive(Packet(Code.CONFIGURE_ACK, req.identifier, req.data), 0)
    assert a.state is State.ACK_RCVD
    assert outbox == []


def test_reject_must_be_a_subset_of_the_request() -> None:
    a, handler, _, outbox = make()
    a.up(0)
    a.open(0)
    (req,) = sent(outbox)
    a.receive(Packet(Code.CONFIGURE_REJECT, req.identifier, build_options([(1, b"\x01\x00")])), 0)
    assert handler.rejects == []
    assert a.counters.dropped == 1
    a.receive(Packet(Code.CONFIGURE_REJECT, req.identifier, req.data), 0)
    assert handler.rejects == [[(1, b"\x05\xdc")]]
    assert codes(outbox) == [Code.CONFIGURE_REQUEST]  # RCN in Req-Sent: irc, scr


def test_nak_turns_into_reject_after_max_failure() -> None:
    a, handler, _, outbox = make(FsmSettings(max_failure=2))
    a.up(0)
    a.open(0)
    outbox.clear()
    request = [(3, b"\x0a\x00\x00\x01"), (9, b"")]
    # The handler Naks option 3 and appends a hint (option 7) the peer never sent.
    handler.verdict = (Code.CONFIGURE_NAK, [(3, b"\x0a\x00\x00\x02"), (7, b"")])
    for i in range(2):
        a.receive(Packet(Code.CONFIGURE_REQUEST, i, build_options(request)), 0)
        (p,) = sent(outbox)
        assert p.code == Code.CONFIGURE_NAK
    a.receive(Packet(Code.CONFIGURE_REQUEST, 5, build_options(request)), 0)
    (p,) = sent(outbox)
    # RFC 1661 4.6: the Nak'ed option as the peer sent it, the appended hint dropped.
    assert (p.code, p.identifier, parse_options(p.data)) == (Code.CONFIGURE_REJECT, 5, [request[0]])
    # Only hints left: nothing to reject, so the request is acknowledged as it is.
    handler.verdict = (Code.CONFIGURE_NAK, [(7, b"")])
    a.receive(Packet(Code.CONFIGURE_REQUEST, 6, build_options(request[1:])), 0)
    (p,) = sent(outbox)
    assert (p.code, p.data) == (Code.CONFIGURE_ACK, build_options(request[1:]))
    assert a.state is State.ACK_SENT
    assert a.acked_peer == request[1:]


def test_an_ack_resets_the_failure_count() -> None:
    a, handler, _, outbox = make(FsmSettings(max_failure=1))
    a.up(0)
    a.open(0)
    handler.verdict = (Code.CONFIGURE_NAK, [(3, b"\0\0\0\1")])
    a.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options([(3, b"\0\0\0\0")])), 0)
    handler.verdict = None
    a.receive(Packet(Code.CONFIGURE_REQUEST, 2, build_options([(3, b"\0\0\0\1")])), 0)
    handler.verdict = (Code.CONFIGURE_NAK, [(3, b"\0\0\0\1")])
    a.receive(Packet(Code.CONFIGURE_REQUEST, 3, build_options([(3, b"\0\0\0\0")])), 0)
    assert codes(outbox)[-1] == Code.CONFIGURE_NAK


def test_terminate_we_close_and_peer_acks() -> None:
    a, _, layer, outbox = opened_pair_halves()
    a.close(5.0, "admin down")
    (p,) = sent(outbox)
    assert (p.code, p.data) == (Code.TERMINATE_REQUEST, b"admin down")
    assert a.state is State.CLOSING
    assert layer.calls == [("down", Protocol.IPCP)]
    a.receive(Packet(Code.TERMINATE_ACK, p.identifier, b""), 6.0)
    assert a.state is State.CLOSED
    assert layer.calls[-1] == ("finished", Protocol.IPCP)
    assert a.deadline is None


def test_terminate_retransmitted_then_closed_after_max_terminate() -> None:
    a, _, layer, outbox = opened_pair_halves()
    a.close(0.0, "bye")
    a.handle_timer(3.0)
    first, second = sent(outbox)
    assert second.code == Code.TERMINATE_REQUEST
    assert (second.identifier, second.data) == (first.identifier, first.data)
    a.handle_timer(6.0)  # Max-Terminate = 2 sent: TO-
    assert outbox == []
    assert a.state is State.CLOSED
    assert layer.calls == [("down", Protocol.IPCP), ("finished", Protocol.IPCP)]


def test_terminate_from_peer_waits_one_restart_period() -> None:
    a, _, layer, outbox = opened_pair_halves()
    a.receive(Packet(Code.TERMINATE_REQUEST, 77, b"going"), 1.0)
    (p,) = sent(outbox)
    assert (p.code, p.identifier) == (Code.TERMINATE_ACK, 77)
    assert a.peer_terminate_reason == b"going"
    assert a.state is State.STOPPING
    assert a.deadline == 4.0  # RFC 1661 4.4 zrc, 3.7: wait a Restart time after the Terminate-Ack
    a.handle_timer(4.0)
    assert a.state is State.STOPPED
    assert layer.calls == [("down", Protocol.IPCP), ("finished", Protocol.IPCP)]
    assert outbox == []


def test_unknown_code_is_code_rejected_truncated_to_peer_mru() -> None:
    a, _, _, outbox = opened_pair_halves()
    a.peer_mru = 20
    a.receive(Packet(Code.ECHO_REQUEST, 3, bytes(100)), 0)  # RFC 5072 3: NCPs use codes 1-7
    (p,) = sent(outbox)
    assert p.code == Code.CODE_REJECT
    assert len(build_packet(p.code, p.identifier, p.data)) == 20
    assert p.data == build_packet(Code.ECHO_REQUEST, 3, bytes(100))[:16]
    a.receive(Packet(200, 4, b""), 0)
    (q,) = sent(outbox)
    assert q.identifier != p.identifier  # RFC 1661 5.6: a new Identifier for each Code-Reject
    assert a.state is State.OPENED


def test_code_reject_of_configure_request_is_catastrophic() -> None:
    a, _, _layer, outbox = opened_pair_halves()
    a.receive(Packet(Code.CODE_REJECT, 1, build_packet(200, 1)), 0)
    assert a.state is State.OPENED
    a.receive(Packet(Code.CODE_REJECT, 2, b""), 0)  # nothing rejected: discarded
    assert a.counters.dropped == 1
    a.receive(Packet(Code.CODE_REJECT, 3, build_packet(Code.CONFIGURE_REQUEST, 1)), 0)
    assert a.state is State.STOPPING
    assert codes(outbox) == [Code.TERMINATE_REQUEST]


def test_restart_option_renegotiates_on_open() -> None:
    a, _handler, layer, outbox = make(FsmSettings(restart_on_open=True))
    a.up(0)
    a.open(0)
    (req,) = sent(outbox)
    a.receive(Packet(Code.CONFIGURE_ACK, req.identifier, req.data), 0)
    a.receive(Packet(Code.CONFIGURE_REQUEST, 9, b""), 0)
    outbox.clear()
    layer.calls.clear()
    a.open(1.0)
    assert a.state is State.REQ_SENT
    assert codes(outbox) == [Code.CONFIGURE_REQUEST]
    assert layer.calls == [("down", Protocol.IPCP)]


def test_without_restart_option_open_in_opened_does_nothing() -> None:
    a, _, layer, outbox = opened_pair_halves()
    a.open(1.0)
    assert a.state is State.OPENED
    assert outbox == [] and layer.calls == []


def test_handler_reset_once_per_negotiation() -> None:
    a, handler, _, outbox = make()
    a.up(0)
    a.open(0)
    assert handler.resets == 1
    a.handle_timer(3.0)  # a retransmission is the same negotiation
    (req, _) = sent(outbox)
    a.receive(Packet(Code.CONFIGURE_NAK, req.identifier, b""), 3.0)
    assert handler.resets == 1
    assert handler.naks == [[]]


def test_counters() -> None:
    a, _, _, _outbox = opened_pair_halves()
    assert a.counters.sent[Code.CONFIGURE_REQUEST] == 1
    assert a.counters.sent[Code.CONFIGURE_ACK] == 1
    assert a.counters.received[Code.CONFIGURE_ACK] == 1
    assert a.counters.received[Code.CONFIGURE_REQUEST] == 1


def test_up_and_down_follow_lower_layer() -> None:
    a, _, layer, outbox = opened_pair_halves()
    a.down(1.0)
    assert a.state is State.STARTING
    assert layer.calls == [("down", Protocol.IPCP)]
    a.up(2.0)
    assert a.state is State.REQ_SENT
    assert codes(outbox) == [Code.CONFIGURE_REQUEST]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=40), max_size=8),
    st.sampled_from(list(State)),
)
def test_random_bytes_never_raise(blobs: list[bytes], state: State) -> None:
    lcp, _, _outbox = lcp_in(state)
    a, _, _, _ = make()
    a.state = state
    for blob in blobs:
        try:
            packet = parse_packet(blob)
        except PppError:
            continue
        lcp.receive(packet, NOW)
        a.receive(packet, NOW)
        assert isinstance(lcp.state, State) and isinstance(a.state, State)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=30), st.sampled_from(list(State)))
def test_random_packets_never_raise(code: int, identifier: int, data: bytes, state: State) -> None:
    lcp, _, _ = lcp_in(state)
    lcp.receive(Packet(code, identifier, data), NOW)
    lcp.handle_timer(NOW + 1000)
    assert isinstance(lcp.state, State)


def test_magic_option_constants_are_lcp() -> None:
    # The scripted LCP stimuli above rely on option 99 being unknown to LCP.
    assert 99 not in set(LcpOption)
