"""Session state machines of RFC 2661 7.4 (incoming calls) and 7.5 (outgoing calls).

Theory of operation. There are four machines: LAC and LNS, each for incoming
calls (ICRQ, ICRP, ICCN) and outgoing calls (OCRQ, OCRP, OCCN). Each is a dict
``(SessionState, SessionInput) -> (SessionAction, SessionState)`` with one entry
per row of the RFC's table, in the RFC's order. Whether a received message is
"acceptable" is decided before the lookup (``RECV_ICRP_OK`` or ``RECV_ICRP_BAD``);
where the RFC does not split a row that way the lookup falls back to the plain
input (``RECV_ICRP``). A pair that is in no table is an FSM error: the tunnel
answers with CDN (general error).

What lives outside the tables, in :mod:`l2tpfast.control.tunnel`: SLI and WEN
(accepted in every state but idle, in both directions, because real LACs send
SLI right after ICCN), a session-scoped malformed message (CDN with the error's
codes, RFC 2661 4.1), the setup timeout that keeps nothing half-open, and the
clean-up of every session when its tunnel goes (RFC 2661 5.7).
"""

from __future__ import annotations

import enum

from l2tpfast.control import fsm
from l2tpfast.control.events import CallInfo, CallType, ProxyInfo, Role
from l2tpfast.control.fsm import expand_rows


class SessionState(enum.Enum):
    IDLE = "idle"
    WAIT_TUNNEL = "wait-tunnel"
    WAIT_REPLY = "wait-reply"
    WAIT_CONNECT = "wait-connect"
    WAIT_CS_ANSWER = "wait-cs-answer"
    ESTABLISHED = "established"


class SessionInput(enum.Enum):
    LOCAL_OPEN = "local open request"
    LOCAL_CLOSE = "local close request or bearer line drop"
    TUNNEL_OPEN = "tunnel-open"
    BEARER_ANSWER = "bearer answer, framing detected"
    BEARER_FAILURE = "bearer failure"
    RECV_ICRQ = "receive ICRQ"
    RECV_ICRQ_OK = "receive ICRQ, acceptable"
    RECV_ICRQ_BAD = "receive ICRQ, not acceptable"
    RECV_ICRP = "receive ICRP"
    RECV_ICRP_OK = "receive ICRP, acceptable"
    RECV_ICRP_BAD = "receive ICRP, not acceptable"
    RECV_ICCN = "receive ICCN"
    RECV_ICCN_OK = "receive ICCN, acceptable"
    RECV_ICCN_BAD = "receive ICCN, not acceptable"
    RECV_OCRQ = "receive OCRQ"
    RECV_OCRQ_OK = "receive OCRQ, acceptable"
    RECV_OCRQ_BAD = "receive OCRQ, not acceptable"
    RECV_OCRP = "receive OCRP"
    RECV_OCRP_OK = "receive OCRP, acceptable"
    RECV_OCRP_BAD = "receive OCRP, not acceptable"
    RECV_OCCN = "receive OCCN"
    RECV_CDN = "receive CDN"


class SessionAction(enum.Enum):
    NONE = "none"
    INITIATE_TUNNEL = "initiate local tunnel open"
    SEND_ICRQ = "send ICRQ"
    SEND_ICRP = "send ICRP"
    SEND_ICCN = "send ICCN"
    SEND_OCRQ = "send OCRQ"
    SEND_OCRP = "send OCRP, open bearer"
    SEND_OCCN = "send OCCN"
    SEND_CDN = "send CDN, clean up"
    CLEAN_UP = "clean up"
    PREPARE_FOR_DATA = "prepare for data"


S = SessionState
I = SessionInput  # noqa: E741
Act = SessionAction
Table = dict[tuple[SessionState, SessionInput], tuple[SessionAction, SessionState]]


