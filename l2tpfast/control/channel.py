"""Reliable delivery of control messages (RFC 2661 5.8) with slow start and
congestion avoidance (RFC 2661 Appendix A).

Theory of operation. A :class:`ControlChannel` belongs to one tunnel and
knows nothing of tunnels: it numbers what the tunnel sends (Ns), acknowledges
what the peer sends (Nr), retransmits with exponential back-off, holds back
what the peer's Receive Window and our congestion window do not allow yet,
and hands received messages up exactly once and in order. It is sans-IO: it
is driven by :meth:`receive`, :meth:`send` and :meth:`handle_timer` with the
current time, and the caller collects :meth:`datagrams` to transmit and
:meth:`next_timer` to schedule.

Retransmission covers the oldest unacknowledged message only: after a
timeout CWND is 1 (Appendix A), so nothing else may go out until it is
acknowledged. Its interval doubles each time, up to ``retransmit_cap``, and
after ``max_retries`` retransmissions the channel fails (5.8: "the tunnel and
all sessions within MUST be cleared") unless ``peer_alive`` says the peer has
shown life since the message was first sent (a peer that never acks Hello
but still sends data is not dead).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from l2tpfast.wire.message import ControlMessage, build_zlb
from l2tpfast.wire.seqnum import seq_add, seq_diff

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    retransmit_initial: float = 1.0
    retransmit_cap: float = 8.0
    max_retries: int = 5
    ack_delay: float = 0.05
    #: Our Receive Window Size: how far ahead of Nr we queue out-of-order messages.
    receive_window: int = 8


def slow_start_step(cwnd: int, acked_in_round: int, ssthresh: int, limit: int) -> tuple[int, int]:
    """One new ACK (Appendix A): +1 below SSTHRESH; +1 per CWND ACKs above; never above ``limit``.

    Returns the new (cwnd, acked_in_round); ``acked_in_round`` counts ACKs in congestion avoidance.
    """
    if cwnd < ssthresh:
        return min(cwnd + 1, limit), 0
    acked_in_round += 1
    if acked_in_round >= cwnd:
        return min(cwnd + 1, limit), 0
    return cwnd, acked_in_round


def congestion_step(cwnd: int) -> tuple[int, int]:
    """A retransmission (Appendix A): SSTHRESH = CWND / 2 (at least 1), CWND = 1. Returns (cwnd, ssthresh)."""
    return 1, max(cwnd // 2, 1)


def send_window(peer_window: int, cwnd: int) -> int:
    """Messages that may be outstanding: the peer's Receive Window, narrowed by CWND (5.8, App. A)."""
    return max(1, min(peer_window, cwnd))


class _Outgoing:
    __slots__ = ("first_sent", "message", "ns", "on_acked", "retries")

    def __init__(self, message: ControlMessage, on_acked: Callable[[], None] | None) -> None:
        self.message = message
        self.on_acked = on_acked
        self.ns = 0
        self.first_sent = 0.0
        self.retries = 0


@dataclass(slots=True)
class ChannelStats:
    sent: int = 0
    received: int = 0
    retransmissions: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    outside_window: int = 0
    zlb_sent: int = 0
    bad_nr: int = 0


