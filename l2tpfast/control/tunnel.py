"""The control connection state machine of RFC 2661 7.2 and the dispatch of its messages.

Theory of operation. :data:`TRANSITIONS` is the table of 7.2.1, one entry per
RFC row, ``(TunnelState, TunnelInput) -> (TunnelAction, TunnelState)``. Whether
an SCCRQ, SCCRP or SCCCN is acceptable (Protocol Version 4.4.3, tunnel
authentication 5.1.1, limits) is decided before the lookup; rows the RFC does
not split fall back to the plain input. A missing pair is an FSM error:
StopCCN with Result Code 7.

Outside the table: the reliable channel (5.8, :mod:`.channel`) under every
message; Hello (5.5) after ``hello_interval`` without any datagram from the
peer; the hold after StopCCN (5.7: the receiver acks and keeps state for a
full retransmission cycle, the sender until its StopCCN is acknowledged); the
setup timeout; and the session messages, which :meth:`Tunnel._dispatch_call`
hands to the session machines of :mod:`.session`.

The tunnel never raises on peer input: a :class:`RemoteProtocolError` from the
codec becomes StopCCN, CDN or a silent drop according to its scope (4.1).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from l2tpfast.control import fsm
from l2tpfast.control.calls import Calls, Refusal, normalise_result, swap16
from l2tpfast.control.channel import ChannelSettings, ControlChannel
from l2tpfast.control.events import (
    Address,
    TunnelClosed,
    TunnelEstablished,
)
from l2tpfast.control.fsm import expand_rows
from l2tpfast.control.session import (
    Session,
    SessionInput,
    SessionState,
)
from l2tpfast.control.settings import ByteOrder, TunnelSettings
from l2tpfast.errors import RemoteProtocolError, Scope
from l2tpfast.wire.avp import ProtocolVersion, ResultCode, iter_avps
from l2tpfast.wire.constants import (
    VENDOR_IETF,
    AvpType,
    BearerCapability,
    CDNResult,
    FramingCapability,
    GeneralError,
    MessageType,
    StopCCNResult,
)
from l2tpfast.wire.header import Header
from l2tpfast.wire.hiding import challenge_response, check_challenge_response
from l2tpfast.wire.message import MESSAGE_RULES, AvpItem, ControlMessage, build_message, parse_message

if TYPE_CHECKING:
    from l2tpfast.control.endpoint import Endpoint

A = AvpType
M = MessageType
SI = SessionInput


class TunnelState(enum.Enum):
    IDLE = "idle"
    WAIT_CTL_REPLY = "wait-ctl-reply"
    WAIT_CTL_CONN = "wait-ctl-conn"
    ESTABLISHED = "established"


class TunnelInput(enum.Enum):
    LOCAL_OPEN = "local open request"
    ADMIN_CLOSE = "admin tunnel close"
    RECV_SCCRQ = "receive SCCRQ"
    RECV_SCCRQ_OK = "receive SCCRQ, acceptable"
    RECV_SCCRQ_BAD = "receive SCCRQ, not acceptable"
    RECV_SCCRQ_LOSE_TIE = "receive SCCRQ, lose tie-breaker"
    RECV_SCCRP = "receive SCCRP"
    RECV_SCCRP_OK = "receive SCCRP, acceptable"
    RECV_SCCRP_BAD = "receive SCCRP, not acceptable"
    RECV_SCCCN = "receive SCCCN"
    RECV_SCCCN_OK = "receive SCCCN, acceptable"
    RECV_SCCCN_BAD = "receive SCCCN, not acceptable"
    RECV_STOPCCN = "receive StopCCN"


class TunnelAction(enum.Enum):
    NONE = "none"
    SEND_SCCRQ = "send SCCRQ"
    SEND_SCCRP = "send SCCRP"
    SEND_SCCCN = "send SCCCN, send tunnel-open event to waiting sessions"
    TUNNEL_OPEN = "send tunnel-open event to waiting sessions"
    SEND_STOPCCN = "send StopCCN, clean up"
    CLEAN_UP = "clean up"
    REQUEUE = "clean up, re-queue SCCRQ for idle state"


TS = TunnelState
TI = TunnelInput
TA = TunnelAction
Table = dict[tuple[TunnelState, TunnelInput], tuple[TunnelAction, TunnelState]]


# 7.2.1 Control Connection Establishment
TRANSITIONS = expand_rows(
    ((TS.IDLE,), (TI.LOCAL_OPEN,), TA.SEND_SCCRQ, TS.WAIT_CTL_REPLY),
    ((TS.IDLE,), (TI.RECV_SCCRQ_OK,), TA.SEND_SCCRP, TS.WAIT_CTL_CONN),
    ((TS.IDLE,), (TI.RECV_SCCRQ_BAD,), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.IDLE,), (TI.RECV_SCCRP,), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.IDLE,), (TI.RECV_SCCCN,), TA.CLEAN_UP, TS.IDLE),
    ((TS.WAIT_CTL_REPLY,), (TI.RECV_SCCRP_OK,), TA.SEND_SCCCN, TS.ESTABLISHED),
    ((TS.WAIT_CTL_REPLY,), (TI.RECV_SCCRP_BAD,), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.WAIT_CTL_REPLY,), (TI.RECV_SCCRQ_LOSE_TIE,), TA.REQUEUE, TS.IDLE),
    ((TS.WAIT_CTL_REPLY,), (TI.RECV_SCCCN,), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.WAIT_CTL_CONN,), (TI.RECV_SCCCN_OK,), TA.TUNNEL_OPEN, TS.ESTABLISHED),
    ((TS.WAIT_CTL_CONN,), (TI.RECV_SCCCN_BAD,), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.WAIT_CTL_CONN,), (TI.RECV_SCCRP, TI.RECV_SCCRQ), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.ESTABLISHED,), (TI.LOCAL_OPEN,), TA.TUNNEL_OPEN, TS.ESTABLISHED),
    ((TS.ESTABLISHED,), (TI.ADMIN_CLOSE,), TA.SEND_STOPCCN, TS.IDLE),
    ((TS.ESTABLISHED,), (TI.RECV_SCCRQ, TI.RECV_SCCRP, TI.RECV_SCCCN), TA.SEND_STOPCCN, TS.IDLE),
    (
        (TS.IDLE, TS.WAIT_CTL_REPLY, TS.WAIT_CTL_CONN, TS.ESTABLISHED),
        (TI.RECV_STOPCCN,),
        TA.CLEAN_UP,
        TS.IDLE,
    ),
    # Not in the RFC's table: sessions that ask for a tunnel being set up wait for it, and
    # an administrator may close a tunnel before it is up.
    ((TS.WAIT_CTL_REPLY, TS.WAIT_CTL_CONN), (TI.LOCAL_OPEN,), TA.NONE, None),
    ((TS.WAIT_CTL_REPLY, TS.WAIT_CTL_CONN), (TI.ADMIN_CLOSE,), TA.SEND_STOPCCN, TS.IDLE),
)

_GENERIC = {
    TI.RECV_SCCRQ_OK: TI.RECV_SCCRQ,
    TI.RECV_SCCRQ_BAD: TI.RECV_SCCRQ,
    TI.RECV_SCCRP_OK: TI.RECV_SCCRP,
    TI.RECV_SCCRP_BAD: TI.RECV_SCCRP,
    TI.RECV_SCCCN_OK: TI.RECV_SCCCN,
    TI.RECV_SCCCN_BAD: TI.RECV_SCCCN,
}


def lookup(state: TunnelState, event: TunnelInput) -> tuple[TunnelAction, TunnelState] | None:
    return fsm.lookup(TRANSITIONS, state, event, _GENERIC)


PROTOCOL_VERSION = ProtocolVersion(1, 0)


class BadMessage:
    """A control message the codec refused, kept in sequence so that the channel acks it in order."""

    __slots__ = ("error", "peer_session_id", "session_id")

    def __init__(self, error: RemoteProtocolError, session_id: int, peer_session_id: int | None) -> None:
        self.error = error
        self.session_id = session_id
        #: For a refused ICRQ/OCRQ: the caller's Assigned Session ID, read without validation.
        self.peer_session_id = peer_session_id


def _raw_assigned_session_id(data: bytes, offset: int) -> int | None:
    """The first plain Assigned Session ID in a message that failed validation, if intact."""
    try:
        for avp in iter_avps(memoryview(data)[offset:], base=offset):
            if avp.key == (VENDOR_IETF, A.ASSIGNED_SESSION_ID) and not avp.hidden and len(avp.value) == 2:
                return int.from_bytes(avp.value, "big") or None
    except RemoteProtocolError:
        return None
    return None


class Tunnel(Calls):
    """One control connection: its machine, its channel, its sessions."""

    def __init__(
        self,
        endpoint: Endpoint,
        local_tunnel_id: int,
        peer: Address,
        local: str | None,
        settings: TunnelSettings,
        *,
        initiator: bool,
        now: float,
    ) -> None:
        self.endpoint = endpoint
        self.local_tunnel_id = local_tunnel_id
        self.peer_tunnel_id = 0
        self.peer = peer
        self.local = local
        self.settings = settings
        self.initiator = initiator
        self.state = TunnelState.IDLE
        self.channel: ControlChannel[ControlMessage | BadMessage] = ControlChannel(
            _channel_settings(settings), peer_alive=self._peer_alive
        )
        self.sessions: dict[int, Session] = {}
        self.peer_host_name = ""
        self.peer_vendor_name: str | None = None
        self.tie_breaker: int | None = None
        self.challenge: bytes | None = None  # ours, sent in SCCRQ/SCCRP
        self.peer_challenge: bytes | None = None
        self.last_received = now
        #: The time of the input being handled, for callbacks that run inside it.
        self.clock = now
        self.created = now
        self.last_call_message = now
        self.hello_outstanding = False
        #: Set once StopCCN went out or came in; the tunnel lingers only to ack (5.7).
        self.closing = False
        self._closed_reported = False
        self._pending_stop: tuple[int, int | None, str | None] | None = None
        self.release_at: float | None = None
        self.setup_deadline: float | None = now + self.setup_timeout
        self._scheduled: float | None = None

    # --- helpers ----------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Tunnel({self.local_tunnel_id}/{self.peer_tunnel_id} {self.peer} {self.state.value})"

    def owns(self, addr: Address) -> bool:
        """The datagram comes from this tunnel's peer (address and port)."""
        if addr == self.peer:
            return True
        # RFC 2661 8.1: the recipient of our SCCRQ may answer from another port; take it then
        # (also after we gave up on the tunnel, so that its late SCCRP still gets our StopCCN).
        return (
            self.initiator
            and (self.state is TunnelState.WAIT_CTL_REPLY or self.peer_tunnel_id == 0)
            and addr[0] == self.peer[0]
        )

    @property
    def is_established(self) -> bool:
        return self.state is TunnelState.ESTABLISHED

    def request_tunnel(self, now: float) -> None:
        """A call waits for this tunnel (7.4.1, 7.5.2 "initiate local tunnel open")."""
        self.fire(TI.LOCAL_OPEN, now)

    def _peer_alive(self, since: float) -> bool:
        return self.last_received > since

    def next_deadline(self) -> float | None:
        times = [self.channel.next_timer(), self.release_at]
        if not self.closing:
            times.append(self.setup_deadline)
            if (
                self.state is TunnelState.ESTABLISHED
                and self.settings.hello_interval
                and not self.hello_outstanding
            ):
                times.append(self.last_received + self.settings.hello_interval)
            times.extend(s.deadline for s in self.sessions.values())
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def _send(
        self,
        message_type: MessageType,
        avps: Iterable[AvpItem],
        now: float,
        *,
        session_id: int = 0,
        on_acked: Callable[[], None] | None = None,
    ) -> None:
        s = self.settings
        allowed = MESSAGE_RULES[message_type].allowed
        # A peer profile may leave optional AVPs out for peers that choke on them.
        items = [item for item in avps if not (isinstance(item, tuple) and item[0] in s.omit_avps)]
        # RFC 2661 4.3 lets any hideable AVP be hidden, but in SCCRQ and SCCRP the receiver may pick
        # the secret by our Host Name in that same message: xl2tpd, for one, unhides nothing there.
        # Identifiers in later messages (sessions, calls) are hidden.
        hide = s.hidden_types() & allowed if message_type not in (M.SCCRQ, M.SCCRP) else frozenset()
        message = build_message(
            message_type,
            items,
            tunnel_id=self.peer_tunnel_id,
            session_id=session_id,
            secret=s.secret,
            hide=hide,
            urandom=self.endpoint.urandom,
        )
        self.channel.send(message, now, on_acked)

    def _result(self, result_code: int, error_code: int | None, message: str | None) -> ResultCode:
        if error_code is None:
            # 4.4.2 makes the Error Code optional, but xl2tpd before 1.3.14 (and clients built on it)
            # reject a Result Code AVP without one; 0 ("no general error") costs two octets.
            error_code = GeneralError.NO_ERROR
        if self.settings.result_code_byte_order is ByteOrder.LITTLE:
            result_code = swap16(result_code)
            error_code = None if error_code is None else swap16(error_code)
        return ResultCode(result_code, error_code, message)

    # --- input --------------------------------------------------------------------

    def receive(self, data: bytes, header: Header, body_offset: int, now: float) -> None:
        """One control datagram for this tunnel (header already parsed, sender checked)."""
        self.last_received = self.clock = now
        item: ControlMessage | BadMessage
        try:
            item = parse_message(data, secret=self.settings.secret)
        except RemoteProtocolError as exc:
            if exc.scope is Scope.DATAGRAM:
                self.endpoint.count("malformed_header")
                return
            item = BadMessage(exc, header.session_id, _raw_assigned_session_id(data, body_offset))
        assert header.ns is not None and header.nr is not None
        is_zlb = body_offset >= len(data)
        for delivered in self.channel.receive(header.ns, header.nr, is_zlb, item, now):
            if self.closing:
                # 5.7: after StopCCN we only acknowledge; a StopCCN from the peer ends the wait.
                if isinstance(delivered, ControlMessage) and delivered.message_type == M.StopCCN:
                    self.release_at = now + self.settings.retransmission_cycle
                elif isinstance(delivered, ControlMessage) and delivered.message_type == M.SCCRP:
                    self._stop_late_reply(delivered, now)
                continue
            self._deliver(delivered, now)

    def _deliver(self, item: ControlMessage | BadMessage, now: float) -> None:
        if isinstance(item, BadMessage):
            self._protocol_error(item, now)
            return
        self.endpoint.count(f"received_{item.name}")
        handler = _TUNNEL_HANDLERS.get(item.message_type or 0)
        if handler is not None:
            handler(self, item, now)
        else:
            self.last_call_message = now
            self._dispatch_call(item, now)

    def _protocol_error(self, bad: BadMessage, now: float) -> None:
        exc = bad.error
        self.endpoint.count(f"protocol_error_{exc.scope.value}")
        if exc.scope is Scope.MESSAGE:
            return  # 4.4.1: unknown message type with M=0: ignored, and acked by the channel
        if exc.scope is Scope.SESSION and self.state is TunnelState.ESTABLISHED:
            # RFC 2661 4.1: a bad mandatory AVP in a session message ends the session, not the tunnel.
            session = self.sessions.get(bad.session_id) if bad.session_id else None
            if session is not None:
                self._close_session(
                    session, now, CDNResult.GENERAL_ERROR, exc.error_code, exc.message, send=True
                )
            elif bad.peer_session_id:
                # A call request we cannot accept: refuse the call it names (7.4.2 "not acceptable").
                result = self._result(CDNResult.GENERAL_ERROR, exc.error_code, exc.message)
                # RFC 2661 4.4.4: an Assigned Session ID is non-zero. The refused call gets one
                # that names it for the peer; nothing is kept, so nothing is left half-open.
                refused_sid = self.endpoint.allocate_session_id(self.sessions.keys(), self.local_tunnel_id)
                avps: list[AvpItem] = [(A.RESULT_CODE, result), (A.ASSIGNED_SESSION_ID, refused_sid)]
                self._send(M.CDN, avps, now, session_id=bad.peer_session_id)
                self.endpoint.count("cdn_sent")
            else:
                self.endpoint.count("unknown_session")
            return
        self.stop(now, exc.result_code, exc.error_code, exc.message)

    def fire(self, event: TunnelInput, now: float, refusal: Refusal | None = None) -> None:
        """Apply one input of 7.2.1 and carry out its action."""
        found = lookup(self.state, event)
        if found is None:
            self.stop(now, StopCCNResult.FSM_ERROR, None, f"{event.value} in state {self.state.value}")
            return
        was_established = self.state is TunnelState.ESTABLISHED
        action, self.state = found
        if action is TA.SEND_SCCRQ:
            self._send_sccrq(now)
        elif action is TA.SEND_SCCRP:
            self._send_sccrp(now)
        elif action is TA.SEND_SCCCN:
            self._send_scccn(now)
            self._tunnel_open(now)
        elif action is TA.TUNNEL_OPEN and was_established:
            # RFC 2661 7.2.1 established, local open (new call): only the waiting sessions hear of
            # it; TunnelEstablished went out once, when the tunnel came up.
            for session in list(self.sessions.values()):
                if session.state is SessionState.WAIT_TUNNEL:
                    self._session_input(session, SI.TUNNEL_OPEN, now)
        elif action is TA.TUNNEL_OPEN:
            self._tunnel_open(now)
        elif action is TA.SEND_STOPCCN:
            r = refusal or Refusal(StopCCNResult.FSM_ERROR, None, f"{event.value} unexpected")
            self.stop(now, r.result_code, r.error_code, r.message)
        elif action is TA.CLEAN_UP:
            r = refusal or Refusal(StopCCNResult.GENERAL_REQUEST, None, event.value)
            self._clean_up(now, r.result_code, r.error_code, r.message, by_peer=True)
        elif action is TA.REQUEUE:
            self.endpoint.requeue(self, now)

    # --- 7.2.1 messages -------------------------------------------------------------

    def _common_avps(self, response_type: MessageType | None = None) -> list[AvpItem]:
        """SCCRQ/SCCRP AVPs. Challenge and Challenge Response go first, before any hidden AVP:
        xl2tpd looks its secret up only when it meets them, and unhides nothing before that."""
        s = self.settings
        avps: list[AvpItem] = []
        if s.secret:
            # 5.1.1: with a secret we always challenge the peer.
            self.challenge = self.endpoint.urandom(16)
            avps.append((A.CHALLENGE, self.challenge))
        avps += self._response(response_type)
        avps += [
            (A.PROTOCOL_VERSION, PROTOCOL_VERSION),
            (A.HOST_NAME, s.host_name),
            (A.FRAMING_CAPABILITIES, FramingCapability(s.framing_capabilities)),
            (A.BEARER_CAPABILITIES, BearerCapability(s.bearer_capabilities)),
            (A.ASSIGNED_TUNNEL_ID, self.local_tunnel_id),
            (A.RECEIVE_WINDOW_SIZE, s.receive_window),
            (A.FIRMWARE_REVISION, s.firmware_revision),
            (A.VENDOR_NAME, s.vendor_name),
        ]
        return [a for a in avps if not (isinstance(a, tuple) and a[0] in s.omit_avps)]

    def _response(self, message_type: MessageType | None) -> list[AvpItem]:
        """The Challenge Response to the peer's Challenge (5.1.1), if it sent one."""
        if message_type is None or self.peer_challenge is None or not self.settings.secret:
            return []
        return [
            (
                A.CHALLENGE_RESPONSE,
                challenge_response(message_type, self.settings.secret, self.peer_challenge),
            )
        ]

    def _send_sccrq(self, now: float) -> None:
        avps = self._common_avps()
        if self.settings.tie_breaker:
            self.tie_breaker = int.from_bytes(self.endpoint.urandom(8), "big")
            avps.append((A.TIE_BREAKER, self.tie_breaker))
        self._send(M.SCCRQ, avps, now)

    def _send_sccrp(self, now: float) -> None:
        self._send(M.SCCRP, self._common_avps(M.SCCRP), now)

    def _send_scccn(self, now: float) -> None:
        self._send(M.SCCCN, self._response(M.SCCCN), now)

    def check_peer_start(self, message: ControlMessage) -> Refusal | None:
        """Acceptability of an SCCRQ or SCCRP (4.4.3 version, 5.1.1 authentication); learn the peer."""
        version = message[A.PROTOCOL_VERSION]
        self.peer_tunnel_id = message[A.ASSIGNED_TUNNEL_ID]
        self.channel.peer_tunnel_id = self.peer_tunnel_id
        self.peer_host_name = message[A.HOST_NAME]
        self.peer_vendor_name = message.get(A.VENDOR_NAME)
        if self.initiator:
            self._apply_host_profile()
        if A.RECEIVE_WINDOW_SIZE in message:
            self.channel.set_peer_window(message[A.RECEIVE_WINDOW_SIZE])
        self.peer_challenge = message.get(A.CHALLENGE)
        if version != PROTOCOL_VERSION:
            return Refusal(
                StopCCNResult.BAD_PROTOCOL_VERSION,
                0x0100,  # 4.4.2: the Error Code carries the highest version we support (1.0)
                f"protocol version {version.version}.{version.revision} is not supported",
            )
        if self.peer_challenge is not None and not self.settings.secret:
            return Refusal(
                StopCCNResult.NOT_AUTHORIZED, None, "challenged, but no tunnel secret is configured"
            )
        return None

    def _apply_host_profile(self) -> None:
        """A tunnel we opened learns the peer's Host Name from SCCRP: apply profiles matching it.

        The secret stays the one our SCCRQ's Challenge was made with (5.1.1)."""
        settings = self.endpoint.settings.for_peer(self.peer[0], self.peer_host_name)
        if settings == self.settings:
            return
        self.settings = dataclasses.replace(settings, secret=self.settings.secret)
        self.channel.settings = _channel_settings(self.settings)

    def check_response(self, message: ControlMessage, reply_type: MessageType) -> Refusal | None:
        """5.1.1: the reply to our Challenge must carry MD5(type, secret, challenge)."""
        if self.challenge is None:
            return None
        assert self.settings.secret is not None
        response = message.get(A.CHALLENGE_RESPONSE)
        if response is None:
            return Refusal(StopCCNResult.NOT_AUTHORIZED, None, "no Challenge Response to our Challenge")
        if not check_challenge_response(reply_type, self.settings.secret, self.challenge, response):
            return Refusal(
                StopCCNResult.NOT_AUTHORIZED, None, "wrong Challenge Response: tunnel secrets differ"
            )
        return None

    def _handle_sccrq(self, message: ControlMessage, now: float) -> None:
        # Only a repeated or stray SCCRQ reaches an existing tunnel; a new one goes to the endpoint.
        self.fire(TI.RECV_SCCRQ, now)

    def _handle_sccrp(self, message: ControlMessage, now: float) -> None:
        if self.state is not TunnelState.WAIT_CTL_REPLY:
            self.fire(TI.RECV_SCCRP, now)
            return
        refusal = self.check_peer_start(message) or self.check_response(message, M.SCCRP)
        self.fire(TI.RECV_SCCRP_BAD if refusal else TI.RECV_SCCRP_OK, now, refusal)

    def _handle_scccn(self, message: ControlMessage, now: float) -> None:
        refusal = self.check_response(message, M.SCCCN) if self.state is TunnelState.WAIT_CTL_CONN else None
        self.fire(TI.RECV_SCCCN_BAD if refusal else TI.RECV_SCCCN_OK, now, refusal)

    def _handle_stopccn(self, message: ControlMessage, now: float) -> None:
        if not self.peer_tunnel_id:
            # RFC 2661 4.4.3: the Assigned Tunnel ID of a StopCCN names the sender's tunnel "even if
            # a StopCCN is sent before an Assigned Tunnel ID AVP is received" (a refused SCCRQ):
            # our ack must go to that tunnel, not to Tunnel ID 0.
            self.peer_tunnel_id = self.channel.peer_tunnel_id = message[A.ASSIGNED_TUNNEL_ID]
        result = normalise_result(message[A.RESULT_CODE], self.settings.result_code_byte_order)
        self.fire(
            TI.RECV_STOPCCN, now, Refusal(result.result_code, result.error_code, result.error_message or "")
        )
        # 5.7: ack at once and keep enough state to re-ack retransmissions for a full cycle.
        self.closing = True
        self.release_at = now + self.settings.retransmission_cycle
        self.channel.send_ack()

    def _handle_hello(self, message: ControlMessage, now: float) -> None:
        pass  # 5.5: the channel acknowledges it; receiving it was proof of life

    def _tunnel_open(self, now: float) -> None:
        self.setup_deadline = None
        self.endpoint.emit(
            TunnelEstablished(
                self.local_tunnel_id,
                self.peer_tunnel_id,
                self.peer,
                self.local,
                self.peer_host_name,
                self.peer_vendor_name,
                self.initiator,
            )
        )
        for session in list(self.sessions.values()):
            if session.state is SessionState.WAIT_TUNNEL:
                self._session_input(session, SI.TUNNEL_OPEN, now)

    # --- teardown --------------------------------------------------------------------

    def stop(
        self, now: float, result_code: int, error_code: int | None = None, message: str | None = None
    ) -> None:
        """Send StopCCN (5.7) and clean up; the tunnel lingers until it is acknowledged."""
        if self.closing:
            return
        self.endpoint.count("stopccn_sent")
        self.state = TunnelState.IDLE
        self.closing = True
        if self.peer_tunnel_id:
            self._send_stopccn(result_code, error_code, message, now)
            self.release_at = None
        elif self.initiator:
            # The peer has our SCCRQ but we lack its Tunnel ID: wait one retransmission cycle for
            # its SCCRP and answer that with this StopCCN, so that it is not left half-open.
            self._pending_stop = (result_code, error_code, message)
            self.release_at = now + self.settings.retransmission_cycle
        else:
            self.release_at = now  # nobody to tell: the peer never gave its Tunnel ID
        self._clean_up(now, result_code, error_code, message, by_peer=False)

    def _stop_late_reply(self, message: ControlMessage, now: float) -> None:
        if self._pending_stop is None or A.ASSIGNED_TUNNEL_ID not in message:
            return
        result_code, error_code, text = self._pending_stop
        self._pending_stop = None
        self.peer_tunnel_id = self.channel.peer_tunnel_id = message[A.ASSIGNED_TUNNEL_ID]
        self._send_stopccn(result_code, error_code, text, now)

    def _send_stopccn(self, result_code: int, error_code: int | None, text: str | None, now: float) -> None:
        """StopCCN (6.4) carries our Assigned Tunnel ID and the Result Code; its ack releases us."""
        avps: list[AvpItem] = [
            (A.ASSIGNED_TUNNEL_ID, self.local_tunnel_id),
            (A.RESULT_CODE, self._result(result_code, error_code, text)),
        ]
        self._send(M.StopCCN, avps, now, on_acked=self._release_now)

    def _release_now(self) -> None:
        self.release_at = 0.0  # due at once: the endpoint's next timer run releases it

    def _clean_up(
        self, now: float, result_code: int, error_code: int | None, message: str | None, *, by_peer: bool
    ) -> None:
        for session in list(self.sessions.values()):
            self._drop_session(
                session, CDNResult.GENERAL_ERROR, None, "tunnel closed", by_peer=by_peer, tunnel_closed=True
            )
        was_closing, self.closing = self._closed_reported, True
        self._closed_reported = True
        if was_closing:
            return
        self.endpoint.emit(
            TunnelClosed(
                self.local_tunnel_id,
                self.peer_tunnel_id,
                self.peer,
                result_code,
                error_code,
                message,
                by_peer,
            )
        )

    def handle_timer(self, now: float) -> None:
        self.clock = now
        self.channel.handle_timer(now)
        if self.channel.failed:
            if not self.closing:
                n = self.settings.max_retries
                self._clean_up(
                    now,
                    StopCCNResult.GENERAL_ERROR,
                    None,
                    f"no acknowledgement after {n} retransmissions",
                    by_peer=False,
                )
            self.release_at = now
            return
        if self.closing:
            return
        if self.setup_deadline is not None and now >= self.setup_deadline:
            self.stop(now, StopCCNResult.GENERAL_ERROR, None, "control connection setup timed out")
            return
        s = self.settings
        if (
            self.state is TunnelState.ESTABLISHED
            and s.hello_interval
            and not self.hello_outstanding
            and now >= self.last_received + s.hello_interval
        ):
            self.hello_outstanding = True
            self.endpoint.count("hello_sent")
            self._send(M.HELLO, [], now, on_acked=self._on_hello_acked)
        for session in list(self.sessions.values()):
            if session.deadline is not None and now >= session.deadline:
                limit = session.give_up_at if session.give_up_at is not None else now
                if self.last_call_message + self.setup_timeout > now and now < limit:
                    # The peer is still working through call messages (a burst of calls over a
                    # lossy link): its reply may be queued behind them. Wait for a quiet spell,
                    # but not for ever: a peer that keeps placing other calls would otherwise
                    # keep this one half-open as long as the tunnel lives.
                    session.deadline = min(self.last_call_message + self.setup_timeout, limit)
                    continue
                self._close_session(session, now, CDNResult.TIMEOUT, None, "call setup timed out", send=True)

    def _on_hello_acked(self) -> None:
        self.hello_outstanding = False


def _channel_settings(settings: TunnelSettings) -> ChannelSettings:
    return ChannelSettings(
        retransmit_initial=settings.retransmit_initial,
        retransmit_cap=settings.retransmit_cap,
        max_retries=settings.max_retries,
        ack_delay=settings.ack_delay,
        receive_window=settings.receive_window,
    )


_TUNNEL_HANDLERS: dict[int, Callable[[Tunnel, ControlMessage, float], None]] = {
    M.SCCRQ: Tunnel._handle_sccrq,
    M.SCCRP: Tunnel._handle_sccrp,
    M.SCCCN: Tunnel._handle_scccn,
    M.StopCCN: Tunnel._handle_stopccn,
    M.HELLO: Tunnel._handle_hello,
}


__all__ = ["TRANSITIONS", "VENDOR_IETF", "Refusal", "Tunnel", "TunnelAction", "TunnelInput", "TunnelState"]
