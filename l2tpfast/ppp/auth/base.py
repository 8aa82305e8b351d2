"""What the PPP authentication protocols share (RFC 1661 3.5; RFC 1334 2; RFC 1994 4; RFC 2759).

Theory of operation. Each protocol has two ends: the :class:`Authenticator` (the LNS side, which
asks) and the :class:`Peer` (the client side, which proves). Both are sans-IO: the link feeds
them the Information field of a received PPP frame (:meth:`receive`), calls :meth:`handle_timer`
when :attr:`deadline` has passed, and sends what they append to :attr:`outbox`, a list of
``(protocol, information)`` it shares with LCP and the NCPs. A bad packet is dropped without a
word (RFC 1661 5: "silently discarded"); nothing here raises on peer input.

The authenticator does not judge a password itself. When the peer's answer arrives it sets
:attr:`Authenticator.pending` to an :data:`AuthRequest`; the link asks an :class:`AuthBackend`
(the users file now, or RADIUS later and asynchronously) and hands the :class:`AuthDecision` back
through :meth:`Authenticator.complete`, which sends the reply. :attr:`outcome` is set once and
never changes.

``max_retries`` counts retransmissions after the first packet: with the defaults a packet goes
out at most 11 times, and the end gives up ``timeout`` after the last one.

Names travel as octets on the wire. They are decoded as UTF-8 with ``surrogateescape``, so any
octets survive the round trip to ``str`` and back (:func:`encode_name`) and hash as sent.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Protocol as TypingProtocol

from l2tpfast.errors import LocalProtocolError, PppError
from l2tpfast.ppp.constants import AuthMethod
from l2tpfast.ppp.frame import Packet, build_packet, parse_packet

Rand = Callable[[int], bytes]
Outbox = list[tuple[int, bytes]]


# --- requests and decisions --------------------------------------------------------------------


@dataclass(frozen=True)
class PapRequest:
    """RFC 1334 2.2.1: the Peer-ID and Password of an Authenticate-Request, and its Identifier."""

    username: str
    password: bytes = field(repr=False)
    identifier: int = 0


@dataclass(frozen=True)
class ChapRequest:
    """RFC 1994 4.1: a CHAP-MD5 Response and the Challenge it answers."""

    username: str
    identifier: int
    challenge: bytes
    response: bytes


@dataclass(frozen=True)
class MsChapV2Request:
    """RFC 2759 4: the parts of an MS-CHAPv2 Response the authenticator needs."""

    username: str
    identifier: int
    authenticator_challenge: bytes
    peer_challenge: bytes
    nt_response: bytes


AuthRequest = PapRequest | ChapRequest | MsChapV2Request


@dataclass(frozen=True)
class AuthDecision:
    """A backend's verdict; ``authenticator_response`` is MS-CHAPv2's "S=" + 40 upper-case hex."""

    accepted: bool
    message: str = ""
    authenticator_response: str | None = None
    framed_address: IPv4Address | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)


class AuthBackend(TypingProtocol):
    def authenticate(self, request: AuthRequest) -> AuthDecision: ...


@dataclass(frozen=True)
class AuthSettings:
    timeout: float = 3.0
    max_retries: int = 10
    #: Our name in CHAP Challenges (RFC 1994 4.1 Name).
    name: str = "l2tpfast"


DEFAULT_SETTINGS = AuthSettings()


@dataclass(frozen=True)
class AuthOutcome:
    succeeded: bool
    username: str
    message: str = ""


# --- names and messages ------------------------------------------------------------------------


def decode_name(octets: bytes) -> str:
    """Wire name to ``str`` without loss (UTF-8, undecodable octets kept as surrogates)."""
    return octets.decode("utf-8", "surrogateescape")


def encode_name(name: str) -> bytes:
    """The inverse of :func:`decode_name`."""
    return name.encode("utf-8", "surrogateescape")


def decode_message(octets: bytes) -> str:
    """A human-readable Message field (RFC 1334 2.2.2, RFC 1994 4.2), for logs only."""
    return octets.decode("utf-8", "replace").strip("\x00 \t\r\n")


def encode_message(message: str, limit: int = 255) -> bytes:
    return message.encode("utf-8", "replace")[:limit]


def parse_control(information: bytes) -> Packet | None:
    """The packet, or None for one RFC 1661 5 says to discard."""
    try:
        return parse_packet(information)
    except PppError:
        return None


# --- the two ends ------------------------------------------------------------------------------


class _End(ABC):
    method: AuthMethod
    protocol: int

    def __init__(self, outbox: Outbox, settings: AuthSettings, rand: Rand) -> None:
        self.outbox = outbox
        self.settings = settings
        self.deadline: float | None = None
        self.outcome: AuthOutcome | None = None
        self._rand = rand

    def _send(self, code: int, identifier: int, data: bytes = b"") -> None:
        self.outbox.append((self.protocol, build_packet(code, identifier, data)))

    def _finish(self, succeeded: bool, username: str, message: str = "") -> None:
        if self.outcome is None:
            self.outcome = AuthOutcome(succeeded, username, message)
        self.deadline = None

    def _random_identifier(self) -> int:
        return self._rand(1)[0]

    @abstractmethod
    def start(self, now: float) -> None: ...

    @abstractmethod
    def receive(self, information: bytes, now: float) -> None: ...

    @abstractmethod
    def handle_timer(self, now: float) -> None: ...


class Authenticator(_End):
    """The end that demands proof (the LNS)."""

    def __init__(self, outbox: Outbox, settings: AuthSettings, rand: Rand) -> None:
        super().__init__(outbox, settings, rand)
        self.pending: AuthRequest | None = None
        #: The decision given to :meth:`complete`, kept for the link (framed address, attributes).
        self.decision: AuthDecision | None = None

    @abstractmethod
    def complete(self, decision: AuthDecision, now: float) -> None:
        """Answer the pending request with the backend's decision and set :attr:`outcome`."""

    def adopt(self, request: AuthRequest) -> None:
        """Take an answer the peer gave someone else as pending: RFC 2661 4.4.5 proxy
        authentication, where the LAC challenged the client. :meth:`complete` then sends the
        verdict with the Identifier of that answer, as if the client had answered us."""
        self.pending = request
        self.deadline = None
        self._adopt(request)

    @abstractmethod
    def _adopt(self, request: AuthRequest) -> None:
        """Take the request's Identifier (and Challenge) as this exchange's."""

    def _take_pending(self) -> AuthRequest:
        if self.pending is None:
            raise LocalProtocolError("complete() without a pending authentication request")
        request, self.pending = self.pending, None
        return request