# 7.4.1 LAC Incoming Call States
LAC_INCOMING = expand_rows(
    ((S.IDLE,), (I.LOCAL_OPEN,), Act.INITIATE_TUNNEL, S.WAIT_TUNNEL),
    ((S.IDLE,), (I.RECV_ICCN, I.RECV_ICRP, I.RECV_CDN), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_TUNNEL,), (I.LOCAL_CLOSE,), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_TUNNEL,), (I.TUNNEL_OPEN,), Act.SEND_ICRQ, S.WAIT_REPLY),
    ((S.WAIT_REPLY,), (I.RECV_ICRP_OK,), Act.SEND_ICCN, S.ESTABLISHED),
    ((S.WAIT_REPLY,), (I.RECV_ICRP_BAD,), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_REPLY,), (I.RECV_ICRQ,), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_REPLY,), (I.RECV_CDN, I.RECV_ICCN), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_REPLY,), (I.LOCAL_CLOSE,), Act.SEND_CDN, S.IDLE),
    ((S.ESTABLISHED,), (I.RECV_CDN,), Act.CLEAN_UP, S.IDLE),
    ((S.ESTABLISHED,), (I.RECV_ICRQ, I.RECV_ICRP, I.RECV_ICCN), Act.SEND_CDN, S.IDLE),
    ((S.ESTABLISHED,), (I.LOCAL_CLOSE,), Act.SEND_CDN, S.IDLE),
)

# 7.4.2 LNS Incoming Call States
LNS_INCOMING = expand_rows(
    ((S.IDLE,), (I.RECV_ICRQ_OK,), Act.SEND_ICRP, S.WAIT_CONNECT),
    ((S.IDLE,), (I.RECV_ICRQ_BAD,), Act.SEND_CDN, S.IDLE),
    ((S.IDLE,), (I.RECV_ICRP,), Act.SEND_CDN, S.IDLE),
    ((S.IDLE,), (I.RECV_ICCN,), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_CONNECT,), (I.RECV_ICCN_OK,), Act.PREPARE_FOR_DATA, S.ESTABLISHED),
    ((S.WAIT_CONNECT,), (I.RECV_ICCN_BAD,), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_CONNECT,), (I.RECV_ICRQ, I.RECV_ICRP), Act.SEND_CDN, S.IDLE),
    ((S.IDLE, S.WAIT_CONNECT, S.ESTABLISHED), (I.RECV_CDN,), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_CONNECT, S.ESTABLISHED), (I.LOCAL_CLOSE,), Act.SEND_CDN, S.IDLE),
    ((S.ESTABLISHED,), (I.RECV_ICRQ, I.RECV_ICRP, I.RECV_ICCN), Act.SEND_CDN, S.IDLE),
)

# 7.5.1 LAC Outgoing Call States
LAC_OUTGOING = expand_rows(
    ((S.IDLE,), (I.RECV_OCRQ_OK,), Act.SEND_OCRP, S.WAIT_CS_ANSWER),
    ((S.IDLE,), (I.RECV_OCRQ_BAD,), Act.SEND_CDN, S.IDLE),
    ((S.IDLE,), (I.RECV_OCRP,), Act.SEND_CDN, S.IDLE),
    ((S.IDLE,), (I.RECV_OCCN, I.RECV_CDN), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_CS_ANSWER,), (I.BEARER_ANSWER,), Act.SEND_OCCN, S.ESTABLISHED),
    # A local close before the bearer answers is a bearer failure to the LNS.
    ((S.WAIT_CS_ANSWER,), (I.BEARER_FAILURE, I.LOCAL_CLOSE), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_CS_ANSWER,), (I.RECV_OCRQ, I.RECV_OCRP, I.RECV_OCCN), Act.SEND_CDN, S.IDLE),
    ((S.ESTABLISHED,), (I.RECV_OCRQ, I.RECV_OCRP, I.RECV_OCCN), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_CS_ANSWER, S.ESTABLISHED), (I.RECV_CDN,), Act.CLEAN_UP, S.IDLE),
    ((S.ESTABLISHED,), (I.LOCAL_CLOSE,), Act.SEND_CDN, S.IDLE),
)

