"""The PPP option negotiation automaton (RFC 1661 4), shared by LCP, IPCP and IPV6CP.

Theory of operation
-------------------
``TRANSITIONS`` is the state transition table of RFC 1661 4.1, one entry per cell, in the RFC's
order (event rows, then state columns). A cell the RFC marks "-" is absent: looking it up is an
Illegal-Event, logged and counted, and "no transition is taken" (4.4); the caller never sees an
exception.

What lives outside the table, and why:

- Turning a packet into an event (4.3). The protocol's :class:`OptionHandler` judges a
  Configure-Request (RCR+ or RCR-, 5.2-5.4); Max-Failure then turns Naks into Rejects (4.6).
  Configure-Ack/Nak/Reject are valid only with the Identifier of the outstanding
  Configure-Request, and only once (5.1: "whenever a valid reply has been received" the
  Identifier changes); invalid ones are silently discarded (5.2-5.4). Code-Reject and
  Protocol-Reject become RXJ+ or RXJ- in :meth:`Automaton._classify_reject` (4.3, 5.6, 5.7),
  which LCP extends. Codes a protocol does not know are RUC (5.6; RFC 1332 2 and RFC 5072 3:
  NCPs use codes 1-7 only).
- The Restart timer and counter (4.6): one deadline; TO+ while the counter is above zero.
- The footnotes of 4.1: [p] passive (4.2 Stopped) and [r] restart (4.3 Open) are
  :class:`FsmSettings` flags, off by default; [x] crossed connection (4.3 RCA) is logged.

Within a cell, packets go out in the cell's order; then the new state is set, the Restart timer
is stopped if the new state has no TO event (4.1), and only then do the This-Layer-* callbacks
run (4.1: "multiple actions may be implemented in any convenient order"), so an owner that
reacts to them, even by calling back into the automaton, sees the state the RFC names.
"""

from __future__ import annotations

import logging
import typing
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from l2tpfast.errors import PppError
from l2tpfast.ppp.constants import Code
from l2tpfast.ppp.frame import Option, Packet, build_options, build_packet, parse_options

log = logging.getLogger(__name__)

__all__ = [
    "TRANSITIONS",
    "Action",
    "Automaton",
    "Counters",
    "FsmSettings",
    "Input",
    "Layer",
    "OptionHandler",
    "State",
    "options_subset",
]


class State(IntEnum):
    """RFC 1661 4.2, numbered as the columns of the 4.1 table."""

    INITIAL = 0
    STARTING = 1
    CLOSED = 2
    STOPPED = 3
    CLOSING = 4
    STOPPING = 5
    REQ_SENT = 6
    ACK_RCVD = 7
    ACK_SENT = 8
    OPENED = 9


class Input(Enum):
    """RFC 1661 4.3 events, valued with the RFC's abbreviations."""

    UP = "Up"
    DOWN = "Down"
    OPEN = "Open"
    CLOSE = "Close"
    TO_PLUS = "TO+"
    TO_MINUS = "TO-"
    RCR_PLUS = "RCR+"
    RCR_MINUS = "RCR-"
    RCA = "RCA"
    RCN = "RCN"
    RTR = "RTR"
    RTA = "RTA"
    RUC = "RUC"
    RXJ_PLUS = "RXJ+"
    RXJ_MINUS = "RXJ-"
    RXR = "RXR"


class Action(Enum):
    """RFC 1661 4.4 actions."""

    TLU = "tlu"
    TLD = "tld"
    TLS = "tls"
    TLF = "tlf"
    IRC = "irc"
    ZRC = "zrc"
    SCR = "scr"
    SCA = "sca"
    SCN = "scn"
    STR = "str"
    STA = "sta"
    SCJ = "scj"
    SER = "ser"


Cell = tuple[tuple[Action, ...], State]
_S = State
_E = Input
_A = Action

