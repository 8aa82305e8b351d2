"""The reliable control channel of RFC 2661 5.8 and the slow start of Appendix A, driven directly.

Every test feeds :class:`ControlChannel` sequence numbers and a fake clock and
inspects the datagrams it produces (parsed back with the wire codec).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from l2tpfast.control.channel import (
    ChannelSettings,
    ControlChannel,
    congestion_step,
    send_window,
    slow_start_step,
)
from l2tpfast.wire.constants import MessageType
from l2tpfast.wire.header import parse_header
from l2tpfast.wire.message import ControlMessage, build_message, parse_message

PEER_TUNNEL_ID = 4242


@dataclass(frozen=True)
class Out:
    """One datagram the channel produced, as the peer would read it."""

    ns: int
    nr: int
    zlb: bool
    message_type: int | None


def hello() -> ControlMessage:
    return build_message(MessageType.HELLO, [], tunnel_id=PEER_TUNNEL_ID)


def make(settings: ChannelSettings | None = None, **kwargs: object) -> ControlChannel[str]:
    channel: ControlChannel[str] = ControlChannel(settings or ChannelSettings(), **kwargs)  # type: ignore[arg-type]
    channel.peer_tunnel_id = PEER_TUNNEL_ID
    return channel


def drain(channel: ControlChannel[str]) -> list[Out]:
    out = []
    for data in channel.datagrams():
        header, offset = parse_header(data)
        assert header.is_control and header.tunnel_id == PEER_TUNNEL_ID
        assert header.ns is not None and header.nr is not None
        message = parse_message(data)
        out.append(Out(header.ns, header.nr, offset == len(data), message.message_type))
    return out


def ack(channel: ControlChannel[str], nr: int, now: float) -> None:
    """The peer's ZLB acknowledging everything before ``nr``."""
    assert channel.receive(0, nr, True, "zlb", now) == []


def run_timers(channel: ControlChannel[str], until: float) -> list[tuple[float, list[Out]]]:
    """Fire every timer due up to ``until``; return what each firing sent."""
    fired = []
    for _ in range(1000):
        when = channel.next_timer()
        if when is None or when > until:
            return fired
        channel.handle_timer(when)
        fired.append((when, drain(channel)))
    raise AssertionError("timer loop did not settle")


# --- Ns and Nr --------------------------------------------------------------------------------


def test_ns_counts_messages_not_zlbs() -> None:
    ch = make()
    ch.send(hello(), 0.0)
    assert drain(ch) == [Out(0, 0, False, MessageType.HELLO)]
    ack(ch, 1, 0.1)
    ch.send_ack()
    # 5.8: a ZLB carries the next Ns but does not take it.
    assert drain(ch) == [Out(1, 0, True, None)]
    assert ch.ns == 1
    ch.send_ack()
    ch.send(hello(), 0.2)
    assert drain(ch) == [Out(1, 0, True, None), Out(1, 0, False, MessageType.HELLO)]
    assert ch.ns == 2


def test_nr_is_next_expected_and_rides_on_messages() -> None:
    ch = make()
    assert ch.receive(0, 0, False, "a", 0.0) == ["a"]
    assert ch.nr == 1
    assert ch.receive(1, 0, False, "b", 0.0) == ["b"]
    assert ch.nr == 2
    ch.send(hello(), 0.01)
    assert drain(ch) == [Out(0, 2, False, MessageType.HELLO)]


def test_send_wraps_at_65535() -> None:
    ch = make(peer_window=4)
    ch.ns = 65534
    ch.cwnd = 4
    acked: list[int] = []
    for i in range(4):
        ch.send(hello(), 0.0, on_acked=lambda i=i: acked.append(i))
    assert [o.ns for o in drain(ch)] == [65534, 65535, 0, 1]
    assert ch.ns == 2
    ack(ch, 0, 0.1)  # acknowledges 65534 and 65535 across the wrap
    assert acked == [0, 1]
    assert ch.outstanding == 2
    ack(ch, 2, 0.2)
    assert acked == [0, 1, 2, 3]
    assert ch.outstanding == 0 and ch.stats.bad_nr == 0