# 7.5.2 LNS Outgoing Call States
LNS_OUTGOING = expand_rows(
    ((S.IDLE,), (I.LOCAL_OPEN,), Act.INITIATE_TUNNEL, S.WAIT_TUNNEL),
    # The RFC's row also lists CDN, which its later "idle, ..., receive CDN" row repeats.
    ((S.IDLE,), (I.RECV_OCCN, I.RECV_OCRP), Act.CLEAN_UP, S.IDLE),
    ((S.WAIT_TUNNEL,), (I.TUNNEL_OPEN,), Act.SEND_OCRQ, S.WAIT_REPLY),
    ((S.WAIT_REPLY,), (I.RECV_OCRP_OK,), Act.NONE, S.WAIT_CONNECT),
    ((S.WAIT_REPLY,), (I.RECV_OCRP_BAD,), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_REPLY,), (I.RECV_OCCN, I.RECV_OCRQ), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_CONNECT,), (I.RECV_OCCN,), Act.PREPARE_FOR_DATA, S.ESTABLISHED),
    ((S.WAIT_CONNECT,), (I.RECV_OCRQ, I.RECV_OCRP), Act.SEND_CDN, S.IDLE),
    ((S.IDLE, S.WAIT_REPLY, S.WAIT_CONNECT, S.ESTABLISHED), (I.RECV_CDN,), Act.CLEAN_UP, S.IDLE),
    ((S.ESTABLISHED,), (I.RECV_OCRQ, I.RECV_OCRP, I.RECV_OCCN), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_REPLY, S.WAIT_CONNECT, S.ESTABLISHED), (I.LOCAL_CLOSE,), Act.SEND_CDN, S.IDLE),
    ((S.WAIT_TUNNEL,), (I.LOCAL_CLOSE,), Act.CLEAN_UP, S.IDLE),
)

TABLES: dict[tuple[Role, CallType], Table] = {
    (Role.LAC, CallType.INCOMING): LAC_INCOMING,
    (Role.LNS, CallType.INCOMING): LNS_INCOMING,
    (Role.LAC, CallType.OUTGOING): LAC_OUTGOING,
    (Role.LNS, CallType.OUTGOING): LNS_OUTGOING,
}

#: The plain input a split one falls back to when the table does not split that row.
_GENERIC = {
    I.RECV_ICRQ_OK: I.RECV_ICRQ,
    I.RECV_ICRQ_BAD: I.RECV_ICRQ,
    I.RECV_ICRP_OK: I.RECV_ICRP,
    I.RECV_ICRP_BAD: I.RECV_ICRP,
    I.RECV_ICCN_OK: I.RECV_ICCN,
    I.RECV_ICCN_BAD: I.RECV_ICCN,
    I.RECV_OCRQ_OK: I.RECV_OCRQ,
    I.RECV_OCRQ_BAD: I.RECV_OCRQ,
    I.RECV_OCRP_OK: I.RECV_OCRP,
    I.RECV_OCRP_BAD: I.RECV_OCRP,
}


class SessionFsmError(Exception):
    """A (state, input) pair the RFC's table does not have."""


def lookup(table: Table, state: SessionState, event: SessionInput) -> tuple[SessionAction, SessionState]:
    found = fsm.lookup(table, state, event, _GENERIC)
    if found is None:
        raise SessionFsmError(f"no transition for {event.value} in state {state.value}")
    return found


class Session:
    """One call on a tunnel: its IDs, its machine, and what the call messages said."""

    __slots__ = (
        "announced",
        "call",
        "call_type",
        "deadline",
        "give_up_at",
        "local_session_id",
        "peer_session_id",
        "proxy",
        "role",
        "sequencing_required",
        "state",
        "table",
        "was_established",
    )

    def __init__(self, local_session_id: int, role: Role, call_type: CallType) -> None:
        self.local_session_id = local_session_id
        self.peer_session_id = 0
        self.role = role
        self.call_type = call_type
        self.table = TABLES[(role, call_type)]
        self.state = SessionState.IDLE
        self.call = CallInfo()
        self.proxy: ProxyInfo | None = None
        self.sequencing_required = False
        self.was_established = False
        #: Our Assigned Session ID went to the peer (ICRQ or OCRQ sent): it knows the call even
        #: before we know its Session ID, so clearing the call needs a CDN (RFC 2661 4.4.4).
        self.announced = False
        #: Setup deadline: a call not established by then is cleared (nothing stays half-open).
        self.deadline: float | None = None
        #: However busy the peer is with other calls, the setup wait ends by then.
        self.give_up_at: float | None = None

    def transition(self, event: SessionInput) -> SessionAction:
        """Apply one input; return the action the tunnel must carry out."""
        action, self.state = lookup(self.table, self.state, event)
        if self.state is SessionState.ESTABLISHED:
            self.was_established = True
            self.deadline = None
        return action

    def __repr__(self) -> str:
        return (
            f"Session({self.role.value} {self.call_type.value} {self.local_session_id}/"
            f"{self.peer_session_id} {self.state.value})"
        )
