"""The sans-IO control-plane endpoint: every tunnel of a LAC, an LNS, or both (STYLE.md 1).

Theory of operation. Three inputs: :meth:`Endpoint.receive_datagram`,
:meth:`Endpoint.handle_timer` and the commands (:meth:`open_tunnel`,
:meth:`open_session`, :meth:`close_session`, :meth:`close_tunnel`, ...).
Three outputs: :meth:`datagrams_to_send`, :meth:`get_timer` and
:meth:`next_event`. No socket, thread or clock is touched here; ``now`` comes
from the caller and randomness from ``rng``/``urandom`` (seeded in tests).

The endpoint routes each datagram to its tunnel by the Tunnel ID in the
header (RFC 2661 3.1). What belongs to no tunnel is decided here:
a malformed header, a message for an unknown tunnel, or one from an address
that does not own the tunnel is dropped and counted; an SCCRQ (Tunnel ID 0)
starts a tunnel, unless it repeats one we already answer (same peer, same
Assigned Tunnel ID) or loses the tie breaker of 4.4.3 against our own SCCRQ.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import random
from collections import Counter, deque
from collections.abc import Callable, Collection
from typing import NamedTuple

from l2tpfast.control.events import Address, CallInfo, CallType, Event, ProxyInfo, Role
from l2tpfast.control.session import Session
from l2tpfast.control.settings import EndpointSettings
from l2tpfast.control.tunnel import Refusal, Tunnel, TunnelInput, TunnelState
from l2tpfast.errors import LocalProtocolError, RemoteProtocolError
from l2tpfast.wire.avp import Accm, CallErrors, PppDisconnectCause, Q931Cause
from l2tpfast.wire.constants import AvpType, CDNResult, GeneralError, MessageType, StopCCNResult
from l2tpfast.wire.header import Header, parse_header
from l2tpfast.wire.message import ControlMessage, parse_message

A = AvpType


class Transmit(NamedTuple):
    """A datagram to send: its bytes, the peer, and the local address it must leave from."""

    data: bytes
    addr: Address
    local: str | None


class Endpoint:
    """Every tunnel and session of one L2TP node, driven by bytes, time and commands."""

    def __init__(
        self,
        settings: EndpointSettings | None = None,
        *,
        rng: random.Random | None = None,
        urandom: Callable[[int], bytes] | None = None,
    ) -> None:
        self.settings = settings or EndpointSettings()
        self.rng = rng or random.SystemRandom()
        self.urandom = urandom or (
            lambda n: self.rng.getrandbits(8 * n).to_bytes(n, "big") if rng else os.urandom(n)
        )
        self.tunnels: dict[int, Tunnel] = {}
        self.counters: Counter[str] = Counter()
        #: Control-channel statistics of released tunnels, so the node's totals never go back.
        self._released: Counter[str] = Counter()
        self._events: deque[Event] = deque()
        self._out: list[Transmit] = []
        self._heap: list[tuple[float, int]] = []
        self._by_request: dict[tuple[Address, int], int] = {}
        self._call_serial = self.rng.randrange(1, 1 << 16)
        #: (peer host, Tie Breaker value) of SCCRQs that lost to ours, and when (4.4.3).
        self._beaten: dict[tuple[str, int], float] = {}
        #: Sessions of a tunnel that lost the tie breaker, by peer host, until the peer's tunnel exists.
        self._requeued: dict[str, list[Session]] = {}

    # --- services for tunnels --------------------------------------------------------

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] += n

    def allocate_session_id(self, in_use: Collection[int], local_tunnel_id: int) -> int:
        """A random, non-zero Session ID unused in this tunnel (RFC 2661 3.1: chosen locally)."""
        for _ in range(64):
            sid = self.rng.randrange(1, 1 << 16)
            if sid not in in_use:
                return sid
        free = set(range(1, 1 << 16)) - set(in_use)
        if not free:
            raise LocalProtocolError(f"tunnel {local_tunnel_id} has no free Session ID")
        return min(free)

    def _allocate_tunnel_id(self) -> int:
        for _ in range(64):
            tid = self.rng.randrange(1, 1 << 16)
            if tid not in self.tunnels:
                return tid
        free = set(range(1, 1 << 16)) - self.tunnels.keys()
        if not free:
            raise LocalProtocolError("no free Tunnel ID")
        return min(free)

    def next_call_serial(self) -> int:
        self._call_serial = (self._call_serial + 1) & 0xFFFFFFFF
        return self._call_serial

    def session_allowed(self) -> bool:
        limit = self.settings.max_sessions
        return not limit or self.session_count() <= limit

    def session_count(self) -> int:
        return sum(len(t.sessions) for t in self.tunnels.values())

    # --- outputs ---------------------------------------------------------------------------

    def datagrams_to_send(self, now: float | None = None) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap:
            when, tid = heap[0]
            tunnel = self.tunnels.get(tid)
            if tunnel is not None and tunnel._scheduled == when:
                return when
            heapq.heappop(heap)  # stale: the tunnel is gone or rescheduled
        return None

    def _after(self, tunnel: Tunnel) -> None:
        """Collect what a tunnel wants to send, release it if done, and reschedule it."""
        for data in tunnel.channel.datagrams():
            self._out.append(Transmit(data, tunnel.peer, tunnel.local))
        if tunnel.closing and tunnel.release_at is not None and tunnel.release_at <= 0.0:
            self._release(tunnel)
            return
        deadline = tunnel.next_deadline()
        if deadline != tunnel._scheduled:
            tunnel._scheduled = deadline
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, tunnel.local_tunnel_id))

    def _release(self, tunnel: Tunnel) -> None:
        if self.tunnels.get(tunnel.local_tunnel_id) is tunnel:
            del self.tunnels[tunnel.local_tunnel_id]
            st = tunnel.channel.stats
            self._released.update(
                retransmissions=st.retransmissions, duplicates=st.duplicates, out_of_order=st.out_of_order
            )
        for key in [k for k, v in self._by_request.items() if v == tunnel.local_tunnel_id]:
            del self._by_request[key]
        tunnel._scheduled = None

    # --- inputs ----------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float, local: str | None = None) -> None:
        """One UDP payload from ``addr``, received on local address ``local``."""
        try:
            header, offset = parse_header(data)
        except RemoteProtocolError:
            self.count("malformed_header")  # RFC 2661 3.1: dropped silently
            return
        if header.tunnel_id == 0:
            if header.is_control:
                self._receive_unassigned(bytes(data), header, offset, addr, local, now)
            else:
                self.count("unknown_tunnel")
            return
        tunnel = self.tunnels.get(header.tunnel_id)
        if tunnel is None:
            self.count("unknown_tunnel")
            return
        if not tunnel.owns(addr):
            self.count("wrong_peer")  # only the tunnel's peer may speak for it
            return
        if addr != tunnel.peer:
            tunnel.peer = addr  # RFC 2661 8.1: the reply came from the port the peer chose
        if not header.is_control:
            tunnel.last_received = now  # data is proof of life too (5.5)
            self.count("data_messages")
            self._after(tunnel)
            return
        tunnel.receive(bytes(data), header, offset, now)
        self._after(tunnel)

    def note_activity(self, local_tunnel_id: int, now: float) -> None:
        """The data plane saw data from this tunnel's peer: it is alive (5.5)."""
        tunnel = self.tunnels.get(local_tunnel_id)
        if tunnel is not None and now > tunnel.last_received:
            tunnel.last_received = now
            self._after(tunnel)

    def _receive_unassigned(
        self, data: bytes, header: Header, offset: int, addr: Address, local: str | None, now: float
    ) -> None:
        settings = self.settings.for_peer(addr[0])
        try:
            message = parse_message(data, secret=settings.secret)
        except RemoteProtocolError:
            self.count("bad_sccrq")  # nobody to answer: no tunnel, and the peer's ID is unreadable
            return
        if message.message_type == MessageType.StopCCN:
            # A peer that closes before it learnt our Tunnel ID names its own (4.4.3 Assigned
            # Tunnel ID); the tunnel is ours if that peer gave us that ID.
            assigned = message[A.ASSIGNED_TUNNEL_ID]
            for tunnel in list(self.tunnels.values()):
                if tunnel.peer[0] == addr[0] and tunnel.peer_tunnel_id == assigned:
                    tunnel.receive(data, header, offset, now)
                    self._after(tunnel)
                    return
        if message.message_type != MessageType.SCCRQ:
            self.count("unknown_tunnel")
            return
        peer_tid = message[A.ASSIGNED_TUNNEL_ID]
        existing = self.tunnels.get(self._by_request.get((addr, peer_tid), 0))
        if existing is not None:
            # A retransmitted SCCRQ (our SCCRP or its ack was lost): the channel re-acks it.
            existing.receive(data, header, offset, now)
            self._after(existing)
            return
        if self._tie_lost_by_peer(message, addr, now):
            self.count("tie_breaker_won")
            return  # 4.4.3: the loser discards its tunnel; we just ignore its SCCRQ
        settings = self.settings.for_peer(addr[0], message.get(A.HOST_NAME))
        tunnel = Tunnel(self, self._allocate_tunnel_id(), addr, local, settings, initiator=False, now=now)
        self.tunnels[tunnel.local_tunnel_id] = tunnel
        self._by_request[(addr, peer_tid)] = tunnel.local_tunnel_id
        # Run the SCCRQ through the channel so that Nr acknowledges it; then judge it.
        tunnel.last_received = now
        tunnel.channel.receive(header.ns or 0, header.nr or 0, False, message, now)
        refusal = tunnel.check_peer_start(message) or self._refuse_tunnel(addr, tunnel)
        tunnel.fire(TunnelInput.RECV_SCCRQ_BAD if refusal else TunnelInput.RECV_SCCRQ_OK, now, refusal)
        self.count("tunnels_refused" if refusal else "tunnels_accepted")
        if not refusal:
            # 4.4.3: the calls of our discarded tunnel wait for this one, with their Session IDs.
            for session in self._requeued.pop(addr[0], []):
                tunnel.sessions[session.local_session_id] = session
        self._after(tunnel)

    def _refuse_tunnel(self, addr: Address, tunnel: Tunnel) -> Refusal | None:
        s = self.settings
        if not s.accept_tunnels:
            return Refusal(StopCCNResult.NOT_AUTHORIZED, None, "this node does not accept tunnels")
        live = [t for t in self.tunnels.values() if not t.closing and t is not tunnel]
        if s.max_tunnels and len(live) >= s.max_tunnels:
            return Refusal(StopCCNResult.GENERAL_ERROR, GeneralError.NO_RESOURCES, "tunnel limit reached")
        from_peer = sum(1 for t in live if t.peer[0] == addr[0])
        if s.max_tunnels_per_peer and from_peer >= s.max_tunnels_per_peer:
            return Refusal(
                StopCCNResult.GENERAL_ERROR, GeneralError.NO_RESOURCES, "per-peer tunnel limit reached"
            )
        return None

    def _tie_lost_by_peer(self, message: ControlMessage, addr: Address, now: float) -> bool:
        """RFC 2661 4.4.3. True when the peer's SCCRQ loses to ours and must be ignored."""
        theirs: int | None = message.get(A.TIE_BREAKER)
        if theirs is not None and (addr[0], theirs) in self._beaten:
            return True  # a retransmission of an SCCRQ that already lost
        for tunnel in list(self.tunnels.values()):
            if not (tunnel.initiator and tunnel.peer[0] == addr[0] and not tunnel.closing):
                continue
            # Our SCCRQ is still unanswered, or was answered so recently that this SCCRQ crossed it.
            crossing = tunnel.state is TunnelState.WAIT_CTL_REPLY or (
                tunnel.state is TunnelState.ESTABLISHED and now - tunnel.created < tunnel.setup_timeout
            )
            ours = tunnel.tie_breaker
            if not crossing or (ours is None and theirs is None):
                continue  # neither asked for one tunnel: two tunnels it is
            if theirs is None or (ours is not None and ours < theirs):
                self._remember_beaten(addr[0], theirs, now)
                return True
            if tunnel.state is not TunnelState.WAIT_CTL_REPLY:
                continue  # ours is up and theirs would win: too late to discard an established tunnel
            # We lose: discard ours, answer theirs.
            tunnel.fire(TunnelInput.RECV_SCCRQ_LOSE_TIE, now)
            if ours == theirs:
                # 4.4.3: equal values, both sides discard. Try again with a fresh value (7.2.1
                # "re-queue SCCRQ"): the calls that waited for the old tunnel go to the new one.
                self._redial(tunnel.peer, now)
                return True
        return False

    def _remember_beaten(self, host: str, tie_breaker: int | None, now: float) -> None:
        if tie_breaker is None:
            return
        horizon = now - 2 * self.settings.tunnel.retransmission_cycle
        for key in [k for k, t in self._beaten.items() if t < horizon]:
            del self._beaten[key]
        self._beaten[(host, tie_breaker)] = now

    def _redial(self, peer: Address, now: float) -> None:
        sessions = self._requeued.pop(peer[0], [])
        tunnel = self.tunnels[self.open_tunnel(peer, now)]
        for session in sessions:
            tunnel.sessions[session.local_session_id] = session

    def requeue(self, loser: Tunnel, now: float) -> None:
        """Our SCCRQ lost the tie: drop our tunnel silently, its sessions wait for the peer's (4.4.3)."""
        self.count("tie_breaker_lost")
        self._requeued.setdefault(loser.peer[0], []).extend(loser.sessions.values())
        loser.sessions.clear()
        loser.closing = True
        loser._closed_reported = True  # the tunnel never was: no TunnelClosed for it
        loser.release_at = 0.0
        self._after(loser)

    def handle_timer(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            when, tid = heapq.heappop(self._heap)
            tunnel = self.tunnels.get(tid)
            if tunnel is None or tunnel._scheduled != when:
                continue
            tunnel._scheduled = None
            if tunnel.closing and tunnel.release_at is not None and now >= tunnel.release_at:
                tunnel.channel.handle_timer(now)  # a last ZLB may be owed
                self._out.extend(Transmit(d, tunnel.peer, tunnel.local) for d in tunnel.channel.datagrams())
                self._release(tunnel)
                continue
            tunnel.handle_timer(now)
            self._after(tunnel)

    # --- commands ----------------------------------------------------------------------------

    def open_tunnel(self, peer: Address, now: float, *, local: str | None = None) -> int:
        """Start a control connection to ``peer`` (7.2.1 local open request); returns its Tunnel ID."""
        tunnel = Tunnel(
            self,
            self._allocate_tunnel_id(),
            peer,
            local,
            self.settings.for_peer(peer[0]),
            initiator=True,
            now=now,
        )
        self.tunnels[tunnel.local_tunnel_id] = tunnel
        tunnel.fire(TunnelInput.LOCAL_OPEN, now)
        self._after(tunnel)
        return tunnel.local_tunnel_id

    def _tunnel_for(self, peer: Address, now: float, local: str | None) -> Tunnel:
        for tunnel in self.tunnels.values():
            if tunnel.peer[0] == peer[0] and not tunnel.closing:
                return tunnel
        return self.tunnels[self.open_tunnel(peer, now, local=local)]

    def open_session(
        self,
        target: Address | int,
        now: float,
        *,
        call_type: CallType = CallType.INCOMING,
        call: CallInfo | None = None,
        proxy: ProxyInfo | None = None,
        local: str | None = None,
    ) -> tuple[int, int]:
        """Place a call: as LAC an incoming call (ICRQ, 7.4.1), as LNS an outgoing one (OCRQ, 7.5.2).

        ``target`` is a Tunnel ID or a peer address (a tunnel to it is reused or opened).
        Returns (local Tunnel ID, local Session ID).
        """
        tunnel = self._get(target) if isinstance(target, int) else self._tunnel_for(target, now, local)
        role = Role.LAC if call_type is CallType.INCOMING else Role.LNS
        session = tunnel.new_session(role, call_type, now)
        base = call or CallInfo()
        session.call = dataclasses.replace(
            base, call_serial_number=base.call_serial_number or self.next_call_serial()
        )
        session.proxy = proxy
        tunnel.open_call(session, now)
        self._after(tunnel)
        return tunnel.local_tunnel_id, session.local_session_id

    def close_session(
        self,
        local_tunnel_id: int,
        local_session_id: int,
        now: float,
        *,
        result_code: int = CDNResult.ADMINISTRATIVE,
        error_code: int | None = None,
        message: str | None = None,
        q931: Q931Cause | None = None,
        disconnect_cause: PppDisconnectCause | None = None,
    ) -> None:
        """Clear a call (7.4, 7.5 local close request): CDN, clean up.

        ``disconnect_cause`` (RFC 3145) tells the peer why PPP ended."""
        tunnel = self._get(local_tunnel_id)
        session = tunnel.sessions.get(local_session_id)
        if session is None:
            raise LocalProtocolError(f"no session {local_session_id} in tunnel {local_tunnel_id}")
        tunnel.close_session(session, now, result_code, error_code, message, q931, disconnect_cause)
        self._after(tunnel)

    def close_tunnel(
        self,
        local_tunnel_id: int,
        now: float,
        *,
        result_code: int = StopCCNResult.GENERAL_REQUEST,
        error_code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Tear a tunnel down with StopCCN (5.7), which clears all its sessions."""
        tunnel = self.tunnels.get(local_tunnel_id)
        if tunnel is not None and tunnel.closing:
            return  # already on its way down
        tunnel = self._get(local_tunnel_id)
        tunnel.fire(
            TunnelInput.ADMIN_CLOSE,
            now,
            Refusal(result_code, error_code, message or "closed by administrator"),
        )
        self._after(tunnel)

    def answer_call(
        self,
        local_tunnel_id: int,
        local_session_id: int,
        now: float,
        *,
        success: bool = True,
        result_code: int = CDNResult.NO_CARRIER,
        message: str | None = None,
    ) -> None:
        """LAC: the bearer of an outgoing call answered (OCCN) or failed (CDN, ``result_code``) (7.5.1)."""
        tunnel = self._get(local_tunnel_id)
        session = self._session(tunnel, local_session_id)
        tunnel.answer_call(session, now, success=success, result_code=result_code, message=message)
        self._after(tunnel)

    def send_link_info(self, local_tunnel_id: int, local_session_id: int, accm: Accm, now: float) -> None:
        """Send SLI (6.14) with the ACCM PPP negotiated."""
        tunnel = self._get(local_tunnel_id)
        tunnel.send_link_info(self._session(tunnel, local_session_id), accm, now)
        self._after(tunnel)

    def send_wan_error(
        self, local_tunnel_id: int, local_session_id: int, errors: CallErrors, now: float
    ) -> None:
        """Send WEN (6.13): the LAC's line error counters."""
        tunnel = self._get(local_tunnel_id)
        tunnel.send_wan_error(self._session(tunnel, local_session_id), errors, now)
        self._after(tunnel)

    def _get(self, local_tunnel_id: int) -> Tunnel:
        tunnel = self.tunnels.get(local_tunnel_id)
        if tunnel is None or tunnel.closing:
            raise LocalProtocolError(f"no open tunnel {local_tunnel_id}")
        return tunnel

    @staticmethod
    def _session(tunnel: Tunnel, local_session_id: int) -> Session:
        session = tunnel.sessions.get(local_session_id)
        if session is None:
            raise LocalProtocolError(f"no session {local_session_id} in tunnel {tunnel.local_tunnel_id}")
        return session

    # --- introspection ---------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """Tunnels, sessions and counters as plain data (``l2tpfast status``)."""
        tunnels = []
        for t in sorted(self.tunnels.values(), key=lambda t: t.local_tunnel_id):
            st = t.channel.stats
            tunnels.append(
                {
                    "local_tunnel_id": t.local_tunnel_id,
                    "peer_tunnel_id": t.peer_tunnel_id,
                    "peer": f"{t.peer[0]}:{t.peer[1]}",
                    "local": t.local,
                    "peer_host_name": t.peer_host_name,
                    "state": "closing" if t.closing else t.state.value,
                    "initiator": t.initiator,
                    "ns": t.channel.ns,
                    "nr": t.channel.nr,
                    "cwnd": t.channel.cwnd,
                    "idle": t.channel.idle,
                    "peer_window": t.channel.peer_window,
                    "retransmissions": st.retransmissions,
                    "duplicates": st.duplicates,
                    "out_of_order": st.out_of_order,
                    "sessions": [
                        {
                            "local_session_id": s.local_session_id,
                            "peer_session_id": s.peer_session_id,
                            "role": s.role.value,
                            "call_type": s.call_type.value,
                            "state": s.state.value,
                            "call_serial_number": s.call.call_serial_number,
                        }
                        for s in sorted(t.sessions.values(), key=lambda s: s.local_session_id)
                    ],
                }
            )
        counters = dict(self.counters)
        # Node-wide, monotonic: released tunnels plus the live ones (metrics read these).
        for name in ("retransmissions", "duplicates", "out_of_order"):
            live = sum(getattr(t.channel.stats, name) for t in self.tunnels.values())
            counters[name] = self._released[name] + live
        return {"tunnels": tunnels, "counters": counters}