def test_receive_wraps_at_65535_with_reordering() -> None:
    ch = make()
    ch.nr = 65534
    assert ch.receive(65534, 0, False, "a", 0.0) == ["a"]
    assert ch.receive(0, 0, False, "c", 0.0) == []  # one ahead across the wrap: queued
    assert ch.receive(65535, 0, False, "b", 0.0) == ["b", "c"]
    assert ch.nr == 1
    assert ch.receive(1, 0, False, "d", 0.0) == ["d"]
    assert ch.nr == 2
    assert ch.receive(65535, 0, False, "b", 0.1) == []  # old: a duplicate, not new
    assert ch.stats.duplicates == 1
    ch.send(hello(), 0.2)
    assert drain(ch)[-1] == Out(0, 2, False, MessageType.HELLO)


# --- retransmission ---------------------------------------------------------------------------


def test_retransmission_schedule_defaults() -> None:
    ch = make()
    ch.send(hello(), 0.0)
    assert drain(ch) == [Out(0, 0, False, MessageType.HELLO)]
    fired = run_timers(ch, 100.0)
    # 1, 2, 4, 8, 8 (capped) seconds apart; after the fifth, one more interval, then give up.
    assert [t for t, out in fired if out] == [1.0, 3.0, 7.0, 15.0, 23.0]
    assert all(out == [Out(0, 0, False, MessageType.HELLO)] for _, out in fired if out)
    assert fired[-1] == (31.0, [])
    assert ch.failed
    assert ch.next_timer() is None
    assert ch.stats.retransmissions == 5
    ch.send(hello(), 40.0)  # a failed channel sends nothing more
    assert drain(ch) == []


def test_retransmission_schedule_custom() -> None:
    ch = make(ChannelSettings(retransmit_cap=16.0, max_retries=3))
    ch.send(hello(), 0.0)
    drain(ch)
    fired = run_timers(ch, 100.0)
    assert [t for t, out in fired if out] == [1.0, 3.0, 7.0]
    assert fired[-1] == (15.0, [])
    assert ch.failed

    ch = make(ChannelSettings(retransmit_cap=16.0, max_retries=6))
    ch.send(hello(), 0.0)
    drain(ch)
    fired = run_timers(ch, 200.0)
    assert [t for t, out in fired if out] == [1.0, 3.0, 7.0, 15.0, 31.0, 47.0]
    assert fired[-1] == (63.0, [])
    assert ch.failed


def test_retransmission_keeps_ns_and_carries_current_nr() -> None:
    ch = make()
    ch.send(hello(), 0.0)
    assert drain(ch) == [Out(0, 0, False, MessageType.HELLO)]
    assert ch.receive(0, 0, False, "a", 0.5) == ["a"]  # Nr 0 acks nothing of ours
    fired = run_timers(ch, 1.0)
    assert fired == [(0.55, [Out(1, 1, True, None)]), (1.0, [Out(0, 1, False, MessageType.HELLO)])]
    assert ch.receive(1, 0, False, "b", 2.0) == ["b"]
    fired = run_timers(ch, 3.0)
    assert fired == [(2.05, [Out(1, 2, True, None)]), (3.0, [Out(0, 2, False, MessageType.HELLO)])]
    ack(ch, 1, 3.5)
    assert ch.outstanding == 0 and ch.next_timer() is None


def test_ack_resets_back_off_for_the_next_message() -> None:
    ch = make()
    ch.send(hello(), 0.0)
    ch.send(hello(), 0.0)  # waits: CWND is 1
    assert [o.ns for o in drain(ch)] == [0]
    run_timers(ch, 3.0)  # retransmitted at 1 and 3
    drain(ch)
    ack(ch, 1, 3.5)
    assert drain(ch) == [Out(1, 0, False, MessageType.HELLO)]
    assert ch.next_timer() == 4.5  # the initial interval again, not the backed-off one


# --- acknowledgement --------------------------------------------------------------------------


def test_in_order_message_acked_by_zlb_after_delay() -> None:
    ch = make(ChannelSettings(ack_delay=0.05))
    assert ch.receive(0, 0, False, "a", 10.0) == ["a"]
    assert drain(ch) == []
    assert ch.next_timer() == pytest.approx(10.05)
    ch.handle_timer(10.04)
    assert drain(ch) == []
    ch.handle_timer(10.05)
    assert drain(ch) == [Out(0, 1, True, None)]
    assert ch.idle and ch.next_timer() is None


def test_piggybacked_ack_suppresses_zlb() -> None:
    ch = make()
    assert ch.receive(0, 0, False, "a", 10.0) == ["a"]
    ch.send(hello(), 10.01)
    assert drain(ch) == [Out(0, 1, False, MessageType.HELLO)]
    assert ch.next_timer() == pytest.approx(11.01)  # only the retransmission timer is left
    ch.handle_timer(10.5)
    assert drain(ch) == []
    assert ch.stats.zlb_sent == 0