class Peer(_End):
    """The end that proves who it is (the client)."""

    def __init__(
        self, username: str, password: str, outbox: Outbox, settings: AuthSettings, rand: Rand
    ) -> None:
        super().__init__(outbox, settings, rand)
        self.username = username
        self._password = password

    def __repr__(self) -> str:
        return f"{type(self).__name__}(username={self.username!r}, outcome={self.outcome!r})"


# --- factories ---------------------------------------------------------------------------------


def make_authenticator(
    method: AuthMethod, outbox: Outbox, settings: AuthSettings = DEFAULT_SETTINGS, rand: Rand = os.urandom
) -> Authenticator:
    # Imported here: the protocol modules import this one.
    from l2tpfast.ppp.auth.chap import ChapAuthenticator
    from l2tpfast.ppp.auth.mschapv2 import MsChapV2Authenticator
    from l2tpfast.ppp.auth.pap import PapAuthenticator

    classes: dict[AuthMethod, type[Authenticator]] = {
        AuthMethod.PAP: PapAuthenticator,
        AuthMethod.CHAP_MD5: ChapAuthenticator,
        AuthMethod.MSCHAPV2: MsChapV2Authenticator,
    }
    return classes[method](outbox, settings, rand)


def method_of(request: AuthRequest) -> AuthMethod:
    """The method a request was made with."""
    if isinstance(request, PapRequest):
        return AuthMethod.PAP
    if isinstance(request, MsChapV2Request):
        return AuthMethod.MSCHAPV2
    return AuthMethod.CHAP_MD5


def make_peer(
    method: AuthMethod,
    username: str,
    password: str,
    outbox: Outbox,
    settings: AuthSettings = DEFAULT_SETTINGS,
    rand: Rand = os.urandom,
) -> Peer:
    from l2tpfast.ppp.auth.chap import ChapPeer
    from l2tpfast.ppp.auth.mschapv2 import MsChapV2Peer
    from l2tpfast.ppp.auth.pap import PapPeer

    classes: dict[AuthMethod, type[Peer]] = {
        AuthMethod.PAP: PapPeer,
        AuthMethod.CHAP_MD5: ChapPeer,
        AuthMethod.MSCHAPV2: MsChapV2Peer,
    }
    return classes[method](username, password, outbox, settings, rand)


# --- L2TP proxy authentication -----------------------------------------------------------------

#: RFC 2661 4.4.5 Proxy Authen Type values.
PROXY_AUTHEN_CHAP = 2
PROXY_AUTHEN_PAP = 3

#: RFC 2759 4: 16 Peer-Challenge, 8 Reserved, 24 NT-Response, 1 Flags.
MSCHAPV2_RESPONSE_LENGTH = 49


def request_from_proxy(
    authen_type: int, name: str, challenge: bytes, identifier: int, response: bytes
) -> AuthRequest | None:
    """The request a LAC's proxy authentication AVPs describe (RFC 2661 4.4.5), or None.

    PAP carries the password in Proxy Authen Response. For PPP CHAP a 49-octet response is
    MS-CHAPv2 (RFC 2759 4) answering a 16-octet challenge; anything else is CHAP-MD5. Types 1
    (textual), 4 (none) and 5 (MS-CHAPv1) give None: the LNS authenticates afresh.
    """
    if authen_type == PROXY_AUTHEN_PAP:
        return PapRequest(name, bytes(response), identifier & 0xFF)
    if authen_type != PROXY_AUTHEN_CHAP or not challenge or not response:
        return None
    if len(response) == MSCHAPV2_RESPONSE_LENGTH and len(challenge) == 16:
        return MsChapV2Request(
            name, identifier & 0xFF, bytes(challenge), bytes(response[:16]), bytes(response[24:48])
        )
    return ChapRequest(name, identifier & 0xFF, bytes(challenge), bytes(response))
