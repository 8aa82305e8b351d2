"""One PPP link over an L2TP session: the phases of RFC 1661 3.2, sans-IO.

Theory of operation
-------------------
A :class:`PppLink` owns the LCP automaton, the authentication exchange in each direction that
LCP asked for, and the NCPs (IPCP, IPv6CP). It has the same three inputs and three outputs as
the control plane's Endpoint (STYLE.md 1): ``receive(protocol, information, now)``,
``handle_timer(now)`` and commands (``start``, ``complete_authentication``, ``close``) in;
``frames_to_send()``, ``get_timer()`` and ``next_event()`` out. The L2TP session is the lower
layer, so LCP sees Up as soon as the session is established (RFC 2661 2: the LAC and LNS are
the PPP endpoints' tunnel, no HDLC below).

Phases (RFC 1661 3.2): Link Dead -> Link Establishment (LCP) -> Authentication (RFC 1661 3.5:
"no Network-Layer protocol packets" yet; each direction asked for in LCP must succeed) ->
Network-Layer Protocol (IPCP and IPv6CP as configured) -> Link Termination.

The authenticator never decides by itself: each answer that needs checking becomes an
:class:`~l2tpfast.ppp.events.AuthenticationRequested` event, and the shell answers with
``complete_authentication(decision, peer_address=...)`` (at once for a users file, later for
RADIUS). On a server link that asks for no authentication the event comes with ``request=None``
so that the shell can still pick the peer's address.

Proxy LCP and proxy authentication (RFC 2661 4.4.5): a LAC that negotiated LCP and took the
client's credentials says so in ICCN. By default the LNS accepts both: LCP enters Opened with
the options the LAC negotiated (some client devices never send a fresh Configure-Request once
LCP is done, so restarting LCP is not a safe default), the proxied credentials are checked, and
the CHAP Success or PAP Ack goes to the client with the Identifier of its own answer. With
``proxy = "renegotiate"``, or when the proxied data cannot be used, LCP starts afresh.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address

from l2tpfast.control.events import ProxyInfo
from l2tpfast.errors import PppError
from l2tpfast.ppp.auth import (
    AuthDecision,
    AuthSettings,
    make_authenticator,
    make_peer,
    method_of,
    request_from_proxy,
)
from l2tpfast.ppp.auth.base import (
    PROXY_AUTHEN_CHAP,
    PROXY_AUTHEN_PAP,
    Authenticator,
    AuthRequest,
    Peer,
)
from l2tpfast.ppp.constants import ChapCode, Code, PapCode, Protocol
from l2tpfast.ppp.events import (
    Authenticated,
    AuthenticationFailed,
    AuthenticationRequested,
    LinkClosed,
    NetworkDown,
    NetworkUp,
    PppEvent,
)
from l2tpfast.ppp.frame import Packet, parse_options, parse_packet
from l2tpfast.ppp.fsm import Automaton, FsmSettings, State
from l2tpfast.ppp.ipcp import Ipcp, IpcpSettings
from l2tpfast.ppp.ipv6cp import Ipv6cp, Ipv6cpSettings
from l2tpfast.ppp.lcp import Lcp, LcpOptions, LcpSettings


class Phase(Enum):
    """RFC 1661 3.2."""

    DEAD = "dead"
    ESTABLISH = "establish"
    AUTHENTICATE = "authenticate"
    NETWORK = "network"
    TERMINATE = "terminate"


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """What one PPP link negotiates; ``server`` links authenticate the peer and assign addresses."""

    lcp: LcpSettings = field(default_factory=LcpSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    ncp_fsm: FsmSettings = field(default_factory=FsmSettings)
    ipcp: bool = True
    ipv6cp: bool = False
    #: Server: our own address on the link (RFC 1332 3.3, sent in our Configure-Request).
    local_address: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    nbns: tuple[IPv4Address, ...] = ()
    #: Client: ask for DNS servers (RFC 1877) and, when set, for this address.
    request_dns: bool = True
    requested_address: IPv4Address | None = None
    local_identifier: bytes | None = None
    #: Client credentials, used for whichever method the peer's LCP asks for.
    username: str = ""
    password: str = ""
    #: Server: "accept" proxied LCP and authentication (RFC 2661 4.4.5) or "renegotiate".
    proxy: str = "accept"


def lcp_options_from_confreq(body: bytes) -> LcpOptions:
    """The options of a proxied LCP Configure-Request body (RFC 2661 4.4.5: options only).

    Some LACs copy the whole LCP packet (Code, Identifier, Length first); that form is accepted
    too when its header is consistent.
    """
    try:
        options = parse_options(body)
    except PppError:
        if (
            len(body) >= 4
            and body[0] == Code.CONFIGURE_REQUEST
            and struct.unpack_from("!H", body, 2)[0] == len(body)
        ):
            options = parse_options(body[4:])
        else:
            raise
    return LcpOptions.from_options(options)


class PppLink:
    """The PPP engine of one session (server: the LNS terminating a subscriber; client: our LAC)."""

    def __init__(
        self, settings: LinkSettings, *, server: bool, rand: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.settings = settings
        self.server = server
        self._rand = rand
        self.outbox: list[tuple[int, bytes]] = []
        self.lcp = Lcp(self, self.outbox, settings.lcp, rand=rand)
        self.phase = Phase.DEAD
        self.authenticator: Authenticator | None = None
        self.auth_peer: Peer | None = None
        self.ipcp: Ipcp | None = None
        self.ipv6cp: Ipv6cp | None = None
        self.username: str | None = None
        self.peer_address: IPv4Address | None = None
        self.decision: AuthDecision | None = None
        self.closed: LinkClosed | None = None
        self.counters: dict[str, int] = {"protocol_rejects_sent": 0, "dropped": 0, "ip_frames": 0}
        self._events: deque[PppEvent] = deque()
        self._asked = False  # AuthenticationRequested emitted, decision outstanding
        self._local_done = False  # the peer has authenticated to us (or nothing was required)
        self._peer_done = False  # we have authenticated to the peer (or it asked nothing)
        self._proxy: ProxyInfo | None = None
        self._proxy_request: AuthRequest | None = None
        self._terminate_reason = ""
        self._terminated_by_peer = False

    # --- inputs ------------------------------------------------------------------------------

    def start(self, now: float, proxy: ProxyInfo | None = None) -> None:
        """The session is up: the lower layer is Up (RFC 1661 3.2 Link Establishment)."""
        self.phase = Phase.ESTABLISH
        if self.server and proxy is not None and self.settings.proxy == "accept" and proxy.has_lcp:
            try:
                local = lcp_options_from_confreq(proxy.last_sent_lcp_confreq or b"")
                peer = lcp_options_from_confreq(proxy.last_received_lcp_confreq or b"")
            except PppError:
                pass  # unusable proxy LCP: negotiate it ourselves
            else:
                self._proxy = proxy
                if proxy.authen_type in (PROXY_AUTHEN_CHAP, PROXY_AUTHEN_PAP):
                    self._proxy_request = request_from_proxy(
                        proxy.authen_type,
                        proxy.authen_name or "",
                        proxy.authen_challenge or b"",
                        proxy.authen_id or 0,
                        proxy.authen_response or b"",
                    )
                self.lcp.open_with(local, peer, now)
                return
        self.lcp.up(now)
        self.lcp.open(now)

    def receive(self, protocol: int, information: bytes, now: float) -> None:
        """One PPP frame from the session (already without FF 03 and the protocol field)."""
        if self.phase is Phase.DEAD:
            self.counters["dropped"] += 1
            return
        if protocol == Protocol.LCP:
            packet = self._packet(information)
            if packet is not None:
                if packet.code == Code.TERMINATE_REQUEST:
                    self._terminated_by_peer = True
                    self._terminate_reason = packet.data.decode("utf-8", "replace") or "peer terminated"
                self.lcp.receive(packet, now)
        elif protocol in (Protocol.PAP, Protocol.CHAP):
            self._receive_auth(protocol, information, now)
        elif protocol == Protocol.IPCP and self.settings.ipcp:
            self._receive_ncp(self.ipcp, information, now)
        elif protocol == Protocol.IPV6CP and self.settings.ipv6cp:
            self._receive_ncp(self.ipv6cp, information, now)
        elif protocol in (Protocol.IPV4, Protocol.IPV6) and (
            (protocol == Protocol.IPV4 and self.settings.ipcp)
            or (protocol == Protocol.IPV6 and self.settings.ipv6cp)
        ):
            self.counters["ip_frames"] += 1  # the fast path forwards IP; here it is only counted
        elif self.lcp.state is State.OPENED:
            # RFC 1661 5.7: an unsupported protocol (CCP, a disabled NCP, ...) is Protocol-Rejected.
            self.counters["protocol_rejects_sent"] += 1
            self.lcp.send_protocol_reject(protocol, information)
        else:
            self.counters["dropped"] += 1
        self._poll_auth(now)

    def handle_timer(self, now: float) -> None:
        for machine in self._machines():
            deadline = machine.deadline
            if deadline is not None and deadline <= now:
                machine.handle_timer(now)
        self._poll_auth(now)

    def complete_authentication(
        self, decision: AuthDecision, now: float, *, peer_address: IPv4Address | None = None
    ) -> None:
        """The answer to an :class:`AuthenticationRequested`; ``peer_address`` for IPCP (server)."""
        if not self._asked or self.phase is Phase.DEAD:
            return
        self._asked = False
        self.decision = decision
        if self.authenticator is not None:
            self.authenticator.complete(decision, now)
        method = self.authenticator.method if self.authenticator is not None else None
        username = self.username or ""
        if not decision.accepted:
            self._events.append(AuthenticationFailed(username, method, decision.message, local=False))
            self.close(now, "Authentication failed")
            return
        self.peer_address = peer_address or decision.framed_address
        self._local_done = True
        if self.authenticator is not None:
            self._events.append(Authenticated(username, method, local=False))
        self._maybe_network(now)

    def close(self, now: float, reason: str = "Administrative close") -> None:
        """Terminate the link (RFC 1661 3.7): Terminate-Request, then LinkClosed when done."""
        if self.phase is Phase.DEAD:
            return
        self._terminate_reason = reason
        self._terminated_by_peer = False
        self.phase = Phase.TERMINATE
        self.lcp.close(now, reason)
        if self.lcp.state in (State.INITIAL, State.STARTING, State.CLOSED, State.STOPPED):
            self._dead(reason, by_peer=False)

    def lower_down(self, now: float) -> None:
        """The session is gone (CDN or StopCCN): nothing more can be sent."""
        self.lcp.down(now)
        self._dead("session closed", by_peer=False)

    # --- outputs -----------------------------------------------------------------------------

    def frames_to_send(self) -> list[tuple[int, bytes]]:
        """(protocol, information) pairs, in order; the caller adds the PPP and L2TP headers."""
        out = self.outbox[:]
        self.outbox.clear()
        return out

    def get_timer(self) -> float | None:
        if self.phase is Phase.DEAD:
            return None
        deadlines = [m.deadline for m in self._machines() if m.deadline is not None]
        return min(deadlines) if deadlines else None

    def next_event(self) -> PppEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def is_up(self) -> bool:
        """IPCP (or IPv6CP) is Opened: IP can flow."""
        return any(n is not None and n.state is State.OPENED for n in (self.ipcp, self.ipv6cp))

    def status(self) -> dict[str, object]:
        return {
            "phase": self.phase.value,
            "lcp": self.lcp.state.name,
            "ipcp": self.ipcp.state.name if self.ipcp is not None else None,
            "ipv6cp": self.ipv6cp.state.name if self.ipv6cp is not None else None,
            "username": self.username,
            "peer_address": str(self.peer_address) if self.peer_address else None,
            "echo_sent": self.lcp.echo_sent,
            "echo_replies": self.lcp.echo_replies,
            **self.counters,
        }

    # --- the Layer callbacks of the automatons (fsm.Layer) --------------------------------------

    def this_layer_up(self, protocol: int, now: float) -> None:
        if protocol == Protocol.LCP:
            self._on_lcp_up(now)
        elif protocol == Protocol.IPCP and self.ipcp is not None:
            if self.server and self.ipcp.peer_address != self.peer_address:
                # RFC 1332 3.3: the peer would not take the address we assigned (Max-Failure turned
                # our Nak into a Reject); a subscriber without its address cannot be routed.
                self.close(now, "IPCP: the peer refused its address")
                return
            self._events.append(
                NetworkUp(
                    Protocol.IPCP,
                    local_address=self.ipcp.local_address,
                    peer_address=self.ipcp.peer_address,
                    dns=tuple(self.ipcp.dns),
                )
            )
        elif protocol == Protocol.IPV6CP and self.ipv6cp is not None:
            self._events.append(
                NetworkUp(
                    Protocol.IPV6CP,
                    local_identifier=self.ipv6cp.local_identifier,
                    peer_identifier=self.ipv6cp.peer_identifier,
                )
            )

    def this_layer_down(self, protocol: int, now: float) -> None:
        if protocol == Protocol.LCP:
            # RFC 1661 3.2: leaving Opened takes the network layer (and authentication) down.
            for ncp in (self.ipcp, self.ipv6cp):
                if ncp is not None:
                    ncp.down(now)
            self.ipcp = self.ipv6cp = None
            self.authenticator = None
            self.auth_peer = None
            self._local_done = self._peer_done = False
            self._asked = False
            if self.phase is not Phase.TERMINATE:
                self.phase = Phase.ESTABLISH
        else:
            self._events.append(NetworkDown(protocol))

    def this_layer_started(self, protocol: int, now: float) -> None:
        """The lower layer (the L2TP session) is always up while the link exists."""

    def this_layer_finished(self, protocol: int, now: float) -> None:
        if protocol == Protocol.LCP:
            reason = self._terminate_reason or "LCP negotiation failed"
            self._dead(reason, by_peer=self._terminated_by_peer)
        elif self.phase is Phase.NETWORK and all(
            n is None or n.state in (State.STOPPED, State.CLOSED) for n in (self.ipcp, self.ipv6cp)
        ):
            # No network protocol can run: there is nothing to carry (RFC 1661 3.4).
            self.close(now, "No network protocols running")

    def link_failed(self, protocol: int, reason: str, now: float) -> None:
        """Keepalive lost or a looped-back link: the link is dead now, no Terminate exchange."""
        self._dead(reason, by_peer=False)

    def protocol_rejected(self, rejected_protocol: int, now: float) -> None:
        """RFC 1661 5.7: the peer does not run this NCP; it is RXJ- for that automaton."""
        for ncp in (self.ipcp, self.ipv6cp):
            if ncp is not None and ncp.protocol == rejected_protocol:
                ncp.receive_protocol_reject(now)

    # --- internals ---------------------------------------------------------------------------

    def _machines(self) -> list[Automaton | Authenticator | Peer]:
        machines: list[Automaton | Authenticator | Peer] = [self.lcp]
        for m in (self.authenticator, self.auth_peer, self.ipcp, self.ipv6cp):
            if m is not None:
                machines.append(m)
        return machines

    def _packet(self, information: bytes) -> Packet | None:
        try:
            return parse_packet(information)
        except PppError:
            self.counters["dropped"] += 1  # RFC 1661 5: a bad Length is silently discarded
            return None

    def _dead(self, reason: str, *, by_peer: bool) -> None:
        if self.closed is None:
            self.closed = LinkClosed(reason, by_peer)
            self._events.append(self.closed)
        self.phase = Phase.DEAD

    def _on_lcp_up(self, now: float) -> None:
        """RFC 1661 3.5: authenticate in each direction LCP agreed on, then the network phase."""
        self.phase = Phase.AUTHENTICATE
        self._local_done = self._peer_done = False
        local_method = self.lcp.local_options.auth  # the peer authenticates to us
        peer_method = self.lcp.peer_options.auth  # we authenticate to the peer
        if self.server:
            if self._proxy_request is not None:
                # RFC 2661 4.4.5: the LAC challenged the client; its answer is ours to judge, and
                # the verdict goes to the client with that answer's Identifier.
                request = self._proxy_request
                self.authenticator = make_authenticator(method_of(request), self.outbox, self.settings.auth)
                self.authenticator.adopt(request)
                self.username = request.username
                self._ask(request, proxied=True)
            elif local_method is not None:
                self.authenticator = make_authenticator(
                    local_method, self.outbox, self.settings.auth, self._rand
                )
                self.authenticator.start(now)
            elif self.settings.lcp.auth_methods and self._proxy is not None:
                # Proxied LCP without authentication, but we require it: renegotiate LCP.
                self._proxy = None
                self.lcp.down(now)
                self.lcp.up(now)
                self.lcp.open(now)
                return
            else:
                self._ask(None, proxied=False)
        else:
            self._local_done = True  # a client asks nothing of the server
        if peer_method is None:
            self._peer_done = True
        elif not self.settings.username:
            self.close(now, "Peer requires authentication and no credentials are configured")
            return
        else:
            self.auth_peer = make_peer(
                peer_method,
                self.settings.username,
                self.settings.password,
                self.outbox,
                self.settings.auth,
                self._rand,
            )
            self.auth_peer.start(now)
        self._maybe_network(now)

    def _ask(self, request: AuthRequest | None, *, proxied: bool) -> None:
        self._asked = True
        self._events.append(AuthenticationRequested(request, proxied))

    def _receive_auth(self, protocol: int, information: bytes, now: float) -> None:
        if self.phase not in (Phase.AUTHENTICATE, Phase.NETWORK):
            self.counters["dropped"] += 1  # RFC 1661 3.5: only after LCP is Opened
            return
        if not information:
            return
        code = information[0]
        # Requests/Responses go to our authenticator; Challenges and verdicts to our peer side.
        to_authenticator = (protocol == Protocol.PAP and code == PapCode.AUTHENTICATE_REQUEST) or (
            protocol == Protocol.CHAP and code == ChapCode.RESPONSE
        )
        machine: Authenticator | Peer | None = self.authenticator if to_authenticator else self.auth_peer
        if machine is not None and machine.protocol == protocol:
            machine.receive(information, now)
        elif self.lcp.state is State.OPENED and machine is None:
            # An authentication protocol nobody negotiated: RFC 1661 5.7.
            self.counters["protocol_rejects_sent"] += 1
            self.lcp.send_protocol_reject(protocol, information)

    def _receive_ncp(self, ncp: Automaton | None, information: bytes, now: float) -> None:
        if ncp is None or self.phase is not Phase.NETWORK:
            self.counters["dropped"] += 1  # RFC 1661 3.4: NCP packets before this phase are discarded
            return
        packet = self._packet(information)
        if packet is not None:
            ncp.receive(packet, now)

    def _poll_auth(self, now: float) -> None:
        """Turn the authentication machines' state into events and phase changes."""
        a = self.authenticator
        if a is not None:
            if a.pending is not None and not self._asked and not self._local_done and a.outcome is None:
                self.username = a.pending.username
                self._ask(a.pending, proxied=False)
            elif (
                a.outcome is not None
                and not a.outcome.succeeded
                and not self._local_done
                and not self._asked
                and self.phase is Phase.AUTHENTICATE
                and self.decision is None
            ):
                # No answer at all (timeout): RFC 1994 4.1, the authenticator gives up.
                self._events.append(
                    AuthenticationFailed(a.outcome.username, a.method, a.outcome.message, local=False)
                )
                self.decision = AuthDecision(False, a.outcome.message)
                self.close(now, "Authentication failed")
        p = self.auth_peer
        if (
            p is not None
            and p.outcome is not None
            and not self._peer_done
            and self.phase is Phase.AUTHENTICATE
        ):
            if p.outcome.succeeded:
                self._peer_done = True
                self._events.append(Authenticated(p.outcome.username, p.method, local=True))
                self._maybe_network(now)
            else:
                self._peer_done = True
                self._events.append(
                    AuthenticationFailed(p.outcome.username, p.method, p.outcome.message, local=True)
                )
                self.close(now, "Authentication refused by peer")

    def _maybe_network(self, now: float) -> None:
        """RFC 1661 3.5-3.6: once every direction is authenticated, the NCPs start."""
        if self.phase is not Phase.AUTHENTICATE or not (self._local_done and self._peer_done):
            return
        self.phase = Phase.NETWORK
        s = self.settings
        if s.ipcp:
            if self.server:
                ipcp = IpcpSettings(
                    local_address=s.local_address,
                    peer_address=self.peer_address,
                    dns=s.dns,
                    nbns=s.nbns,
                    server=True,
                )
            else:
                ipcp = IpcpSettings(
                    local_address=s.requested_address,  # None: ask with 0.0.0.0 (RFC 1332 3.3)
                    peer_address=None,
                    request_dns=s.request_dns,
                    server=False,
                )
            self.ipcp = Ipcp(self, self.outbox, ipcp, s.ncp_fsm)
            self.ipcp.peer_mru = self.lcp.peer_options.mru  # Code-Rejects must fit (RFC 1661 5.6)
            self.ipcp.up(now)
            self.ipcp.open(now)
        if s.ipv6cp:
            self.ipv6cp = Ipv6cp(
                self,
                self.outbox,
                Ipv6cpSettings(local_identifier=s.local_identifier),
                s.ncp_fsm,
                rand=self._rand,
            )
            self.ipv6cp.peer_mru = self.lcp.peer_options.mru
            self.ipv6cp.up(now)
            self.ipv6cp.open(now)