def test_duplicate_gets_immediate_zlb_and_is_not_delivered() -> None:
    ch = make()
    assert ch.receive(0, 0, False, "a", 0.0) == ["a"]
    assert ch.receive(0, 0, False, "a", 0.01) == []
    assert drain(ch) == [Out(0, 1, True, None)]  # at once, without waiting for a timer
    assert ch.stats.duplicates == 1
    assert ch.nr == 1


def test_out_of_order_is_queued_and_delivered_once_in_order() -> None:
    ch = make()
    assert ch.receive(2, 0, False, "c", 0.0) == []
    assert ch.receive(3, 0, False, "d", 0.0) == []
    assert ch.receive(2, 0, False, "c", 0.0) == []  # again, while still queued
    # Each gap report is an immediate ZLB that still asks for Ns 0.
    assert set(drain(ch)) == {Out(0, 0, True, None)}
    assert ch.receive(1, 0, False, "b", 0.0) == []
    assert ch.receive(0, 0, False, "a", 0.0) == ["a", "b", "c", "d"]
    assert ch.nr == 4
    for ns, item in enumerate("abcd"):
        assert ch.receive(ns, 0, False, item, 0.1) == []
    assert ch.receive(4, 0, False, "e", 0.2) == ["e"]
    assert ch.stats.out_of_order == 3


def test_beyond_receive_window_is_dropped() -> None:
    ch = make(ChannelSettings(receive_window=8))
    assert ch.receive(8, 0, False, "late", 0.0) == []  # Nr 0 + window 8: Ns 8 is outside
    assert ch.stats.outside_window == 1
    assert ch.receive(7, 0, False, "h", 0.0) == []  # the last Ns inside the window is kept
    delivered: list[str] = []
    for ns, item in enumerate("abcdefg"):
        delivered += ch.receive(ns, 0, False, item, 0.0)
    assert delivered == list("abcdefgh")
    assert ch.nr == 8  # Ns 8 was dropped, not queued: it is still expected
    assert ch.receive(8, 0, False, "i", 0.1) == ["i"]


# --- windows and slow start -------------------------------------------------------------------


def test_peer_window_limits_outstanding() -> None:
    ch = make()  # 5.8: no Receive Window Size AVP means 4
    assert ch.peer_window == 4
    for _ in range(40):
        ch.send(hello(), 0.0)
    seen: list[int] = []
    most = 0
    unacked = 0
    for step in range(100):
        seen += [o.ns for o in drain(ch)]
        most = max(most, ch.outstanding)
        assert ch.outstanding <= 4 and ch.cwnd <= 4
        if not ch.outstanding:
            break
        unacked += min(1 + step % 2, ch.outstanding)  # ack one or two at a time
        ack(ch, unacked, 0.1 * (step + 1))
    assert seen == list(range(40))  # each message left once, in order
    assert most == 4


def test_window_never_exceeds_peer_window_even_with_large_cwnd() -> None:
    ch = make()
    ch.cwnd = 50
    for _ in range(10):
        ch.send(hello(), 0.0)
    assert len(drain(ch)) == 4
    assert ch.outstanding == 4 and ch.queued == 6


def test_set_peer_window_is_honoured() -> None:
    ch = make()
    ch.set_peer_window(2)
    assert ch.ssthresh == 2
    ch.cwnd = 10
    for _ in range(5):
        ch.send(hello(), 0.0)
    assert [o.ns for o in drain(ch)] == [0, 1]
    ack(ch, 1, 0.1)
    assert [o.ns for o in drain(ch)] == [2]
    assert ch.outstanding == 2

    wide = make()
    wide.set_peer_window(16)
    wide.cwnd = 16
    for _ in range(20):
        wide.send(hello(), 0.0)
    assert len(drain(wide)) == 16