# RFC 1661 4.1
TRANSITIONS: dict[tuple[State, Input], Cell] = {
    # Up
    (_S.INITIAL, _E.UP): ((), _S.CLOSED),
    (_S.STARTING, _E.UP): ((_A.IRC, _A.SCR), _S.REQ_SENT),
    # Down
    (_S.CLOSED, _E.DOWN): ((), _S.INITIAL),
    (_S.STOPPED, _E.DOWN): ((_A.TLS,), _S.STARTING),
    (_S.CLOSING, _E.DOWN): ((), _S.INITIAL),
    (_S.STOPPING, _E.DOWN): ((), _S.STARTING),
    (_S.REQ_SENT, _E.DOWN): ((), _S.STARTING),
    (_S.ACK_RCVD, _E.DOWN): ((), _S.STARTING),
    (_S.ACK_SENT, _E.DOWN): ((), _S.STARTING),
    (_S.OPENED, _E.DOWN): ((_A.TLD,), _S.STARTING),
    # Open ([r] cells: Stopped, Closing, Stopping, Opened; see Automaton.open)
    (_S.INITIAL, _E.OPEN): ((_A.TLS,), _S.STARTING),
    (_S.STARTING, _E.OPEN): ((), _S.STARTING),
    (_S.CLOSED, _E.OPEN): ((_A.IRC, _A.SCR), _S.REQ_SENT),
    (_S.STOPPED, _E.OPEN): ((), _S.STOPPED),
    (_S.CLOSING, _E.OPEN): ((), _S.STOPPING),
    (_S.STOPPING, _E.OPEN): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.OPEN): ((), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.OPEN): ((), _S.ACK_RCVD),
    (_S.ACK_SENT, _E.OPEN): ((), _S.ACK_SENT),
    (_S.OPENED, _E.OPEN): ((), _S.OPENED),
    # Close
    (_S.INITIAL, _E.CLOSE): ((), _S.INITIAL),
    (_S.STARTING, _E.CLOSE): ((_A.TLF,), _S.INITIAL),
    (_S.CLOSED, _E.CLOSE): ((), _S.CLOSED),
    (_S.STOPPED, _E.CLOSE): ((), _S.CLOSED),
    (_S.CLOSING, _E.CLOSE): ((), _S.CLOSING),
    (_S.STOPPING, _E.CLOSE): ((), _S.CLOSING),
    (_S.REQ_SENT, _E.CLOSE): ((_A.IRC, _A.STR), _S.CLOSING),
    (_S.ACK_RCVD, _E.CLOSE): ((_A.IRC, _A.STR), _S.CLOSING),
    (_S.ACK_SENT, _E.CLOSE): ((_A.IRC, _A.STR), _S.CLOSING),
    (_S.OPENED, _E.CLOSE): ((_A.TLD, _A.IRC, _A.STR), _S.CLOSING),
    # TO+
    (_S.CLOSING, _E.TO_PLUS): ((_A.STR,), _S.CLOSING),
    (_S.STOPPING, _E.TO_PLUS): ((_A.STR,), _S.STOPPING),
    (_S.REQ_SENT, _E.TO_PLUS): ((_A.SCR,), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.TO_PLUS): ((_A.SCR,), _S.REQ_SENT),
    (_S.ACK_SENT, _E.TO_PLUS): ((_A.SCR,), _S.ACK_SENT),
    # TO- ([p] cells: Req-Sent, Ack-Rcvd, Ack-Sent; see FsmSettings.passive)
    (_S.CLOSING, _E.TO_MINUS): ((_A.TLF,), _S.CLOSED),
    (_S.STOPPING, _E.TO_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.REQ_SENT, _E.TO_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.ACK_RCVD, _E.TO_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.ACK_SENT, _E.TO_MINUS): ((_A.TLF,), _S.STOPPED),
    # RCR+
    (_S.CLOSED, _E.RCR_PLUS): ((_A.STA,), _S.CLOSED),
    (_S.STOPPED, _E.RCR_PLUS): ((_A.IRC, _A.SCR, _A.SCA), _S.ACK_SENT),
    (_S.CLOSING, _E.RCR_PLUS): ((), _S.CLOSING),
    (_S.STOPPING, _E.RCR_PLUS): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.RCR_PLUS): ((_A.SCA,), _S.ACK_SENT),
    (_S.ACK_RCVD, _E.RCR_PLUS): ((_A.SCA, _A.TLU), _S.OPENED),
    (_S.ACK_SENT, _E.RCR_PLUS): ((_A.SCA,), _S.ACK_SENT),
    (_S.OPENED, _E.RCR_PLUS): ((_A.TLD, _A.SCR, _A.SCA), _S.ACK_SENT),
    # RCR-
    (_S.CLOSED, _E.RCR_MINUS): ((_A.STA,), _S.CLOSED),
    (_S.STOPPED, _E.RCR_MINUS): ((_A.IRC, _A.SCR, _A.SCN), _S.REQ_SENT),
    (_S.CLOSING, _E.RCR_MINUS): ((), _S.CLOSING),
    (_S.STOPPING, _E.RCR_MINUS): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.RCR_MINUS): ((_A.SCN,), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RCR_MINUS): ((_A.SCN,), _S.ACK_RCVD),
    (_S.ACK_SENT, _E.RCR_MINUS): ((_A.SCN,), _S.REQ_SENT),
    (_S.OPENED, _E.RCR_MINUS): ((_A.TLD, _A.SCR, _A.SCN), _S.REQ_SENT),
    # RCA ([x] cells: Ack-Rcvd, Opened)
    (_S.CLOSED, _E.RCA): ((_A.STA,), _S.CLOSED),
    (_S.STOPPED, _E.RCA): ((_A.STA,), _S.STOPPED),
    (_S.CLOSING, _E.RCA): ((), _S.CLOSING),
    (_S.STOPPING, _E.RCA): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.RCA): ((_A.IRC,), _S.ACK_RCVD),
    (_S.ACK_RCVD, _E.RCA): ((_A.SCR,), _S.REQ_SENT),
    (_S.ACK_SENT, _E.RCA): ((_A.IRC, _A.TLU), _S.OPENED),
    (_S.OPENED, _E.RCA): ((_A.TLD, _A.SCR), _S.REQ_SENT),
    # RCN ([x] cells: Ack-Rcvd, Opened)
    (_S.CLOSED, _E.RCN): ((_A.STA,), _S.CLOSED),
    (_S.STOPPED, _E.RCN): ((_A.STA,), _S.STOPPED),
    (_S.CLOSING, _E.RCN): ((), _S.CLOSING),
    (_S.STOPPING, _E.RCN): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.RCN): ((_A.IRC, _A.SCR), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RCN): ((_A.SCR,), _S.REQ_SENT),
    (_S.ACK_SENT, _E.RCN): ((_A.IRC, _A.SCR), _S.ACK_SENT),
    (_S.OPENED, _E.RCN): ((_A.TLD, _A.SCR), _S.REQ_SENT),
    # RTR
    (_S.CLOSED, _E.RTR): ((_A.STA,), _S.CLOSED),
    (_S.STOPPED, _E.RTR): ((_A.STA,), _S.STOPPED),
    (_S.CLOSING, _E.RTR): ((_A.STA,), _S.CLOSING),
    (_S.STOPPING, _E.RTR): ((_A.STA,), _S.STOPPING),
    (_S.REQ_SENT, _E.RTR): ((_A.STA,), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RTR): ((_A.STA,), _S.REQ_SENT),
    (_S.ACK_SENT, _E.RTR): ((_A.STA,), _S.REQ_SENT),
    (_S.OPENED, _E.RTR): ((_A.TLD, _A.ZRC, _A.STA), _S.STOPPING),
    # RTA
    (_S.CLOSED, _E.RTA): ((), _S.CLOSED),
    (_S.STOPPED, _E.RTA): ((), _S.STOPPED),
    (_S.CLOSING, _E.RTA): ((_A.TLF,), _S.CLOSED),
    (_S.STOPPING, _E.RTA): ((_A.TLF,), _S.STOPPED),
    (_S.REQ_SENT, _E.RTA): ((), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RTA): ((), _S.REQ_SENT),
    (_S.ACK_SENT, _E.RTA): ((), _S.ACK_SENT),
    (_S.OPENED, _E.RTA): ((_A.TLD, _A.SCR), _S.REQ_SENT),
    # RUC
    (_S.CLOSED, _E.RUC): ((_A.SCJ,), _S.CLOSED),
    (_S.STOPPED, _E.RUC): ((_A.SCJ,), _S.STOPPED),
    (_S.CLOSING, _E.RUC): ((_A.SCJ,), _S.CLOSING),
    (_S.STOPPING, _E.RUC): ((_A.SCJ,), _S.STOPPING),
    (_S.REQ_SENT, _E.RUC): ((_A.SCJ,), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RUC): ((_A.SCJ,), _S.ACK_RCVD),
    (_S.ACK_SENT, _E.RUC): ((_A.SCJ,), _S.ACK_SENT),
    (_S.OPENED, _E.RUC): ((_A.SCJ,), _S.OPENED),
    # RXJ+
    (_S.CLOSED, _E.RXJ_PLUS): ((), _S.CLOSED),
    (_S.STOPPED, _E.RXJ_PLUS): ((), _S.STOPPED),
    (_S.CLOSING, _E.RXJ_PLUS): ((), _S.CLOSING),
    (_S.STOPPING, _E.RXJ_PLUS): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.RXJ_PLUS): ((), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RXJ_PLUS): ((), _S.REQ_SENT),
    (_S.ACK_SENT, _E.RXJ_PLUS): ((), _S.ACK_SENT),
    (_S.OPENED, _E.RXJ_PLUS): ((), _S.OPENED),
    # RXJ-
    (_S.CLOSED, _E.RXJ_MINUS): ((_A.TLF,), _S.CLOSED),
    (_S.STOPPED, _E.RXJ_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.CLOSING, _E.RXJ_MINUS): ((_A.TLF,), _S.CLOSED),
    (_S.STOPPING, _E.RXJ_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.REQ_SENT, _E.RXJ_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.ACK_RCVD, _E.RXJ_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.ACK_SENT, _E.RXJ_MINUS): ((_A.TLF,), _S.STOPPED),
    (_S.OPENED, _E.RXJ_MINUS): ((_A.TLD, _A.IRC, _A.STR), _S.STOPPING),
    # RXR
    (_S.CLOSED, _E.RXR): ((), _S.CLOSED),
    (_S.STOPPED, _E.RXR): ((), _S.STOPPED),
    (_S.CLOSING, _E.RXR): ((), _S.CLOSING),
    (_S.STOPPING, _E.RXR): ((), _S.STOPPING),
    (_S.REQ_SENT, _E.RXR): ((), _S.REQ_SENT),
    (_S.ACK_RCVD, _E.RXR): ((), _S.ACK_RCVD),
    (_S.ACK_SENT, _E.RXR): ((), _S.ACK_SENT),
    (_S.OPENED, _E.RXR): ((_A.SER,), _S.OPENED),
}