class ControlChannel(Generic[T]):
    """One tunnel's reliable control channel. ``T`` is what the caller hands up per message."""

    def __init__(
        self,
        settings: ChannelSettings,
        *,
        peer_window: int = 4,
        peer_alive: Callable[[float], bool] | None = None,
    ) -> None:
        self.settings = settings
        #: Ns of the next message we send, and Nr: the next Ns we expect from the peer.
        self.ns = 0
        self.nr = 0
        #: RFC 2661 5.8: without a Receive Window Size AVP the peer's window is 4.
        self.peer_window = peer_window
        self.cwnd = 1
        self.ssthresh = peer_window
        self._acked_in_round = 0
        #: The peer's tunnel ID, written into ZLB headers; 0 until known.
        self.peer_tunnel_id = 0
        self.peer_alive = peer_alive
        self.failed = False
        self.stats = ChannelStats()
        self._pending: deque[_Outgoing] = deque()
        self._flight: deque[_Outgoing] = deque()
        self._reorder: dict[int, T] = {}
        self._ack_due: float | None = None
        self._rto = settings.retransmit_initial
        self._rto_deadline: float | None = None
        self._out: list[bytes] = []

    # --- state ----------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Messages sent and not yet acknowledged."""
        return len(self._flight)

    @property
    def queued(self) -> int:
        """Messages waiting for the window to open."""
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """Everything we sent is acknowledged and no ack is owed."""
        return not self._flight and not self._pending and self._ack_due is None

    def set_peer_window(self, window: int) -> None:
        """Take the Receive Window Size the peer advertised (SCCRQ or SCCRP)."""
        self.peer_window = max(1, window)
        self.ssthresh = self.peer_window  # Appendix A: SSTHRESH starts at the advertised window

    # --- sending --------------------------------------------------------------

    def send(self, message: ControlMessage, now: float, on_acked: Callable[[], None] | None = None) -> None:
        """Queue a message for reliable delivery; Ns and Nr are filled in when it leaves."""
        if self.failed:
            return
        self._pending.append(_Outgoing(message, on_acked))
        self._fill(now)

    def _fill(self, now: float) -> None:
        limit = send_window(self.peer_window, self.cwnd)
        while self._pending and len(self._flight) < limit:
            item = self._pending.popleft()
            item.ns = self.ns
            item.first_sent = now
            self.ns = seq_add(self.ns, 1)
            self._flight.append(item)
            self._transmit(item)
            if self._rto_deadline is None:
                self._rto = self.settings.retransmit_initial
                self._rto_deadline = now + self._rto

    def _transmit(self, item: _Outgoing) -> None:
        # RFC 2661 5.8: a retransmission keeps its Ns but carries the current Nr.
        self._out.append(item.message.with_sequence(item.ns, self.nr).encode())
        self._ack_due = None  # the ack rides on this message
        self.stats.sent += 1

    def send_ack(self) -> None:
        """Send a ZLB now (5.8): Ns is the next we will use; it takes no sequence slot."""
        self._out.append(build_zlb(self.peer_tunnel_id, self.ns, self.nr))
        self._ack_due = None
        self.stats.zlb_sent += 1

    def datagrams(self) -> list[bytes]:
        """Take the datagrams to transmit, oldest first."""
        out, self._out = self._out, []
        return out

    # --- receiving ------------------------------------------------------------

    def receive(self, ns: int, nr: int, is_zlb: bool, item: T, now: float) -> list[T]:
        """Process one received control message; return what is now deliverable, in order."""
        self.stats.received += 1
        self._process_nr(nr, now)
        if is_zlb:
            return []
        distance = seq_diff(ns, self.nr)
        if distance < 0:
            # RFC 2661 5.8: a duplicate means our ack was lost; acknowledge it again, at once.
            self.stats.duplicates += 1
            self.send_ack()
            return []
        if distance > 0:
            if distance >= self.settings.receive_window:
                self.stats.outside_window += 1
                return []
            if ns in self._reorder:
                self.stats.duplicates += 1
            else:
                self.stats.out_of_order += 1
                self._reorder[ns] = item
            # Tell the peer what we still miss, so it need not wait for a full timeout.
            self.send_ack()
            return []
        delivered = [item]
        self.nr = seq_add(self.nr, 1)
        while self.nr in self._reorder:
            delivered.append(self._reorder.pop(self.nr))
            self.nr = seq_add(self.nr, 1)
        if self._ack_due is None:
            self._ack_due = now + self.settings.ack_delay
        return delivered

    def _process_nr(self, nr: int, now: float) -> None:
        # Nr may only acknowledge what we sent: never past our next Ns.
        if seq_diff(nr, self.ns) > 0:
            self.stats.bad_nr += 1
            return
        # RFC 2661 5.8: Nr is cumulative, so an Nr at or before the oldest outstanding Ns comes from
        # a datagram the link delayed or duplicated; it acknowledges nothing new and is no fault.
        if not self._flight or seq_diff(nr, self._flight[0].ns) <= 0:
            return
        acked = False
        while self._flight and seq_diff(nr, self._flight[0].ns) > 0:
            item = self._flight.popleft()
            acked = True
            self.cwnd, self._acked_in_round = slow_start_step(
                self.cwnd, self._acked_in_round, self.ssthresh, self.peer_window
            )
            if item.on_acked is not None:
                item.on_acked()
        if acked:
            self._rto = self.settings.retransmit_initial
            self._rto_deadline = now + self._rto if self._flight else None
            self._fill(now)

    # --- time -----------------------------------------------------------------

    def next_timer(self) -> float | None:
        deadlines = [t for t in (self._ack_due, self._rto_deadline) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self._ack_due is not None and now >= self._ack_due:
            self.send_ack()
        if self._rto_deadline is None or now < self._rto_deadline or not self._flight:
            return
        head = self._flight[0]
        if head.retries >= self.settings.max_retries:
            if self.peer_alive is None or not self.peer_alive(head.first_sent):
                self.failed = True
                self._rto_deadline = None
                self._ack_due = None
                return
            head.first_sent = now  # alive: give it another full cycle
            head.retries = 0
        head.retries += 1
        self.stats.retransmissions += 1
        self.cwnd, self.ssthresh = congestion_step(self.cwnd)
        self._acked_in_round = 0
        self._transmit(head)
        self._rto = min(self._rto * 2, self.settings.retransmit_cap)
        self._rto_deadline = now + self._rto