def test_cwnd_slow_start_congestion_avoidance_and_timeout() -> None:
    ch = make(peer_window=8)
    assert (ch.cwnd, ch.ssthresh) == (1, 8)  # App. A: CWND 1, SSTHRESH the peer's window
    for _ in range(80):
        ch.send(hello(), 0.0)
    acked = 0
    now = 0.0
    history = []
    for _ in range(5):
        now += 0.1
        acked += 1
        ack(ch, acked, now)
        history.append(ch.cwnd)
    assert history == [2, 3, 4, 5, 6]  # slow start: +1 per ack
    assert ch.outstanding == 6
    deadline = ch.next_timer()
    assert deadline is not None
    ch.handle_timer(deadline)  # the oldest is retransmitted
    assert (ch.cwnd, ch.ssthresh) == (1, 3)
    now = deadline
    history = []
    for _ in range(9):
        now += 0.1
        acked += 1
        ack(ch, acked, now)
        history.append(ch.cwnd)
    # slow start up to SSTHRESH 3, then +1 only after CWND acks
    assert history == [2, 3, 3, 3, 4, 4, 4, 4, 5]


def test_pure_window_functions() -> None:
    assert slow_start_step(1, 0, 4, 8) == (2, 0)
    assert slow_start_step(3, 0, 4, 8) == (4, 0)
    assert slow_start_step(4, 0, 4, 8) == (4, 1)
    assert slow_start_step(4, 2, 4, 8) == (4, 3)
    assert slow_start_step(4, 3, 4, 8) == (5, 0)
    assert slow_start_step(8, 7, 4, 8) == (8, 0)  # never above the peer's window
    assert slow_start_step(2, 0, 4, 2) == (2, 0)
    assert congestion_step(6) == (1, 3)
    assert congestion_step(7) == (1, 3)
    assert congestion_step(1) == (1, 1)
    assert send_window(4, 10) == 4
    assert send_window(4, 1) == 1
    assert send_window(16, 9) == 9
    assert send_window(0, 0) == 1


# --- bad Nr and peer liveness ------------------------------------------------------------------


def test_nr_for_unsent_message_is_ignored() -> None:
    ch = make()
    acked: list[int] = []
    for i in range(3):
        ch.send(hello(), 0.0, on_acked=lambda i=i: acked.append(i))
    assert [o.ns for o in drain(ch)] == [0]  # 1 and 2 wait for CWND
    ack(ch, 2, 0.1)  # Ns 1 was never sent
    assert ch.stats.bad_nr == 1
    assert acked == [] and ch.outstanding == 1 and ch.cwnd == 1
    ack(ch, 30000, 0.2)  # far ahead, still in the forward half of the number space
    assert ch.stats.bad_nr == 2 and acked == []
    ack(ch, 1, 0.3)
    assert acked == [0] and ch.stats.bad_nr == 2

    idle = make()
    idle.receive(0, 5, True, "zlb", 0.0)
    assert idle.stats.bad_nr == 1 and idle.ns == 0


def test_stale_nr_is_neither_bad_nor_an_ack() -> None:
    """A late datagram (reordered or duplicated on the way) carries an Nr we already processed."""
    ch = make()
    acked: list[int] = []
    for i in range(3):
        ch.send(hello(), 0.0, on_acked=lambda i=i: acked.append(i))
    ack(ch, 1, 0.1)
    assert [o.ns for o in drain(ch)] == [0, 1, 2]
    ack(ch, 0, 0.2)  # older than anything outstanding
    ack(ch, 1, 0.2)  # repeats the last ack
    assert ch.outstanding == 2 and acked == [0]
    ack(ch, 3, 0.3)
    ack(ch, 1, 0.4)  # nothing outstanding, and the Nr is old
    assert acked == [0, 1, 2]
    assert ch.stats.bad_nr == 0


@pytest.mark.parametrize("alive", [True, False])
def test_peer_alive_extends_retransmission(alive: bool) -> None:
    calls: list[float] = []

    def peer_alive(since: float) -> bool:
        calls.append(since)
        return alive

    ch = make(peer_alive=peer_alive)
    ch.send(hello(), 0.0)
    drain(ch)
    fired = run_timers(ch, 31.0)
    assert [t for t, out in fired if out][:5] == [1.0, 3.0, 7.0, 15.0, 23.0]
    assert calls == [0.0]  # asked once, when the retries ran out, with the first send time
    if alive:
        assert not ch.failed
        assert fired[-1] == (31.0, [Out(0, 0, False, MessageType.HELLO)])
        fired = run_timers(ch, 75.0)
        # the back-off stays at its cap; the next check comes after another max_retries sends
        assert [t for t, out in fired if out] == [39.0, 47.0, 55.0, 63.0, 71.0]
        assert calls == [0.0, 31.0]
    else:
        assert ch.failed
        assert fired[-1] == (31.0, [])
        assert ch.next_timer() is None