#: RFC 1661 4.1: "The states in which the Restart timer is running are identifiable by the
#: presence of TO events."
TIMER_STATES = frozenset(state for state, event in TRANSITIONS if event is Input.TO_PLUS)
#: States in which a Configure-Request of ours is outstanding.
NEGOTIATING = frozenset({State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT})
#: The [r] cells of the Open row (RFC 1661 4.3 Open, implementation option).
_RESTART_STATES = frozenset({State.STOPPED, State.CLOSING, State.STOPPING, State.OPENED})
_CALLBACKS = frozenset({Action.TLU, Action.TLD, Action.TLS, Action.TLF})
#: RFC 1661 5.6: codes "fundamental to this version of the protocol"; a Code-Reject of one is RXJ-.
_FUNDAMENTAL_CODES = frozenset(range(Code.CONFIGURE_REQUEST, Code.CODE_REJECT + 1))


@dataclass(frozen=True)
class FsmSettings:
    """RFC 1661 4.6 timers and counters, and the implementation options of 4.2 and 4.3."""

    restart_timer: float = 3.0
    max_terminate: int = 2
    max_configure: int = 10
    max_failure: int = 5
    #: RFC 1661 4.2 Stopped [p]: after Max-Configure unanswered requests, wait for the peer
    #: without This-Layer-Finished. "SHOULD NOT be used for switched circuits."
    passive: bool = False
    #: RFC 1661 4.3 Open [r]: an Open in Stopped, Closing, Stopping or Opened is followed by
    #: Down and Up, so the link is renegotiated.
    restart_on_open: bool = False


