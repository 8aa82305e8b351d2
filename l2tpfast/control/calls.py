"""Calls on a tunnel: dispatch of the session messages to the machines of RFC 2661 7.4 and 7.5.

Theory of operation. :class:`Calls` is the part of a :class:`~l2tpfast.control.tunnel.Tunnel`
that owns its sessions: it creates them (ICRQ, OCRQ, or a local open), feeds them the inputs of
:mod:`.session`'s tables and carries out the actions those return (send ICRQ, ICRP, ICCN, OCRQ,
OCRP, OCCN or CDN; report the call up or gone). Outside the tables, as :mod:`.session` says: SLI
and WEN in every state but idle, CDN in every state, a setup timer armed when the peer has our
call message, and a session-scoped protocol error ending that session only (4.1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from l2tpfast.control.events import (
    Address,
    CallInfo,
    CallType,
    LinkInfoSet,
    ProxyInfo,
    Role,
    SessionClosed,
    SessionConnected,
    SessionEstablished,
    WanErrorNotified,
)
from l2tpfast.control.session import Session, SessionAction, SessionFsmError, SessionInput, SessionState
from l2tpfast.control.settings import ByteOrder, TunnelSettings
from l2tpfast.wire.avp import Accm, CallErrors, PppDisconnectCause, Q931Cause, ResultCode, make_avp
from l2tpfast.wire.constants import (
    VENDOR_BROADBAND_FORUM,
    AvpType,
    BbfAvpType,
    BearerCapability,
    CDNResult,
    FramingCapability,
    GeneralError,
    MessageType,
    StopCCNResult,
)
from l2tpfast.wire.message import AvpItem, ControlMessage

BBF = VENDOR_BROADBAND_FORUM

if TYPE_CHECKING:
    from l2tpfast.control.endpoint import Endpoint

A = AvpType
M = MessageType
SI = SessionInput

#: Session messages and the session machine input each one is.
_CALL_INPUTS = {
    M.ICRQ: SI.RECV_ICRQ,
    M.ICRP: SI.RECV_ICRP,
    M.ICCN: SI.RECV_ICCN,
    M.OCRQ: SI.RECV_OCRQ,
    M.OCRP: SI.RECV_OCRP,
    M.OCCN: SI.RECV_OCCN,
    M.CDN: SI.RECV_CDN,
}


class Refusal(Exception):
    """Why a message is not acceptable: the Result and Error Codes to answer with."""

    def __init__(self, result_code: int, error_code: int | None, message: str) -> None:
        super().__init__(message)
        self.result_code = result_code
        self.error_code = error_code
        self.message = message


def swap16(value: int) -> int:
    return ((value & 0xFF) << 8) | (value >> 8)


def normalise_result(result: ResultCode, order: ByteOrder) -> ResultCode:
    """Undo little-endian Result and Error Codes (some Apple clients send them so)."""

    def looks_swapped(value: int) -> bool:
        return value > 0xFF and swap16(value) <= 0xFF

    swap = order is ByteOrder.LITTLE
    if order is ByteOrder.AUTO:
        # RFC 2661 4.4.2: every Result Code is small (1..11), so it alone tells the peer's byte
        # order; the Error Code follows it, since one can be large (StopCCN result 5 carries the
        # highest version supported, 1.0 = 0x0100). Only a reserved Result Code 0 tells nothing.
        code = result.result_code
        swap = looks_swapped(code) if code else looks_swapped(result.error_code or 0)
    if not swap:
        return result
    error = None if result.error_code is None else swap16(result.error_code)
    return ResultCode(swap16(result.result_code), error, result.error_message)


class Calls:
    """The sessions of one tunnel. :class:`~l2tpfast.control.tunnel.Tunnel` provides the rest."""

    endpoint: Endpoint
    sessions: dict[int, Session]
    settings: TunnelSettings
    local_tunnel_id: int
    peer_tunnel_id: int
    peer: Address
    clock: float
    last_call_message: float

    # Provided by Tunnel.
    @property
    def is_established(self) -> bool:
        raise NotImplementedError

    def request_tunnel(self, now: float) -> None:
        raise NotImplementedError

    def stop(
        self, now: float, result_code: int, error_code: int | None = None, message: str | None = None
    ) -> None:
        raise NotImplementedError

    def _send(
        self,
        message_type: MessageType,
        avps: Iterable[AvpItem],
        now: float,
        *,
        session_id: int = 0,
        on_acked: Callable[[], None] | None = None,
    ) -> None:
        raise NotImplementedError

    def _result(self, result_code: int, error_code: int | None, message: str | None) -> ResultCode:
        raise NotImplementedError

    def new_session(self, role: Role, call_type: CallType, now: float) -> Session:
        session = Session(
            self.endpoint.allocate_session_id(self.sessions.keys(), self.local_tunnel_id), role, call_type
        )
        session.deadline = None  # armed when our call message is acknowledged (_await_reply)
        self.sessions[session.local_session_id] = session
        return session

    @property
    def setup_timeout(self) -> float:
        return max(60.0, 2 * self.settings.retransmission_cycle)

    def _await_reply(self, session: Session) -> Callable[[], None]:
        """Arm the call's setup timer once the peer acknowledged our message, not while it queued."""
        session.deadline = None

        def acked() -> None:
            if session.state is not SessionState.ESTABLISHED and session.local_session_id in self.sessions:
                session.deadline = self.clock + self.setup_timeout
                session.give_up_at = self.clock + 2 * self.setup_timeout

        return acked

    def _connected(self, session: Session) -> Callable[[], None]:
        """SessionConnected once the peer acknowledged our ICCN/OCCN, if the call still stands."""

        def acked() -> None:
            if self.sessions.get(session.local_session_id) is session:
                self.endpoint.emit(SessionConnected(self.local_tunnel_id, session.local_session_id))

        return acked

    def open_call(self, session: Session, now: float) -> None:
        """LOCAL_OPEN of a LAC incoming or LNS outgoing call (7.4.1, 7.5.2)."""
        self._session_input(session, SI.LOCAL_OPEN, now)

    def _dispatch_call(self, message: ControlMessage, now: float) -> None:
        if not self.is_established:
            self.stop(now, StopCCNResult.FSM_ERROR, None, f"{message.name} before the tunnel is established")
            return
        mtype = message.message_type
        session: Session | None
        if message.session_id == 0 and mtype in (M.ICRQ, M.OCRQ):
            self._new_call(message, now)
            return
        session = self.sessions.get(message.session_id)
        if session is None and mtype == M.CDN:
            # Some peers send CDN to session 0; its Assigned Session ID names the call.
            peer_sid = message[A.ASSIGNED_SESSION_ID]
            session = next((s for s in self.sessions.values() if s.peer_session_id == peer_sid), None)
        if session is None:
            self.endpoint.count("unknown_session")
            return
        if mtype == M.SLI:
            if session.state is not SessionState.IDLE:
                self.endpoint.emit(
                    LinkInfoSet(self.local_tunnel_id, session.local_session_id, message[A.ACCM])
                )
            return
        if mtype == M.WEN:
            if session.state is not SessionState.IDLE:
                errors = message[A.CALL_ERRORS]
                self.endpoint.emit(WanErrorNotified(self.local_tunnel_id, session.local_session_id, errors))
            return
        event = _CALL_INPUTS[M(mtype or 0)]
        if mtype == M.CDN:
            result = normalise_result(message[A.RESULT_CODE], self.settings.result_code_byte_order)
            with contextlib.suppress(SessionFsmError):
                session.transition(event)  # 7.4, 7.5: CDN clears the call in every state
            self._drop_session(
                session,
                result.result_code,
                result.error_code,
                result.error_message,
                by_peer=True,
                q931=message.get(A.Q931_CAUSE_CODE),
                disconnect_cause=message.get(A.PPP_DISCONNECT_CAUSE_CODE),
            )
            return
        if mtype == M.ICRP and session.state is SessionState.WAIT_REPLY:
            session.peer_session_id = message[A.ASSIGNED_SESSION_ID]
            event = SI.RECV_ICRP_OK
        elif mtype == M.OCRP and session.state is SessionState.WAIT_REPLY:
            session.peer_session_id = message[A.ASSIGNED_SESSION_ID]
            event = SI.RECV_OCRP_OK
        elif mtype == M.ICCN and session.state is SessionState.WAIT_CONNECT:
            self._learn_connect(session, message)
            event = SI.RECV_ICCN_OK
        elif mtype == M.OCCN and session.state is SessionState.WAIT_CONNECT:
            self._learn_connect(session, message)
        self._session_input(session, event, now)

    def _new_call(self, message: ControlMessage, now: float) -> None:
        incoming = message.message_type == M.ICRQ
        role, call_type = (Role.LNS, CallType.INCOMING) if incoming else (Role.LAC, CallType.OUTGOING)
        session = self.new_session(role, call_type, now)
        session.peer_session_id = message[A.ASSIGNED_SESSION_ID]
        session.call = _call_info(message)
        s = self.settings
        refusal: Refusal | None = None
        if not (s.accept_incoming_calls if incoming else s.accept_outgoing_calls):
            refusal = Refusal(
                CDNResult.PERMANENT_NO_FACILITIES, GeneralError.NO_ERROR, f"{message.name} not accepted here"
            )
        elif (s.max_sessions and len(self.sessions) > s.max_sessions) or not self.endpoint.session_allowed():
            refusal = Refusal(
                CDNResult.TEMPORARY_NO_FACILITIES, GeneralError.NO_RESOURCES, "session limit reached"
            )
        if refusal is not None:
            self.endpoint.count("calls_refused")
            ok_bad = SI.RECV_ICRQ_BAD if incoming else SI.RECV_OCRQ_BAD
            self._session_input(session, ok_bad, now, refusal)
            return
        self._session_input(session, SI.RECV_ICRQ_OK if incoming else SI.RECV_OCRQ_OK, now)

    def _learn_connect(self, session: Session, message: ControlMessage) -> None:
        call = _call_info(message, session.call)
        session.call = call
        session.sequencing_required = bool(message.get(A.SEQUENCING_REQUIRED, False))
        proxy = ProxyInfo(
            initial_received_lcp_confreq=message.get(A.INITIAL_RECEIVED_LCP_CONFREQ),
            last_sent_lcp_confreq=message.get(A.LAST_SENT_LCP_CONFREQ),
            last_received_lcp_confreq=message.get(A.LAST_RECEIVED_LCP_CONFREQ),
            authen_type=message.get(A.PROXY_AUTHEN_TYPE),
            authen_name=message.get(A.PROXY_AUTHEN_NAME),
            authen_challenge=message.get(A.PROXY_AUTHEN_CHALLENGE),
            authen_id=message.get(A.PROXY_AUTHEN_ID),
            authen_response=message.get(A.PROXY_AUTHEN_RESPONSE),
        )
        session.proxy = proxy if proxy != ProxyInfo() else None

    def _session_input(
        self, session: Session, event: SessionInput, now: float, refusal: Refusal | None = None
    ) -> None:
        try:
            action = session.transition(event)
        except SessionFsmError as exc:
            self._close_session(
                session, now, CDNResult.GENERAL_ERROR, GeneralError.VENDOR_ERROR, str(exc), send=True
            )
            return
        self._session_action(session, action, now, refusal)

    def _session_action(
        self, session: Session, action: SessionAction, now: float, refusal: Refusal | None
    ) -> None:
        sid = session.local_session_id
        if action is SessionAction.INITIATE_TUNNEL:
            if self.is_established:
                self._session_input(session, SI.TUNNEL_OPEN, now)
            else:
                self.request_tunnel(now)
        elif action is SessionAction.SEND_ICRQ:
            session.announced = True
            self._send(M.ICRQ, _icrq_avps(sid, session.call), now, on_acked=self._await_reply(session))
        elif action is SessionAction.SEND_ICRP:
            self._send(
                M.ICRP,
                [(A.ASSIGNED_SESSION_ID, sid)],
                now,
                session_id=session.peer_session_id,
                on_acked=self._await_reply(session),
            )
        elif action is SessionAction.SEND_ICCN:
            self._send(
                M.ICCN,
                _connect_avps(session, self.settings),
                now,
                session_id=session.peer_session_id,
                on_acked=self._connected(session),
            )
            self._established(session)
        elif action is SessionAction.SEND_OCRQ:
            session.announced = True
            self._send(M.OCRQ, _ocrq_avps(sid, session.call), now, on_acked=self._await_reply(session))
        elif action is SessionAction.SEND_OCRP:
            self._send(M.OCRP, [(A.ASSIGNED_SESSION_ID, sid)], now, session_id=session.peer_session_id)
            if self.settings.auto_answer_outgoing:
                self._session_input(session, SI.BEARER_ANSWER, now)
            else:
                # 7.5.1 wait-cs-answer: "a timer expires waiting for the call to complete" -> CDN.
                session.deadline = now + self.setup_timeout
        elif action is SessionAction.SEND_OCCN:
            self._send(
                M.OCCN,
                _connect_avps(session, self.settings),
                now,
                session_id=session.peer_session_id,
                on_acked=self._connected(session),
            )
            self._established(session)
        elif action is SessionAction.PREPARE_FOR_DATA:
            self._established(session)
        elif action is SessionAction.SEND_CDN:
            r = refusal or Refusal(CDNResult.GENERAL_ERROR, None, "call message in the wrong state")
            self._close_session(
                session, now, r.result_code, r.error_code, r.message, send=True, transition=False
            )
        elif action is SessionAction.CLEAN_UP:
            self._drop_session(session, CDNResult.GENERAL_ERROR, None, "clean up", by_peer=True)

    def _established(self, session: Session) -> None:
        self.endpoint.emit(
            SessionEstablished(
                self.local_tunnel_id,
                session.local_session_id,
                self.peer_tunnel_id,
                session.peer_session_id,
                self.peer,
                session.role,
                session.call_type,
                session.call,
                session.sequencing_required,
                session.proxy,
            )
        )

    def close_session(
        self,
        session: Session,
        now: float,
        result_code: int,
        error_code: int | None,
        message: str | None,
        q931: Q931Cause | None = None,
        disconnect_cause: PppDisconnectCause | None = None,
    ) -> None:
        """LOCAL_CLOSE (bearer line drop or local close request) of 7.4 and 7.5."""
        try:
            action = session.transition(SI.LOCAL_CLOSE)
        except SessionFsmError:
            known = session.peer_session_id or session.announced
            action = SessionAction.SEND_CDN if known else SessionAction.CLEAN_UP
        if action is SessionAction.SEND_CDN:
            self._close_session(
                session,
                now,
                result_code,
                error_code,
                message,
                send=True,
                transition=False,
                q931=q931,
                disconnect_cause=disconnect_cause,
            )
        else:
            self._drop_session(session, result_code, error_code, message, by_peer=False)

    def _close_session(
        self,
        session: Session,
        now: float,
        result_code: int,
        error_code: int | None,
        message: str | None,
        *,
        send: bool,
        transition: bool = True,
        q931: Q931Cause | None = None,
        disconnect_cause: PppDisconnectCause | None = None,
    ) -> None:
        if transition:
            session.state = SessionState.IDLE
        # RFC 2661 4.4.4: a CDN may go before the peer's Assigned Session ID is known (to Session
        # ID 0); our Assigned Session ID in it names the call. A call never announced needs none.
        if send and (session.peer_session_id or session.announced):
            avps: list[AvpItem] = [
                (A.RESULT_CODE, self._result(result_code, error_code, message)),
                (A.ASSIGNED_SESSION_ID, session.local_session_id),
            ]
            if q931 is not None:
                avps.append((A.Q931_CAUSE_CODE, q931))
            if disconnect_cause is not None:
                avps.append((A.PPP_DISCONNECT_CAUSE_CODE, disconnect_cause))  # RFC 3145
            self._send(M.CDN, avps, now, session_id=session.peer_session_id)
            self.endpoint.count("cdn_sent")
        self._drop_session(
            session,
            result_code,
            error_code,
            message,
            by_peer=False,
            q931=q931,
            disconnect_cause=disconnect_cause,
        )

    def _drop_session(
        self,
        session: Session,
        result_code: int,
        error_code: int | None,
        message: str | None,
        *,
        by_peer: bool,
        q931: Q931Cause | None = None,
        disconnect_cause: PppDisconnectCause | None = None,
        tunnel_closed: bool = False,
    ) -> None:
        if self.sessions.pop(session.local_session_id, None) is None:
            return
        session.state = SessionState.IDLE
        self.endpoint.emit(
            SessionClosed(
                self.local_tunnel_id,
                session.local_session_id,
                session.peer_session_id,
                result_code,
                error_code,
                message,
                q931,
                by_peer,
                session.was_established,
                disconnect_cause,
                tunnel_closed,
            )
        )

    def send_link_info(self, session: Session, accm: Accm, now: float) -> None:
        self._send(M.SLI, [(A.ACCM, accm)], now, session_id=session.peer_session_id)

    def send_wan_error(self, session: Session, errors: CallErrors, now: float) -> None:
        self._send(M.WEN, [(A.CALL_ERRORS, errors)], now, session_id=session.peer_session_id)

    def answer_call(
        self,
        session: Session,
        now: float,
        *,
        success: bool = True,
        result_code: int = CDNResult.NO_CARRIER,
        message: str | None = None,
    ) -> None:
        """The LAC's bearer answered (or failed) an outgoing call (7.5.1)."""
        if success:
            self._session_input(session, SI.BEARER_ANSWER, now)
            return
        # RFC 2661 4.4.2: a failed call says why (7 no carrier, 8 busy, 9 no dial tone, ...).
        why = Refusal(result_code, None, message or "bearer failure")
        self._session_input(session, SI.BEARER_FAILURE, now, why)


