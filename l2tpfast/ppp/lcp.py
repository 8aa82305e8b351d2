"""LCP: the Link Control Protocol on top of the RFC 1661 4 automaton.

Options (RFC 1661 6): Maximum-Receive-Unit (6.1), Authentication-Protocol (6.2; the CHAP
algorithm octet from RFC 1994 3 and RFC 2759 2), Quality-Protocol (6.3, always rejected: no
LQR), Magic-Number (6.4, with loop detection), Protocol-Field-Compression (6.5) and
Address-and-Control-Field-Compression (6.6). The Async-Control-Character-Map (RFC 1662 7.1) is
acknowledged whatever its value and never requested: over L2TP there is no async framing on our
side, the LAC applies it (RFC 2661 6.14 Set-Link-Info).

Packets beyond the automaton: Protocol-Reject (5.7), Echo-Request/Reply (5.8) with a keepalive
folded into the automaton's single deadline, Discard-Request (5.9). ``Lcp.open_with`` enters
Opened with options a LAC already negotiated (RFC 2661 4.4.5 proxy LCP).

Terms: ``local_options`` are our request as the peer acknowledged it (``.auth`` is the method
the peer must authenticate to us with, ``.mru`` what we receive); ``peer_options`` are the
peer's request as we acknowledged it (``.auth`` is what we must authenticate with, ``.mru`` the
largest packet we may send, ``.pfc``/``.acfc`` what we may compress when sending).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from l2tpfast.ppp.constants import AuthMethod, ChapAlgorithm, Code, LcpOption, Protocol
from l2tpfast.ppp.frame import Option, Packet
from l2tpfast.ppp.fsm import Automaton, FsmSettings, Input, Layer, State, options_subset

__all__ = [
    "DEFAULT_MRU",
    "Lcp",
    "LcpHandler",
    "LcpOptions",
    "LcpSettings",
    "build_auth_option",
    "parse_auth_option",
]

#: RFC 1661 6.1: "The default value is 1500 octets."
DEFAULT_MRU = 1500
#: RFC 1662 7.1: the default ACCM is all ones.
DEFAULT_ACCM = 0xFFFFFFFF

_AUTH_DATA = {
    AuthMethod.PAP: struct.pack("!H", Protocol.PAP),
    AuthMethod.CHAP_MD5: struct.pack("!HB", Protocol.CHAP, ChapAlgorithm.MD5),
    AuthMethod.MSCHAPV2: struct.pack("!HB", Protocol.CHAP, ChapAlgorithm.MSCHAPV2),
}
_AUTH_BY_DATA = {data: method for method, data in _AUTH_DATA.items()}


def build_auth_option(method: AuthMethod) -> Option:
    """RFC 1661 6.2 with RFC 1334 2.1.1 (PAP), RFC 1994 3 (CHAP 5), RFC 2759 2 (CHAP 0x81)."""
    return (LcpOption.AUTH_PROTOCOL, _AUTH_DATA[method])


def parse_auth_option(data: bytes) -> AuthMethod | None:
    """The method an Authentication-Protocol option names, or None if we do not know it."""
    return _AUTH_BY_DATA.get(data)


@dataclass(frozen=True)
class LcpSettings:
    #: Request this MRU (RFC 1661 6.1); None or 1500 sends no MRU option (5.1: "SHOULD NOT be
    #: included with default values").
    mru: int | None = None
    #: Nak a peer's MRU below this with this value (RFC 1661 5.3). RFC 1661 sets no floor; 128
    #: keeps an Echo, Code-Reject or Terminate-Request with its reason sendable.
    accept_mru_min: int = 128
    #: As authenticator: what the peer must authenticate with, most preferred first (6.2).
    auth_methods: tuple[AuthMethod, ...] = ()
    #: As authenticatee: what we can do; another request is Nak'ed with the first of these.
    accept_auth: tuple[AuthMethod, ...] = (AuthMethod.MSCHAPV2, AuthMethod.CHAP_MD5, AuthMethod.PAP)
    magic: bool = True
    request_pfc: bool = False
    request_acfc: bool = False
    accept_pfc: bool = True
    accept_acfc: bool = True
    #: Seconds between keepalive Echo-Requests while Opened; 0 sends none.
    echo_interval: float = 10.0
    #: Unanswered Echo-Requests before link_failed; 0 never fails.
    echo_failure: int = 3
    #: Consecutive looped-back signs (our own Magic-Number coming back, RFC 1661 6.4) before
    #: link_failed.
    max_loops: int = 3
    fsm: FsmSettings = field(default_factory=FsmSettings)


@dataclass(frozen=True)
class LcpOptions:
    """The result of one direction of LCP negotiation; unlisted options keep their defaults."""

    mru: int = DEFAULT_MRU
    accm: int = DEFAULT_ACCM
    auth: AuthMethod | None = None
    magic: int = 0
    pfc: bool = False
    acfc: bool = False

    @classmethod
    def from_options(cls, options: list[Option]) -> LcpOptions:
        """Decode an acknowledged option list (also the proxy LCP AVPs, RFC 2661 4.4.5)."""
        mru, accm, auth, magic, pfc, acfc = DEFAULT_MRU, DEFAULT_ACCM, None, 0, False, False
        for kind, value in options:
            if kind == LcpOption.MRU and len(value) == 2:
                mru = struct.unpack("!H", value)[0]
            elif kind == LcpOption.ACCM and len(value) == 4:
                accm = struct.unpack("!I", value)[0]
            elif kind == LcpOption.AUTH_PROTOCOL:
                auth = parse_auth_option(value)
            elif kind == LcpOption.MAGIC_NUMBER and len(value) == 4:
                magic = struct.unpack("!I", value)[0]
            elif kind == LcpOption.PFC:
                pfc = True
            elif kind == LcpOption.ACFC:
                acfc = True
        return cls(mru, accm, auth, magic, pfc, acfc)


class LcpHandler:
    """LCP Configuration Options (RFC 1661 6); ``failure`` is set when the link cannot work."""

    def __init__(self, settings: LcpSettings, rand: Callable[[int], bytes] = os.urandom) -> None:
        self.settings = settings
        self.rand = rand
        #: A reason for link_failed, taken and cleared by :class:`Lcp` after each packet.
        self.failure: str | None = None
        #: Consecutive signs of a looped-back link (RFC 1661 6.4).
        self.loops = 0
        self.magic = 0
        self.mru: int | None = None
        self.auth_index: int | None = None
        self.want_magic = False
        self.want_pfc = False
        self.want_acfc = False
        self._sent: list[Option] = []
        self._last_nak_magic: int | None = None
        self.reset()

    def reset(self) -> None:
        s = self.settings
        self.mru = s.mru if s.mru != DEFAULT_MRU else None
        self.auth_index = 0 if s.auth_methods else None
        self.want_magic = s.magic
        self.want_pfc = s.request_pfc
        self.want_acfc = s.request_acfc
        # RFC 1661 6.4: "Before this Configuration Option is requested, an implementation MUST
        # choose its Magic-Number"; a fresh one for each negotiation.
        self.magic = self.new_magic() if s.magic else 0

    def new_magic(self, *avoid: int) -> int:
        magic = 0
        for _ in range(16):
            magic = int.from_bytes(self.rand(4), "big")
            if magic and magic not in avoid:  # 6.4: zero is illegal
                return magic
        # A degenerate ``rand`` (tests, a broken source): step until the value is usable.
        while not magic or magic in avoid:
            magic = (magic + 1) & 0xFFFFFFFF
        return magic

    def build_request(self) -> list[Option]:
        options: list[Option] = []
        if self.mru is not None:
            options.append((LcpOption.MRU, struct.pack("!H", self.mru)))
        if self.auth_index is not None:
            # RFC 1661 6.2: one Authentication-Protocol only, the most desirable first.
            options.append(build_auth_option(self.settings.auth_methods[self.auth_index]))
        if self.want_magic:
            options.append((LcpOption.MAGIC_NUMBER, struct.pack("!I", self.magic)))
        if self.want_pfc:
            options.append((LcpOption.PFC, b""))
        if self.want_acfc:
            options.append((LcpOption.ACFC, b""))
        self._sent = options
        return options

    def receive_request(self, options: list[Option]) -> tuple[Code, list[Option]]:
        s = self.settings
        rejects: list[Option] = []
        naks: list[Option] = []
        seen: set[int] = set()
        for option in options:
            kind, value = option
            if kind in seen:
                rejects.append(option)  # each LCP option of RFC 1661 6 is single-instance
                continue
            seen.add(kind)
            if kind == LcpOption.MRU and len(value) == 2:
                if struct.unpack("!H", value)[0] < s.accept_mru_min:
                    naks.append((kind, struct.pack("!H", s.accept_mru_min)))
            elif kind == LcpOption.ACCM and len(value) == 4:
                pass  # RFC 1662 7.1: meaningless over L2TP, so any value is fine
            elif kind == LcpOption.AUTH_PROTOCOL and len(value) >= 2:
                if not s.accept_auth:
                    rejects.append(option)
                elif parse_auth_option(value) not in s.accept_auth:
                    naks.append(build_auth_option(s.accept_auth[0]))  # RFC 1661 5.3, 6.2
            elif kind == LcpOption.MAGIC_NUMBER and len(value) == 4:
                magic = struct.unpack("!I", value)[0]
                if magic == 0:
                    # RFC 1661 6.4: "A Magic-Number of zero is illegal and MUST always be Nak'd".
                    naks.append((kind, struct.pack("!I", self.new_magic(self.magic))))
                elif self.want_magic and magic == self.magic:
                    # RFC 1661 6.4: equal to ours: maybe looped back; "a Configure-Nak MUST be
                    # sent specifying a different Magic-Number value".
                    self._last_nak_magic = self.new_magic(self.magic)
                    naks.append((kind, struct.pack("!I", self._last_nak_magic)))
            elif not value and (
                (kind == LcpOption.PFC and s.accept_pfc) or (kind == LcpOption.ACFC and s.accept_acfc)
            ):
                pass  # RFC 1661 6.5, 6.6: we receive either form anyway (frame.parse_frame)
            else:
                # Unknown, Quality-Protocol, a bad length, or a boolean option we refuse
                # (RFC 1661 5.3: boolean options "MUST use the Configure-Reject reply").
                rejects.append(option)
        # RFC 1661 5.3, 5.4: Nak only if every option is recognizable, so Rejects come first.
        if rejects:
            return Code.CONFIGURE_REJECT, rejects
        if naks:
            return Code.CONFIGURE_NAK, naks
        return Code.CONFIGURE_ACK, options

    def receive_ack(self, options: list[Option]) -> bool:
        if options != self._sent:
            return False
        self.loops = 0
        return True

    def receive_nak(self, options: list[Option]) -> None:
        s = self.settings
        for kind, value in options:
            if kind == LcpOption.MRU and len(value) == 2:
                mru = struct.unpack("!H", value)[0]
                # RFC 1661 5.3: adopt the suggestion (also as a hint when we sent none), unless
                # it is below what we accept ourselves; then ask for nothing (default 1500).
                self.mru = mru if s.accept_mru_min <= mru != DEFAULT_MRU else None
            elif kind == LcpOption.AUTH_PROTOCOL and self.auth_index is not None:
                self._auth_naked(parse_auth_option(value))
            elif kind == LcpOption.MAGIC_NUMBER and len(value) == 4 and self.want_magic:
                self._magic_naked(struct.unpack("!I", value)[0])

    def _auth_naked(self, suggested: AuthMethod | None) -> None:
        methods = self.settings.auth_methods
        assert self.auth_index is not None
        if suggested in methods:
            self.auth_index = methods.index(suggested)  # the peer's pick, and one we accept
        elif self.auth_index + 1 < len(methods):
            self.auth_index += 1  # RFC 1661 6.2: "attempt the next most desirable protocol"
        else:
            self.failure = "no authentication method acceptable to the peer"

    def _magic_naked(self, suggested: int) -> None:
        # RFC 1661 6.4: our own Nak coming back "increases the possibility of a looped-back
        # link, and a new Magic-Number MUST be chosen"; a different value proves there is no
        # loop and "indicates a unique Magic-Number", which we adopt.
        if suggested == self._last_nak_magic or suggested == 0:
            self.loops += 1
            self.magic = self.new_magic(self.magic, suggested)
            if self.loops >= self.settings.max_loops:
                self.failure = "looped-back link"
        else:
            self.loops = 0
            self.magic = suggested

    def receive_reject(self, options: list[Option]) -> bool:
        if not options_subset(options, self._sent):
            return False
        for kind, _ in options:
            # RFC 1661 5.4: the next request "MUST NOT include any of the ... options".
            if kind == LcpOption.MRU:
                self.mru = None
            elif kind == LcpOption.AUTH_PROTOCOL:
                self.auth_index = None
                self.failure = "peer refused authentication"
            elif kind == LcpOption.MAGIC_NUMBER:
                # RFC 1661 6.4: a Reject "can only mean that the link is not looped-back".
                self.want_magic = False
                self.loops = 0
            elif kind == LcpOption.PFC:
                self.want_pfc = False
            elif kind == LcpOption.ACFC:
                self.want_acfc = False
        return True


class Lcp(Automaton):
    """The LCP automaton with Protocol-Reject, Echo keepalive and loop detection."""

    _handlers = {
        **Automaton._handlers,
        Code.PROTOCOL_REJECT: "_handle_code_reject",
        Code.ECHO_REQUEST: "_handle_echo",
        Code.ECHO_REPLY: "_handle_echo",
        Code.DISCARD_REQUEST: "_handle_echo",
    }

    def __init__(
        self,
        layer: Layer,
        outbox: list[tuple[int, bytes]],
        settings: LcpSettings = LcpSettings(),
        *,
        rand: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.settings = settings
        self.option_handler = LcpHandler(settings, rand)
        super().__init__(Protocol.LCP, self.option_handler, layer, outbox, settings.fsm)
        self.local_options = LcpOptions()
        self.peer_options = LcpOptions()
        self.echo_sent = 0
        self.echo_replies = 0
        #: Echo-Requests sent since the last Echo-Reply.
        self.echo_outstanding = 0
        self._echo_deadline: float | None = None
        self._echo_refused = False

    @property
    def deadline(self) -> float | None:
        times = [t for t in (self._restart_deadline, self._echo_deadline) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        if self._echo_deadline is not None and now >= self._echo_deadline and self.state is State.OPENED:
            self._keepalive(now)

    def receive(self, packet: Packet, now: float) -> None:
        super().receive(packet, now)
        # Reported once the packet is fully handled, so the link may close() from the callback.
        if self.option_handler.failure is not None:
            reason, self.option_handler.failure = self.option_handler.failure, None
            self.layer.link_failed(Protocol.LCP, reason, now)

    def open_with(self, local: LcpOptions, peer: LcpOptions, now: float) -> None:
        """Enter Opened with options a LAC negotiated (RFC 2661 4.4.5 proxy LCP)."""
        self.local_options = local
        self.peer_options = peer
        self.peer_mru = peer.mru
        self.option_handler.magic = local.magic
        self._restart_deadline = None
        self.state = State.OPENED
        self._this_layer_up(now)

    def send_protocol_reject(self, protocol: int, information: bytes) -> None:
        """RFC 1661 5.7: only in Opened; a new Identifier; truncated to the peer's MRU."""
        if self.state is not State.OPENED:
            return
        data = struct.pack("!H", protocol) + information
        self._send(Code.PROTOCOL_REJECT, self._next_identifier(), data[: max(0, self.peer_mru - 4)])

    def send_echo_request(self, data: bytes = b"") -> None:
        """RFC 1661 5.8: only in Opened, with our Magic-Number."""
        if self.state is not State.OPENED:
            return
        body = struct.pack("!I", self.local_options.magic) + data
        self._send(Code.ECHO_REQUEST, self._next_identifier(), body[: max(0, self.peer_mru - 4)])
        self.echo_sent += 1

    def _keepalive(self, now: float) -> None:
        s = self.settings
        if s.echo_failure and self.echo_outstanding >= s.echo_failure:
            self._echo_deadline = None
            self.layer.link_failed(
                Protocol.LCP, f"keepalive: {self.echo_outstanding} echo requests unanswered", now
            )
            return
        self.send_echo_request()
        self.echo_outstanding += 1
        self._echo_deadline = now + s.echo_interval

    def _handle_echo(self, packet: Packet, now: float) -> None:
        if len(packet.data) < 4:
            self._drop(packet, "Echo/Discard without a Magic-Number")
            return
        if self.state is State.OPENED:
            magic = struct.unpack_from("!I", packet.data)[0]
            looped = magic != 0 and magic == self.local_options.magic
            if looped:
                # RFC 1661 6.4: "Reception of a Magic-Number field equal to the negotiated local
                # Magic-Number indicates a looped-back link."
                self.option_handler.loops += 1
                if self.option_handler.loops >= self.settings.max_loops:
                    self.option_handler.failure = "looped-back link"
            else:
                self.option_handler.loops = 0
                if packet.code == Code.ECHO_REPLY:
                    self.echo_replies += 1
                    self.echo_outstanding = 0
        self._event(Input.RXR, now, packet)

    def _send_echo_reply(self, packet: Packet) -> None:
        # RFC 1661 5.8: same Identifier; our Magic-Number in place of the peer's; data copied.
        body = struct.pack("!I", self.local_options.magic) + packet.data[4:]
        self._send(Code.ECHO_REPLY, packet.identifier, body[: max(0, self.peer_mru - 4)])

    def _handle_code_reject(self, packet: Packet, now: float) -> None:
        if packet.code == Code.PROTOCOL_REJECT and self.state is not State.OPENED:
            # RFC 1661 5.7: "received in any state other than the LCP Opened state SHOULD be
            # silently discarded".
            self._drop(packet, "Protocol-Reject outside Opened")
            return
        super()._handle_code_reject(packet, now)
        if packet.code == Code.PROTOCOL_REJECT and len(packet.data) >= 2:
            rejected = struct.unpack_from("!H", packet.data)[0]
            if rejected != Protocol.LCP:
                # RFC 1661 5.7: the owner "MUST stop sending packets of the indicated protocol".
                self.layer.protocol_rejected(rejected, now)

    def _classify_reject(self, packet: Packet) -> Input | None:
        if packet.code == Code.PROTOCOL_REJECT:
            if len(packet.data) < 2:
                return None
            # RFC 1661 4.3: "RXJ- ... such as ... a Protocol-Reject of LCP!"
            rejected = struct.unpack_from("!H", packet.data)[0]
            return Input.RXJ_MINUS if rejected == Protocol.LCP else Input.RXJ_PLUS
        event = super()._classify_reject(packet)
        if event is Input.RXJ_PLUS and packet.data[0] == Code.ECHO_REQUEST:
            # RFC 1661 4.3 RXJ+: "The implementation MUST stop sending the offending packet type."
            self._echo_refused = True
            self._echo_deadline = None
        return event

    def _acked_by_peer(self, options: list[Option]) -> None:
        self.local_options = LcpOptions.from_options(options)

    def _acked_to_peer(self, options: list[Option]) -> None:
        self.peer_options = LcpOptions.from_options(options)
        self.peer_mru = self.peer_options.mru

    def _this_layer_up(self, now: float) -> None:
        self.echo_outstanding = 0
        self.option_handler.loops = 0
        if self.settings.echo_interval > 0 and not self._echo_refused:
            self._echo_deadline = now + self.settings.echo_interval
        super()._this_layer_up(now)

    def _this_layer_down(self, now: float) -> None:
        self._echo_deadline = None
        super()._this_layer_down(now)