class Layer(typing.Protocol):
    """What the owner of the automatons (the link) is told (RFC 1661 4.4 tlu/tld/tls/tlf)."""

    def this_layer_up(self, protocol: int, now: float) -> None: ...

    def this_layer_down(self, protocol: int, now: float) -> None: ...

    def this_layer_started(self, protocol: int, now: float) -> None: ...

    def this_layer_finished(self, protocol: int, now: float) -> None: ...

    def link_failed(self, protocol: int, reason: str, now: float) -> None: ...

    def protocol_rejected(self, rejected_protocol: int, now: float) -> None: ...


class OptionHandler(typing.Protocol):
    """One protocol's Configuration Options (RFC 1661 5.1-5.4, 6)."""

    def reset(self) -> None:
        """A negotiation starts: forget what Naks and Rejects changed in our request."""

    def build_request(self) -> list[Option]: ...

    def receive_request(self, options: list[Option]) -> tuple[Code, list[Option]]:
        """CONFIGURE_ACK, CONFIGURE_NAK with suggested values, or CONFIGURE_REJECT."""
        ...

    def receive_ack(self, options: list[Option]) -> bool: ...

    def receive_nak(self, options: list[Option]) -> None: ...

    def receive_reject(self, options: list[Option]) -> bool: ...


def options_subset(options: list[Option], sent: list[Option]) -> bool:
    """RFC 1661 5.4: a valid Configure-Reject names only options of the last request."""
    return all(option in sent for option in options)


