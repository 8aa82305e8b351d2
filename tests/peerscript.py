"""A scripted fake peer: drive ONE control-plane Endpoint with hand-built datagrams.

Where :mod:`ctlpair` wires two of our own cores together, :class:`ScriptedPeer` plays
the other end by hand, the way tests of real peers need: it builds each message with
:func:`~l2tpfast.wire.message.build_message` (or from raw AVPs, for broken ones), keeps
its own Ns and Nr right (RFC 2661 5.8), and parses every datagram the endpoint sends,
so that a test can assert on what came back. The clock is fake: ``now`` only moves
when :meth:`ScriptedPeer.advance` is called, and then only timers run.

A typical script (the peer is a LAC, the endpoint an LNS)::

    peer = ScriptedPeer()
    peer.establish()                         # SCCRQ -> SCCRP -> SCCCN
    sid = peer.incoming_call(peer_sid=7)     # ICRQ -> ICRP -> ICCN; the LNS's Session ID
    peer.send(MessageType.SLI, [(AvpType.ACCM, Accm())], session_id=sid)
    assert peer.events_of(LinkInfoSet)
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ctlpair import LAC_ADDR, LNS_ADDR

from l2tpfast.control.endpoint import Endpoint, Transmit
from l2tpfast.control.events import Event
from l2tpfast.control.settings import EndpointSettings, TunnelSettings
from l2tpfast.control.tunnel import Tunnel
from l2tpfast.wire.avp import Avp, ProtocolVersion, encode_avps, make_avp
from l2tpfast.wire.constants import AvpType, FramingCapability, MessageType
from l2tpfast.wire.header import build_control_header, parse_header
from l2tpfast.wire.hiding import challenge_response
from l2tpfast.wire.message import AvpItem, ControlMessage, build_message, build_zlb, parse_message
from l2tpfast.wire.seqnum import seq_add, seq_diff

A = AvpType
M = MessageType
E = TypeVar("E", bound=Event)

#: The Tunnel ID the scripted peer assigns to its end of the tunnel.
PEER_TUNNEL_ID = 0x1234
#: Bound of every loop that runs the endpoint's timers.
MAX_TIMER_RUNS = 100_000


class _Mailbox:
    """What an endpoint emitted and no peer has taken yet (datagrams), or ever (events)."""

    def __init__(self) -> None:
        self.out: list[Transmit] = []
        self.events: list[Event] = []


_MAILBOXES: weakref.WeakKeyDictionary[Endpoint, _Mailbox] = weakref.WeakKeyDictionary()


class ScriptedPeer:
    """The far end of one tunnel, played by the test against one :class:`Endpoint`."""

    def __init__(
        self,
        endpoint: Endpoint | None = None,
        *,
        settings: TunnelSettings | EndpointSettings | None = None,
        addr: tuple[str, int] = LAC_ADDR,
        endpoint_addr: tuple[str, int] = LNS_ADDR,
        secret: bytes | None = None,
        seed: int = 1,
        now: float = 0.0,
    ) -> None:
        if endpoint is None:
            if isinstance(settings, TunnelSettings):
                settings = EndpointSettings(settings)
            endpoint = Endpoint(
                settings or EndpointSettings(TunnelSettings(host_name="endpoint")), rng=random.Random(seed)
            )
        self.endpoint = endpoint
        #: Our address as the endpoint sees it, and the endpoint's (its local address).
        self.addr = addr
        self.endpoint_addr = endpoint_addr
        self.secret = secret
        self.now = now
        self.tunnel_id = PEER_TUNNEL_ID
        #: The endpoint's Tunnel ID: what we put in our headers (0 until known).
        self.endpoint_tunnel_id = 0
        #: Ns of our next message, and Nr: the next Ns we expect from the endpoint.
        self.ns = 0
        self.nr = 0
        #: Every control message the endpoint sent, in order (ZLBs and retransmissions too).
        self.log: list[ControlMessage] = []
        #: Non-ZLB messages not yet taken by :meth:`take`.
        self.inbox: list[ControlMessage] = []
        self.events: list[Event] = []
        self.datagrams_out = 0
        self._urandom_rng = random.Random(seed + 1000)
        # Peers that share an endpoint share what it emits: datagrams go to the peer they are
        # addressed to, and every peer sees every event.
        self._mailbox = _MAILBOXES.setdefault(endpoint, _Mailbox())
        self._event_cursor = len(self._mailbox.events)

    # --- the endpoint's side --------------------------------------------------------------

    @property
    def tunnel(self) -> Tunnel:
        """The endpoint's tunnel for this peer."""
        return self.endpoint.tunnels[self.endpoint_tunnel_id]

    def collect(self) -> list[ControlMessage]:
        """Take what the endpoint sent and its events; every datagram must parse."""
        new: list[ControlMessage] = []
        box = self._mailbox
        box.out.extend(self.endpoint.datagrams_to_send(self.now))
        while (event := self.endpoint.next_event()) is not None:
            box.events.append(event)
        mine = [tx for tx in box.out if tx.addr == self.addr]
        box.out = [tx for tx in box.out if tx.addr != self.addr]
        for tx in mine:
            self.datagrams_out += 1
            header, _ = parse_header(tx.data)
            if not header.is_control:
                continue
            message = parse_message(tx.data, secret=self.secret)
            self.log.append(message)
            if message.is_zlb:
                continue
            if message.ns == self.nr:
                self.nr = seq_add(self.nr, 1)
            elif seq_diff(message.ns, self.nr) < 0:
                continue  # a retransmission of what we already have
            new.append(message)
        self.inbox.extend(new)
        self.events.extend(box.events[self._event_cursor :])
        self._event_cursor = len(box.events)
        return new

    def take(self, *names: str) -> list[ControlMessage]:
        """The messages received since the last take (only those named, if names are given)."""
        taken, self.inbox = self.inbox, []
        return [m for m in taken if not names or m.name in names]

    def names(self) -> list[str]:
        """Names of the messages received since the last take, and take them."""
        return [m.name for m in self.take()]

    def events_of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def take_events(self) -> list[Event]:
        taken, self.events = self.events, []
        return taken

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass, running the endpoint's timers as they fall due."""
        end = self.now + seconds
        for _ in range(MAX_TIMER_RUNS):
            timer = self.endpoint.get_timer()
            if timer is None or timer > end:
                break
            self.now = max(self.now, timer)
            self.endpoint.handle_timer(self.now)
            self.collect()
        else:
            raise AssertionError(f"timers still due after {MAX_TIMER_RUNS} runs at t={self.now}")
        self.now = end
        self.collect()

    # --- our side ---------------------------------------------------------------------------

    def urandom(self, n: int) -> bytes:
        return self._urandom_rng.getrandbits(8 * n).to_bytes(n, "big")

    def build(
        self,
        message_type: int,
        avps: Iterable[AvpItem] = (),
        *,
        session_id: int = 0,
        tunnel_id: int | None = None,
        ns: int | None = None,
        nr: int | None = None,
        hide: Iterable[int] = (),
    ) -> bytes:
        """The octets of a well-formed message with our current Ns and Nr."""
        message = build_message(
            MessageType(message_type),
            avps,
            tunnel_id=self.endpoint_tunnel_id if tunnel_id is None else tunnel_id,
            session_id=session_id,
            ns=self.ns if ns is None else ns,
            nr=self.nr if nr is None else nr,
            secret=self.secret,
            hide=tuple(hide),
            urandom=self.urandom,
        )
        return message.encode()

    def build_raw(
        self,
        avps: Sequence[Avp],
        *,
        session_id: int = 0,
        tunnel_id: int | None = None,
        ns: int | None = None,
        nr: int | None = None,
    ) -> bytes:
        """A message made of exactly these AVPs (no checks: for broken messages)."""
        body = encode_avps(avps)
        header = build_control_header(
            self.endpoint_tunnel_id if tunnel_id is None else tunnel_id,
            session_id,
            self.ns if ns is None else ns,
            self.nr if nr is None else nr,
            len(body),
        )
        return header + body

    def send(
        self,
        message_type: int,
        avps: Iterable[AvpItem] = (),
        *,
        session_id: int = 0,
        hide: Iterable[int] = (),
    ) -> list[ControlMessage]:
        """Send one message (it takes an Ns); return what the endpoint answered at once."""
        data = self.build(message_type, avps, session_id=session_id, hide=hide)
        self.ns = seq_add(self.ns, 1)
        return self.deliver(data)

    def send_raw(self, avps: Sequence[Avp], *, session_id: int = 0) -> list[ControlMessage]:
        """Send a message of exactly these AVPs; it takes an Ns like any non-ZLB message."""
        data = self.build_raw(avps, session_id=session_id)
        self.ns = seq_add(self.ns, 1)
        return self.deliver(data)

    def ack(self) -> list[ControlMessage]:
        """Send a ZLB that acknowledges everything received so far."""
        return self.deliver(build_zlb(self.endpoint_tunnel_id, self.ns, self.nr))

    def deliver(self, data: bytes, *, addr: tuple[str, int] | None = None) -> list[ControlMessage]:
        """Hand the endpoint one datagram as if it came from ``addr`` (ours by default)."""
        self.endpoint.receive_datagram(data, addr or self.addr, self.now, self.endpoint_addr[0])
        return self.collect()

    def settle(self, seconds: float = 1.0) -> None:
        """Ack, then let delayed acks and the like go out."""
        self.ack()
        self.advance(seconds)

    # --- scripts ----------------------------------------------------------------------------

    def sccrq_avps(self, *, host_name: str = "peer", extra: Sequence[AvpItem] = ()) -> list[AvpItem]:
        return [
            (A.PROTOCOL_VERSION, ProtocolVersion(1, 0)),
            (A.HOST_NAME, host_name),
            (A.FRAMING_CAPABILITIES, FramingCapability.SYNC),
            (A.ASSIGNED_TUNNEL_ID, self.tunnel_id),
            *extra,
        ]

    def establish(
        self,
        *,
        host_name: str = "peer",
        sccrq_extra: Sequence[AvpItem] = (),
        scccn_avps: Sequence[AvpItem] = (),
    ) -> int:
        """We are the LAC: SCCRQ, expect SCCRP, send SCCCN. Returns the endpoint's Tunnel ID."""
        replies = self.send(M.SCCRQ, self.sccrq_avps(host_name=host_name, extra=sccrq_extra), session_id=0)
        sccrp = [m for m in replies if m.name == "SCCRP"]
        assert sccrp, f"no SCCRP: {[m.name for m in replies]}"
        self.endpoint_tunnel_id = sccrp[0][A.ASSIGNED_TUNNEL_ID]
        avps = list(scccn_avps)
        challenge = sccrp[0].get(A.CHALLENGE)
        if challenge is not None and self.secret:
            avps.append((A.CHALLENGE_RESPONSE, challenge_response(M.SCCCN, self.secret, challenge)))
        self.send(M.SCCCN, avps)
        self.advance(0.5)  # the endpoint's delayed ZLB
        self.take()
        return self.endpoint_tunnel_id

    def answer(self, *, host_name: str = "peer") -> int:
        """We are the LNS: the endpoint opened a tunnel to us; take its SCCRQ, answer SCCRP."""
        sccrq = [m for m in self.take() if m.name == "SCCRQ"]
        assert sccrq, "the endpoint sent no SCCRQ"
        self.endpoint_tunnel_id = sccrq[0][A.ASSIGNED_TUNNEL_ID]
        avps = self.sccrq_avps(host_name=host_name)
        challenge = sccrq[0].get(A.CHALLENGE)
        if challenge is not None and self.secret:
            avps.append((A.CHALLENGE_RESPONSE, challenge_response(M.SCCRP, self.secret, challenge)))
        replies = self.send(M.SCCRP, avps)
        assert any(m.name == "SCCCN" for m in replies), [m.name for m in replies]
        return self.endpoint_tunnel_id

    def incoming_call(
        self,
        peer_sid: int,
        *,
        serial: int = 1,
        iccn: Sequence[AvpItem] = (),
    ) -> int:
        """We are the LAC: ICRQ, expect ICRP, send ICCN. Returns the endpoint's Session ID."""
        replies = self.send(M.ICRQ, [(A.ASSIGNED_SESSION_ID, peer_sid), (A.CALL_SERIAL_NUMBER, serial)])
        icrp = [m for m in replies if m.name == "ICRP"]
        assert icrp, [m.name for m in replies]
        sid: int = icrp[0][A.ASSIGNED_SESSION_ID]
        self.send(M.ICCN, connect_avps(*iccn), session_id=sid)
        return sid


def connect_avps(*extra: AvpItem) -> list[AvpItem]:
    """The mandatory AVPs of ICCN and OCCN (6.8, 6.11), then ``extra``."""
    return [(A.TX_CONNECT_SPEED, 10_000_000), (A.FRAMING_TYPE, FramingCapability.SYNC), *extra]


def raw(attr_type: int, value: Any, **kw: Any) -> Avp:
    """An AVP from a typed value (``make_avp``), for :meth:`ScriptedPeer.send_raw`."""
    return make_avp(attr_type, value, **kw)