def _call_info(message: ControlMessage, base: CallInfo | None = None) -> CallInfo:
    base = base or CallInfo()
    g = message.get

    def pick(attr: AvpType, old: Any) -> Any:
        return g(attr, old)

    return CallInfo(
        call_serial_number=pick(A.CALL_SERIAL_NUMBER, base.call_serial_number),
        bearer_type=pick(A.BEARER_TYPE, base.bearer_type),
        framing_type=pick(A.FRAMING_TYPE, base.framing_type),
        calling_number=pick(A.CALLING_NUMBER, base.calling_number),
        called_number=pick(A.CALLED_NUMBER, base.called_number),
        sub_address=pick(A.SUB_ADDRESS, base.sub_address),
        physical_channel_id=pick(A.PHYSICAL_CHANNEL_ID, base.physical_channel_id),
        tx_connect_speed=pick(A.TX_CONNECT_SPEED, base.tx_connect_speed),
        rx_connect_speed=pick(A.RX_CONNECT_SPEED, base.rx_connect_speed),
        private_group_id=pick(A.PRIVATE_GROUP_ID, base.private_group_id),
        minimum_bps=pick(A.MINIMUM_BPS, base.minimum_bps),
        maximum_bps=pick(A.MAXIMUM_BPS, base.maximum_bps),
        agent_circuit_id=g(
            BbfAvpType.AGENT_CIRCUIT_ID, base.agent_circuit_id, vendor_id=VENDOR_BROADBAND_FORUM
        ),
        agent_remote_id=g(BbfAvpType.AGENT_REMOTE_ID, base.agent_remote_id, vendor_id=VENDOR_BROADBAND_FORUM),
    )