@dataclass
class Counters:
    """Packets by Code, and what was discarded; cheap enough for status output."""

    sent: Counter[int] = field(default_factory=Counter)
    received: Counter[int] = field(default_factory=Counter)
    #: Malformed or invalid packets silently discarded (RFC 1661 5.2-5.4, 5.7, 5.8).
    dropped: int = 0
    #: Illegal events, the "-" cells (RFC 1661 4.4).
    fsm_errors: int = 0


class Automaton:
    """One RFC 1661 4 automaton; packets out as ``(protocol, information)`` onto ``outbox``."""

    #: Code -> handler method name (STYLE.md 3: dispatch is a table). Codes not here are RUC.
    _handlers: typing.ClassVar[Mapping[int, str]] = {
        Code.CONFIGURE_REQUEST: "_handle_configure_request",
        Code.CONFIGURE_ACK: "_handle_configure_ack",
        Code.CONFIGURE_NAK: "_handle_configure_nak",
        Code.CONFIGURE_REJECT: "_handle_configure_nak",
        Code.TERMINATE_REQUEST: "_handle_terminate_request",
        Code.TERMINATE_ACK: "_handle_terminate_ack",
        Code.CODE_REJECT: "_handle_code_reject",
    }

    def __init__(
        self,
        protocol: int,
        handler: OptionHandler,
        layer: Layer,
        outbox: list[tuple[int, bytes]],
        settings: FsmSettings = FsmSettings(),
    ) -> None:
        self.protocol = protocol
        self.handler = handler
        self.layer = layer
        self.outbox = outbox
        self.fsm_settings = settings
        self.state = State.INITIAL
        self.counters = Counters()
        #: RFC 1661 5.6, 5.7: rejected packets are truncated to the peer's MRU; the link sets
        #: this on NCPs from LCP's result, LCP sets its own.
        self.peer_mru = 1500
        #: RFC 1661 4.6 Restart counter.
        self.restart_count = 0
        #: Our request as the peer last acknowledged it, and the peer's as we last did.
        self.acked_local: list[Option] = []
        self.acked_peer: list[Option] = []
        #: Data of the last Terminate-Request received (RFC 1661 5.5), for status.
        self.peer_terminate_reason = b""
        self._restart_deadline: float | None = None
        self._identifier = 0
        self._request: list[Option] = []
        self._request_id: int | None = None
        self._request_answered = True
        self._terminate_id = 0
        self._terminate_data = b""
        self._terminate_reason = b""
        self._naks_sent = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} 0x{self.protocol:04x} {self.state.name}>"

    @property
    def deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None."""
        return self._restart_deadline

    # --- administrative and lower-layer events (RFC 1661 4.3) ---

    def up(self, now: float) -> None:
        self._event(Input.UP, now)

    def down(self, now: float) -> None:
        self._event(Input.DOWN, now)

    def open(self, now: float) -> None:
        before = self.state
        self._event(Input.OPEN, now)
        # RFC 1661 4.3 Open [r]: "issue a Down event, immediately followed by an Up event".
        if self.fsm_settings.restart_on_open and before in _RESTART_STATES:
            self._event(Input.DOWN, now)
            self._event(Input.UP, now)

    def close(self, now: float, reason: str = "") -> None:
        # RFC 1661 5.5: the Data field is uninterpreted; we carry the reason text in it.
        self._terminate_reason = reason.encode()
        self._event(Input.CLOSE, now)

    def receive_protocol_reject(self, now: float) -> None:
        """LCP received a Protocol-Reject naming this protocol (RFC 1661 5.7), routed here.

        For LCP that is RXJ+ (4.3: "a Protocol-Reject of a NCP"); for the rejected NCP itself the
        peer will never speak it, which is unrecoverable: RXJ-.
        """
        self._event(Input.RXJ_MINUS, now)

    def handle_timer(self, now: float) -> None:
        if self._restart_deadline is None or now < self._restart_deadline:
            return
        self._restart_deadline = None
        # RFC 1661 4.3 Timeout: TO+ while the counter is above zero, TO- once it is not.
        self._event(Input.TO_PLUS if self.restart_count > 0 else Input.TO_MINUS, now)

    # --- packets ---

    def receive(self, packet: Packet, now: float) -> None:
        """One control packet of this protocol; never raises on peer input."""
        self.counters.received[packet.code] += 1
        name = self._handlers.get(packet.code)
        if name is None:
            self._event(Input.RUC, now, packet)
            return
        getattr(self, name)(packet, now)

    def _handle_configure_request(self, packet: Packet, now: float) -> None:
        options = self._parse_options(packet)
        if options is None:
            return
        if (self.state, Input.RCR_PLUS) not in TRANSITIONS:
            self._illegal(Input.RCR_PLUS, packet)
            return
        code, reply = self.handler.receive_request(options)
        code, reply = self._apply_max_failure(options, code, reply)
        event = Input.RCR_PLUS if code == Code.CONFIGURE_ACK else Input.RCR_MINUS
        self._event(event, now, packet, (code, options if event is Input.RCR_PLUS else reply))

    def _apply_max_failure(
        self, options: list[Option], code: Code, reply: list[Option]
    ) -> tuple[Code, list[Option]]:
        # RFC 1661 4.6 Max-Failure: "Any further Configure-Nak packets for peer requested
        # options are converted to Configure-Reject packets, and locally desired options are
        # no longer appended."
        if code != Code.CONFIGURE_NAK or self._naks_sent < self.fsm_settings.max_failure:
            return code, reply
        naked = {kind for kind, _ in reply}
        rejected = [option for option in options if option[0] in naked]
        if rejected:
            return Code.CONFIGURE_REJECT, rejected
        return Code.CONFIGURE_ACK, options

    def _handle_configure_ack(self, packet: Packet, now: float) -> None:
        options = self._parse_options(packet)
        if options is None:
            return
        if self.state in NEGOTIATING or self.state is State.OPENED:
            # RFC 1661 5.2: the Identifier and the options must match the last request.
            if not self._is_reply(packet) or options != self._request:
                self._drop(packet, "Configure-Ack does not match our request")
                return
            if not self.handler.receive_ack(options):
                self._drop(packet, "Configure-Ack refused by the option handler")
                return
            self._request_answered = True
            self.acked_local = options
            self._acked_by_peer(options)
        self._event(Input.RCA, now, packet)

    def _handle_configure_nak(self, packet: Packet, now: float) -> None:
        options = self._parse_options(packet)
        if options is None:
            return
        if self.state in NEGOTIATING or self.state is State.OPENED:
            if not self._is_reply(packet):
                self._drop(packet, "Configure-Nak/Reject with a stale Identifier")
                return
            if packet.code == Code.CONFIGURE_NAK:
                self.handler.receive_nak(options)
            # RFC 1661 5.4: a Reject must name only options of the last request, unmodified.
            elif not options_subset(options, self._request) or not self.handler.receive_reject(options):
                self._drop(packet, "Configure-Reject is not a subset of our request")
                return
            self._request_answered = True
        self._event(Input.RCN, now, packet)

    def _handle_terminate_request(self, packet: Packet, now: float) -> None:
        self.peer_terminate_reason = packet.data
        self._event(Input.RTR, now, packet)

    def _handle_terminate_ack(self, packet: Packet, now: float) -> None:
        # RFC 1661 5.5: an unelicited Terminate-Ack is legal (the peer is Closed or Stopped).
        self._event(Input.RTA, now, packet)

    def _handle_code_reject(self, packet: Packet, now: float) -> None:
        event = self._classify_reject(packet)
        if event is None:
            self._drop(packet, "unusable Code-/Protocol-Reject")
            return
        self._event(event, now, packet)

    def _classify_reject(self, packet: Packet) -> Input | None:
        """RXJ+ or RXJ- for a Code-Reject (RFC 1661 4.3, 5.6); None to discard it."""
        if packet.code != Code.CODE_REJECT or not packet.data:
            return None
        # RFC 1661 4.3: "RXJ- ... such as a Code-Reject of Configure-Request".
        return Input.RXJ_MINUS if packet.data[0] in _FUNDAMENTAL_CODES else Input.RXJ_PLUS

    def _is_reply(self, packet: Packet) -> bool:
        # RFC 1661 5.1: one valid reply per Identifier; a second is out of sequence (4.3 RCA).
        return packet.identifier == self._request_id and not self._request_answered

    def _parse_options(self, packet: Packet) -> list[Option] | None:
        try:
            return parse_options(packet.data)
        except PppError as exc:
            self._drop(packet, str(exc))
            return None

    def _drop(self, packet: Packet, why: str) -> None:
        self.counters.dropped += 1
        log.debug("%r: dropped code %d id %d: %s", self, packet.code, packet.identifier, why)

    def _illegal(self, event: Input, packet: Packet | None) -> None:
        # RFC 1661 4.4 Illegal-Event: "should be reported and logged. No transition is taken".
        self.counters.fsm_errors += 1
        log.debug("%r: illegal event %s (packet %r)", self, event.value, packet)

    # --- the table ---

    def _event(
        self,
        event: Input,
        now: float,
        packet: Packet | None = None,
        reply: tuple[Code, list[Option]] | None = None,
    ) -> None:
        """Apply the 4.1 cell for (state, event); ``reply`` is for sca/scn, ``packet`` for the rest."""
        cell = TRANSITIONS.get((self.state, event))
        if cell is None:
            self._illegal(event, packet)
            return
        actions, new_state = cell
        old_state = self.state
        if event in (Input.RCA, Input.RCN) and old_state in (State.ACK_RCVD, State.OPENED):
            # RFC 1661 4.3 RCA [x]: "At the very least, this occurrence SHOULD be logged."
            log.info("%r: crossed connection (%s in %s)", self, event.value, old_state.name)
        if event is Input.TO_MINUS and self.fsm_settings.passive and old_state in NEGOTIATING:
            actions = tuple(a for a in actions if a is not Action.TLF)  # RFC 1661 4.2 [p]
        for action in actions:
            if action not in _CALLBACKS:
                self._perform(action, actions, event, old_state, now, packet, reply)
        self.state = new_state
        if new_state not in TIMER_STATES:
            self._restart_deadline = None  # RFC 1661 4.1: the Restart timer is stopped
        for action in actions:
            if action is Action.TLU:
                self._this_layer_up(now)
            elif action is Action.TLD:
                self._this_layer_down(now)
            elif action is Action.TLS:
                self._this_layer_started(now)
            elif action is Action.TLF:
                self._this_layer_finished(now)

    def _perform(
        self,
        action: Action,
        actions: tuple[Action, ...],
        event: Input,
        old_state: State,
        now: float,
        packet: Packet | None,
        reply: tuple[Code, list[Option]] | None,
    ) -> None:
        fsm = self.fsm_settings
        if action is Action.IRC:
            # RFC 1661 4.4 irc: "Max-Terminate or Max-Configure", by what is about to be sent.
            self.restart_count = fsm.max_terminate if Action.STR in actions else fsm.max_configure
        elif action is Action.ZRC:
            # RFC 1661 4.4 zrc: pause one Restart period before the final state (Stopping).
            self.restart_count = 0
            self._restart_deadline = now + fsm.restart_timer
        elif action is Action.SCR:
            self._send_configure_request(now, event is Input.TO_PLUS, old_state not in NEGOTIATING)
        elif action is Action.SCA and packet is not None:
            self._naks_sent = 0  # RFC 1661 4.6 Max-Failure counts Naks "without sending a Configure-Ack"
            self._send(Code.CONFIGURE_ACK, packet.identifier, packet.data)  # 5.2: unmodified
            self.acked_peer = reply[1] if reply is not None else []
            self._acked_to_peer(self.acked_peer)
        elif action is Action.SCN and packet is not None and reply is not None:
            code, options = reply
            if code == Code.CONFIGURE_NAK:
                self._naks_sent += 1
            self._send(code, packet.identifier, build_options(options))
        elif action is Action.STR:
            # RFC 1661 5.5: a new Identifier unless this is a retransmission.
            if event is not Input.TO_PLUS:
                self._terminate_id = self._next_identifier()
                self._terminate_data = self._terminate_reason[: max(0, self.peer_mru - 4)]
            self._send(Code.TERMINATE_REQUEST, self._terminate_id, self._terminate_data)
            self.restart_count -= 1
            self._restart_deadline = now + fsm.restart_timer
        elif action is Action.STA:
            # RFC 1661 5.5: the Identifier of the Terminate-Request (or other packet) is copied.
            identifier = packet.identifier if packet is not None else self._next_identifier()
            self._send(Code.TERMINATE_ACK, identifier)
        elif action is Action.SCJ and packet is not None:
            # RFC 1661 5.6: a new Identifier each time; the rejected packet fits the peer's MRU.
            rejected = build_packet(packet.code, packet.identifier, packet.data)
            self._send(Code.CODE_REJECT, self._next_identifier(), rejected[: max(0, self.peer_mru - 4)])
        elif action is Action.SER and packet is not None and packet.code == Code.ECHO_REQUEST:
            self._send_echo_reply(packet)

    def _send_configure_request(self, now: float, retransmit: bool, fresh: bool) -> None:
        if fresh:
            # Not negotiating before: this is a new negotiation (RFC 1661 4.6 Max-Failure too).
            self.handler.reset()
            self._naks_sent = 0
        options = self.handler.build_request()
        # RFC 1661 5.1: the Identifier changes when the options change or a reply was received;
        # a retransmission of the same options keeps it.
        if not (retransmit and not self._request_answered and options == self._request):
            self._request_id = self._next_identifier()
        self._request = options
        self._request_answered = False
        assert self._request_id is not None
        self._send(Code.CONFIGURE_REQUEST, self._request_id, build_options(options))
        self.restart_count -= 1
        self._restart_deadline = now + self.fsm_settings.restart_timer

    def _send_echo_reply(self, packet: Packet) -> None:
        """RFC 1661 5.8; only LCP knows Echo-Request, so only it replies (see lcp.Lcp)."""

    def _send(self, code: int, identifier: int, data: bytes = b"") -> None:
        self.outbox.append((self.protocol, build_packet(code, identifier, data)))
        self.counters.sent[code] += 1

    def _next_identifier(self) -> int:
        self._identifier = (self._identifier + 1) & 0xFF
        return self._identifier

    # --- hooks for the protocols ---

    def _acked_by_peer(self, options: list[Option]) -> None:
        """The peer acknowledged our request ``options`` (RFC 1661 5.2)."""

    def _acked_to_peer(self, options: list[Option]) -> None:
        """We acknowledged the peer's request ``options`` (RFC 1661 5.2)."""

    def _this_layer_up(self, now: float) -> None:
        self.layer.this_layer_up(self.protocol, now)

    def _this_layer_down(self, now: float) -> None:
        self.layer.this_layer_down(self.protocol, now)

    def _this_layer_started(self, now: float) -> None:
        self.layer.this_layer_started(self.protocol, now)

    def _this_layer_finished(self, now: float) -> None:
        self.layer.this_layer_finished(self.protocol, now)