def _icrq_avps(session_id: int, call: CallInfo) -> list[AvpItem]:
    avps: list[AvpItem] = [
        (A.ASSIGNED_SESSION_ID, session_id),
        (A.CALL_SERIAL_NUMBER, call.call_serial_number),
        (A.BEARER_TYPE, BearerCapability(call.bearer_type if call.bearer_type is not None else 0)),
    ]
    if call.physical_channel_id is not None:
        avps.append((A.PHYSICAL_CHANNEL_ID, call.physical_channel_id))
    if call.calling_number is not None:
        avps.append((A.CALLING_NUMBER, call.calling_number))
    if call.called_number is not None:
        avps.append((A.CALLED_NUMBER, call.called_number))
    if call.sub_address is not None:
        avps.append((A.SUB_ADDRESS, call.sub_address))
    # Broadband Forum TR-101 line identification, as a carrier LAC sends it (M=0).
    if call.agent_circuit_id is not None:
        avps.append(
            make_avp(BbfAvpType.AGENT_CIRCUIT_ID, call.agent_circuit_id, vendor_id=VENDOR_BROADBAND_FORUM)
        )
    if call.agent_remote_id is not None:
        avps.append(
            make_avp(BbfAvpType.AGENT_REMOTE_ID, call.agent_remote_id, vendor_id=VENDOR_BROADBAND_FORUM)
        )
    return avps


def _ocrq_avps(session_id: int, call: CallInfo) -> list[AvpItem]:
    avps: list[AvpItem] = [
        (A.ASSIGNED_SESSION_ID, session_id),
        (A.CALL_SERIAL_NUMBER, call.call_serial_number),
        (A.MINIMUM_BPS, call.minimum_bps or 0),
        (A.MAXIMUM_BPS, call.maximum_bps or 0xFFFFFFFF),
        (A.BEARER_TYPE, BearerCapability(call.bearer_type or BearerCapability.DIGITAL)),
        (A.FRAMING_TYPE, FramingCapability(call.framing_type or FramingCapability.SYNC)),
        (A.CALLED_NUMBER, call.called_number or ""),
    ]
    if call.sub_address is not None:
        avps.append((A.SUB_ADDRESS, call.sub_address))
    return avps


def _connect_avps(session: Session, settings: TunnelSettings) -> list[AvpItem]:
    """ICCN (6.8) or OCCN (6.11): speed, framing, and for ICCN the proxy AVPs (4.4.5)."""
    call = session.call
    avps: list[AvpItem] = [
        (A.TX_CONNECT_SPEED, call.tx_connect_speed or 100_000_000),
        (A.FRAMING_TYPE, FramingCapability(call.framing_type or FramingCapability.SYNC)),
    ]
    if call.rx_connect_speed is not None:
        avps.append((A.RX_CONNECT_SPEED, call.rx_connect_speed))
    proxy = session.proxy
    if proxy is not None and session.call_type is CallType.INCOMING:
        for attr, value in (
            (A.INITIAL_RECEIVED_LCP_CONFREQ, proxy.initial_received_lcp_confreq),
            (A.LAST_SENT_LCP_CONFREQ, proxy.last_sent_lcp_confreq),
            (A.LAST_RECEIVED_LCP_CONFREQ, proxy.last_received_lcp_confreq),
            (A.PROXY_AUTHEN_TYPE, proxy.authen_type),
            (A.PROXY_AUTHEN_NAME, proxy.authen_name),
            (A.PROXY_AUTHEN_CHALLENGE, proxy.authen_challenge),
            (A.PROXY_AUTHEN_ID, proxy.authen_id),
            (A.PROXY_AUTHEN_RESPONSE, proxy.authen_response),
        ):
            if value is not None:
                avps.append((attr, value))
    if call.private_group_id is not None and session.call_type is CallType.INCOMING:
        avps.append((A.PRIVATE_GROUP_ID, call.private_group_id))
    if settings.sequencing_required or session.sequencing_required:
        session.sequencing_required = True
        avps.append((A.SEQUENCING_REQUIRED, True))
    return avps
